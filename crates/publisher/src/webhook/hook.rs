//! The stored webhooks: one object per hook under `_berth/webhooks/<pattern>/<label>`,
//! so concurrent `berth webhook add|remove` of different hooks never touch the same
//! object (nothing relies on conditional writes). The secret is stored because
//! signing needs it; it is never printed.

use berth_core::Repository;
use berth_core::access::{self, Pattern};
use berth_core::layout;
use berth_core::store::{Store, list_all};
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

use crate::access_admin::{AdminError, exists, now, put_json, refused};

/// What a hook's object holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HookRecord {
    pub url: String,
    /// HMAC-SHA256 key for `X-Berth-Signature-256`; unsigned without it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    pub created_at: u64,
}

#[derive(Debug, Clone)]
pub struct Hook {
    pub pattern: Pattern,
    pub label: String,
    pub record: HookRecord,
}

/// Hook objects fetched at once.
const FETCHES_AT_ONCE: usize = 16;

/// Adds a hook for repositories matching `pattern`; returns its label (the URL's
/// host unless `label` is given).
pub async fn add(
    store: &dyn Store,
    pattern: &str,
    url: &str,
    label: Option<&str>,
    secret: Option<String>,
) -> Result<String, AdminError> {
    let pattern = Pattern::new(pattern)?;
    let parsed = reqwest::Url::parse(url)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some())
        .ok_or_else(|| refused(format!("{url:?} is not an http:// or https:// URL")))?;
    let label = match label {
        Some(label) => label.to_owned(),
        None => parsed.host_str().unwrap_or_default().to_owned(),
    };
    access::check_label(&label)?;
    if secret.as_deref() == Some("") {
        return Err(refused(
            "the secret is empty: pass it on stdin with --secret-stdin",
        ));
    }
    let key = layout::webhook_key(pattern.as_str(), &label);
    if exists(store, &key).await? {
        return Err(refused(format!(
            "{} already has a webhook named {label}: remove it first or pick another --name",
            pattern.as_str()
        )));
    }
    let record = HookRecord {
        url: url.to_owned(),
        secret,
        created_at: now(),
    };
    put_json(store, &key, &record).await?;
    Ok(label)
}

pub async fn remove(store: &dyn Store, pattern: &str, label: &str) -> Result<(), AdminError> {
    let pattern = Pattern::new(pattern)?;
    access::check_label(label)?;
    let key = layout::webhook_key(pattern.as_str(), label);
    if !exists(store, &key).await? {
        return Err(refused(format!(
            "{} has no webhook named {label}: see `berth webhook list {}`",
            pattern.as_str(),
            pattern.as_str()
        )));
    }
    Ok(store.delete(&key).await?)
}

/// The hooks shown for `berth webhook list ARG`: those added with exactly the
/// pattern `arg`, and, when `arg` names a repository, every hook that fires for it.
pub async fn list(store: &dyn Store, arg: &str) -> Result<Vec<Hook>, AdminError> {
    let pattern = Pattern::new(arg)?;
    let repository: Option<Repository> = arg.parse().ok();
    load(store, |p| {
        p == &pattern || repository.as_ref().is_some_and(|r| p.matches(r))
    })
    .await
}

/// The hooks that fire for a publish to `repository`.
pub async fn matching(store: &dyn Store, repository: &Repository) -> Result<Vec<Hook>, AdminError> {
    load(store, |p| p.matches(repository)).await
}

/// One LIST of every hook key, then a GET of each whose pattern is wanted. Keys or
/// records that do not parse are skipped (they can only come from outside berth).
async fn load(
    store: &dyn Store,
    wanted: impl Fn(&Pattern) -> bool,
) -> Result<Vec<Hook>, AdminError> {
    let keys = list_all(store, layout::webhooks_prefix()).await?;
    let chosen: Vec<(String, Pattern, String)> = keys
        .iter()
        .filter_map(|key| {
            let (pattern, label) = layout::webhook_from_key(key)?;
            let pattern = Pattern::new(pattern).ok()?;
            wanted(&pattern).then(|| (key.clone(), pattern, label.to_owned()))
        })
        .collect();
    let hooks: Vec<Option<Hook>> = stream::iter(chosen)
        .map(|(key, pattern, label)| async move {
            let object = store.get(&key).await?;
            Ok::<_, AdminError>(object.and_then(|o| {
                let record = serde_json::from_slice(&o.body).ok()?;
                Some(Hook {
                    pattern,
                    label,
                    record,
                })
            }))
        })
        .buffered(FETCHES_AT_ONCE)
        .try_collect()
        .await?;
    Ok(hooks.into_iter().flatten().collect())
}
