//! Docker-compatible bearer tokens: JWTs signed with ES256 carrying the granted
//! `access`, validated strictly (algorithm allowlist, our `kid`, required exp, nbf,
//! aud and iss, small leeway). Refresh tokens have their own audience, so one can
//! never be used as an access token, nor the reverse.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, Header, Validation, decode, decode_header, encode};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use super::signing_key::SigningKey;

/// Accepted clock skew between token issue and use.
const LEEWAY_SECS: u64 = 10;
/// Longer than any header a client needs to send; bigger ones are refused unread.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;
const REFRESH_TTL: Duration = Duration::from_secs(30 * 86_400);

/// One `access` entry of the Docker token specification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    #[serde(rename = "type")]
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The user, or empty for an anonymous caller.
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    pub access: Vec<Access>,
}

impl Claims {
    pub fn allows(&self, kind: &str, name: &str, action: &str) -> bool {
        self.access
            .iter()
            .any(|a| a.kind == kind && a.name == name && a.actions.iter().any(|x| x == action))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RefreshClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
    pub jti: String,
    /// What the login proved, so a password change or token revocation ends the
    /// refresh token too: `password:<fingerprint>` or `token:<label>`.
    pub credential: String,
}

#[derive(Debug, Clone)]
pub struct TokenIssuer {
    pub key: SigningKey,
    /// The `service` of challenges and the audience of tokens.
    pub service: String,
    pub issuer: String,
    pub ttl: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid token: {0}")]
pub struct InvalidToken(pub String);

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn random_id() -> String {
    let mut bytes = [0u8; 16];
    SystemRandom::new()
        .fill(&mut bytes)
        .expect("the system RNG works");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl TokenIssuer {
    fn refresh_audience(&self) -> String {
        format!("{}#refresh", self.service)
    }

    fn header(&self) -> Header {
        let mut header = Header::new(Algorithm::ES256);
        header.kid = Some(self.key.kid.clone());
        header
    }

    /// An access token for `subject` (empty: anonymous) holding `access`.
    pub fn issue(&self, subject: &str, access: Vec<Access>) -> (String, u64) {
        let now = unix_now();
        let claims = Claims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            aud: self.service.clone(),
            exp: now + self.ttl.as_secs(),
            nbf: now,
            iat: now,
            jti: random_id(),
            access,
        };
        let token =
            encode(&self.header(), &claims, &self.key.encoding).expect("ES256 signing works");
        (token, now)
    }

    pub fn issue_refresh(&self, subject: &str, credential: String) -> String {
        let now = unix_now();
        let claims = RefreshClaims {
            iss: self.issuer.clone(),
            sub: subject.to_owned(),
            aud: self.refresh_audience(),
            exp: now + REFRESH_TTL.as_secs(),
            nbf: now,
            iat: now,
            jti: random_id(),
            credential,
        };
        encode(&self.header(), &claims, &self.key.encoding).expect("ES256 signing works")
    }

    pub fn validate(&self, token: &str) -> Result<Claims, InvalidToken> {
        self.check::<Claims>(token, &self.service)
    }

    pub fn validate_refresh(&self, token: &str) -> Result<RefreshClaims, InvalidToken> {
        self.check::<RefreshClaims>(token, &self.refresh_audience())
    }

    fn check<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<T, InvalidToken> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(InvalidToken("too long".into()));
        }
        let header = decode_header(token).map_err(|e| InvalidToken(e.to_string()))?;
        if header.alg != Algorithm::ES256 || header.kid.as_deref() != Some(self.key.kid.as_str()) {
            return Err(InvalidToken("not signed by this registry's key".into()));
        }
        let mut validation = Validation::new(Algorithm::ES256);
        validation.algorithms = vec![Algorithm::ES256];
        validation.set_audience(&[audience]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "nbf", "aud", "iss", "sub"]);
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        decode::<T>(token, &self.key.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| InvalidToken(e.to_string()))
    }
}
