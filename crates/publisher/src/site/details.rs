//! What a repository page shows about each tag, read back from the store: the tag's
//! manifest (by tag key, so a moved tag shows its new target), the platforms of an
//! index or of an image's config, the compressed size (config plus layers, summed over
//! an index's images) and when the tag was published.

use crate::platform::Platform;
use berth_core::layout::{self, DIGEST_METADATA, PUSHED_AT_METADATA};
use berth_core::store::{Store, StoreError};
use berth_core::{Digest, Repository, Tag, catalog, media_type};
use futures::{StreamExt, TryStreamExt, stream};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

/// Tags read at once while building a page.
const TAGS_IN_FLIGHT: usize = 8;

/// One row of a repository page's tags table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRow {
    pub tag: Tag,
    pub digest: String,
    /// `linux/amd64`, `linux/arm64/v8`; empty when unknown.
    pub platforms: Vec<String>,
    /// Bytes a pull downloads: config plus layers, over all of an index's images.
    pub size: u64,
    /// RFC 3339; `None` for tags written before berth recorded it.
    pub pushed_at: Option<String>,
    pub is_index: bool,
}

/// Every tag of `repository`, newest first (tags without a time last, by name).
pub async fn tag_rows(
    store: &dyn Store,
    repository: &Repository,
) -> Result<Vec<TagRow>, StoreError> {
    let tags = catalog::all_tags(store, repository).await?;
    let rows: Vec<Option<TagRow>> = stream::iter(tags)
        .map(|tag| tag_row(store, repository, tag))
        .buffered(TAGS_IN_FLIGHT)
        .try_collect()
        .await?;
    let mut rows: Vec<TagRow> = rows.into_iter().flatten().collect();
    rows.sort_by(|a, b| {
        b.pushed_at
            .cmp(&a.pushed_at)
            .then_with(|| a.tag.as_str().cmp(b.tag.as_str()))
    });
    Ok(rows)
}

/// `None` when the tag vanished while listing.
async fn tag_row(
    store: &dyn Store,
    repository: &Repository,
    tag: Tag,
) -> Result<Option<TagRow>, StoreError> {
    let Some(object) = store.get(&layout::tag_key(repository, &tag)).await? else {
        return Ok(None);
    };
    let content_type = object.meta.content_type.clone().unwrap_or_default();
    let digest = object
        .meta
        .metadata
        .get(DIGEST_METADATA)
        .cloned()
        .unwrap_or_else(|| Digest::of(&object.body).to_string());
    let pushed_at = object.meta.metadata.get(PUSHED_AT_METADATA).cloned();
    // Tag objects carry their manifest's media type as Content-Type.
    let is_index = media_type::is_index(&content_type);
    let (platforms, size) = if is_index {
        index_summary(store, repository, &object.body).await?
    } else {
        image_summary(store, repository, &object.body).await?
    };
    Ok(Some(TagRow {
        tag,
        digest,
        platforms,
        size,
        pushed_at,
        is_index,
    }))
}

async fn index_summary(
    store: &dyn Store,
    repository: &Repository,
    body: &[u8],
) -> Result<(Vec<String>, u64), StoreError> {
    let Ok(index) = ImageIndex::from_reader(body) else {
        return Ok((Vec::new(), 0));
    };
    let mut platforms = Vec::new();
    let mut size = 0;
    for child in index.manifests() {
        // Attestations (buildx provenance, SBOMs) are listed as unknown/unknown.
        let Some(platform) = child
            .platform()
            .as_ref()
            .filter(|p| p.os().to_string() != "unknown")
        else {
            continue;
        };
        platforms.push(Platform::of_index_entry(platform).to_string());
        let Ok(digest) = child.digest().to_string().parse::<Digest>() else {
            continue;
        };
        if let Some(manifest) = store
            .get(&layout::manifest_digest_key(repository, &digest))
            .await?
        {
            size += ImageManifest::from_reader(&manifest.body[..]).map_or(0, |m| image_size(&m));
        }
    }
    Ok((platforms, size))
}

async fn image_summary(
    store: &dyn Store,
    repository: &Repository,
    body: &[u8],
) -> Result<(Vec<String>, u64), StoreError> {
    let Ok(manifest) = ImageManifest::from_reader(body) else {
        return Ok((Vec::new(), 0));
    };
    let mut platforms = Vec::new();
    let config = match manifest.config().digest().to_string().parse::<Digest>() {
        Ok(digest) => store.get(&layout::blob_key(repository, &digest)).await?,
        Err(_) => None,
    };
    if let Some(config) = config
        && let Ok(config) = ImageConfiguration::from_reader(&config.body[..])
    {
        platforms.push(Platform::of_config(&config).to_string());
    }
    Ok((platforms, image_size(&manifest)))
}

fn image_size(manifest: &ImageManifest) -> u64 {
    manifest.config().size() + manifest.layers().iter().map(|l| l.size()).sum::<u64>()
}
