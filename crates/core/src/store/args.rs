//! The command-line and environment settings that choose a store, shared by every
//! binary (`berth`, `berth-registry`).

use std::sync::Arc;
use std::time::Duration;

use super::{OpenOptions, S3Options, Store, StoreError, open};

#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// Where the registry lives: s3://bucket[/prefix], file:///path or a directory.
    #[arg(
        long,
        env = "BERTH_STORE",
        default_value = "./berth-data",
        global = true
    )]
    pub store: String,
    /// Path-style S3 addressing (default: on exactly when AWS_ENDPOINT_URL is set).
    #[arg(long, env = "BERTH_S3_PATH_STYLE", global = true)]
    pub s3_path_style: Option<bool>,
    /// Seconds to wait for S3 to answer one request (a part upload included) before
    /// retrying it: raise it on a slow uplink, lower it to fail over sooner.
    #[arg(
        long,
        env = "BERTH_S3_READ_TIMEOUT_SECS",
        default_value_t = 60,
        global = true
    )]
    pub s3_read_timeout_secs: u64,
}

impl StoreArgs {
    /// Opens the store; `s3` carries the role-specific S3 settings.
    pub async fn open(&self, s3: S3Options) -> Result<Arc<dyn Store>, StoreError> {
        let s3 = S3Options {
            path_style: self.s3_path_style,
            read_timeout: Duration::from_secs(self.s3_read_timeout_secs),
            ..s3
        };
        open(&self.store, &OpenOptions { s3 }).await
    }
}
