//! Signing keys: ECDSA P-256, read from PEM as `openssl` and `berth key generate`
//! write them (PKCS#8 `PRIVATE KEY`, SEC1 `EC PRIVATE KEY`, SPKI `PUBLIC KEY`), and
//! cosign's password-encrypted private keys.
//!
//! The crypto is aws-lc-rs, the library the registry already signs its tokens with.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair, ParsedPublicKey,
};

use super::cosign_key;

const PRIVATE_KEY_TAGS: [&str; 2] = ["PRIVATE KEY", "EC PRIVATE KEY"];
const PUBLIC_KEY_TAG: &str = "PUBLIC KEY";
/// Encrypted PKCS#8, which berth does not read; named so the error says how to convert it.
const ENCRYPTED_PKCS8_TAG: &str = "ENCRYPTED PRIVATE KEY";

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Invalid { path: PathBuf, message: String },
    #[error(
        "{path} is an encrypted PKCS#8 key; decrypt it with `openssl pkcs8 -in {path} -out plain.key`"
    )]
    Encrypted { path: PathBuf },
    #[error("{path} is an encrypted cosign key: set COSIGN_PASSWORD to its password")]
    NeedsPassword { path: PathBuf },
    #[error(
        "{path} already exists; refusing to overwrite a key: choose another --out or remove it"
    )]
    Exists { path: PathBuf },
    #[error("generating a key failed: {0}")]
    Generate(String),
}

/// An ECDSA P-256 private key that signs with SHA-256 and DER-encoded signatures,
/// the form cosign writes.
pub struct PrivateKey {
    pair: EcdsaKeyPair,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateKey").finish_non_exhaustive()
    }
}

/// An ECDSA P-256 public key, parsed from the DER of its `SubjectPublicKeyInfo`.
#[derive(Clone)]
pub struct PublicKey {
    spki: Vec<u8>,
    parsed: ParsedPublicKey,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").finish_non_exhaustive()
    }
}

impl PrivateKey {
    pub fn generate() -> Result<Self, KeyError> {
        let pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_ASN1_SIGNING)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(PrivateKey { pair })
    }

    /// Reads a private key file; `openssl ecparam -genkey` output (an `EC PARAMETERS`
    /// block before the key) is fine. `password` opens cosign's encrypted keys.
    pub fn load(path: &Path, password: Option<&[u8]>) -> Result<Self, KeyError> {
        let blocks = read_pem(path)?;
        let invalid = |message: String| KeyError::Invalid {
            path: path.to_owned(),
            message,
        };
        if blocks.iter().any(|b| b.tag() == ENCRYPTED_PKCS8_TAG) {
            return Err(KeyError::Encrypted {
                path: path.to_owned(),
            });
        }
        let not_p256 = |e: aws_lc_rs::error::KeyRejected| {
            invalid(format!("not an ECDSA P-256 private key ({e})"))
        };
        if let Some(block) = blocks
            .iter()
            .find(|b| cosign_key::PEM_TAGS.contains(&b.tag()))
        {
            let password = password.ok_or_else(|| KeyError::NeedsPassword {
                path: path.to_owned(),
            })?;
            let pkcs8 = cosign_key::decrypt(block.contents(), password).map_err(invalid)?;
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8)
                .map_err(not_p256)?;
            return Ok(PrivateKey { pair });
        }
        let block = blocks
            .iter()
            .find(|b| PRIVATE_KEY_TAGS.contains(&b.tag()))
            .ok_or_else(|| {
                invalid(format!(
                    "no private key here (found {}); expected PEM `PRIVATE KEY` or `EC PRIVATE KEY`",
                    describe_blocks(&blocks)
                ))
            })?;
        // Takes PKCS#8 and SEC1 (RFC 5915) alike, and refuses other curves.
        let pair =
            EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_ASN1_SIGNING, block.contents())
                .map_err(not_p256)?;
        Ok(PrivateKey { pair })
    }

    /// A DER-encoded ECDSA signature of SHA-256(`message`).
    pub fn sign(&self, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let signature = self
            .pair
            .sign(&SystemRandom::new(), message)
            .map_err(|e| KeyError::Generate(format!("signing failed: {e}")))?;
        Ok(signature.as_ref().to_vec())
    }

    pub fn public_key(&self) -> Result<PublicKey, KeyError> {
        let der = self
            .pair
            .public_key()
            .as_der()
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        PublicKey::from_spki(der.as_ref()).map_err(KeyError::Generate)
    }

    /// PKCS#8 PEM, as `openssl genpkey` writes it.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        let document = self
            .pair
            .to_pkcs8v1()
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Ok(pem::encode(&pem::Pem::new(
            "PRIVATE KEY",
            document.as_ref(),
        )))
    }
}

