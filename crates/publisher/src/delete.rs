//! Removing what was published: tags, manifests by digest, whole repositories. Each
//! removal deletes in the reverse of publish order (tags before manifests before
//! blobs, records before what they describe), so an interrupted removal leaves every
//! remaining tag complete; the derived static files are rewritten afterwards. Blobs a
//! removed manifest referenced stay until garbage collection (`gc`) finds them
//! unreachable.

use std::collections::BTreeSet;

use berth_core::layout::{self, ContentKey};
use berth_core::store::{Store, StoreError, list_all};
use berth_core::{Digest, Repository, Tag};
use futures::{StreamExt, TryStreamExt, stream};

use crate::derived;
use crate::references::{References, UnreadableManifest};
use crate::site;

/// Requests in flight at once while reading or deleting many keys.
const AT_ONCE: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum DeleteError {
    #[error("{0}: no such tag")]
    TagUnknown(String),
    #[error("{repository}@{digest}: no such manifest")]
    ManifestUnknown {
        repository: Repository,
        digest: Digest,
    },
    #[error(
        "{repository}@{digest} is still referenced by {}; remove those first (berth tag rm) or pass --force",
        .by.join(", ")
    )]
    Referenced {
        repository: Repository,
        digest: Digest,
        by: Vec<String>,
    },
    #[error("repository {0} does not exist")]
    RepositoryUnknown(Repository),
    #[error(transparent)]
    Unreadable(#[from] UnreadableManifest),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Removes the tags (all checked before any is removed), then rewrites each
/// repository's tag list and the catalog.
pub async fn remove_tags(store: &dyn Store, tags: &[(Repository, Tag)]) -> Result<(), DeleteError> {
    for (repository, tag) in tags {
        if store
            .head(&layout::tag_key(repository, tag))
            .await?
            .is_none()
        {
            return Err(DeleteError::TagUnknown(format!("{repository}:{tag}")));
        }
    }
    for (repository, tag) in tags {
        store.delete(&layout::tag_key(repository, tag)).await?;
    }
    let repositories: BTreeSet<&Repository> = tags.iter().map(|(r, _)| r).collect();
    for repository in repositories {
        derived::refresh(store, repository).await?;
    }
    Ok(())
}

/// What removing a manifest did.
#[derive(Debug, Default)]
pub struct RemovedManifest {
    /// Tags that pointed straight at it, removed with it under `--force`.
    pub tags: Vec<Tag>,
    /// Indexes (tagged or by digest) still listing it, left in place under `--force`.
    pub dangling: Vec<String>,
}

/// Removes `repository@digest`. Refused while a tag points at it or an index of the
/// repository lists it, unless `force`; then the tags pointing at it go too.
pub async fn remove_manifest(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
    force: bool,
) -> Result<RemovedManifest, DeleteError> {
    let key = layout::manifest_digest_key(repository, digest);
    let Some(object) = store.get(&key).await? else {
        return Err(DeleteError::ManifestUnknown {
            repository: repository.clone(),
            digest: digest.clone(),
        });
    };
    let users = users_of(store, repository, digest).await?;
    let mut removed = RemovedManifest::default();
    let mut by = Vec::new();
    for user in users {
        match user {
            User::Tag(tag) => {
                by.push(format!("tag {tag}"));
                removed.tags.push(tag);
            }
            User::Index(name) => {
                by.push(format!("index {name}"));
                removed.dangling.push(name);
            }
        }
    }
    if !by.is_empty() && !force {
        return Err(DeleteError::Referenced {
            repository: repository.clone(),
            digest: digest.clone(),
            by,
        });
    }
    for tag in &removed.tags {
        store.delete(&layout::tag_key(repository, tag)).await?;
    }
    // The referrer record before the manifest it describes, as publish writes them
    // the other way round; an unparseable manifest has no subject to record.
    if let Ok(References {
        subject: Some(subject),
        ..
    }) = References::of(digest, &object.body)
    {
        store
            .delete(&layout::referrer_key(repository, &subject, digest))
            .await?;
    }
    store.delete(&key).await?;
    derived::refresh(store, repository).await?;
    Ok(removed)
}

enum User {
    Tag(Tag),
    /// An index naming it: `tag` or `@digest`.
    Index(String),
}

/// Tags pointing at `digest` and indexes of the repository listing it.
async fn users_of(
    store: &dyn Store,
    repository: &Repository,
    digest: &Digest,
) -> Result<Vec<User>, DeleteError> {
    let prefix = layout::manifests_prefix(repository);
    let keys = list_all(store, &prefix).await?;
    let own_key = layout::manifest_digest_key(repository, digest);
    let users: Vec<Option<User>> = stream::iter(keys.into_iter().filter(|k| *k != own_key))
        .map(|key| {
            let prefix = &prefix;
            async move {
                let Some(object) = store.get(&key).await? else {
                    return Ok::<_, DeleteError>(None);
                };
                let tag = layout::tag_from_manifest_key(prefix, &key);
                let this = Digest::of(&object.body);
                if let Some(tag) = &tag
                    && &this == digest
                {
                    return Ok(Some(User::Tag(tag.clone())));
                }
                // Anything unparseable cannot list it.
                let lists_it = References::of(&this, &object.body)
                    .is_ok_and(|refs| refs.manifests.contains(digest));
                Ok(lists_it.then(|| {
                    User::Index(match tag {
                        Some(tag) => tag.to_string(),
                        None => format!("@{this}"),
                    })
                }))
            }
        })
        .buffered(AT_ONCE)
        .try_collect()
        .await?;
    Ok(users.into_iter().flatten().collect())
}

/// Removes everything of the repository: tags first (it stops resolving), then tag
/// list, referrer records, manifests, each blob's holder record before the blob, and
/// the repository marker last, so an interrupted removal can simply be run again.
/// Returns the number of objects removed. Its access settings stay.
pub async fn remove_repository(
    store: &dyn Store,
    repository: &Repository,
) -> Result<usize, DeleteError> {
    let marker = layout::repository_marker_key(repository);
    let mut keys: Vec<String> = list_all(store, &layout::repository_prefix(repository))
        .await?
        .into_iter()
        .chain(list_all(store, &layout::repository_referrers_prefix(repository)).await?)
        .filter(|k| layout::belongs_to(repository, k))
        .collect();
    if keys.is_empty() && store.head(&marker).await?.is_none() {
        return Err(DeleteError::RepositoryUnknown(repository.clone()));
    }
    let manifests = layout::manifests_prefix(repository);
    let rank = |key: &str| match ContentKey::parse(key) {
        _ if layout::tag_from_manifest_key(&manifests, key).is_some() => 0,
        Some(ContentKey::Manifest(..)) => 2,
        Some(ContentKey::Blob(..)) => 3,
        None => 1,
    };
    keys.sort_by_key(|k| rank(k));
    let mut removed = 0;
    for stage in 0..=3 {
        let batch: Vec<&String> = keys.iter().filter(|k| rank(k) == stage).collect();
        removed += batch.len();
        stream::iter(batch)
            .map(|key| async move {
                if let Some(ContentKey::Blob(_, digest)) = ContentKey::parse(key) {
                    store
                        .delete(&layout::blob_holder_key(&digest, repository))
                        .await?;
                }
                store.delete(key).await
            })
            .buffer_unordered(AT_ONCE)
            .try_collect::<Vec<()>>()
            .await?;
    }
    store.delete(&marker).await?;
    derived::refresh_public(store, site::Change::Visibility).await?;
    Ok(removed + 1)
}
