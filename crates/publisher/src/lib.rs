//! Publishing images into a berth store.
//!
//! Every source (a `docker save` tarball, an OCI image layout, the local Docker
//! engine, another registry for [`copy`]) is read into one model, a
//! [`source::Bundle`]: a root manifest descriptor plus where each blob's bytes are
//! (or how to fetch them). [`plan`] walks the manifests and checks them; [`publish`]
//! writes blobs, then manifests, then tags, so a crash at any point leaves every tag
//! pointing at complete content; [`webhook`] then tells other systems what landed. [`signing`] builds cosign-format signatures in memory and publishes them
//! the same way. The `berth` binary is thin clap verbs over these functions.

pub mod access_admin;
pub mod copy;
pub mod delete;
pub mod derived;
pub mod error;
pub mod gc;
pub mod observer;
pub mod plan;
pub mod platform;
pub mod publish;
pub mod references;
pub mod signing;
pub mod site;
pub mod source;
pub mod webhook;

pub use error::PublishError;
pub use publish::{PublishOptions, PublishReport, publish};
