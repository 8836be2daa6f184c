//! Image signatures in cosign's key-based format, so cosign (and tools built with
//! sigstore) verify what `berth sign` writes, and `berth verify` checks what cosign
//! wrote.
//!
//! A signature is a simple-signing [`payload`] naming the image's manifest digest,
//! signed with an ECDSA P-256 [`key`]. Each is one layer of the manifest tagged
//! `sha256-<hex>.sig` in the image's repository, carrying the base64 signature in
//! an annotation; signing again adds a layer ([`sign`]). The manifest also names the
//! image as its `subject`, so the OCI 1.1 referrers API lists it. `docs/signing.md`
//! describes the format.

mod cosign_key;
pub mod key;
pub mod payload;
mod sign;
mod verify;

use berth_core::layout;
use berth_core::media_type::OCI_MANIFEST;
use berth_core::reference::ParseError;
use berth_core::store::{Store, StoreError};
use berth_core::{Digest, ImageRef, Repository, Tag};
use oci_spec::image::ImageManifest;

use crate::error::PublishError;
pub use key::{KeyError, PrivateKey, PublicKey};
pub use sign::{SignReport, sign};
pub use verify::{Verification, verify};

/// Media type of a layer holding a simple-signing payload.
pub const SIMPLE_SIGNING_MEDIA_TYPE: &str = "application/vnd.dev.cosign.simplesigning.v1+json";
/// Layer annotation holding the base64 DER signature of the layer's payload.
pub const SIGNATURE_ANNOTATION: &str = "dev.cosignproject.cosign/signature";
/// `artifactType` of a signature manifest, as cosign's OCI 1.1 mode writes it, so a
/// referrers query can ask for signatures only.
pub const SIGNATURE_ARTIFACT_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Publish(#[from] PublishError),
    #[error(transparent)]
    InvalidName(#[from] ParseError),
    #[error("{0} is not in the store: check the name, or push it first")]
    ImageNotFound(String),
    #[error("{image} ({digest}) is not signed: there is no {tag} tag in its repository")]
    Unsigned {
        image: String,
        digest: Digest,
        tag: Tag,
    },
    #[error("{image} ({digest}): no signature verifies with this key: {}", reasons.join("; "))]
    NotVerified {
        image: String,
        digest: Digest,
        reasons: Vec<String>,
    },
    #[error("{repository}:{tag} is not a signature manifest ({message}); remove or fix that tag")]
    InvalidSignatures {
        repository: Repository,
        tag: Tag,
        message: String,
    },
}

/// The signed image: its manifest's digest, media type and size.
struct Image {
    digest: Digest,
    media_type: String,
    size: u64,
}

/// Finds the manifest `image` names in the store.
async fn resolve(store: &dyn Store, image: &ImageRef) -> Result<Image, SigningError> {
    let key = layout::manifest_key(&image.repository, &image.reference);
    let object = store
        .get(&key)
        .await?
        .ok_or_else(|| SigningError::ImageNotFound(image.to_string()))?;
    Ok(Image {
        // The bytes decide, not the metadata: this digest is what gets signed.
        digest: Digest::of(&object.body),
        media_type: object
            .meta
            .content_type
            .unwrap_or_else(|| OCI_MANIFEST.into()),
        size: object.body.len() as u64,
    })
}

/// cosign's tag for the signatures of `digest`: `sha256-<hex>.sig`.
pub fn signature_tag(digest: &Digest) -> Tag {
    format!("sha256-{}.sig", digest.hex())
        .parse()
        .expect("sha256-<64 hex>.sig is a valid tag")
}

/// The signature manifest of `digest` in `repository` and its digest, if any.
async fn signature_manifest(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<Option<(Digest, ImageManifest)>, SigningError> {
    let tag = signature_tag(digest);
    let Some(object) = store.get(&layout::tag_key(repository, &tag)).await? else {
        return Ok(None);
    };
    let manifest =
        serde_json::from_slice(&object.body).map_err(|e| SigningError::InvalidSignatures {
            repository: repository.clone(),
            tag,
            message: e.to_string(),
        })?;
    Ok(Some((Digest::of(&object.body), manifest)))
}

/// The base64 signature a layer carries, if any.
fn layer_signature(layer: &oci_spec::image::Descriptor) -> Option<&str> {
    layer
        .annotations()
        .as_ref()?
        .get(SIGNATURE_ANNOTATION)
        .map(String::as_str)
}

/// A layer descriptor's digest as berth's type (oci-spec also admits other algorithms).
fn layer_digest(layer: &oci_spec::image::Descriptor) -> Result<Digest, ParseError> {
    layer.digest().to_string().parse()
}
