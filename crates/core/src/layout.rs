//! The bucket layout: the one place that knows which key holds what.
//!
//! The store *is* the registry. Keys under `v2/` mirror the Distribution API's URL
//! space, so a static web host pointed at the bucket answers `docker pull` of what it
//! exposes; keys under `_berth/` are berth's own bookkeeping and are never served.
//!
//! ```text
//! _berth/layout.json                          {"version": 1}, written on first publish
//! _berth/repositories/<name>                  empty marker; the catalog is one LIST of this prefix
//! _berth/blob-holders/<digest>/<name>         empty marker: repository <name> holds <digest>
//! _berth/referrers/<name>/<subject>/<digest>  descriptor (JSON) of a manifest whose subject is <subject>
//! _berth/access/...                           who may pull what (see the `access` module)
//! _berth/webhooks/<pattern>/<label>           a webhook (JSON: url, secret) for repositories matching <pattern>
//! _berth/webhook-log/<name>/<newest-first>-<id>  one delivery's outcome (JSON); keys sort newest first
//! _berth/gc/clock                             empty; garbage collection reads the store's clock from it
//! _berth/descriptions/<name>                  {"summary": .., "readme": ..}: `berth repo describe`
//! _berth/site.json                            {"registry_host": ..}: the catalog site's settings
//! index.html                                  the catalog site's home: every public repository
//! site/index.json                             the home page's search index (public repositories only)
//! r/<name>/index.html                         one page per public repository (served as `r/<name>/`)
//! v2/index.html                               `{}`, so a static host answers GET /v2/ (index document)
//! v2/_catalog                                 static copy of the catalog (JSON), rewritten after each publish
//! v2/<name>/manifests/<tag>                   the tagged manifest, byte for byte (one object per tag)
//! v2/<name>/manifests/<digest>                every manifest of the repository, byte for byte
//! v2/<name>/blobs/<digest>                    every blob the repository references (its own copy)
//! v2/<name>/tags/list                         static copy of the tag list (JSON)
//! ```
//!
//! The catalog site (`index.html`, `site/`, `r/`) holds only what anyone may pull, so a
//! static host may serve all of it; `v2/` and `_berth/` never collide with its keys.
//!
//! Manifest objects carry their media type as Content-Type and their digest in the
//! `digest` metadata field, so one HEAD answers a manifest HEAD. `docs/layout.md`
//! explains the choices; bump [`LAYOUT_VERSION`] when a key's meaning changes.

use crate::digest::Digest;
use crate::reference::{Reference, Repository, Tag};

/// Version of this layout, recorded in [`LAYOUT_KEY`].
pub const LAYOUT_VERSION: u32 = 1;
pub const LAYOUT_KEY: &str = "_berth/layout.json";

/// Object metadata field holding a manifest's digest.
pub const DIGEST_METADATA: &str = "digest";
/// Tag object metadata field: when the tag was published (RFC 3339 in UTC, with
/// milliseconds, so times sort as text).
pub const PUSHED_AT_METADATA: &str = "pushed-at";

/// `GET /v2/` on a static host: the index document of the `v2/` folder.
pub const API_ROOT_KEY: &str = "v2/index.html";
pub const CATALOG_KEY: &str = "v2/_catalog";

/// Everything the registry serves; garbage collection lists it whole.
pub const SERVED_PREFIX: &str = "v2/";
/// The catalog site's home page, beside `v2/` (a static host's root index document).
pub const SITE_HOME_KEY: &str = "index.html";
/// The home page's search index: public repositories with their summaries.
pub const SITE_INDEX_KEY: &str = "site/index.json";
/// Settings of the site, recorded by `berth site build` for later publishes.
pub const SITE_SETTINGS_KEY: &str = "_berth/site.json";
const SITE_PAGES_PREFIX: &str = "r/";
const SITE_PAGE_DOCUMENT: &str = "index.html";
const DESCRIPTIONS_PREFIX: &str = "_berth/descriptions/";

const REPOSITORIES_PREFIX: &str = "_berth/repositories/";
const BLOB_HOLDERS_PREFIX: &str = "_berth/blob-holders/";
const REFERRERS_PREFIX: &str = "_berth/referrers/";
/// Access documents: never public, never served by the static host.
pub const ACCESS_PREFIX: &str = "_berth/access/";
/// Webhooks hold their signing secrets: like access documents, never served.
const WEBHOOKS_PREFIX: &str = "_berth/webhooks/";
const WEBHOOK_LOG_PREFIX: &str = "_berth/webhook-log/";

