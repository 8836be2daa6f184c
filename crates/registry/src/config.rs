//! The registry's settings: flags with `BERTH_*` environment variables, so the same
//! binary is configured by a command line locally and by variables in Lambda.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use berth_core::store::{S3Options, StoreArgs, StoreError};

use crate::Registry;
use crate::auth::key_secret::{self, SecretError};
use crate::auth::signing_key::{KeyError, SigningKey};
use crate::auth::tokens::TokenIssuer;
use crate::auth::{AccessCache, Auth};
use crate::membership::MembershipCache;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (ignored under Lambda). Port 0 picks a free port.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// S3 endpoint written into blob redirects, when clients reach S3 by another
    /// address than the registry does (default: the SDK's endpoint).
    #[arg(long, env = "BERTH_PUBLIC_S3_ENDPOINT")]
    pub public_s3_endpoint: Option<String>,
    /// Lifetime of presigned blob URLs in seconds, at most 7 days as S3 allows
    /// (capped by the signing credentials' own expiry).
    #[arg(long, env = "BERTH_PRESIGN_EXPIRY_SECS", default_value_t = 900,
          value_parser = clap::value_parser!(u64).range(1..=604_800))]
    pub presign_expiry_secs: u64,
    /// Give up on a store request after this many seconds and answer 503.
    #[arg(long, env = "BERTH_STORE_TIMEOUT_SECS", default_value_t = 10)]
    pub store_timeout_secs: u64,
    /// ARN of a Secrets Manager secret or SSM SecureString parameter holding the
    /// token signing key (PEM, ECDSA P-256); how a deployed function gets its key.
    #[arg(long, env = "BERTH_TOKEN_KEY_SECRET")]
    pub token_key_secret: Option<String>,
    /// File holding the token signing key (PEM, ECDSA P-256); created if missing.
    /// `BERTH_TOKEN_KEY` (the PEM itself) and `BERTH_TOKEN_KEY_SECRET` win.
    /// Default: ~/.local/state/berth/token-key.pem.
    #[arg(long, env = "BERTH_TOKEN_KEY_FILE")]
    pub token_key_file: Option<PathBuf>,
    /// The `service` of token challenges and the audience of tokens.
    #[arg(long, env = "BERTH_SERVICE", default_value = "berth")]
    pub service: String,
    /// The `iss` of tokens.
    #[arg(long, env = "BERTH_TOKEN_ISSUER", default_value = "berth")]
    pub token_issuer: String,
    /// Lifetime of access tokens in seconds, at least 60 so a pull of a big image
    /// finishes with the token it started with (shorter is refused at start).
    #[arg(long, env = "BERTH_TOKEN_TTL_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(60..))]
    pub token_ttl_secs: u64,
    /// The registry's public base URL, for the token realm (default: from each
    /// request's Host and X-Forwarded-Proto).
    #[arg(long, env = "BERTH_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long the access configuration is cached before it is re-read.
    #[arg(long, env = "BERTH_ACCESS_CACHE_SECS", default_value_t = 5)]
    pub access_cache_secs: u64,
    /// How long a repository is remembered to hold a blob (0: always ask the store).
    #[arg(long, env = "BERTH_BLOB_CACHE_SECS", default_value_t = 60)]
    pub blob_cache_secs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Key(#[from] KeyError),
    #[error(transparent)]
    Secret(#[from] SecretError),
    #[error(
        "no token signing key: set BERTH_TOKEN_KEY_SECRET (an ARN), BERTH_TOKEN_KEY (a PEM ECDSA P-256 key) or BERTH_TOKEN_KEY_FILE"
    )]
    NoKey,
}

impl ServeArgs {
    pub async fn registry(&self, store: &StoreArgs) -> Result<Registry, ConfigError> {
        let s3 = S3Options {
            public_endpoint: self.public_s3_endpoint.clone(),
            request_timeout: Some(Duration::from_secs(self.store_timeout_secs)),
            ..S3Options::default()
        };
        let store = store.open(s3).await?;
        let tokens = TokenIssuer {
            key: self.signing_key().await?,
            service: self.service.clone(),
            issuer: self.token_issuer.clone(),
            ttl: Duration::from_secs(self.token_ttl_secs),
        };
        Ok(Registry {
            auth: Auth {
                access: AccessCache::new(
                    Arc::clone(&store),
                    Duration::from_secs(self.access_cache_secs),
                ),
                password_checks: tokio::sync::Semaphore::new(crate::auth::PASSWORD_CHECKS_AT_ONCE),
                tokens,
                public_url: self.public_url.clone(),
            },
            store,
            presign_expiry: Duration::from_secs(self.presign_expiry_secs),
            membership: MembershipCache::new(Duration::from_secs(self.blob_cache_secs)),
        })
    }

    /// `BERTH_TOKEN_KEY`, else the secret, else the key file (generated when
    /// missing). Under Lambda a generated key would differ per instance, so one must
    /// be configured there.
    async fn signing_key(&self) -> Result<SigningKey, ConfigError> {
        // The registry signs and checks tokens with this key from here on.
        crate::auth::jwt_crypto::install();
        if let Ok(pem) = std::env::var("BERTH_TOKEN_KEY") {
            return Ok(SigningKey::from_pem(&pem)?);
        }
        if let Some(arn) = &self.token_key_secret {
            return Ok(SigningKey::from_pem(&key_secret::fetch(arn).await?)?);
        }
        let path = match &self.token_key_file {
            Some(path) => path.clone(),
            None if crate::server::in_lambda() => return Err(ConfigError::NoKey),
            None => {
                let home = std::env::var_os("HOME").ok_or(ConfigError::NoKey)?;
                PathBuf::from(home).join(".local/state/berth/token-key.pem")
            }
        };
        Ok(SigningKey::load_or_generate(&path)?)
    }
}
