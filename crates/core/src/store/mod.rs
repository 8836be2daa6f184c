//! The storage abstraction: a flat key space of immutable-once-written objects.
//!
//! Everything above this trait (publishing, serving) is written once; the S3 and the
//! directory backends both pass the same conformance tests (`tests/tests/store.rs`).
//! Backends never rely on conditional writes: S3-compatible servers such as Garage
//! ignore `If-None-Match`, so safety comes from write order and content addressing.

mod args;
mod credential_expiry;
mod damaged_upload;
mod dir;
mod s3;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;

use crate::digest::Digest;

pub use args::StoreArgs;
pub use dir::DirStore;
pub use s3::{S3Options, S3Store};

/// What a HEAD returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectMeta {
    pub size: u64,
    pub content_type: Option<String>,
    /// User metadata (`x-amz-meta-*` on S3), lowercase keys.
    pub metadata: BTreeMap<String, String>,
    /// When the object was last written or touched, by the store's clock (S3's
    /// `Last-Modified`, a file's mtime); garbage collection's grace window reads it.
    pub modified: Option<SystemTime>,
}

/// One key of a listing, with what garbage collection needs to judge it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub key: String,
    pub size: u64,
    /// Last write or touch, by the store's clock.
    pub modified: SystemTime,
}

/// A small object read whole (manifests, markers, JSON documents).
#[derive(Debug, Clone)]
pub struct Object {
    pub meta: ObjectMeta,
    pub body: Bytes,
}

/// An object's bytes as a stream, for blobs too large to hold in memory.
pub struct ObjectReader {
    pub meta: ObjectMeta,
    pub body: futures::stream::BoxStream<'static, std::io::Result<Bytes>>,
}

impl fmt::Debug for ObjectReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectReader")
            .field("meta", &self.meta)
            .finish()
    }
}

/// What a writer attaches to a new object.
#[derive(Debug, Clone, Default)]
pub struct WriteMeta {
    pub content_type: String,
    pub metadata: BTreeMap<String, String>,
}

impl WriteMeta {
    pub fn new(content_type: impl Into<String>) -> Self {
        WriteMeta {
            content_type: content_type.into(),
            metadata: BTreeMap::new(),
        }
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

/// A byte range of a local file: a blob inside an archive or a layout directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSegment {
    pub path: PathBuf,
    pub offset: u64,
    pub len: u64,
}

/// Called with the number of bytes sent since the last call.
pub type Progress = Arc<dyn Fn(u64) + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} is not a store URL: use s3://bucket[/prefix], file:///path or a directory path")]
    InvalidUrl(String),
    #[error("refusing unsafe store key {0:?}")]
    InvalidKey(String),
    #[error("content does not match its digest: expected {expected}, read {actual} ({len} bytes)")]
    DigestMismatch {
        expected: Digest,
        actual: Digest,
        len: u64,
    },
    // Not `source`: the message already holds the cause, and `{:#}` chains (the CLI's
    // one error line) would print it twice.
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("S3 {operation} {key} failed: {message}")]
    S3 {
        operation: &'static str,
        key: String,
        message: String,
    },
}

impl StoreError {
    fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        StoreError::Io {
            path: path.into(),
            error,
        }
    }

    /// The same error again, for each caller that waited on one shared operation
    /// (`std::io::Error` is not `Clone`; its kind and message carry over).
    pub fn duplicate(&self) -> StoreError {
        match self {
            StoreError::InvalidUrl(url) => StoreError::InvalidUrl(url.clone()),
            StoreError::InvalidKey(key) => StoreError::InvalidKey(key.clone()),
            StoreError::DigestMismatch {
                expected,
                actual,
                len,
            } => StoreError::DigestMismatch {
                expected: expected.clone(),
                actual: actual.clone(),
                len: *len,
            },
            StoreError::Io { path, error } => StoreError::Io {
                path: path.clone(),
                error: std::io::Error::new(error.kind(), error.to_string()),
            },
            StoreError::S3 {
                operation,
                key,
                message,
            } => StoreError::S3 {
                operation,
                key: key.clone(),
                message: message.clone(),
            },
        }
    }
}