pub fn manifest_key(repository: &Repository, reference: &Reference) -> String {
    format!("v2/{repository}/manifests/{reference}")
}

pub fn tag_key(repository: &Repository, tag: &Tag) -> String {
    format!("v2/{repository}/manifests/{tag}")
}

pub fn manifest_digest_key(repository: &Repository, digest: &Digest) -> String {
    format!("v2/{repository}/manifests/{digest}")
}

/// Prefix under which both a repository's tags and its manifests by digest live.
pub fn manifests_prefix(repository: &Repository) -> String {
    format!("v2/{repository}/manifests/")
}

pub fn blob_key(repository: &Repository, digest: &Digest) -> String {
    format!("v2/{repository}/blobs/{digest}")
}

pub fn tags_list_key(repository: &Repository) -> String {
    format!("v2/{repository}/tags/list")
}

pub fn repositories_prefix() -> &'static str {
    REPOSITORIES_PREFIX
}

pub fn repository_marker_key(repository: &Repository) -> String {
    format!("{REPOSITORIES_PREFIX}{repository}")
}

pub fn blob_holders_prefix(digest: &Digest) -> String {
    format!("{BLOB_HOLDERS_PREFIX}{digest}/")
}

pub fn blob_holder_key(digest: &Digest, repository: &Repository) -> String {
    format!("{BLOB_HOLDERS_PREFIX}{digest}/{repository}")
}

pub fn referrers_prefix(repository: &Repository, subject: &Digest) -> String {
    format!("{REFERRERS_PREFIX}{repository}/{subject}/")
}

pub fn referrer_key(repository: &Repository, subject: &Digest, digest: &Digest) -> String {
    format!("{REFERRERS_PREFIX}{repository}/{subject}/{digest}")
}

pub fn webhooks_prefix() -> &'static str {
    WEBHOOKS_PREFIX
}

/// A webhook's key. `pattern` is a repository pattern (`acme/*`) and `label` has no
/// '/', so the last component of the key is always the label.
pub fn webhook_key(pattern: &str, label: &str) -> String {
    format!("{WEBHOOKS_PREFIX}{pattern}/{label}")
}

/// The (pattern, label) named by a key found under [`webhooks_prefix`].
pub fn webhook_from_key(key: &str) -> Option<(&str, &str)> {
    key.strip_prefix(WEBHOOKS_PREFIX)?.rsplit_once('/')
}

pub fn webhook_log_prefix(repository: &Repository) -> String {
    format!("{WEBHOOK_LOG_PREFIX}{repository}/")
}

/// A delivery's log entry. The time component counts down (`u64::MAX` minus the
/// milliseconds since the epoch, zero-padded), so a LIST, which returns keys in
/// ascending order, returns the newest deliveries first.
pub fn webhook_log_key(repository: &Repository, unix_millis: u64, delivery: &str) -> String {
    format!(
        "{WEBHOOK_LOG_PREFIX}{repository}/{:020}-{delivery}",
        u64::MAX - unix_millis
    )
}

/// Where garbage collection takes the store's clock from: an empty object it writes
/// and reads back, so the grace window never depends on this machine's clock.
pub const GC_CLOCK_KEY: &str = "_berth/gc/clock";

/// One empty object per garbage collection that may be deleting right now
/// (`_berth/gc/running/<run-id>`): publishes wait for deletes only while one exists.
pub const GC_RUNS_PREFIX: &str = "_berth/gc/running/";

pub fn gc_run_key(run_id: &str) -> String {
    format!("{GC_RUNS_PREFIX}{run_id}")
}

/// Every key of the repository lives under one of these; a repository nested in it
/// (`acme/web` in `acme`) shares the first two as prefixes, so filter with
/// [`belongs_to`].
pub fn repository_prefix(repository: &Repository) -> String {
    format!("v2/{repository}/")
}

pub fn repository_referrers_prefix(repository: &Repository) -> String {
    format!("{REFERRERS_PREFIX}{repository}/")
}

/// Whether a key found under [`repository_prefix`] or [`repository_referrers_prefix`]
/// is the repository's own rather than a nested repository's: names never contain
/// the components `manifests`, `blobs` or `tags`, nor a `:` (which starts a subject).
pub fn belongs_to(repository: &Repository, key: &str) -> bool {
    let own = |rest: &str| {
        let first = rest.split('/').next().unwrap_or("");
        ["manifests", "blobs", "tags"].contains(&first) || first.contains(':')
    };
    key.strip_prefix(&repository_prefix(repository))
        .or_else(|| key.strip_prefix(&repository_referrers_prefix(repository)))
        .is_some_and(own)
}

