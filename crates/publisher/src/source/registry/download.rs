//! Blob downloads from a remote registry into a local cache directory, resumable:
//! `<cache>/sha256/<hex>.partial` grows while a blob downloads; an interrupted copy
//! leaves it behind, and the next run asks the registry for the rest with a `Range`
//! request. A complete, verified download is renamed to `<hex>` and removed once the
//! blob is in the store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use berth_core::Digest;
use berth_core::digest::Hasher;
use berth_core::store::FileSegment;
use futures::StreamExt;
use oci_client::client::{BlobResponse, SizedStream};
use oci_client::{Client, Reference};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

use super::Origin;
use crate::error::PublishError;
use crate::source::{BlobRef, Fetch};

/// Cached downloads untouched this long belong to copies nobody ran again: removed.
const ABANDONED_AFTER: std::time::Duration = std::time::Duration::from_secs(7 * 24 * 60 * 60);

/// What this run downloaded, for the copy report.
#[derive(Debug, Default)]
pub struct DownloadStats {
    pub blobs: AtomicUsize,
    pub bytes: AtomicU64,
    /// Bytes of earlier runs' partial downloads that were kept.
    pub resumed: AtomicU64,
}

pub struct Downloads {
    client: Client,
    /// The repository blobs are fetched from.
    image: Reference,
    origin: Origin,
    dir: PathBuf,
    pub stats: DownloadStats,
}

impl std::fmt::Debug for Downloads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downloads")
            .field("source", &self.origin.spec)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Downloads {
    pub(super) fn new(client: Client, image: Reference, origin: Origin, cache_dir: &Path) -> Self {
        Downloads {
            client,
            image,
            origin,
            dir: cache_dir.join("sha256"),
            stats: DownloadStats::default(),
        }
    }

    /// Removes downloads of abandoned copies (older than [`ABANDONED_AFTER`]), so
    /// the cache does not grow forever; a failure only leaves them for next time.
    pub async fn prune(&self) {
        let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
            return;
        };
        while let Ok(Some(entry)) = entries.next_entry().await {
            let abandoned = entry.metadata().await.is_ok_and(|m| {
                m.is_file()
                    && m.modified()
                        .is_ok_and(|t| t.elapsed().is_ok_and(|age| age > ABANDONED_AFTER))
            });
            if abandoned {
                remove(&entry.path()).await;
            }
        }
    }

    fn complete_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    fn partial_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(format!("{}.partial", digest.hex()))
    }

    fn io_error(&self, path: &Path, e: std::io::Error) -> PublishError {
        self.origin.error(format!(
            "cache {}: {e} (set --cache-dir to a writable directory)",
            path.display()
        ))
    }

    /// Downloads into the partial file, continuing from what it holds, and returns
    /// the digest of the whole file.
    async fn download(&self, blob: &BlobRef, partial: &Path) -> Result<Digest, PublishError> {
        let io = |e| self.io_error(partial, e);
        let (mut hasher, kept) = hash_prefix(partial, blob.size).await.map_err(io)?;
        let mut file = tokio::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(partial)
            .await
            .map_err(io)?;
        if kept == blob.size {
            file.set_len(kept).await.map_err(io)?;
            return Ok(hasher.finish());
        }
        match self.request(blob, kept).await? {
            BlobResponse::Partial(stream) => {
                self.stats.resumed.fetch_add(kept, Ordering::Relaxed);
                self.receive_at(blob, stream, &mut file, &mut hasher, kept)
                    .await?
            }
            // The registry ignored the range: start over.
            BlobResponse::Full(stream) => {
                hasher = Hasher::default();
                self.receive_at(blob, stream, &mut file, &mut hasher, 0)
                    .await?
            }
        }
        file.flush().await.map_err(io)?;
        // A body cut short is kept for the next run to continue.
        if hasher.len() < blob.size {
            return Err(self.origin.error(format!(
                "blob {} ended after {} of {} bytes: run the copy again to resume",
                blob.digest,
                hasher.len(),
                blob.size
            )));
        }
        Ok(hasher.finish())
    }

    /// Asks for the blob from `offset` on. Always as a range (`bytes=0-` too): the
    /// whole file is hashed here anyway, and oci-client would hash a full response a
    /// second time.
    async fn request(&self, blob: &BlobRef, offset: u64) -> Result<BlobResponse, PublishError> {
        let digest = blob.digest.as_str();
        self.client
            .pull_blob_stream_partial(&self.image, &digest, offset, None)
            .await
            .map_err(|e| self.origin.request_error(&format!("blob {digest}"), e))
    }

    /// Writes the response body into `file` from `offset` on, refusing more bytes than
    /// the blob has.
    async fn receive_at(
        &self,
        blob: &BlobRef,
        mut stream: SizedStream,
        file: &mut tokio::fs::File,
        hasher: &mut Hasher,
        offset: u64,
    ) -> Result<(), PublishError> {
        let io = |e| self.io_error(&self.partial_path(&blob.digest), e);
        file.set_len(offset).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io)?;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| {
                self.origin.error(format!(
                    "downloading blob {}: {e} (run the copy again to resume)",
                    blob.digest
                ))
            })?;
            hasher.update(&chunk);
            if hasher.len() > blob.size {
                return Err(PublishError::SizeMismatch {
                    digest: blob.digest.clone(),
                    expected: blob.size,
                    actual: hasher.len(),
                });
            }
            file.write_all(&chunk).await.map_err(io)?;
            self.stats
                .bytes
                .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[async_trait::async_trait]
