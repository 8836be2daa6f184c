//! Repository names, tags and image references, validated against the
//! distribution-spec grammar when parsed, so nothing downstream (store keys,
//! HTTP routes) ever sees an unchecked string.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use regex_lite::Regex;

use crate::digest::Digest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("invalid repository name {0:?}: {1}")]
    Repository(String, &'static str),
    #[error("invalid tag {0:?}: {1}")]
    Tag(String, &'static str),
    #[error("invalid digest {0:?}: {1}")]
    Digest(String, &'static str),
}

/// Path components that name API routes in the bucket layout (`v2/<name>/manifests/...`).
/// A repository component with one of these names would make keys of two repositories
/// collide, so such names are refused.
const RESERVED_COMPONENTS: [&str; 4] = ["blobs", "manifests", "tags", "referrers"];

/// Longest repository name distribution accepts.
const MAX_REPOSITORY_LEN: usize = 255;

static COMPONENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$").expect("component grammar compiles")
});
static TAG: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$").expect("tag grammar compiles")
});

/// A repository name such as `acme/web` (lowercase path components separated by `/`).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Repository(String);

impl Repository {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Repository {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |why| Err(ParseError::Repository(s.into(), why));
        if s.is_empty() {
            return err("it is empty");
        }
        if s.len() > MAX_REPOSITORY_LEN {
            return err("it is longer than 255 characters");
        }
        for component in s.split('/') {
            if !COMPONENT.is_match(component) {
                return err(
                    "each /-separated part must be lowercase letters and digits, joined by '.', '_', '__' or '-'",
                );
            }
            if RESERVED_COMPONENTS.contains(&component) {
                return err("'blobs', 'manifests', 'tags' and 'referrers' are reserved path parts");
            }
        }
        Ok(Repository(s.to_owned()))
    }
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A tag such as `latest` or `v1.2.3`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Tag(String);

impl Tag {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Tag {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if TAG.is_match(s) {
            Ok(Tag(s.to_owned()))
        } else {
            Err(ParseError::Tag(
                s.into(),
                "a tag is 1-128 of [A-Za-z0-9_.-] and may not start with '.' or '-'",
            ))
        }
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What follows `manifests/` in a registry URL: a tag or a digest.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub enum Reference {
    Tag(Tag),
    Digest(Digest),
}

impl FromStr for Reference {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Tags cannot contain ':', digests always do.
        if s.contains(':') {
            s.parse().map(Reference::Digest)
        } else {
            s.parse().map(Reference::Tag)
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reference::Tag(t) => t.fmt(f),
            Reference::Digest(d) => d.fmt(f),
        }
    }
}

/// `REPO[:TAG]` or `REPO@DIGEST`, as users type it; the tag defaults to `latest`.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ImageRef {
    pub repository: Repository,
    pub reference: Reference,
}

impl FromStr for ImageRef {
    type Err = ParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, reference) = if let Some((name, digest)) = s.split_once('@') {
            (name, Reference::Digest(digest.parse()?))
        } else {
            match s.rsplit_once(':') {
                // A ':' before the last '/' would be a registry port, not a tag.
                Some((name, tag)) if !tag.contains('/') => (name, Reference::Tag(tag.parse()?)),
                _ => (s, Reference::Tag(Tag("latest".into()))),
            }
        };
        Ok(ImageRef {
            repository: name.parse()?,
            reference,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.reference {
            Reference::Tag(t) => write!(f, "{}:{t}", self.repository),
            Reference::Digest(d) => write!(f, "{}@{d}", self.repository),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_distribution_grammar_names() {
        for good in [
            "a", "acme/web", "a/b/c", "my-app", "my__app", "a.b_c--d", "0x/1",
        ] {
            assert!(good.parse::<Repository>().is_ok(), "{good} should parse");
        }
    }

    #[test]
    fn rejects_invalid_names() {
        let long = "a".repeat(256);
        for bad in [
            "",
            "Acme",
            "a//b",
            "/a",
            "a/",
            "-a",
            "a-",
            "a..b",
            "a___b",
            "../etc",
            "a/./b",
            "a b",
            "a:b",
            &long,
            "acme/manifests",
            "blobs/x",
        ] {
            assert!(
                bad.parse::<Repository>().is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn validates_tags() {
        assert!("v1.2.3-rc_1".parse::<Tag>().is_ok());
        assert!("_x".parse::<Tag>().is_ok());
        for bad in ["", ".x", "-x", "a/b", "a:b", &"t".repeat(129)] {
            assert!(bad.parse::<Tag>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn parses_image_references() {
        let r: ImageRef = "acme/web:v1".parse().unwrap();
        assert_eq!(r.repository.as_str(), "acme/web");
        assert_eq!(r.reference, Reference::Tag("v1".parse().unwrap()));
        let r: ImageRef = "acme/web".parse().unwrap();
        assert_eq!(r.to_string(), "acme/web:latest");
        let d = format!("sha256:{}", "a".repeat(64));
        let r: ImageRef = format!("web@{d}").parse().unwrap();
        assert_eq!(r.reference, Reference::Digest(d.parse().unwrap()));
        assert!("localhost:5000/web".parse::<ImageRef>().is_err());
        assert!("web:bad/tag".parse::<ImageRef>().is_err());
    }
}
