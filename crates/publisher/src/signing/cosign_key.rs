//! cosign's encrypted private key (`ENCRYPTED SIGSTORE PRIVATE KEY`, formerly
//! `ENCRYPTED COSIGN PRIVATE KEY`): a JSON document holding a PKCS#8 key sealed with
//! NaCl secretbox (XSalsa20-Poly1305) under a key derived from the password by scrypt.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use crypto_secretbox::aead::{Aead, KeyInit};
use crypto_secretbox::{Key, Nonce, XSalsa20Poly1305};
use serde::Deserialize;

/// PEM tags of the format, newest first.
pub const PEM_TAGS: [&str; 2] = [
    "ENCRYPTED SIGSTORE PRIVATE KEY",
    "ENCRYPTED COSIGN PRIVATE KEY",
];

/// Largest scrypt cost accepted (cosign writes 2^15): a file may not make berth
/// spend gigabytes of memory.
const MAX_LOG_N: u8 = 20;

#[derive(Deserialize)]
struct Sealed {
    kdf: Kdf,
    cipher: Cipher,
    ciphertext: String,
}

#[derive(Deserialize)]
struct Kdf {
    name: String,
    params: ScryptParams,
    salt: String,
}

#[derive(Deserialize)]
struct ScryptParams {
    #[serde(rename = "N")]
    n: u64,
    r: u32,
    p: u32,
}

#[derive(Deserialize)]
struct Cipher {
    name: String,
    nonce: String,
}

/// The PKCS#8 DER sealed in `document` (the PEM block's contents), or why not.
pub fn decrypt(document: &[u8], password: &[u8]) -> Result<Vec<u8>, String> {
    let sealed: Sealed =
        serde_json::from_slice(document).map_err(|e| format!("not a cosign key ({e})"))?;
    if sealed.kdf.name != "scrypt" || sealed.cipher.name != "nacl/secretbox" {
        return Err(format!(
            "unsupported cosign key: kdf {}, cipher {}",
            sealed.kdf.name, sealed.cipher.name
        ));
    }
    let ScryptParams { n, r, p } = sealed.kdf.params;
    if !n.is_power_of_two() || n.trailing_zeros() > u32::from(MAX_LOG_N) {
        return Err(format!("unsupported scrypt cost N={n}"));
    }
    let log_n = n.trailing_zeros() as u8;
    let params = scrypt::Params::new(log_n, r, p, 32)
        .map_err(|e| format!("invalid scrypt parameters ({e})"))?;
    let decode = |field: &str, value: &str| {
        STANDARD
            .decode(value)
            .map_err(|e| format!("{field} is not base64 ({e})"))
    };
    let salt = decode("salt", &sealed.kdf.salt)?;
    let nonce = decode("nonce", &sealed.cipher.nonce)?;
    let ciphertext = decode("ciphertext", &sealed.ciphertext)?;
    if nonce.len() != 24 {
        return Err("the nonce is not 24 bytes".into());
    }
    let mut key = [0u8; 32];
    scrypt::scrypt(password, &salt, &params, &mut key)
        .map_err(|e| format!("scrypt failed ({e})"))?;
    XSalsa20Poly1305::new(Key::from_slice(&key))
        .decrypt(Nonce::from_slice(&nonce), ciphertext.as_slice())
        .map_err(|_| "wrong password (COSIGN_PASSWORD), or the key file is damaged".into())
}
