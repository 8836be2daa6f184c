//! Tag lists and the repository catalog, derived by listing keys: no shared mutable
//! index exists, so concurrent publishers never lose each other's tags. A page costs
//! one flat LIST with start-after (a tag page two, when it meets the run of digest
//! keys that share the tags' prefix).

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
        let wanted = limit - tags.len();
        let page = store.list(&prefix, cursor.as_deref(), wanted).await?;
        tags.extend(
            page.iter()
                .filter_map(|key| layout::tag_from_manifest_key(&prefix, key)),
        );
        let Some(last_key) = page.last().filter(|_| page.len() == wanted) else {
            break;
        };
        // Digest keys (`sha256:<hex>`) sort together, since no tag holds a ':'; a page
        // that ends among them continues after all of them ('~' sorts after hex).
        cursor = Some(match last_key[prefix.len()..].split_once(':') {
            Some((algorithm, _)) => format!("{prefix}{algorithm}:~"),
            None => last_key.clone(),
        });
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{DirStore, WriteMeta};

    #[tokio::test]
    async fn tag_pages_step_over_the_digest_keys() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        let repository: Repository = "acme/web".parse().unwrap();
        let prefix = layout::manifests_prefix(&repository);
        let digests = (0..3).map(|i| format!("sha256:{}", format!("{i}").repeat(64)));
        for name in ["a", "b", "sha2560", "z"]
            .map(String::from)
            .into_iter()
            .chain(digests)
        {
            let meta = WriteMeta::new("application/json");
            store
                .put(&format!("{prefix}{name}"), "{}".into(), &meta)
                .await
                .unwrap();
        }
        let tag = |t: &str| -> Tag { t.parse().unwrap() };
        let all = tags(&store, &repository, None, 10).await.unwrap();
        assert_eq!(all, ["a", "b", "sha2560", "z"].map(tag));
        // Pages that end among the digest keys go on after them.
        let after = tags(&store, &repository, Some(&tag("sha2560")), 1)
            .await
            .unwrap();
        assert_eq!(after, [tag("z")]);
        let two = tags(&store, &repository, Some(&tag("b")), 2).await.unwrap();
        assert_eq!(two, [tag("sha2560"), tag("z")]);
    }
}
