//! `verify`: whether any signature of an image verifies with a public key.
//!
//! Each layer of the image's `sha256-<hex>.sig` manifest is checked as cosign does:
//! the payload blob must match its digest, the annotation's signature must verify
//! over the payload's bytes, and the payload must name this image's digest. One
//! good signature is enough; otherwise every layer's reason is reported.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_core::layout;
use berth_core::store::Store;
use berth_core::{Digest, ImageRef};
use oci_spec::image::Descriptor;
use serde::Serialize;

use super::payload::{SIGNATURE_TYPE, SimpleSigning};
use super::{
    PublicKey, SIMPLE_SIGNING_MEDIA_TYPE, SigningError, layer_digest, layer_signature, resolve,
    signature_manifest, signature_tag,
};

/// What `berth verify --json` prints: the signature that verified.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Verification {
    pub repository: String,
    /// The verified image's manifest digest.
    pub digest: String,
    /// Digest of the payload whose signature verified.
    pub payload: String,
    /// The name the signer gave the image (`critical.identity.docker-reference`).
    pub docker_reference: String,
    /// Signatures the image has.
    pub signatures: usize,
}

pub async fn verify(
    store: &dyn Store,
    image: &ImageRef,
    key: &PublicKey,
) -> Result<Verification, SigningError> {
    let signed = resolve(store, image).await?;
    let Some((_, manifest)) = signature_manifest(store, &image.repository, &signed.digest).await?
    else {
        return Err(SigningError::Unsigned {
            image: image.to_string(),
            digest: signed.digest.clone(),
            tag: signature_tag(&signed.digest),
        });
    };
    let layers = manifest.layers();
    let mut reasons = Vec::new();
    for (index, layer) in layers.iter().enumerate() {
        match check(store, image, &signed.digest, layer, key).await? {
            Ok(payload) => {
                return Ok(Verification {
                    repository: image.repository.to_string(),
                    digest: signed.digest.to_string(),
                    payload: layer.digest().to_string(),
                    docker_reference: payload.critical.identity.docker_reference,
                    signatures: layers.len(),
                });
            }
            Err(reason) => reasons.push(format!("signature {}: {reason}", index + 1)),
        }
    }
    if reasons.is_empty() {
        reasons.push("the signature manifest has no layers".into());
    }
    Err(SigningError::NotVerified {
        image: image.to_string(),
        digest: signed.digest,
        reasons,
    })
}

/// One layer's verdict: the payload, or why it does not vouch for the image. The
/// outer error is a store failure, which is not a verdict.
async fn check(
    store: &dyn Store,
    image: &ImageRef,
    expected: &Digest,
    layer: &Descriptor,
    key: &PublicKey,
) -> Result<Result<SimpleSigning, String>, SigningError> {
    let media_type = layer.media_type().to_string();
    if media_type != SIMPLE_SIGNING_MEDIA_TYPE {
        return Ok(Err(format!("not a simple-signing layer ({media_type})")));
    }
    let Ok(digest) = layer_digest(layer) else {
        return Ok(Err(format!("unsupported digest {}", layer.digest())));
    };
    let Some(signature) = layer_signature(layer) else {
        return Ok(Err("the layer carries no signature annotation".into()));
    };
    let Ok(signature) = STANDARD.decode(signature) else {
        return Ok(Err("the signature annotation is not base64".into()));
    };
    let Some(object) = store
        .get(&layout::blob_key(&image.repository, &digest))
        .await?
    else {
        return Ok(Err(format!("payload {digest} is missing from the store")));
    };
    let payload = object.body;
    let actual = Digest::of(&payload);
    if actual != digest {
        return Ok(Err(format!(
            "payload {digest} was tampered with: its bytes hash to {actual}"
        )));
    }
    if !key.verifies(&payload, &signature) {
        return Ok(Err(
            "the signature does not verify with this key (signed by another key, or altered)"
                .into(),
        ));
    }
    let Ok(claims) = serde_json::from_slice::<SimpleSigning>(&payload) else {
        return Ok(Err("the payload is not a simple-signing document".into()));
    };
    if claims.critical.kind != SIGNATURE_TYPE {
        return Ok(Err(format!(
            "the payload's type is {:?}, not {SIGNATURE_TYPE:?}",
            claims.critical.kind
        )));
    }
    if claims.critical.image.docker_manifest_digest != expected.as_str() {
        return Ok(Err(format!(
            "the payload signs {}, not this image",
            claims.critical.image.docker_manifest_digest
        )));
    }
    Ok(Ok(claims))
}
