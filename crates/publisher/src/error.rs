//! Why a publish was refused or failed, in words a user can act on.

use berth_core::Digest;
use berth_core::reference::ParseError;
use berth_core::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error(transparent)]
    InvalidName(#[from] ParseError),
    #[error("{source_name}: {message}")]
    Source {
        source_name: String,
        message: String,
    },
    #[error("{source_name}: the image is malformed or truncated: {message}")]
    MalformedArchive {
        source_name: String,
        message: String,
    },
    #[error("blob {digest} is missing from the source")]
    MissingBlob { digest: Digest },
    #[error("blob {digest} is {actual} bytes in the source but its descriptor says {expected}")]
    SizeMismatch {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("manifest {digest} does not match its digest or size (the source is corrupt)")]
    ManifestMismatch { digest: Digest },
    #[error("manifest {digest} is not valid: {message}")]
    InvalidManifest { digest: Digest, message: String },
    #[error(
        "the store uses bucket layout version {found}; this berth understands up to {supported}: upgrade berth"
    )]
    NewerLayout { found: u32, supported: u32 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl PublishError {
    pub fn source(source_name: &str, message: impl Into<String>) -> Self {
        PublishError::Source {
            source_name: source_name.to_owned(),
            message: message.into(),
        }
    }

    pub fn malformed(source_name: &str, message: impl std::fmt::Display) -> Self {
        PublishError::MalformedArchive {
            source_name: source_name.to_owned(),
            message: message.to_string(),
        }
    }
}
