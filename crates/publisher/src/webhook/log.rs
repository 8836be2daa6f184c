//! The delivery log: one object per delivery under `_berth/webhook-log/<name>/`,
//! keyed so a LIST returns the newest first (see `layout::webhook_log_key`). Each
//! repository keeps its newest [`KEPT`] entries. Writing the log is best effort: a
//! store fault here is logged and never fails the publish.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::Repository;
use berth_core::layout;
use berth_core::store::{Store, StoreError, list_all_after};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use super::delivery::{DeliveryReport, DeliveryStatus};
use crate::access_admin::put_json;

/// Entries kept per repository.
pub const KEPT: usize = 100;

/// What a log object holds: the delivery's report (never the URL, which may embed
/// a token, nor the secret) and when it happened.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogEntry {
    /// Unix milliseconds.
    pub at: u64,
    pub name: String,
    pub pattern: String,
    pub tag: String,
    pub digest: String,
    pub status: DeliveryStatus,
    pub http_status: Option<u16>,
    pub attempts: u32,
    pub delivery: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn unix_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

pub async fn record(
    store: &dyn Store,
    repository: &Repository,
    report: &DeliveryReport,
    digest: &str,
) {
    let entry = LogEntry {
        at: unix_millis(),
        name: report.name.clone(),
        pattern: report.pattern.clone(),
        tag: report.tag.clone(),
        digest: digest.to_owned(),
        status: report.status,
        http_status: report.http_status,
        attempts: report.attempts,
        delivery: report.delivery.clone(),
        error: report.error.clone(),
    };
    let key = layout::webhook_log_key(repository, entry.at, &entry.delivery);
    if let Err(e) = put_json(store, &key, &entry).await {
        tracing::warn!(%repository, error = %e, "recording a webhook delivery failed");
    }
}

/// Deletes all but the newest [`KEPT`] entries of `repository`.
pub async fn prune(store: &dyn Store, repository: &Repository) {
    let prefix = layout::webhook_log_prefix(repository);
    let pruned = async {
        let newest = store.list(&prefix, None, KEPT).await?;
        if newest.len() < KEPT {
            return Ok::<_, StoreError>(());
        }
        let older = list_all_after(store, &prefix, newest.last().map(String::as_str)).await?;
        for key in older {
            store.delete(&key).await?;
        }
        Ok(())
    };
    if let Err(e) = pruned.await {
        tracing::warn!(%repository, error = %e, "pruning the webhook log failed");
    }
}

/// The newest `limit` deliveries to `repository`'s hooks, newest first.
pub async fn recent(
    store: &dyn Store,
    repository: &Repository,
    limit: usize,
) -> Result<Vec<LogEntry>, StoreError> {
    let keys = store
        .list(&layout::webhook_log_prefix(repository), None, limit)
        .await?;
    let entries: Vec<Option<LogEntry>> = stream::iter(keys)
        .map(|key| async move {
            let object = store.get(&key).await?;
            Ok::<_, StoreError>(object.and_then(|o| serde_json::from_slice(&o.body).ok()))
        })
        .buffered(16)
        .try_collect()
        .await?;
    Ok(entries.into_iter().flatten().collect())
}
