//! `publish`: writes a bundle into a store in crash-safe order: blobs, child
//! manifests, indexes, the repository marker, tags, then the derived static copies.
//! A kill at any point leaves every tag pointing at complete content, because a tag
//! is written only after everything it reaches exists.

use berth_core::layout::{self, DIGEST_METADATA, PUSHED_AT_METADATA};
use berth_core::store::{Store, WriteMeta};
use berth_core::{Repository, Tag};
use bytes::Bytes;
use futures::{StreamExt, stream};
use serde::Serialize;

use crate::derived;
use crate::error::PublishError;
use crate::observer::{BlobOutcome, Observer};
use crate::plan::{self, ManifestWrite};
use crate::source::{BlobRef, Bundle};

const BLOB_CONTENT_TYPE: &str = "application/octet-stream";
/// Holders tried when reusing a blob another repository has.
const HOLDERS_TRIED: usize = 8;

#[derive(Debug, Clone)]
pub struct PublishOptions {
    /// Blobs published at once.
    pub jobs: usize,
}

/// What `berth push --json` prints.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PublishReport {
    pub repository: String,
    pub tags: Vec<String>,
    /// Digest of the top manifest or index.
    pub digest: String,
    pub media_type: String,
    pub blobs_uploaded: usize,
    pub blobs_skipped: usize,
    /// Blobs another repository of the store had, copied server-side (never re-sent).
    pub blobs_copied: usize,
    pub bytes_uploaded: u64,
    pub manifests_written: usize,
}

pub async fn publish(
    store: &dyn Store,
    bundle: &Bundle,
    repository: &Repository,
    tags: &[Tag],
    options: &PublishOptions,
    observer: &dyn Observer,
) -> Result<PublishReport, PublishError> {
    let plan = plan::plan(bundle)?;
    derived::prepare_store(store).await?;

    let outcomes: Vec<Result<BlobOutcome, PublishError>> = stream::iter(&plan.blobs)
        .map(|blob| publish_blob(store, bundle, repository, blob, observer))
        .buffered(options.jobs.max(1))
        .collect()
        .await;
    let mut report = PublishReport {
        repository: repository.to_string(),
        tags: tags.iter().map(Tag::to_string).collect(),
        digest: plan.root().blob.digest.to_string(),
        media_type: plan.root().blob.media_type.clone(),
        blobs_uploaded: 0,
        blobs_skipped: 0,
        blobs_copied: 0,
        bytes_uploaded: 0,
        manifests_written: 0,
    };
    // Every blob is attempted before failing, so one bad blob does not abandon
    // uploads half-way; nothing below runs unless all succeeded.
    for (blob, outcome) in plan.blobs.iter().zip(outcomes) {
        match outcome? {
            BlobOutcome::Uploaded => {
                report.blobs_uploaded += 1;
                report.bytes_uploaded += blob.size;
            }
            BlobOutcome::Present => report.blobs_skipped += 1,
            BlobOutcome::Copied { .. } => report.blobs_copied += 1,
        }
    }

    for manifest in &plan.manifests {
        if write_manifest(store, repository, manifest).await? {
            report.manifests_written += 1;
        }
    }
    store
        .put(
            &layout::repository_marker_key(repository),
            Bytes::new(),
            &WriteMeta::new(BLOB_CONTENT_TYPE),
        )
        .await?;
    let root = plan.root();
    let pushed_at = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    for tag in tags {
        store
            .put(
                &layout::tag_key(repository, tag),
                root.bytes.clone(),
                &manifest_meta(&root.blob).with(PUSHED_AT_METADATA, &pushed_at),
            )
            .await?;
        observer.note(&format!(
            "{repository}:{tag}: digest: {} size: {}",
            root.blob.digest, root.blob.size
        ));
    }
    derived::refresh(store, repository).await?;
    Ok(report)
}

async fn publish_blob(
    store: &dyn Store,
    bundle: &Bundle,
    repository: &Repository,
    blob: &BlobRef,
    observer: &dyn Observer,
) -> Result<BlobOutcome, PublishError> {
    let key = layout::blob_key(repository, &blob.digest);
    let outcome = if store.head(&key).await?.is_some_and(|m| m.size == blob.size) {
        BlobOutcome::Present
    } else if let Some(from) = copy_from_holder(store, repository, blob, &key).await? {
        BlobOutcome::Copied { from }
    } else {
        let segment = bundle
            .segment(&blob.digest)
            .expect("the plan checked every blob is in the source");
        let progress = observer.upload_started(blob);
        store
            .put_verified(
                &key,
                segment,
                &blob.digest,
                &WriteMeta::new(BLOB_CONTENT_TYPE),
                progress,
            )
            .await?;
        BlobOutcome::Uploaded
    };
    if outcome != BlobOutcome::Present {
        // Recorded after the blob exists, so a holder always has the bytes.
        store
            .put(
                &layout::blob_holder_key(&blob.digest, repository),
                Bytes::new(),
                &WriteMeta::new(BLOB_CONTENT_TYPE),
            )
            .await?;
    }
    observer.blob_done(blob, &outcome);
    Ok(outcome)
}

/// Copies the blob server-side from another repository that holds it, if any does.
async fn copy_from_holder(
    store: &dyn Store,
    repository: &Repository,
    blob: &BlobRef,
    key: &str,
) -> Result<Option<Repository>, PublishError> {
    let holders = store
        .list(
            &layout::blob_holders_prefix(&blob.digest),
            None,
            HOLDERS_TRIED,
        )
        .await?;
    for holder_key in holders {
        let Some(holder) = layout::repository_from_holder_key(&blob.digest, &holder_key) else {
            continue;
        };
        if &holder == repository {
            continue;
        }
        // A holder's copy may be gone (deleted repository); then try the next.
        if store
            .copy(&layout::blob_key(&holder, &blob.digest), key, blob.size)
            .await?
        {
            return Ok(Some(holder));
        }
    }
    Ok(None)
}

/// Writes a manifest under its digest unless already there; `true` if written.
async fn write_manifest(
    store: &dyn Store,
    repository: &Repository,
    manifest: &ManifestWrite,
) -> Result<bool, PublishError> {
    let key = layout::manifest_digest_key(repository, &manifest.blob.digest);
    let written = store.head(&key).await?.is_none();
    if written {
        store
            .put(&key, manifest.bytes.clone(), &manifest_meta(&manifest.blob))
            .await?;
    }
    if let Some((subject, descriptor)) = &manifest.referrer {
        // After the manifest, so every listed referrer exists; rewritten on every
        // publish, so one lost to a crash comes back.
        let key = layout::referrer_key(repository, subject, &manifest.blob.digest);
        let body = Bytes::from(serde_json::to_vec(descriptor).expect("descriptor serializes"));
        store
            .put(&key, body, &WriteMeta::new("application/json"))
            .await?;
    }
    Ok(written)
}

fn manifest_meta(blob: &BlobRef) -> WriteMeta {
    WriteMeta::new(&blob.media_type).with(DIGEST_METADATA, blob.digest.to_string())
}
