//! What a stored manifest points at: the child manifests of an index, the config and
//! layers of an image, and its `subject`. Deleting and garbage collection both read
//! manifests through this, so they agree on what "referenced" means.

use berth_core::Digest;
use serde::Deserialize;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct References {
    /// Child manifests (of an index).
    pub manifests: Vec<Digest>,
    /// Config and layers (of an image manifest); foreign layers included, though the
    /// store never holds them.
    pub blobs: Vec<Digest>,
    /// The manifest this one is about (a signature, an SBOM).
    pub subject: Option<Digest>,
}

#[derive(Deserialize)]
struct Shape {
    #[serde(default)]
    manifests: Vec<Descriptor>,
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    subject: Option<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
}

/// Why a manifest's references could not be read: then nothing it might reach may be
/// judged unreferenced.
#[derive(Debug, thiserror::Error)]
#[error("manifest {digest} is unreadable: {message}")]
pub struct UnreadableManifest {
    pub digest: Digest,
    pub message: String,
}

impl References {
    pub fn of(digest: &Digest, bytes: &[u8]) -> Result<Self, UnreadableManifest> {
        let unreadable = |message: String| UnreadableManifest {
            digest: digest.clone(),
            message,
        };
        let shape: Shape = serde_json::from_slice(bytes).map_err(|e| unreadable(e.to_string()))?;
        let parse = |d: Descriptor| -> Result<Digest, UnreadableManifest> {
            d.digest.parse().map_err(|e| unreadable(format!("{e}")))
        };
        Ok(References {
            manifests: shape
                .manifests
                .into_iter()
                .map(parse)
                .collect::<Result<_, _>>()?,
            blobs: shape
                .config
                .into_iter()
                .chain(shape.layers)
                .map(parse)
                .collect::<Result<_, _>>()?,
            subject: shape.subject.map(parse).transpose()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_children_blobs_and_subject() {
        let (a, b, c) = (Digest::of(b"a"), Digest::of(b"b"), Digest::of(b"c"));
        let image = serde_json::json!({
            "schemaVersion": 2,
            "config": { "digest": a.to_string(), "size": 1 },
            "layers": [{ "digest": b.to_string(), "size": 1 }],
            "subject": { "digest": c.to_string(), "size": 1 },
        });
        let refs = References::of(&a, &serde_json::to_vec(&image).unwrap()).unwrap();
        assert_eq!(refs.blobs, [a.clone(), b.clone()]);
        assert_eq!(refs.subject, Some(c.clone()));
        let index = serde_json::json!({ "manifests": [{ "digest": c.to_string() }] });
        let refs = References::of(&a, &serde_json::to_vec(&index).unwrap()).unwrap();
        assert_eq!(refs.manifests, [c]);
        assert!(References::of(&a, b"not json").is_err());
    }
}
