//! What a publish writes, worked out and checked before anything is written: every
//! manifest reachable from the root (read whole and verified against its digest and
//! size) and every blob they reference (present in the source with the right size;
//! its digest is verified while it uploads).

use std::collections::HashSet;

use berth_core::Digest;
use berth_core::media_type::{
    self, DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, OCI_INDEX, OCI_MANIFEST,
};
use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest};
use serde::Deserialize;

use crate::error::PublishError;
use crate::source::{BlobRef, Bundle};

/// A manifest to write: what it is and its exact bytes.
#[derive(Debug, Clone)]
pub struct ManifestWrite {
    pub blob: BlobRef,
    pub bytes: Bytes,
    /// For a manifest with a `subject` (a signature, an SBOM): the subject and the
    /// descriptor the referrers API lists for it.
    pub referrer: Option<(Digest, serde_json::Value)>,
}

#[derive(Debug, Default)]
pub struct Plan {
    /// Configs and layers, each once.
    pub blobs: Vec<BlobRef>,
    /// Children before the indexes that list them; the root is last.
    pub manifests: Vec<ManifestWrite>,
}

impl Plan {
    pub fn root(&self) -> &ManifestWrite {
        self.manifests.last().expect("a plan always has its root")
    }
}

/// The fields that tell manifest kinds apart.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Shape {
    schema_version: Option<u32>,
    media_type: Option<String>,
    manifests: Option<serde_json::Value>,
    subject: Option<Subject>,
    artifact_type: Option<String>,
    config: Option<ConfigShape>,
    annotations: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct Subject {
    digest: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigShape {
    media_type: Option<String>,
}

pub fn plan(bundle: &Bundle) -> Result<Plan, PublishError> {
    let mut walk = Walk {
        bundle,
        plan: Plan::default(),
        seen_blobs: HashSet::new(),
        seen_manifests: HashSet::new(),
    };
    walk.manifest(&bundle.root)?;
    Ok(walk.plan)
}

struct Walk<'a> {
    bundle: &'a Bundle,
    plan: Plan,
    seen_blobs: HashSet<Digest>,
    seen_manifests: HashSet<Digest>,
}

impl Walk<'_> {
    fn manifest(&mut self, blob: &BlobRef) -> Result<(), PublishError> {
        if !self.seen_manifests.insert(blob.digest.clone()) {
            return Ok(());
        }
        let bytes = self.read_manifest(blob)?;
        let invalid = |message: String| PublishError::InvalidManifest {
            digest: blob.digest.clone(),
            message,
        };
        let mut shape: Shape =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("not JSON: {e}")))?;
        let declared = shape.media_type.clone().unwrap_or_default();
        if [DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED].contains(&declared.as_str())
            || shape.schema_version == Some(1)
        {
            return Err(invalid(
                "Docker schema 1 manifests are not supported; re-save the image with a current engine".into(),
            ));
        }
        // The stored Content-Type: what the manifest says, else its descriptor, else OCI.
        let is_index = media_type::is_index(&declared)
            || media_type::is_index(&blob.media_type)
            || (declared.is_empty() && shape.manifests.is_some());
        let content_type = [declared.as_str(), blob.media_type.as_str()]
            .into_iter()
            .find(|t| !t.is_empty())
            .unwrap_or(if is_index { OCI_INDEX } else { OCI_MANIFEST })
            .to_owned();

        if is_index {
            let index: ImageIndex =
                serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
            for child in index.manifests() {
                let child = blob_ref(child).map_err(&invalid)?;
                self.manifest(&child)?;
            }
        } else {
            let manifest: ImageManifest =
                serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
            let config = blob_ref(manifest.config()).map_err(&invalid)?;
            self.blob(config)?;
            for layer in manifest.layers() {
                self.blob(blob_ref(layer).map_err(&invalid)?)?;
            }
        }
        let blob = BlobRef {
            media_type: content_type,
            ..blob.clone()
        };
        let referrer = match shape.subject.take() {
            Some(subject) => {
                let subject: Digest = subject
                    .digest
                    .parse()
                    .map_err(|e| invalid(format!("subject: {e}")))?;
                Some((subject, referrer_descriptor(&blob, shape)))
            }
            None => None,
        };
        self.plan.manifests.push(ManifestWrite {
            blob,
            bytes,
            referrer,
        });
        Ok(())
    }

    fn blob(&mut self, blob: BlobRef) -> Result<(), PublishError> {
        if self.seen_blobs.contains(&blob.digest) {
            return Ok(());
        }
        match self.bundle.content(&blob.digest) {
            Some(content) if content.size() != blob.size => {
                return Err(PublishError::SizeMismatch {
                    digest: blob.digest,
                    expected: blob.size,
                    actual: content.size(),
                });
            }
            Some(_) => {}
            // Foreign layers are fetched from their URLs, never from a registry.
            None if media_type::is_foreign_layer(&blob.media_type) => return Ok(()),
            // Fetched when needed; its size and digest are checked then.
            None if self.bundle.remote.is_some() => {}
            None => {
                return Err(PublishError::MissingBlob {
                    digest: blob.digest,
                });
            }
        }
        self.seen_blobs.insert(blob.digest.clone());
        self.plan.blobs.push(blob);
        Ok(())
    }

    fn read_manifest(&self, blob: &BlobRef) -> Result<Bytes, PublishError> {
        let bytes = match self.bundle.synthesized.get(&blob.digest) {
            Some(bytes) => bytes.clone(),
            None => {
                let segment =
                    self.bundle
                        .segment(&blob.digest)
                        .ok_or_else(|| PublishError::MissingBlob {
                            digest: blob.digest.clone(),
                        })?;
                Bytes::from(crate::source::read_segment(segment).map_err(|e| {
                    PublishError::InvalidManifest {
                        digest: blob.digest.clone(),
                        message: e.to_string(),
                    }
                })?)
            }
        };
        if bytes.len() as u64 != blob.size || Digest::of(&bytes) != blob.digest {
            return Err(PublishError::ManifestMismatch {
                digest: blob.digest.clone(),
            });
        }
        Ok(bytes)
    }
}

/// The descriptor the OCI referrers API returns for a manifest: its artifact type is
/// `artifactType`, else the config's media type.
fn referrer_descriptor(blob: &BlobRef, shape: Shape) -> serde_json::Value {
    let mut descriptor = serde_json::json!({
        "mediaType": blob.media_type,
        "digest": blob.digest.to_string(),
        "size": blob.size,
    });
    let artifact_type = shape
        .artifact_type
        .or_else(|| shape.config.and_then(|c| c.media_type));
    if let Some(artifact_type) = artifact_type {
        descriptor["artifactType"] = artifact_type.into();
    }
    if let Some(annotations) = shape.annotations {
        descriptor["annotations"] = annotations;
    }
    descriptor
}

fn blob_ref(descriptor: &Descriptor) -> Result<BlobRef, String> {
    Ok(BlobRef {
        media_type: descriptor.media_type().to_string(),
        digest: descriptor
            .digest()
            .to_string()
            .parse()
            .map_err(|e: berth_core::reference::ParseError| e.to_string())?,
        size: descriptor.size(),
    })
}