impl PublicKey {
    /// Reads a public key file (`PUBLIC KEY`); a private key file also works, for
    /// its public half.
    pub fn load(path: &Path) -> Result<Self, KeyError> {
        let blocks = read_pem(path)?;
        match blocks.iter().find(|b| b.tag() == PUBLIC_KEY_TAG) {
            Some(block) => {
                PublicKey::from_spki(block.contents()).map_err(|message| KeyError::Invalid {
                    path: path.to_owned(),
                    message,
                })
            }
            None => PrivateKey::load(path, None)?.public_key(),
        }
    }

    fn from_spki(der: &[u8]) -> Result<Self, String> {
        let parsed = ParsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, der)
            .map_err(|e| format!("not an ECDSA P-256 public key ({e})"))?;
        Ok(PublicKey {
            spki: der.to_vec(),
            parsed,
        })
    }

    /// Whether `signature` (DER) is this key's ECDSA signature of SHA-256(`message`).
    pub fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.parsed.verify_sig(message, signature).is_ok()
    }

    pub fn to_pem(&self) -> String {
        pem::encode(&pem::Pem::new(PUBLIC_KEY_TAG, self.spki.clone()))
    }
}

/// Writes a new key pair to `PREFIX.key` (mode 0600) and `PREFIX.pub`; refuses to
/// overwrite either. Returns both paths.
pub fn generate_files(prefix: &Path) -> Result<(PathBuf, PathBuf), KeyError> {
    let with_suffix = |suffix: &str| {
        let mut name = prefix.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    let (key_path, pub_path) = (with_suffix(".key"), with_suffix(".pub"));
    for path in [&key_path, &pub_path] {
        if path.exists() {
            return Err(KeyError::Exists { path: path.clone() });
        }
    }
    let key = PrivateKey::generate()?;
    write_new(&key_path, key.to_pem()?.as_bytes(), 0o600)?;
    write_new(&pub_path, key.public_key()?.to_pem().as_bytes(), 0o644)?;
    Ok((key_path, pub_path))
}

/// Creates `path` with `mode`, failing if it exists (no race with the check above
/// can clobber a key).
fn write_new(path: &Path, contents: &[u8], mode: u32) -> Result<(), KeyError> {
    let io = |source: std::io::Error| match source.kind() {
        std::io::ErrorKind::AlreadyExists => KeyError::Exists {
            path: path.to_owned(),
        },
        _ => KeyError::Io {
            path: path.to_owned(),
            source,
        },
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    file.write_all(contents).map_err(io)
}

fn read_pem(path: &Path) -> Result<Vec<pem::Pem>, KeyError> {
    let text = std::fs::read(path).map_err(|source| KeyError::Io {
        path: path.to_owned(),
        source,
    })?;
    let blocks = pem::parse_many(&text).map_err(|e| KeyError::Invalid {
        path: path.to_owned(),
        message: format!("not PEM ({e})"),
    })?;
    if blocks.is_empty() {
        return Err(KeyError::Invalid {
            path: path.to_owned(),
            message: "no PEM block found".into(),
        });
    }
    Ok(blocks)
}

fn describe_blocks(blocks: &[pem::Pem]) -> String {
    blocks
        .iter()
        .map(|b| format!("`{}`", b.tag()))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_and_verify_through_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let prefix = dir.path().join("k");
        let (key_path, pub_path) = generate_files(&prefix).unwrap();
        let key = PrivateKey::load(&key_path, None).unwrap();
        let public = PublicKey::load(&pub_path).unwrap();
        let signature = key.sign(b"payload").unwrap();
        assert!(public.verifies(b"payload", &signature));
        assert!(!public.verifies(b"other", &signature));
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&key_path).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600);
        assert!(matches!(
            generate_files(&prefix),
            Err(KeyError::Exists { .. })
        ));
    }

    #[test]
    fn refuses_what_is_not_a_p256_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.pem");
        std::fs::write(
            &path,
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let err = PrivateKey::load(&path, None).unwrap_err().to_string();
        assert!(err.contains("no private key here"), "{err}");
        std::fs::write(
            &path,
            "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED SIGSTORE PRIVATE KEY-----\n",
        )
        .unwrap();
        assert!(matches!(
            PrivateKey::load(&path, None),
            Err(KeyError::NeedsPassword { .. })
        ));
    }
}
