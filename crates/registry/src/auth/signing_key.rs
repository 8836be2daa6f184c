//! The token signing key: ECDSA P-256 (ES256), from configuration or generated once
//! and kept in a local file for `berth serve`.

use std::path::{Path, PathBuf};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the token signing key is not a PEM ECDSA P-256 private key (PKCS#8 or SEC1): {0}")]
    Invalid(String),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

#[derive(Clone)]
pub struct SigningKey {
    pub encoding: EncodingKey,
    pub decoding: DecodingKey,
    /// Names the key in each token's header; tokens naming another key are refused.
    pub kid: String,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Reads a PEM private key as `openssl` writes it (`PRIVATE KEY` or `EC PRIVATE KEY`).
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let parsed = pem::parse(pem_text).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let pair = match parsed.tag() {
            "PRIVATE KEY" => {
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, parsed.contents())
            }
            "EC PRIVATE KEY" => EcdsaKeyPair::from_private_key_der(
                &ECDSA_P256_SHA256_FIXED_SIGNING,
                parsed.contents(),
            ),
            other => return Err(KeyError::Invalid(format!("unexpected PEM block {other}"))),
        }
        .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let pkcs8 = pair
            .to_pkcs8v1()
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let point = pair.public_key().as_ref();
        // An uncompressed P-256 point: 0x04, then 32 bytes of x and 32 of y.
        if point.len() != 65 {
            return Err(KeyError::Invalid("not a P-256 key".into()));
        }
        let (x, y) = (
            URL_SAFE_NO_PAD.encode(&point[1..33]),
            URL_SAFE_NO_PAD.encode(&point[33..]),
        );
        let decoding = DecodingKey::from_ec_components(&x, &y)
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
        let fingerprint = berth_core::Digest::of(point);
        Ok(SigningKey {
            encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
            decoding,
            kid: fingerprint.hex()[..16].to_owned(),
        })
    }

    /// Reads the key at `path`, creating it (mode 0600) if it does not exist.
    pub fn load_or_generate(path: &Path) -> Result<Self, KeyError> {
        let io = |source| KeyError::Io {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => return Self::from_pem(&text),
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(e)),
            Err(_) => {}
        }
        let text = generate_pem()?;
        let parent = path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(io)?;
        // Written aside, then linked into place: a second process starting at the
        // same moment either wins or reads the complete key the first one wrote.
        let temp = tempfile::NamedTempFile::new_in(parent).map_err(io)?;
        write_private(temp.path(), &text).map_err(io)?;
        match std::fs::hard_link(temp.path(), path) {
            Ok(()) => tracing::info!(path = %path.display(), "generated a token signing key"),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io(e)),
        }
        Self::from_pem(&std::fs::read_to_string(path).map_err(io)?)
    }
}

/// A new P-256 key as PKCS#8 PEM.
pub fn generate_pem() -> Result<String, KeyError> {
    let document =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .map_err(|e| KeyError::Invalid(e.to_string()))?;
    Ok(pem::encode(&pem::Pem::new(
        "PRIVATE KEY",
        document.as_ref().to_vec(),
    )))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    std::fs::write(path, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_and_have_stable_ids() {
        let pem_text = generate_pem().unwrap();
        let a = SigningKey::from_pem(&pem_text).unwrap();
        let b = SigningKey::from_pem(&pem_text).unwrap();
        assert_eq!(a.kid, b.kid);
        assert_ne!(
            a.kid,
            SigningKey::from_pem(&generate_pem().unwrap()).unwrap().kid
        );
        assert!(
            SigningKey::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
    }
}
