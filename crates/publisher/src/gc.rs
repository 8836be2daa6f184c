//! Garbage collection: removes manifests and blobs no tag reaches, while publishers
//! keep publishing. docs/gc.md holds the safety argument; in short:
//!
//! 1. the store's clock is read (an object written and read back) and the cutoff is
//!    that time minus the grace window;
//! 2. every manifest and blob is listed with its last-modified time: the candidates
//!    are those older than the cutoff;
//! 3. only then are the tags listed and walked (mark), so a tag written after its
//!    repository was walked belongs to a publish that started after the cutoff and
//!    whose objects are all newer than it (written, or touched when reused);
//! 4. each unmarked candidate is read again (HEAD) and deleted at once, unless it was
//!    touched meanwhile; a publisher that finds a collection running (its marker
//!    under [`layout::GC_RUNS_PREFIX`], there from before step 1 until the last delete
//!    has returned) waits [`SETTLE`] after touching before it trusts a reused object,
//!    which covers a touch landing between that HEAD and the delete.
//!
//! Manifests go before blobs, and records (referrers, blob holders) after the object
//! they describe, so an interrupted collection leaves nothing reachable broken and a
//! second run finishes the job.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant, SystemTime};

use berth_core::layout::{self, ContentKey, GC_CLOCK_KEY};
use berth_core::store::{ListEntry, Store, StoreError, WriteMeta, list_all, list_all_entries};
use berth_core::{Digest, Repository};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use serde::Serialize;

use crate::references::References;

/// How long a publisher waits after touching reused objects before it re-checks they
/// exist and writes its tags.
pub const SETTLE: Duration = Duration::from_secs(2);
/// The longest collection lets pass between reading a candidate's time and sending
/// its delete; what is left of [`SETTLE`] is the time a delete may take to land.
pub const DELETE_WINDOW: Duration = Duration::from_millis(500);
/// A collection's marker this old belongs to a run that died (no run lasts this
/// long): a later run removes it, so publishes stop waiting for it.
pub const STALE_RUN: Duration = Duration::from_secs(24 * 60 * 60);
/// HTTP dates (an S3 HEAD's `Last-Modified`) keep whole seconds.
const CLOCK_RESOLUTION: Duration = Duration::from_secs(1);
const AT_ONCE: usize = 16;