/// What a content-addressed key under [`SERVED_PREFIX`] holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ContentKey {
    Manifest(Repository, Digest),
    Blob(Repository, Digest),
}

impl ContentKey {
    /// Parses `v2/<name>/manifests/<digest>` or `v2/<name>/blobs/<digest>`; `None`
    /// for tags, tag lists and anything else.
    pub fn parse(key: &str) -> Option<ContentKey> {
        let rest = key.strip_prefix(SERVED_PREFIX)?;
        // The first such component ends the name: names never contain one.
        for (separator, blob) in [("/manifests/", false), ("/blobs/", true)] {
            if let Some((name, digest)) = rest.split_once(separator) {
                let (Ok(repository), Ok(digest)) = (name.parse(), digest.parse()) else {
                    return None;
                };
                return Some(if blob {
                    ContentKey::Blob(repository, digest)
                } else {
                    ContentKey::Manifest(repository, digest)
                });
            }
        }
        None
    }

    pub fn key(&self) -> String {
        match self {
            ContentKey::Manifest(r, d) => manifest_digest_key(r, d),
            ContentKey::Blob(r, d) => blob_key(r, d),
        }
    }

    pub fn repository(&self) -> &Repository {
        match self {
            ContentKey::Manifest(r, _) | ContentKey::Blob(r, _) => r,
        }
    }

    pub fn digest(&self) -> &Digest {
        match self {
            ContentKey::Manifest(_, d) | ContentKey::Blob(_, d) => d,
        }
    }
}

/// Lists every referrer record (`(repository, subject, referrer)` from the key).
pub fn referrers_root() -> &'static str {
    REFERRERS_PREFIX
}

/// Parses `_berth/referrers/<name>/<subject>/<digest>`.
pub fn referrer_from_key(key: &str) -> Option<(Repository, Digest, Digest)> {
    let rest = key.strip_prefix(REFERRERS_PREFIX)?;
    let (rest, digest) = rest.rsplit_once('/')?;
    let (name, subject) = rest.rsplit_once('/')?;
    Some((
        name.parse().ok()?,
        subject.parse().ok()?,
        digest.parse().ok()?,
    ))
}

/// A repository's page as linked (`r/acme/web/`), relative to the site's root: static
/// hosts answer a folder path with its `index.html`.
pub fn site_page_path(repository: &Repository) -> String {
    format!("{SITE_PAGES_PREFIX}{repository}/")
}

pub fn site_page_key(repository: &Repository) -> String {
    format!("{SITE_PAGES_PREFIX}{repository}/{SITE_PAGE_DOCUMENT}")
}

pub fn site_pages_prefix() -> &'static str {
    SITE_PAGES_PREFIX
}

/// The repository whose page is the key found under [`site_pages_prefix`].
pub fn repository_from_site_page_key(key: &str) -> Option<Repository> {
    key.strip_prefix(SITE_PAGES_PREFIX)?
        .strip_suffix(SITE_PAGE_DOCUMENT)?
        .strip_suffix('/')?
        .parse()
        .ok()
}

/// The object behind a site path as requested (`""`, `site/index.json`, `r/acme/web/`),
/// or `None` for anything that is not part of the site.
pub fn site_key_for_path(path: &str) -> Option<String> {
    if path.is_empty() {
        return Some(SITE_HOME_KEY.to_owned());
    }
    if path == SITE_HOME_KEY || path == SITE_INDEX_KEY {
        return Some(path.to_owned());
    }
    let name = path.strip_prefix(SITE_PAGES_PREFIX)?;
    let name = name
        .strip_suffix(&format!("/{SITE_PAGE_DOCUMENT}"))
        .or_else(|| name.strip_suffix('/'))?;
    let repository: Repository = name.parse().ok()?;
    Some(site_page_key(&repository))
}

pub fn description_key(repository: &Repository) -> String {
    format!("{DESCRIPTIONS_PREFIX}{repository}")
}

/// The tag named by a key found under [`manifests_prefix`], or `None` for a manifest
/// stored by digest (tags never contain ':').
pub fn tag_from_manifest_key(prefix: &str, key: &str) -> Option<Tag> {
    let rest = key.strip_prefix(prefix)?;
    if rest.contains(':') || rest.contains('/') {
        return None;
    }
    rest.parse().ok()
}

/// The repository named by a key found under [`repositories_prefix`].
pub fn repository_from_marker_key(key: &str) -> Option<Repository> {
    key.strip_prefix(REPOSITORIES_PREFIX)?.parse().ok()
}

