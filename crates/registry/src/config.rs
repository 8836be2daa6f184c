//! The registry's settings: flags with `BERTH_*` environment variables, so the same
//! binary is configured by a command line locally and by variables in Lambda.

use std::net::SocketAddr;
use std::time::Duration;

use berth_core::store::{S3Options, StoreArgs, StoreError};

use crate::Registry;

#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on (ignored under Lambda). Port 0 picks a free port.
    #[arg(long, env = "BERTH_LISTEN", default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// S3 endpoint written into blob redirects, when clients reach S3 by another
    /// address than the registry does (default: the SDK's endpoint).
    #[arg(long, env = "BERTH_PUBLIC_S3_ENDPOINT")]
    pub public_s3_endpoint: Option<String>,
    /// Lifetime of presigned blob URLs in seconds (capped by the signing credentials).
    #[arg(long, env = "BERTH_PRESIGN_EXPIRY_SECS", default_value_t = 900)]
    pub presign_expiry_secs: u64,
    /// Give up on a store request after this many seconds and answer 503.
    #[arg(long, env = "BERTH_STORE_TIMEOUT_SECS", default_value_t = 10)]
    pub store_timeout_secs: u64,
}

impl ServeArgs {
    pub async fn registry(&self, store: &StoreArgs) -> Result<Registry, StoreError> {
        let s3 = S3Options {
            public_endpoint: self.public_s3_endpoint.clone(),
            request_timeout: Some(Duration::from_secs(self.store_timeout_secs)),
            ..S3Options::default()
        };
        Ok(Registry {
            store: store.open(s3).await?,
            presign_expiry: Duration::from_secs(self.presign_expiry_secs),
        })
    }
}
