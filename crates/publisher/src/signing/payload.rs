//! The simple-signing payload cosign signs: which image (by manifest digest) under
//! which name. Field order matches cosign's output, so berth's payloads are
//! byte-for-byte what cosign would write for the same image and name.

use serde::{Deserialize, Serialize};

/// `critical.type` of every cosign container image signature.
pub const SIGNATURE_TYPE: &str = "cosign container image signature";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleSigning {
    pub critical: Critical,
    /// Free-form claims; berth writes none (`null`, as cosign does without `-a`).
    pub optional: Option<serde_json::Value>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Critical {
    pub identity: Identity,
    pub image: Image,
    #[serde(rename = "type")]
    pub kind: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Identity {
    #[serde(rename = "docker-reference")]
    pub docker_reference: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    #[serde(rename = "docker-manifest-digest")]
    pub docker_manifest_digest: String,
}

impl SimpleSigning {
    /// The claim that `docker_reference` (e.g. `registry.example.com/acme/web`) has
    /// the manifest `digest`.
    pub fn new(docker_reference: &str, digest: &berth_core::Digest) -> Self {
        SimpleSigning {
            critical: Critical {
                identity: Identity {
                    docker_reference: docker_reference.to_owned(),
                },
                image: Image {
                    docker_manifest_digest: digest.to_string(),
                },
                kind: SIGNATURE_TYPE.to_owned(),
            },
            optional: None,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("plain strings serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_as_cosign_does() {
        let digest = berth_core::Digest::of(b"m");
        let payload = SimpleSigning::new("reg.example/acme/web", &digest);
        let expected = format!(
            r#"{{"critical":{{"identity":{{"docker-reference":"reg.example/acme/web"}},"image":{{"docker-manifest-digest":"{digest}"}},"type":"cosign container image signature"}},"optional":null}}"#
        );
        assert_eq!(String::from_utf8(payload.to_bytes()).unwrap(), expected);
        let back: SimpleSigning = serde_json::from_str(&expected).unwrap();
        assert_eq!(back, payload);
    }
}
