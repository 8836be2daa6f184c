//! The command-line and environment settings that choose a store, shared by every
//! binary (`berth`, `berth-registry`).

use std::sync::Arc;

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
}

impl StoreArgs {
    /// Opens the store; `s3` carries the role-specific S3 settings.
    pub async fn open(&self, s3: S3Options) -> Result<Arc<dyn Store>, StoreError> {
        let s3 = S3Options {
            path_style: self.s3_path_style,
            ..s3
        };
        open(&self.store, &OpenOptions { s3 }).await
    }
}