#[derive(Debug, Clone)]
pub struct GcOptions {
    /// Unreachable objects younger than this stay; at least the longest publish.
    pub grace: Duration,
    pub dry_run: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum GcError {
    #[error("the store's clock could not be read from {GC_CLOCK_KEY}")]
    NoClock,
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What `berth gc --json` prints.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub grace_seconds: u64,
    /// Manifests and blobs removed (or, in a dry run, that would be).
    pub manifests: usize,
    pub blobs: usize,
    /// Every object removed, records (referrers, blob holders) included.
    pub objects: usize,
    pub bytes: u64,
    /// Unreachable manifests and blobs kept because they are younger than the grace
    /// window (or were touched by a publish while collection ran).
    pub kept_recent: usize,
    /// Repositories left alone because a reachable manifest could not be read.
    pub skipped: Vec<String>,
    pub removed: Vec<RemovedObject>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RemovedObject {
    pub key: String,
    pub bytes: u64,
}

pub async fn collect(store: &dyn Store, options: &GcOptions) -> Result<GcReport, GcError> {
    if options.dry_run {
        return run(store, options).await;
    }
    let marker = layout::gc_run_key(&uuid::Uuid::new_v4().to_string());
    store
        .put(
            &marker,
            Bytes::new(),
            &WriteMeta::new("application/octet-stream"),
        )
        .await?;
    let report = run(store, options).await;
    // Only after every delete has returned: publishes stop waiting for this run. One
    // left behind (the run died) costs publishes the settle until it goes stale.
    if let Err(e) = store.delete(&marker).await {
        tracing::warn!(key = %marker, error = %e, "could not remove this collection's marker");
    }
    report
}

/// Whether a collection may be deleting right now: only then does a publish need to
/// wait [`SETTLE`] before trusting what it reused (docs/gc.md, P3).
pub async fn running(store: &dyn Store) -> Result<bool, StoreError> {
    Ok(!store
        .list(layout::GC_RUNS_PREFIX, None, 1)
        .await?
        .is_empty())
}

async fn run(store: &dyn Store, options: &GcOptions) -> Result<GcReport, GcError> {
    let now = store_clock(store).await?;
    if !options.dry_run {
        remove_stale_markers(store, now).await?;
    }
    let cutoff = now.checked_sub(options.grace);
    let mut report = GcReport {
        dry_run: options.dry_run,
        grace_seconds: options.grace.as_secs(),
        ..GcReport::default()
    };
    // Candidates first, marks after: see the module documentation.
    let content: Vec<(ContentKey, ListEntry)> = list_all_entries(store, layout::SERVED_PREFIX)
        .await?
        .into_iter()
        .filter_map(|e| Some((ContentKey::parse(&e.key)?, e)))
        .collect();
    let records = list_all_entries(store, layout::referrers_root()).await?;

    let repositories: BTreeSet<Repository> = content
        .iter()
        .map(|(k, _)| k.repository().clone())
        .collect();
    let mut reachable = BTreeSet::new();
    let mut skipped = BTreeSet::new();
    for repository in &repositories {
        match mark(store, repository).await? {
            Ok(marked) => reachable.extend(marked),
            Err(reason) => {
                tracing::warn!(%repository, %reason, "left alone: a reachable manifest is unreadable");
                report.skipped.push(format!("{repository}: {reason}"));
                skipped.insert(repository.clone());
            }
        }
    }
    let old = |e: &ListEntry| cutoff.is_some_and(|c| e.modified < c);
    let mut doomed: Vec<(ContentKey, u64)> = Vec::new();
    for (key, entry) in &content {
        if reachable.contains(key) || skipped.contains(key.repository()) {
            continue;
        }
        if old(entry) {
            doomed.push((key.clone(), entry.size));
        } else {
            report.kept_recent += 1;
        }
    }
    let existing: BTreeSet<&ContentKey> = content.iter().map(|(k, _)| k).collect();
    // Referrer records go with their manifest; old ones whose manifest is gone (left
    // by an interrupted run) go first.
    let mut records_of: HashMap<ContentKey, Vec<String>> = HashMap::new();
    let mut orphans = Vec::new();
    for record in &records {
        let Some((repository, _, digest)) = layout::referrer_from_key(&record.key) else {
            continue;
        };
        let manifest = ContentKey::Manifest(repository, digest);
        if skipped.contains(manifest.repository()) {
            continue;
        }
        if !existing.contains(&manifest) && old(record) {
            orphans.push(record.key.clone());
        }
        records_of
            .entry(manifest)
            .or_default()
            .push(record.key.clone());
    }

    if options.dry_run {
        for key in orphans {
            report.removed.push(RemovedObject { key, bytes: 0 });
        }
        for (key, size) in &doomed {
            report.removed.push(RemovedObject {
                key: key.key(),
                bytes: *size,
            });
            count(&mut report, key, *size);
        }
        report.objects = report.removed.len();
        return Ok(report);
    }
    let Some(cutoff) = cutoff else {
        return Ok(report);
    };
    for key in orphans {
        if sweep(store, &key, cutoff).await?.is_some() {
            report.removed.push(RemovedObject { key, bytes: 0 });
        }
    }
    // Manifests before blobs, so a run interrupted half-way never leaves a manifest,
    // even an unreachable one, naming a blob it deleted.
    let (manifests, blobs): (Vec<_>, Vec<_>) = doomed
        .into_iter()
        .partition(|(k, _)| matches!(k, ContentKey::Manifest(..)));
    for phase in [manifests, blobs] {
        let outcomes: Vec<(ContentKey, Option<u64>)> = stream::iter(phase)
            .map(|(key, _)| async move {
                let size = sweep(store, &key.key(), cutoff).await?;
                Ok::<_, StoreError>((key, size))
            })
            .buffer_unordered(AT_ONCE)
            .try_collect()
            .await?;
        for (key, size) in outcomes {
            let Some(size) = size else {
                report.kept_recent += 1;
                continue;
            };
            report.removed.push(RemovedObject {
                key: key.key(),
                bytes: size,
            });
            count(&mut report, &key, size);
            // Records after the object they describe: every reader tolerates a stale
            // record (a referrer listed but missing, a holder that cannot copy).
            let follow = match &key {
                ContentKey::Manifest(..) => records_of.remove(&key).unwrap_or_default(),
                ContentKey::Blob(repository, digest) => {
                    vec![layout::blob_holder_key(digest, repository)]
                }
            };
            for record in follow {
                if sweep(store, &record, cutoff).await?.is_some() {
                    report.removed.push(RemovedObject {
                        key: record,
                        bytes: 0,
                    });
                }
            }
        }
    }
    report.objects = report.removed.len();
    Ok(report)
}

fn count(report: &mut GcReport, key: &ContentKey, size: u64) {
    match key {
        ContentKey::Manifest(..) => report.manifests += 1,
        ContentKey::Blob(..) => report.blobs += 1,
    }
    report.bytes += size;
}

/// Deletes `key` if, read again just now, it is still older than the cutoff; its
/// size if deleted, `None` if it is gone or was renewed (touched, rewritten).
async fn sweep(
    store: &dyn Store,
    key: &str,
    cutoff: SystemTime,
) -> Result<Option<u64>, StoreError> {
    let asked = Instant::now();
    let Some(meta) = store.head(key).await? else {
        return Ok(None);
    };
    let still_old = meta.modified.is_some_and(|m| m + CLOCK_RESOLUTION < cutoff);
    if !still_old || asked.elapsed() > DELETE_WINDOW {
        // Renewed by a publish meanwhile, or too slow to be sure: the next run.
        return Ok(None);
    }
    store.delete(key).await?;
    if asked.elapsed() > SETTLE {
        tracing::warn!(%key, "a delete took longer than a publisher's settle time");
    }
    Ok(Some(meta.size))
}

/// Removes the markers of collections that died (older than [`STALE_RUN`]).
async fn remove_stale_markers(store: &dyn Store, now: SystemTime) -> Result<(), StoreError> {
    for entry in list_all_entries(store, layout::GC_RUNS_PREFIX).await? {
        if entry.modified + STALE_RUN < now {
            tracing::warn!(key = %entry.key, "removing the marker of a collection that did not finish");
            store.delete(&entry.key).await?;
        }
    }
    Ok(())
}

/// Writes an object and reads its time back: "now" by the clock that stamps every
/// other object, whatever this machine's clock says.
async fn store_clock(store: &dyn Store) -> Result<SystemTime, GcError> {
    let meta = WriteMeta::new("application/octet-stream");
    store.put(GC_CLOCK_KEY, Bytes::new(), &meta).await?;
    store
        .head(GC_CLOCK_KEY)
        .await?
        .and_then(|m| m.modified)
        .ok_or(GcError::NoClock)
}

/// Everything a tag of `repository` reaches: manifests (index children, referrers
/// found through their records), configs and layers. The inner error names a
/// reachable manifest that is missing or unreadable: then nothing of the repository
/// may be judged unreachable.
async fn mark(
    store: &dyn Store,
    repository: &Repository,
) -> Result<Result<BTreeSet<ContentKey>, String>, StoreError> {
    let prefix = layout::manifests_prefix(repository);
    let tags: Vec<String> = list_all(store, &prefix)
        .await?
        .into_iter()
        .filter(|k| layout::tag_from_manifest_key(&prefix, k).is_some())
        .collect();
    let mut referrers: BTreeMap<Digest, Vec<Digest>> = BTreeMap::new();
    for key in list_all(store, &layout::repository_referrers_prefix(repository)).await? {
        if let Some((owner, subject, digest)) = layout::referrer_from_key(&key)
            && &owner == repository
        {
            referrers.entry(subject).or_default().push(digest);
        }
    }
    let mut pending: Vec<Digest> = stream::iter(tags)
        .map(|key| async move { store.get(&key).await })
        .buffer_unordered(AT_ONCE)
        .try_filter_map(|o| async move { Ok(o.map(|o| Digest::of(&o.body))) })
        .try_collect()
        .await?;
    let mut marked = BTreeSet::new();
    while !pending.is_empty() {
        let batch: Vec<Digest> = std::mem::take(&mut pending)
            .into_iter()
            .filter(|d| marked.insert(ContentKey::Manifest(repository.clone(), d.clone())))
            .collect();
        let read: Vec<(Digest, Option<Bytes>)> = stream::iter(batch)
            .map(|digest| async move {
                let object = store
                    .get(&layout::manifest_digest_key(repository, &digest))
                    .await?;
                Ok::<_, StoreError>((digest, object.map(|o| o.body)))
            })
            .buffer_unordered(AT_ONCE)
            .try_collect()
            .await?;
        for (digest, body) in read {
            let Some(body) = body else {
                return Ok(Err(format!("manifest {digest} is missing")));
            };
            let references = match References::of(&digest, &body) {
                Ok(references) => references,
                Err(e) => return Ok(Err(e.to_string())),
            };
            for blob in references.blobs {
                marked.insert(ContentKey::Blob(repository.clone(), blob));
            }
            pending.extend(references.manifests);
            pending.extend(referrers.get(&digest).into_iter().flatten().cloned());
        }
    }
    Ok(Ok(marked))
}
