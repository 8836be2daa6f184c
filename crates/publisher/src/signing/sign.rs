//! `sign`: adds a signature to an image's `sha256-<hex>.sig` manifest.
//!
//! The new manifest keeps every existing signature layer and adds one, and is
//! published like any image (blobs, manifest, referrer record, tag, derived files),
//! so a crash leaves either the old signature set or the new one. The signed image
//! itself is only read.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use berth_core::layout;
use berth_core::media_type::OCI_MANIFEST;
use berth_core::store::{Store, list_all};
use berth_core::{Digest, ImageRef, Repository, Tag};
use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageManifest, ImageManifestBuilder, MediaType};
use serde::Serialize;

use super::payload::SimpleSigning;
use super::{
    Image, PrivateKey, SIGNATURE_ANNOTATION, SIGNATURE_ARTIFACT_TYPE, SIMPLE_SIGNING_MEDIA_TYPE,
    SigningError, layer_digest, layer_signature, resolve, signature_manifest, signature_tag,
};
use crate::observer::Observer;
use crate::publish::{PublishOptions, publish};
use crate::source::Bundle;

/// What `berth sign --json` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SignReport {
    pub repository: String,
    /// The signed manifest's digest.
    pub digest: String,
    /// The tag holding the signatures.
    pub signature_tag: String,
    /// Digest of the signature manifest now tagged.
    pub signature_manifest: String,
    /// Signatures the image now has.
    pub signatures: usize,
    /// `false` when the key had already signed this image (nothing was written).
    pub added: bool,
}

/// Signs `image` with `key`, naming it `docker_reference` in the payload (the name
/// clients pull it by, e.g. `registry.example.com/acme/web`).
pub async fn sign(
    store: &dyn Store,
    image: &ImageRef,
    key: &PrivateKey,
    docker_reference: &str,
    options: &PublishOptions,
    observer: &dyn Observer,
) -> Result<SignReport, SigningError> {
    let repository = &image.repository;
    let signed = resolve(store, image).await?;
    let payload = Bytes::from(SimpleSigning::new(docker_reference, &signed.digest).to_bytes());
    let payload_digest = Digest::of(&payload);
    let tag = signature_tag(&signed.digest);
    let mut known = Signatures::read(store, repository, &signed.digest).await?;
    let report = |manifest: &Digest, signatures: usize, added: bool| SignReport {
        repository: repository.to_string(),
        digest: signed.digest.to_string(),
        signature_tag: tag.to_string(),
        signature_manifest: manifest.to_string(),
        signatures,
        added,
    };

    // Like cosign, signing the same payload with the same key again adds nothing.
    let public = key.public_key()?;
    let already = known.tagged.iter().any(|layer| {
        layer_digest(layer).is_ok_and(|d| d == payload_digest)
            && layer_signature(layer)
                .and_then(|s| STANDARD.decode(s).ok())
                .is_some_and(|s| public.verifies(&payload, &s))
    });
    if let (true, Some(digest)) = (already, &known.tag_digest) {
        return Ok(report(digest, known.tagged.len(), false));
    }

    let signature = STANDARD.encode(key.sign(&payload)?);
    let mut new_layer = Descriptor::new(
        MediaType::Other(SIMPLE_SIGNING_MEDIA_TYPE.into()),
        payload.len() as u64,
        oci_digest(&payload_digest),
    );
    new_layer.set_annotations(Some(HashMap::from([(
        SIGNATURE_ANNOTATION.to_owned(),
        signature,
    )])));

    // Another signer may rewrite the tag at the same moment without our layer. Every
    // signature manifest is also a referrer record of the image, kept until a record
    // holding a superset exists; so after tagging, a signer tags the union of all
    // records again until the tag holds every one (docs/signing.md, "Concurrent
    // signers"). The last signer to write checks last, and sees everyone's.
    let mut ours = Some((new_layer, payload));
    loop {
        let mut layers = known.union();
        if let Some((layer, _)) = &ours
            && !layers.contains(layer)
        {
            layers.push(layer.clone());
        }
        if let Some(digest) = &known.tag_digest
            && layers.iter().all(|l| known.tagged.contains(l))
        {
            return Ok(report(digest, known.tagged.len(), true));
        }
        let mut blobs = Vec::with_capacity(layers.len() + 1);
        for layer in &layers {
            match &ours {
                Some((ours, payload)) if ours == layer => blobs.push(payload.clone()),
                _ => blobs.push(read_blob(store, image, &tag, layer).await?),
            }
        }
        let config = Bytes::from(config_json(&layers));
        let manifest = signature_manifest_json(&signed, &config, layers.clone());
        blobs.push(config);
        let bundle = Bundle::in_memory(OCI_MANIFEST, manifest, blobs);
        let new_digest = bundle.root.digest.clone();
        publish(
            store,
            &bundle,
            repository,
            std::slice::from_ref(&tag),
            options,
            observer,
        )
        .await?;
        ours = None;
        // Records the new manifest covers go (after its own is in place), so the
        // referrers API lists one signature manifest, and garbage collection may take
        // the superseded ones.
        for (digest, their_layers) in &known.referrers {
            if digest != &new_digest && their_layers.iter().all(|l| layers.contains(l)) {
                store
                    .delete(&layout::referrer_key(repository, &signed.digest, digest))
                    .await?;
            }
        }
        known = Signatures::read(store, repository, &signed.digest).await?;
    }
}

