//! `berth copy`: an image from another registry into the store, through the same
//! publish as `berth push` (blobs, manifests, tags; what the store has is reused,
//! never downloaded). Indexes are copied whole unless one platform is asked for.

use std::path::PathBuf;

use berth_core::store::Store;
use berth_core::{Repository, Tag};
use serde::Serialize;
use std::sync::atomic::Ordering;

use crate::error::PublishError;
use crate::observer::Observer;
use crate::publish::{PublishOptions, PublishReport, publish};
use crate::source::registry::{self, RemoteOptions};

/// What `berth copy --json` prints: the publish report plus what was downloaded.
#[derive(Debug, Clone, Serialize)]
pub struct CopyReport {
    #[serde(flatten)]
    pub publish: PublishReport,
    pub source: String,
    /// Blobs fetched from the source registry in this run.
    pub blobs_downloaded: usize,
    pub bytes_downloaded: u64,
    /// Bytes of interrupted earlier downloads that this run continued from.
    pub bytes_resumed: u64,
}

pub async fn copy(
    store: &dyn Store,
    source: &str,
    remote: &RemoteOptions,
    repository: &Repository,
    tags: &[Tag],
    options: &PublishOptions,
    observer: &dyn Observer,
) -> Result<CopyReport, PublishError> {
    let (bundle, downloads) = registry::open(source, remote).await?;
    let publish = publish(store, &bundle, repository, tags, options, observer).await?;
    let stats = &downloads.stats;
    Ok(CopyReport {
        publish,
        source: source.to_owned(),
        blobs_downloaded: stats.blobs.load(Ordering::Relaxed),
        bytes_downloaded: stats.bytes.load(Ordering::Relaxed),
        bytes_resumed: stats.resumed.load(Ordering::Relaxed),
    })
}

/// `$XDG_CACHE_HOME/berth/copy`, else `~/.cache/berth/copy`, else under the
/// system's temporary directory.
pub fn default_cache_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("berth").join("copy")
}
