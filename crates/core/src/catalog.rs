//! Tag lists and the repository catalog, derived by listing keys: no shared mutable
//! index exists, so concurrent publishers never lose each other's tags. A page costs
//! one flat LIST with start-after (more only when a page of manifest keys holds
//! digests rather than tags).

use crate::layout;
use crate::reference::{Repository, Tag};
use crate::store::{Store, StoreError};

/// Up to `limit` tags of `repository` sorting after `last`, in order.
pub async fn tags(
    store: &dyn Store,
    repository: &Repository,
    last: Option<&Tag>,
    limit: usize,
) -> Result<Vec<Tag>, StoreError> {
    let prefix = layout::manifests_prefix(repository);
    let mut cursor = last.map(|t| layout::tag_key(repository, t));
    let mut tags = Vec::new();
    while tags.len() < limit {
        let page = store
            .list(&prefix, cursor.as_deref(), limit - tags.len())
            .await?;
        let Some(last_key) = page.last() else { break };
        cursor = Some(last_key.clone());
        tags.extend(
            page.iter()
                .filter_map(|key| layout::tag_from_manifest_key(&prefix, key)),
        );
    }
    Ok(tags)
}

/// Up to `limit` repositories sorting after `last`, in order.
pub async fn repositories(
    store: &dyn Store,
    last: Option<&Repository>,
    limit: usize,
) -> Result<Vec<Repository>, StoreError> {
    let start_after = last.map(layout::repository_marker_key);
    let keys = store
        .list(layout::repositories_prefix(), start_after.as_deref(), limit)
        .await?;
    Ok(keys
        .iter()
        .filter_map(|k| layout::repository_from_marker_key(k))
        .collect())
}

/// Every tag of `repository`, in order, page by page.
pub async fn all_tags(store: &dyn Store, repository: &Repository) -> Result<Vec<Tag>, StoreError> {
    let mut all = Vec::new();
    loop {
        let page = tags(store, repository, all.last(), PAGE).await?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// Every repository, in order, page by page.
pub async fn all_repositories(store: &dyn Store) -> Result<Vec<Repository>, StoreError> {
    let mut all = Vec::new();
    loop {
        let page = repositories(store, all.last(), PAGE).await?;
        let done = page.len() < PAGE;
        all.extend(page);
        if done {
            return Ok(all);
        }
    }
}

/// One LIST's worth, S3's maximum.
const PAGE: usize = 1000;
