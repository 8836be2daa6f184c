//! The catalog site: static HTML the publisher writes into the store beside `v2/`, so
//! the bucket's static host (and `berth serve`) shows what it publishes: a home page
//! (`index.html`) listing every public repository with a search over `site/index.json`,
//! and a page per public repository (`r/<name>/index.html`). Only repositories anyone
//! may pull ever appear; a page whose repository turned private is deleted.
//!
//! Regenerated after each publish, access change and `berth site build`. Work is kept
//! to what changed: the entries of `site/index.json` double as the home page's data,
//! so only the published (or described, or newly public) repository's tags are read.

mod details;
pub mod markdown;
mod render;

use std::collections::{BTreeMap, BTreeSet};

use berth_core::Repository;
use berth_core::layout::{self, SITE_HOME_KEY, SITE_INDEX_KEY, SITE_SETTINGS_KEY};
use berth_core::store::{Store, StoreError, WriteMeta};
use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use serde::{Deserialize, Serialize};

/// Shown in pull commands until `berth site build --registry-host` records the host.
pub const PLACEHOLDER_HOST: &str = "REGISTRY-HOST";
const HTML: &str = "text/html; charset=utf-8";
const JSON: &str = "application/json";
const LIST_PAGE: usize = 1000;
/// Repository pages built at once by a full rebuild.
const PAGES_IN_FLIGHT: usize = 4;

/// What a repository's page shows besides its tags, set by `berth repo describe`.
/// Stored under `_berth/descriptions/`, never served: only its rendering is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Description {
    #[serde(default)]
    pub summary: String,
    /// Markdown, rendered and sanitized when the page is generated.
    #[serde(default)]
    pub readme: String,
}

/// The site's settings, kept in the store so every later publish uses them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    /// Host (and port) people pull from, shown in `docker pull` commands.
    #[serde(default)]
    pub registry_host: Option<String>,
}

/// One repository in `site/index.json`: what the home page and its search show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub name: String,
    pub summary: String,
    /// RFC 3339 time of the newest tag, when known.
    pub last_pushed: Option<String>,
    pub tags: usize,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct SiteIndex {
    repositories: Vec<IndexEntry>,
}

/// What changed since the site was last written.
#[derive(Debug, Clone, Copy)]
pub enum Change<'a> {
    /// Unknown (an older berth wrote the store, or the settings changed): rebuild all.
    Everything,
    /// This repository's tags or description.
    Repository(&'a Repository),
    /// Which repositories are public, nothing else.
    Visibility,
}

/// What a refresh wrote, for `berth site build`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SiteReport {
    pub repositories: usize,
    pub pages_written: usize,
    pub pages_removed: usize,
}

/// Rewrites the site for `public`, the repositories anyone may pull (in order).
pub async fn refresh(
    store: &dyn Store,
    public: &[Repository],
    change: Change<'_>,
) -> Result<SiteReport, StoreError> {
    let settings = load_settings(store).await?;
    let host = settings
        .registry_host
        .as_deref()
        .unwrap_or(PLACEHOLDER_HOST);
    let previous: BTreeMap<String, IndexEntry> = match change {
        Change::Everything => BTreeMap::new(),
        _ => load_json::<SiteIndex>(store, SITE_INDEX_KEY)
            .await?
            .unwrap_or_default()
            .repositories
            .into_iter()
            .map(|entry| (entry.name.clone(), entry))
            .collect(),
    };
    let built: Vec<(IndexEntry, bool)> = stream::iter(public)
        .map(|repository| {
            let reuse = match change {
                Change::Repository(changed) if changed == repository => None,
                _ => previous.get(repository.as_str()).cloned(),
            };
            async move {
                match reuse {
                    Some(entry) => Ok((entry, false)),
                    None => Ok((write_page(store, repository, host).await?, true)),
                }
            }
        })
        .buffered(PAGES_IN_FLIGHT)
        .try_collect::<Vec<_>>()
        .await?;
    let pages_written = built.iter().filter(|(_, written)| *written).count();
    let entries: Vec<IndexEntry> = built.into_iter().map(|(entry, _)| entry).collect();

    // Pages first, then the index and home that link them, then stale pages: a
    // visitor never follows a link to a page that is not there yet.
    let index = serde_json::to_vec(&SiteIndex {
        repositories: entries.clone(),
    })
    .expect("the index serializes");
    store
        .put(SITE_INDEX_KEY, Bytes::from(index), &WriteMeta::new(JSON))
        .await?;
    store
        .put(
            SITE_HOME_KEY,
            Bytes::from(render::home(&entries, host)),
            &WriteMeta::new(HTML),
        )
        .await?;
    let pages_removed = remove_stale_pages(store, public).await?;
    Ok(SiteReport {
        repositories: entries.len(),
        pages_written,
        pages_removed,
    })
}