impl Fetch for Downloads {
    async fn fetch(&self, blob: &BlobRef) -> Result<FileSegment, PublishError> {
        let complete = self.complete_path(&blob.digest);
        let segment = FileSegment {
            path: complete.clone(),
            offset: 0,
            len: blob.size,
        };
        // A finished download of an earlier run: it was verified before the rename.
        if tokio::fs::metadata(&complete)
            .await
            .is_ok_and(|m| m.len() == blob.size)
        {
            return Ok(segment);
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(|e| self.io_error(&self.dir, e))?;
        let partial = self.partial_path(&blob.digest);
        let mut digest = self.download(blob, &partial).await?;
        if digest != blob.digest {
            // A kept prefix may have been corrupt: one fresh download decides.
            tracing::warn!(digest = %blob.digest, "download did not match its digest; fetching it again from the start");
            remove(&partial).await;
            digest = self.download(blob, &partial).await?;
        }
        if digest != blob.digest {
            remove(&partial).await;
            return Err(self.origin.error(format!(
                "blob {} downloaded as {digest}: the registry sent other content than it promised",
                blob.digest
            )));
        }
        tokio::fs::rename(&partial, &complete)
            .await
            .map_err(|e| self.io_error(&complete, e))?;
        self.stats.blobs.fetch_add(1, Ordering::Relaxed);
        Ok(segment)
    }

    async fn stored(&self, blob: &BlobRef) {
        remove(&self.complete_path(&blob.digest)).await;
    }
}

/// Hashes what an earlier run left in `partial`, up to `size` bytes: the hasher and
/// how many bytes are kept (0 when there is none).
async fn hash_prefix(partial: &Path, size: u64) -> std::io::Result<(Hasher, u64)> {
    let mut hasher = Hasher::default();
    let mut file = match tokio::fs::File::open(partial).await {
        Ok(file) => file.take(size),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((hasher, 0)),
        Err(e) => return Err(e),
    };
    let mut buffer = vec![0; 1 << 20];
    loop {
        let read = file.read(&mut buffer).await?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    let kept = hasher.len();
    Ok((hasher, kept))
}

async fn remove(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!(path = %path.display(), error = %e, "could not remove a cached download");
    }
}