/// Objects addressed by `/`-separated keys. Writes are atomic: a reader sees the old
/// object, no object, or the complete new one, never a partial one.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Where the store lives, for messages (`s3://bucket/prefix`, `/path`).
    fn location(&self) -> String;

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError>;

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError>;

    /// Streams the object, or the `range` of it (already checked against its size).
    async fn read(
        &self,
        key: &str,
        range: Option<Range<u64>>,
    ) -> Result<Option<ObjectReader>, StoreError>;

    /// A URL that lets anyone holding it GET the object until it expires, if the
    /// backend can make one (S3 can; a directory cannot). Signing is local: no request.
    async fn presign_get(&self, key: &str, expires: Duration)
    -> Result<Option<String>, StoreError>;

    async fn put(&self, key: &str, body: Bytes, meta: &WriteMeta) -> Result<(), StoreError>;

    /// Writes `source` under `key` only if its bytes hash to `expected`; otherwise
    /// nothing becomes visible and [`StoreError::DigestMismatch`] is returned.
    async fn put_verified(
        &self,
        key: &str,
        source: &FileSegment,
        expected: &Digest,
        meta: &WriteMeta,
        progress: Progress,
    ) -> Result<(), StoreError>;

    /// Server-side copy of an object of `size` bytes, metadata included. Returns
    /// `false` when `from` does not exist (it may have been removed meanwhile).
    async fn copy(&self, from: &str, to: &str, size: u64) -> Result<bool, StoreError>;

    /// Up to `limit` keys starting with `prefix` and sorting after `start_after`, in
    /// byte order: one flat listing, never a walk of a tree of prefixes.
    async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let entries = self.list_entries(prefix, start_after, limit).await?;
        Ok(entries.into_iter().map(|e| e.key).collect())
    }

    /// [`Store::list`] with each key's size and last-modified time (the same one
    /// request per page on S3).
    async fn list_entries(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListEntry>, StoreError>;

    /// Renews the object's last-modified time, bytes and metadata unchanged, so
    /// garbage collection treats it as just written; `false` when it does not exist.
    /// A publish touches every object it reuses instead of writing (see docs/gc.md).
    async fn touch(&self, key: &str) -> Result<bool, StoreError>;

    /// Removes `key`; absent keys are not an error.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
}

/// Listing pages asked for when reading a whole prefix.
const LIST_PAGE: usize = 1000;

/// Every key under `prefix`, page after page (for admin-sized prefixes and sweeps).
pub async fn list_all(store: &dyn Store, prefix: &str) -> Result<Vec<String>, StoreError> {
    let entries = list_all_entries(store, prefix).await?;
    Ok(entries.into_iter().map(|e| e.key).collect())
}

/// [`list_all`] with sizes and times.
pub async fn list_all_entries(
    store: &dyn Store,
    prefix: &str,
) -> Result<Vec<ListEntry>, StoreError> {
    list_entries_after(store, prefix, None).await
}

/// The keys under `prefix` that sort after `start_after`, page by page.
pub async fn list_all_after(
    store: &dyn Store,
    prefix: &str,
    start_after: Option<&str>,
) -> Result<Vec<String>, StoreError> {
    let entries = list_entries_after(store, prefix, start_after).await?;
    Ok(entries.into_iter().map(|e| e.key).collect())
}

async fn list_entries_after(
    store: &dyn Store,
    prefix: &str,
    start_after: Option<&str>,
) -> Result<Vec<ListEntry>, StoreError> {
    let mut entries: Vec<ListEntry> = Vec::new();
    loop {
        let after = entries.last().map(|e| e.key.as_str()).or(start_after);
        let page = store.list_entries(prefix, after, LIST_PAGE).await?;
        let done = page.len() < LIST_PAGE;
        entries.extend(page);
        if done {
            return Ok(entries);
        }
    }
}

/// Options that apply when opening a store from a URL.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    pub s3: S3Options,
}

/// Opens `s3://bucket[/prefix]`, `file:///path` or a plain directory path.
pub async fn open(url: &str, options: &OpenOptions) -> Result<Arc<dyn Store>, StoreError> {
    if let Some(rest) = url.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(StoreError::InvalidUrl(url.into()));
        }
        let store = S3Store::connect(bucket, prefix.trim_matches('/'), options.s3.clone()).await;
        return Ok(Arc::new(store));
    }
    let path = url.strip_prefix("file://").unwrap_or(url);
    if path.is_empty() || path.contains("://") {
        return Err(StoreError::InvalidUrl(url.into()));
    }
    Ok(Arc::new(DirStore::new(path)))
}
