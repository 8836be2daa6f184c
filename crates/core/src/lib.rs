//! berth's shared core: what every role (publisher, registry) agrees on.
//!
//! - [`reference`]: repository names, tags and digests, parsed once into types that
//!   cannot hold an invalid value (the distribution-spec grammar).
//! - [`media_type`]: the manifest and layer media types berth understands.
//! - [`layout`]: the one place that maps registry concepts to store keys.
//! - [`store`]: the storage trait and its two backends (S3 and a local directory).
//! - [`aws`]: the AWS SDK configuration (one HTTPS client) every AWS call starts from.
//!
//! It knows nothing about HTTP, archives or the command line.

pub mod access;
pub mod aws;
pub mod catalog;
pub mod digest;
pub mod layout;
pub mod media_type;
pub mod reference;
pub mod store;

pub use digest::Digest;
pub use reference::{ImageRef, Reference, Repository, Tag};