/// The repository named by a key found under [`blob_holders_prefix`].
pub fn repository_from_holder_key(digest: &Digest, key: &str) -> Option<Repository> {
    key.strip_prefix(&blob_holders_prefix(digest))?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo(s: &str) -> Repository {
        s.parse().unwrap()
    }

    #[test]
    fn keys_mirror_the_distribution_url_space() {
        let d = Digest::of(b"x");
        let r = repo("acme/web");
        assert_eq!(blob_key(&r, &d), format!("v2/acme/web/blobs/{d}"));
        assert_eq!(
            manifest_key(&r, &Reference::Tag("v1".parse().unwrap())),
            "v2/acme/web/manifests/v1"
        );
        assert_eq!(
            manifest_digest_key(&r, &d),
            format!("v2/acme/web/manifests/{d}")
        );
        assert_eq!(tags_list_key(&r), "v2/acme/web/tags/list");
    }

    #[test]
    fn listing_keys_parse_back() {
        let r = repo("acme/web");
        let prefix = manifests_prefix(&r);
        let d = Digest::of(b"x");
        assert_eq!(
            tag_from_manifest_key(&prefix, &format!("{prefix}v1")),
            Some("v1".parse().unwrap())
        );
        assert_eq!(
            tag_from_manifest_key(&prefix, &manifest_digest_key(&r, &d)),
            None
        );
        assert_eq!(
            repository_from_marker_key(&repository_marker_key(&r)),
            Some(r.clone())
        );
        assert_eq!(
            repository_from_holder_key(&d, &blob_holder_key(&d, &r)),
            Some(r.clone())
        );
        assert_eq!(
            webhook_from_key(&webhook_key("acme/*", "ci")),
            Some(("acme/*", "ci"))
        );
        assert_eq!(
            ContentKey::parse(&blob_key(&r, &d)),
            Some(ContentKey::Blob(r.clone(), d.clone()))
        );
        let manifest = ContentKey::parse(&manifest_digest_key(&r, &d)).unwrap();
        assert_eq!(manifest, ContentKey::Manifest(r.clone(), d.clone()));
        assert_eq!(manifest.key(), manifest_digest_key(&r, &d));
        assert_eq!(ContentKey::parse(&format!("{prefix}v1")), None);
        assert_eq!(ContentKey::parse(&tags_list_key(&r)), None);
        let subject = Digest::of(b"s");
        assert_eq!(
            referrer_from_key(&referrer_key(&r, &subject, &d)),
            Some((r.clone(), subject, d))
        );
        assert_eq!(repository_from_site_page_key(&site_page_key(&r)), Some(r));
    }

    #[test]
    fn only_site_paths_map_to_site_keys() {
        assert_eq!(site_key_for_path("").as_deref(), Some("index.html"));
        assert_eq!(
            site_key_for_path("site/index.json").as_deref(),
            Some("site/index.json")
        );
        assert_eq!(
            site_key_for_path("r/acme/web/").as_deref(),
            Some("r/acme/web/index.html")
        );
        assert_eq!(
            site_key_for_path("r/acme/web/index.html").as_deref(),
            Some("r/acme/web/index.html")
        );
        for outside in [
            "r/acme/web",
            "r/../_berth/x/",
            "_berth/site.json",
            "v2/_catalog",
            "r//",
        ] {
            assert_eq!(site_key_for_path(outside), None, "{outside}");
        }
    }

    #[test]
    fn webhook_log_keys_sort_newest_first() {
        let r = repo("acme/web");
        let older = webhook_log_key(&r, 1_000, "b");
        let newer = webhook_log_key(&r, 2_000, "a");
        assert!(newer < older);
        assert!(newer.starts_with(&webhook_log_prefix(&r)));
    }

    #[test]
    fn nested_repositories_keep_their_own_keys() {
        let parent = repo("acme");
        let child = repo("acme/web");
        let d = Digest::of(b"x");
        for key in [blob_key(&parent, &d), tags_list_key(&parent)] {
            assert!(belongs_to(&parent, &key), "{key}");
        }
        assert!(belongs_to(&parent, &referrer_key(&parent, &d, &d)));
        for key in [
            blob_key(&child, &d),
            tags_list_key(&child),
            referrer_key(&child, &d, &d),
        ] {
            assert!(!belongs_to(&parent, &key), "{key}");
            assert!(
                key.starts_with(&repository_prefix(&parent))
                    || key.starts_with(&repository_referrers_prefix(&parent))
            );
        }
    }
}
