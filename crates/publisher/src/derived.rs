//! Files derived from the store's keys for static hosts: the `GET /v2/` answer, each
//! repository's `tags/list`, the `_catalog` and the catalog site (`site`). They are
//! regenerated from a listing after every publish, so a later publish repairs one
//! left stale by a crash or a concurrent publisher.

use berth_core::access::AccessConfig;
use berth_core::layout::{self, API_ROOT_KEY, CATALOG_KEY, LAYOUT_KEY, LAYOUT_VERSION};
use berth_core::store::{Store, StoreError, WriteMeta};
use berth_core::{Repository, catalog};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;

use crate::error::PublishError;
use crate::site;

const JSON: &str = "application/json";

#[derive(Deserialize)]
struct LayoutRecord {
    version: u32,
}

/// Refuses a store written by a newer layout; initialises an empty one.
pub async fn prepare_store(store: &dyn Store) -> Result<(), PublishError> {
    if let Some(object) = store.get(LAYOUT_KEY).await? {
        let record: LayoutRecord = serde_json::from_slice(&object.body).map_err(|e| {
            PublishError::source(
                &store.location(),
                format!("{LAYOUT_KEY} is unreadable: {e}"),
            )
        })?;
        if record.version > LAYOUT_VERSION {
            return Err(PublishError::NewerLayout {
                found: record.version,
                supported: LAYOUT_VERSION,
            });
        }
        return Ok(());
    }
    put_json(store, API_ROOT_KEY, &json!({})).await?;
    Ok(put_json(store, LAYOUT_KEY, &json!({ "version": LAYOUT_VERSION })).await?)
}

/// Rewrites `repository`'s tag list, the catalog and the site from listings.
pub async fn refresh(store: &dyn Store, repository: &Repository) -> Result<(), StoreError> {
    let key = layout::tags_list_key(repository);
    put_listing(
        store,
        &key,
        || catalog::all_tags(store, repository),
        |tags| {
            let tags: Vec<&str> = tags.iter().map(|t| t.as_str()).collect();
            json!({ "name": repository.as_str(), "tags": tags })
        },
    )
    .await?;
    refresh_public(store, site::Change::Repository(repository)).await?;
    Ok(())
}

/// Rounds of [`put_listing`] before it leaves the copy to the next publish.
const LISTING_ROUNDS: usize = 5;

/// Writes `key` from `list()` and lists again, until a listing taken after the write
/// matches what it wrote. Concurrent publishers each write a listing taken after
/// their own tag; the last write to land may hold an older listing than another's,
/// but its writer's check then sees the difference and writes again. Returns the
/// listing last written.
async fn put_listing<T, L, F>(
    store: &dyn Store,
    key: &str,
    list: L,
    render: impl Fn(&T) -> serde_json::Value,
) -> Result<T, StoreError>
where
    T: PartialEq,
    L: Fn() -> F,
    F: Future<Output = Result<T, StoreError>>,
{
    let mut listed = list().await?;
    for _ in 0..LISTING_ROUNDS {
        put_json(store, key, &render(&listed)).await?;
        let again = list().await?;
        if again == listed {
            break;
        }
        listed = again;
    }
    Ok(listed)
}

/// Rewrites what shows the repositories anyone may pull: the static catalog and the
/// catalog site, so a static host never lists a private name.
pub async fn refresh_public(
    store: &dyn Store,
    change: site::Change<'_>,
) -> Result<site::SiteReport, StoreError> {
    let public = put_listing(
        store,
        CATALOG_KEY,
        || public_repositories(store),
        |public| {
            let names: Vec<&str> = public.iter().map(Repository::as_str).collect();
            json!({ "repositories": names })
        },
    )
    .await?;
    site::refresh(store, &public, change).await
}

/// The repositories anyone may pull, in order: all of them in an open store, else the
/// public ones.
pub async fn public_repositories(store: &dyn Store) -> Result<Vec<Repository>, StoreError> {
    let access = AccessConfig::load(store).await?;
    let mut repositories = catalog::all_repositories(store).await?;
    repositories.retain(|r| access.can_pull(None, r));
    Ok(repositories)
}

async fn put_json(
    store: &dyn Store,
    key: &str,
    value: &serde_json::Value,
) -> Result<(), StoreError> {
    let body = Bytes::from(serde_json::to_vec(value).expect("JSON serializes"));
    store.put(key, body, &WriteMeta::new(JSON)).await
}
