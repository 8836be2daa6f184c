//! Parses the path after `/v2/` into a typed route. Repository names may have many
//! segments (`a/b/c`); the route word (`manifests`, `blobs`, `tags`, `referrers`) is
//! a reserved name component, so splitting at its last occurrence is unambiguous.

use berth_core::{Digest, Reference, Repository};

use crate::error::RegistryError;

#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Manifest(Repository, Reference),
    Blob(Repository, Digest),
    Tags(Repository),
    Catalog,
    Referrers(Repository, Digest),
}

impl Route {
    /// The repository a route reads, if it reads one.
    pub fn repository(&self) -> Option<&Repository> {
        match self {
            Route::Manifest(name, _)
            | Route::Blob(name, _)
            | Route::Tags(name)
            | Route::Referrers(name, _) => Some(name),
            Route::Catalog => None,
        }
    }

    pub fn parse(path: &str) -> Result<Route, RegistryError> {
        if path == "_catalog" {
            return Ok(Route::Catalog);
        }
        if let Some(name) = path.strip_suffix("/tags/list") {
            return Ok(Route::Tags(name.parse()?));
        }
        if let Some((name, reference)) = path.rsplit_once("/manifests/") {
            return Ok(Route::Manifest(name.parse()?, reference.parse()?));
        }
        if let Some((name, digest)) = path.rsplit_once("/blobs/") {
            if digest.starts_with("uploads") {
                // The push API: a read-only registry has none of it.
                return Err(RegistryError::Unsupported);
            }
            return Ok(Route::Blob(name.parse()?, digest.parse()?));
        }
        if let Some((name, digest)) = path.rsplit_once("/referrers/") {
            return Ok(Route::Referrers(name.parse()?, digest.parse()?));
        }
        Err(RegistryError::NotFound)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> String {
        format!("sha256:{}", "a".repeat(64))
    }

    #[test]
    fn multi_segment_names_route() {
        assert_eq!(
            Route::parse("a/b/c/manifests/v1").unwrap(),
            Route::Manifest("a/b/c".parse().unwrap(), "v1".parse().unwrap())
        );
        assert_eq!(
            Route::parse(&format!("a/b/blobs/{}", digest())).unwrap(),
            Route::Blob("a/b".parse().unwrap(), digest().parse().unwrap())
        );
        assert_eq!(
            Route::parse("x/y/tags/list").unwrap(),
            Route::Tags("x/y".parse().unwrap())
        );
        assert_eq!(Route::parse("_catalog").unwrap(), Route::Catalog);
    }

    #[test]
    fn invalid_parts_are_typed_errors() {
        assert!(matches!(
            Route::parse("A/manifests/v1"),
            Err(RegistryError::NameInvalid(_))
        ));
        assert!(matches!(
            Route::parse("a/manifests/-x"),
            Err(RegistryError::TagInvalid(_))
        ));
        assert!(matches!(
            Route::parse("a/blobs/sha256:zz"),
            Err(RegistryError::DigestInvalid(_))
        ));
        assert!(matches!(
            Route::parse("../../etc/manifests/v1"),
            Err(RegistryError::NameInvalid(_))
        ));
        assert!(matches!(
            Route::parse("a/blobs/uploads/"),
            Err(RegistryError::Unsupported)
        ));
        assert!(matches!(Route::parse("a/b"), Err(RegistryError::NotFound)));
    }
}
