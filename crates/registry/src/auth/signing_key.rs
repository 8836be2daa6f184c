//! The token signing key: ECDSA P-256 (ES256), from configuration or generated once
//! and kept in a local file for `berth serve`. Keys are parsed and made with ring,
//! which also signs and verifies the registry's tokens ([`super::jwt_crypto`]).

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

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
    /// Reads a PEM private key as `openssl` writes it (`PRIVATE KEY` or `EC PRIVATE KEY`;
    /// the latter must hold its public key, as openssl writes it unless told
    /// `-no_public`).
    pub fn from_pem(pem_text: &str) -> Result<Self, KeyError> {
        let parsed = pem::parse(pem_text).map_err(|e| KeyError::Invalid(e.to_string()))?;
        let pkcs8 = match parsed.tag() {
            "PRIVATE KEY" => parsed.contents().to_vec(),
            "EC PRIVATE KEY" => pkcs8_of_sec1(parsed.contents()),
            other => return Err(KeyError::Invalid(format!("unexpected PEM block {other}"))),
        };
        let pair = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &pkcs8,
            &SystemRandom::new(),
        )
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
            encoding: EncodingKey::from_ec_der(&pkcs8),
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

/// A SEC1 `ECPrivateKey` (RFC 5915) wrapped as the PKCS#8 `PrivateKeyInfo` (RFC 5208)
/// for a P-256 key, the one private key form ring reads.
fn pkcs8_of_sec1(sec1: &[u8]) -> Vec<u8> {
    // AlgorithmIdentifier { id-ecPublicKey, prime256v1 }.
    const EC_P256: [u8; 21] = [
        0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
        0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
    ];
    let mut info = vec![0x02, 0x01, 0x00]; // version 0
    info.extend_from_slice(&EC_P256);
    info.extend(der(0x04, sec1));
    der(0x30, &info)
}

/// One DER element: tag, definite length, contents.
fn der(tag: u8, contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![tag];
    match len {
        0..0x80 => out.push(len as u8),
        0x80..0x100 => out.extend([0x81, len as u8]),
        _ => out.extend([0x82, (len >> 8) as u8, len as u8]),
    }
    out.extend_from_slice(contents);
    out
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

    /// One key (a test vector from `openssl ecparam -genkey -noout`, then `openssl
    /// pkcs8 -topk8 -nocrypt`) in both PEM forms is one signing key.
    #[test]
    fn sec1_and_pkcs8_forms_of_a_key_agree() {
        const SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MHcCAQEEIPcs96cYyv5r7WEhqtm1FAvMCeTRTlvuR4QtvVPjbvRmoAoGCCqGSM49
AwEHoUQDQgAEuHiyhoew9fKaB24hwDHx7S946Xgs4kAxQIsn80M5Qt9JTk7F41eY
qXY/c9US1DnUKUgGthnsIHw7IkCNzrDVUQ==
-----END EC PRIVATE KEY-----
";
        const PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg9yz3pxjK/mvtYSGq
2bUUC8wJ5NFOW+5HhC29U+Nu9GahRANCAAS4eLKGh7D18poHbiHAMfHtL3jpeCzi
QDFAiyfzQzlC30lOTsXjV5ipdj9z1RLUOdQpSAa2GewgfDsiQI3OsNVR
-----END PRIVATE KEY-----
";
        crate::auth::jwt_crypto::install();
        let sec1 = SigningKey::from_pem(SEC1).unwrap();
        let pkcs8 = SigningKey::from_pem(PKCS8).unwrap();
        assert_eq!(sec1.kid, pkcs8.kid);
        // The wrapped SEC1 key keeps its curve parameters (openssl's PKCS#8 drops
        // them), so compare what the keys do, not their bytes.
        let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
        let claims = serde_json::json!({ "exp": 4_000_000_000u64 });
        let token = jsonwebtoken::encode(&header, &claims, &sec1.encoding).unwrap();
        let validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        jsonwebtoken::decode::<serde_json::Value>(&token, &pkcs8.decoding, &validation).unwrap();
    }
}
