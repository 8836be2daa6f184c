//! `publish`: writes a bundle into a store in crash-safe order: blobs, child
//! manifests, indexes, the repository marker, tags, then the derived static copies.
//! A kill at any point leaves every tag pointing at complete content, because a tag
//! is written only after everything it reaches exists. What the store already holds
//! is touched rather than skipped and re-checked before any tag (after [`gc::SETTLE`]
//! while a collection runs), so a concurrent `berth gc` never removes it from under a
//! new tag (docs/gc.md).

use berth_core::layout::{self, DIGEST_METADATA, PUSHED_AT_METADATA};
use berth_core::store::{Store, WriteMeta};
use berth_core::{Digest, Repository, Tag};
use bytes::Bytes;
use futures::{StreamExt, stream};
use serde::Serialize;

use crate::derived;
use crate::error::PublishError;
use crate::gc;
use crate::observer::{BlobOutcome, Observer};
use crate::plan::{self, ManifestWrite};
use crate::source::{BlobRef, Bundle, Content};
use crate::webhook::DeliveryReport;

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
    /// Webhook deliveries, filled in after the publish by `webhook::notify`.
    pub webhooks: Vec<DeliveryReport>,
}

impl PublishReport {
    /// A report of `digest` into `repository` with nothing counted yet.
    pub fn new(repository: &Repository, tags: &[Tag], digest: &Digest, media_type: &str) -> Self {
        PublishReport {
            repository: repository.to_string(),
            tags: tags.iter().map(Tag::to_string).collect(),
            digest: digest.to_string(),
            media_type: media_type.to_owned(),
            blobs_uploaded: 0,
            blobs_skipped: 0,
            blobs_copied: 0,
            bytes_uploaded: 0,
            manifests_written: 0,
            webhooks: Vec::new(),
        }
    }
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
    let root = &plan.root().blob;
    let mut report = PublishReport::new(repository, tags, &root.digest, &root.media_type);
    // Every blob is attempted before failing, so one bad blob does not abandon
    // uploads half-way; nothing below runs unless all succeeded.
    let mut outcomes_present = Vec::with_capacity(plan.blobs.len());
    for (blob, outcome) in plan.blobs.iter().zip(outcomes) {
        let outcome = outcome?;
        outcomes_present.push(outcome == BlobOutcome::Present);
        match outcome {
            BlobOutcome::Uploaded => {
                report.blobs_uploaded += 1;
                report.bytes_uploaded += blob.size;
            }
            BlobOutcome::Present => report.blobs_skipped += 1,
            BlobOutcome::Copied { .. } => report.blobs_copied += 1,
        }
    }

    let mut reused: Vec<Reused> = plan
        .blobs
        .iter()
        .zip(&outcomes_present)
        .filter(|(_, present)| **present)
        .map(|(blob, _)| Reused::Blob(blob))
        .collect();
    for manifest in &plan.manifests {
        match write_manifest(store, repository, manifest).await? {
            ManifestOutcome::Written => report.manifests_written += 1,
            ManifestOutcome::Touched => reused.push(Reused::Manifest(manifest)),
        }
    }
    settle(store, bundle, repository, reused, observer).await?;
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
    // A reused blob is touched, so garbage collection sees it as just written (see
    // docs/gc.md); one deleted before the touch is published again below.
    let present = store.head(&key).await?.is_some_and(|m| m.size == blob.size);
    let outcome = if present && store.touch(&key).await? {
        BlobOutcome::Present
    } else if let Some(from) = copy_from_holder(store, repository, blob, &key).await? {
        BlobOutcome::Copied { from }
    } else {
        let fetched;
        let content = match bundle.content(&blob.digest) {
            Some(content) => content,
            None => {
                fetched = bundle.fetch(blob).await?;
                Content::File(&fetched)
            }
        };
        let progress = observer.upload_started(blob);
        let meta = WriteMeta::new(BLOB_CONTENT_TYPE);
        match content {
            Content::File(segment) => {
                store
                    .put_verified(&key, segment, &blob.digest, &meta, progress)
                    .await?
            }
            // In-memory content was hashed when the bundle was built.
            Content::Memory(bytes) => {
                store.put(&key, bytes.clone(), &meta).await?;
                progress(blob.size);
            }
        }
        if let Some(remote) = &bundle.remote {
            remote.stored(blob).await;
        }
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

/// Something a publish found in the store and touched instead of writing.
enum Reused<'a> {
    Blob(&'a BlobRef),
    Manifest(&'a ManifestWrite),
}

impl Reused<'_> {
    fn key(&self, repository: &Repository) -> String {
        match self {
            Reused::Blob(blob) => layout::blob_key(repository, &blob.digest),
            Reused::Manifest(m) => layout::manifest_digest_key(repository, &m.blob.digest),
        }
    }
}

/// Checks that reused objects still exist after touching them, and publishes again
/// any that garbage collection removed just before the touch landed; repeats until
/// a round touches nothing. While a collection runs it first waits [`gc::SETTLE`], so
/// a delete already sent has landed. Tags are written only after this, so they never
/// reach an object a concurrent collection deleted (docs/gc.md).
async fn settle(
    store: &dyn Store,
    bundle: &Bundle,
    repository: &Repository,
    mut reused: Vec<Reused<'_>>,
    observer: &dyn Observer,
) -> Result<(), PublishError> {
    while !reused.is_empty() {
        if gc::running(store).await? {
            tokio::time::sleep(gc::SETTLE).await;
        }
        let mut again = Vec::new();
        for item in reused {
            if store.head(&item.key(repository)).await?.is_some() {
                continue;
            }
            tracing::warn!(key = %item.key(repository), "removed by garbage collection while reused; publishing it again");
            match item {
                Reused::Blob(blob) => {
                    if publish_blob(store, bundle, repository, blob, observer).await?
                        == BlobOutcome::Present
                    {
                        again.push(Reused::Blob(blob));
                    }
                }
                Reused::Manifest(manifest) => {
                    if write_manifest(store, repository, manifest).await?
                        == ManifestOutcome::Touched
                    {
                        again.push(Reused::Manifest(manifest));
                    }
                }
            }
        }
        reused = again;
    }
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
enum ManifestOutcome {
    Written,
    /// Already there: touched, as a reused blob is.
    Touched,
}

/// Writes a manifest under its digest unless already there (then touches it).
async fn write_manifest(
    store: &dyn Store,
    repository: &Repository,
    manifest: &ManifestWrite,
) -> Result<ManifestOutcome, PublishError> {
    let key = layout::manifest_digest_key(repository, &manifest.blob.digest);
    // Content-addressed: whatever is under the key is this manifest.
    let outcome = if store.touch(&key).await? {
        ManifestOutcome::Touched
    } else {
        store
            .put(&key, manifest.bytes.clone(), &manifest_meta(&manifest.blob))
            .await?;
        ManifestOutcome::Written
    };
    if let Some((subject, descriptor)) = &manifest.referrer {
        // After the manifest, so every listed referrer exists; rewritten on every
        // publish, so one lost to a crash comes back.
        let key = layout::referrer_key(repository, subject, &manifest.blob.digest);
        let body = Bytes::from(serde_json::to_vec(descriptor).expect("descriptor serializes"));
        store
            .put(&key, body, &WriteMeta::new("application/json"))
            .await?;
    }
    Ok(outcome)
}

fn manifest_meta(blob: &BlobRef) -> WriteMeta {
    WriteMeta::new(&blob.media_type).with(DIGEST_METADATA, blob.digest.to_string())
}
