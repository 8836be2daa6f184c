//! Publishing images into a berth store.
//!
//! Every source (a `docker save` tarball, an OCI image layout, the local Docker
//! engine) is read into one model, a [`source::Bundle`]: a root manifest descriptor
//! plus where each blob's bytes are. [`plan`] walks the manifests and checks them;
//! [`publish`] writes blobs, then manifests, then tags, so a crash at any point leaves
//! every tag pointing at complete content. The `berth` binary is thin clap verbs over
//! these functions.

pub mod access_admin;
pub mod derived;
pub mod error;
pub mod observer;
pub mod plan;
pub mod publish;
pub mod site;
pub mod source;

pub use error::PublishError;
pub use publish::{PublishOptions, PublishReport, publish};