/// Writes `repository`'s page and returns its index entry.
async fn write_page(
    store: &dyn Store,
    repository: &Repository,
    host: &str,
) -> Result<IndexEntry, StoreError> {
    let description = load_description(store, repository).await?;
    let rows = details::tag_rows(store, repository).await?;
    let readme = markdown::to_safe_html(&description.readme);
    let html = render::repository(repository, &description.summary, &readme, &rows, host);
    store
        .put(
            &layout::site_page_key(repository),
            Bytes::from(html),
            &WriteMeta::new(HTML),
        )
        .await?;
    Ok(IndexEntry {
        name: repository.to_string(),
        summary: description.summary,
        last_pushed: rows.iter().filter_map(|r| r.pushed_at.clone()).max(),
        tags: rows.len(),
    })
}

/// Deletes every page whose repository is not public (any more).
async fn remove_stale_pages(store: &dyn Store, public: &[Repository]) -> Result<usize, StoreError> {
    let public: BTreeSet<&str> = public.iter().map(Repository::as_str).collect();
    let prefix = layout::site_pages_prefix();
    let mut removed = 0;
    let mut cursor: Option<String> = None;
    loop {
        let page = store.list(prefix, cursor.as_deref(), LIST_PAGE).await?;
        for key in &page {
            let stale = match layout::repository_from_site_page_key(key) {
                Some(repository) => !public.contains(repository.as_str()),
                // Nothing else belongs under `r/`; an odd key may name a private repo.
                None => true,
            };
            if stale {
                store.delete(key).await?;
                removed += 1;
            }
        }
        if page.len() < LIST_PAGE {
            return Ok(removed);
        }
        cursor = page.last().cloned();
    }
}

pub async fn load_description(
    store: &dyn Store,
    repository: &Repository,
) -> Result<Description, StoreError> {
    Ok(load_json(store, &layout::description_key(repository))
        .await?
        .unwrap_or_default())
}

/// Replaces what is given of `repository`'s description, keeping the rest.
pub async fn set_description(
    store: &dyn Store,
    repository: &Repository,
    summary: Option<String>,
    readme: Option<String>,
) -> Result<Description, StoreError> {
    let mut description = load_description(store, repository).await?;
    if let Some(summary) = summary {
        description.summary = summary;
    }
    if let Some(readme) = readme {
        description.readme = readme;
    }
    put_json(store, &layout::description_key(repository), &description).await?;
    Ok(description)
}

pub async fn load_settings(store: &dyn Store) -> Result<Settings, StoreError> {
    Ok(load_json(store, SITE_SETTINGS_KEY)
        .await?
        .unwrap_or_default())
}

pub async fn save_settings(store: &dyn Store, settings: &Settings) -> Result<(), StoreError> {
    put_json(store, SITE_SETTINGS_KEY, settings).await
}

/// A JSON document, or `None` when absent. An unreadable one counts as absent (and is
/// rewritten): the site is derived data, and a damaged copy must not stop a publish.
async fn load_json<T: for<'de> Deserialize<'de>>(
    store: &dyn Store,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let Some(object) = store.get(key).await? else {
        return Ok(None);
    };
    match serde_json::from_slice(&object.body) {
        Ok(value) => Ok(Some(value)),
        Err(e) => {
            tracing::warn!(key, error = %e, "ignoring an unreadable site document");
            Ok(None)
        }
    }
}

async fn put_json(store: &dyn Store, key: &str, value: &impl Serialize) -> Result<(), StoreError> {
    let body = serde_json::to_vec(value).expect("site documents serialize");
    store
        .put(key, Bytes::from(body), &WriteMeta::new(JSON))
        .await
}