/// The signatures of an image as the store holds them now: the tagged set and the
/// signature manifests recorded as its referrers.
struct Signatures {
    tagged: Vec<Descriptor>,
    tag_digest: Option<Digest>,
    referrers: Vec<(Digest, Vec<Descriptor>)>,
}

impl Signatures {
    async fn read(
        store: &dyn Store,
        repository: &Repository,
        subject: &Digest,
    ) -> Result<Self, SigningError> {
        let (tag_digest, tagged) = match signature_manifest(store, repository, subject).await? {
            Some((digest, manifest)) => (Some(digest), manifest.layers().clone()),
            None => (None, Vec::new()),
        };
        let mut referrers = Vec::new();
        for key in list_all(store, &layout::referrers_prefix(repository, subject)).await? {
            let Some((_, _, digest)) = layout::referrer_from_key(&key) else {
                continue;
            };
            // Gone (collected, removed) or not a signature: not ours to merge.
            let Some(object) = store
                .get(&layout::manifest_digest_key(repository, &digest))
                .await?
            else {
                continue;
            };
            let Ok(manifest) = serde_json::from_slice::<ImageManifest>(&object.body) else {
                continue;
            };
            let is_signature = manifest
                .artifact_type()
                .as_ref()
                .is_some_and(|t| t.to_string() == SIGNATURE_ARTIFACT_TYPE);
            if is_signature {
                referrers.push((digest, manifest.layers().clone()));
            }
        }
        Ok(Signatures {
            tagged,
            tag_digest,
            referrers,
        })
    }

    /// Every signature layer, each once: the tagged ones first, in order.
    fn union(&self) -> Vec<Descriptor> {
        let mut layers: Vec<Descriptor> = Vec::new();
        let all = self.referrers.iter().flat_map(|(_, l)| l);
        for layer in self.tagged.iter().chain(all) {
            if !layers.contains(layer) {
                layers.push(layer.clone());
            }
        }
        layers
    }
}

async fn read_blob(
    store: &dyn Store,
    image: &ImageRef,
    tag: &Tag,
    layer: &Descriptor,
) -> Result<Bytes, SigningError> {
    let invalid = |message: String| SigningError::InvalidSignatures {
        repository: image.repository.clone(),
        tag: tag.clone(),
        message,
    };
    let digest = layer_digest(layer).map_err(|e| invalid(e.to_string()))?;
    let object = store
        .get(&layout::blob_key(&image.repository, &digest))
        .await?
        .ok_or_else(|| invalid(format!("its layer {digest} is missing from the store")))?;
    Ok(object.body)
}

/// The image config of a signature manifest, shaped as cosign's (go-containerregistry's
/// empty image with the payloads appended as layers).
fn config_json(layers: &[Descriptor]) -> Vec<u8> {
    let zero_time = "0001-01-01T00:00:00Z";
    let config = serde_json::json!({
        "architecture": "",
        "created": zero_time,
        "history": layers.iter().map(|_| serde_json::json!({ "created": zero_time })).collect::<Vec<_>>(),
        "os": "",
        "rootfs": {
            "type": "layers",
            // Payloads are stored uncompressed: each diff ID is the layer's digest.
            "diff_ids": layers.iter().map(|l| l.digest().to_string()).collect::<Vec<_>>(),
        },
        "config": {},
    });
    serde_json::to_vec(&config).expect("JSON values serialize")
}

fn signature_manifest_json(signed: &Image, config: &[u8], layers: Vec<Descriptor>) -> Bytes {
    let subject = Descriptor::new(
        MediaType::from(signed.media_type.as_str()),
        signed.size,
        oci_digest(&signed.digest),
    );
    let manifest: ImageManifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .artifact_type(MediaType::Other(SIGNATURE_ARTIFACT_TYPE.into()))
        .config(Descriptor::new(
            MediaType::ImageConfig,
            config.len() as u64,
            oci_digest(&Digest::of(config)),
        ))
        .layers(layers)
        .subject(subject)
        .build()
        .expect("every required field is set");
    Bytes::from(serde_json::to_vec(&manifest).expect("a manifest serializes"))
}

fn oci_digest(digest: &Digest) -> oci_spec::image::Digest {
    digest
        .as_str()
        .parse()
        .expect("a berth digest is a valid OCI digest")
}
