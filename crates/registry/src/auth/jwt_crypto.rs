//! ES256 for `jsonwebtoken`, on ring: the one algorithm the registry's tokens use,
//! with the crypto library its TLS client already links (berth_core::aws), so the
//! Lambda zip carries one crypto library rather than two.
//!
//! [`install`] makes it the process's provider; every other algorithm is refused,
//! which [`super::tokens`]' validation (ES256 only) would do anyway.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, UnparsedPublicKey,
};

static ES256_ON_RING: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    // Only JWK helpers use these; the registry builds no JWKs.
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes ES256-on-ring the process's `jsonwebtoken` provider; the registry's
/// configuration does so before it loads its key. Only a registry process calls it:
/// a program that uses jsonwebtoken for more (the end-to-end tests forge HS256 tokens)
/// keeps the provider its crate features choose. One installed earlier stays, and
/// signs and verifies ES256 the same way.
pub fn install() {
    let _ = ES256_ON_RING.install_default();
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>, Error> {
    if *algorithm != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        key.as_bytes(),
        &SystemRandom::new(),
    )
    .map_err(|_| ErrorKind::InvalidEcdsaKey)?;
    Ok(Box::new(Es256Signer(pair)))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>, Error> {
    if *algorithm != Algorithm::ES256 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    // The uncompressed point (0x04, x, y) that DecodingKey::from_ec_components holds.
    let point = key.try_get_as_bytes()?.to_vec();
    Ok(Box::new(Es256Verifier(point)))
}

struct Es256Signer(EcdsaKeyPair);

impl signature::Signer<Vec<u8>> for Es256Signer {
    fn try_sign(&self, message: &[u8]) -> Result<Vec<u8>, signature::Error> {
        let signed = self
            .0
            .sign(&SystemRandom::new(), message)
            .map_err(|_| signature::Error::new())?;
        Ok(signed.as_ref().to_vec())
    }
}

impl JwtSigner for Es256Signer {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

struct Es256Verifier(Vec<u8>);

impl signature::Verifier<Vec<u8>> for Es256Verifier {
    fn verify(&self, message: &[u8], signed: &Vec<u8>) -> Result<(), signature::Error> {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.0)
            .verify(message, signed)
            .map_err(|_| signature::Error::new())
    }
}

impl JwtVerifier for Es256Verifier {
    fn algorithm(&self) -> Algorithm {
        Algorithm::ES256
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Header, Validation, decode, encode};
    use serde_json::{Value, json};

    use super::*;
    use crate::auth::signing_key::{SigningKey, generate_pem};

    #[test]
    fn es256_tokens_verify_with_their_key_only() {
        install();
        let key = SigningKey::from_pem(&generate_pem().unwrap()).unwrap();
        let other = SigningKey::from_pem(&generate_pem().unwrap()).unwrap();
        let claims = json!({ "sub": "alice", "exp": 4_000_000_000u64 });
        let token = encode(&Header::new(Algorithm::ES256), &claims, &key.encoding).unwrap();
        let validation = Validation::new(Algorithm::ES256);

        let decoded = decode::<Value>(&token, &key.decoding, &validation).unwrap();
        assert_eq!(decoded.claims, claims);
        assert!(decode::<Value>(&token, &other.decoding, &validation).is_err());
        // A signature over other claims does not carry over.
        let (_, signature) = token.rsplit_once('.').unwrap();
        let forged = encode(
            &Header::new(Algorithm::ES256),
            &json!({ "sub": "root" }),
            &other.encoding,
        )
        .unwrap();
        let (unsigned, _) = forged.rsplit_once('.').unwrap();
        assert!(
            decode::<Value>(
                &format!("{unsigned}.{signature}"),
                &key.decoding,
                &validation
            )
            .is_err()
        );
    }

    #[test]
    fn other_algorithms_are_refused() {
        install();
        let secret = EncodingKey::from_secret(b"secret");
        assert!(encode(&Header::new(Algorithm::HS256), &json!({}), &secret).is_err());
    }
}
