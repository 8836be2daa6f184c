//! Platforms as people write them (`linux/amd64`, `linux/arm64/v8`): parsed from
//! `--platform`, read from index entries and image configs, matched as
//! `docker pull --platform` matches them.

use std::fmt;
use std::str::FromStr;

use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    pub fn of_index_entry(platform: &oci_spec::image::Platform) -> Self {
        Platform {
            os: platform.os().to_string(),
            architecture: platform.architecture().to_string(),
            variant: platform.variant().clone(),
        }
    }

    pub fn of_config(config: &ImageConfiguration) -> Self {
        Platform {
            os: config.os().to_string(),
            architecture: config.architecture().to_string(),
            variant: config.variant().clone(),
        }
    }

    /// Whether `found` satisfies this requested platform: a request without a
    /// variant takes any variant.
    pub fn matches(&self, found: &Platform) -> bool {
        self.os == found.os
            && self.architecture == found.architecture
            && (self.variant.is_none() || self.variant == found.variant)
    }

    /// The index entry for this platform, or why there is none (naming those there are).
    pub fn choose<'a>(&self, index: &'a ImageIndex) -> Result<&'a Descriptor, String> {
        let listed = || {
            index
                .manifests()
                .iter()
                .filter_map(|d| d.platform().as_ref().map(Platform::of_index_entry))
        };
        index
            .manifests()
            .iter()
            .find(|d| {
                d.platform()
                    .as_ref()
                    .is_some_and(|p| self.matches(&Platform::of_index_entry(p)))
            })
            .ok_or_else(|| {
                let names: Vec<String> = listed().map(|p| p.to_string()).collect();
                format!(
                    "the index has no {self} image; it has: {}",
                    if names.is_empty() {
                        "no platforms listed".into()
                    } else {
                        names.join(", ")
                    }
                )
            })
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        match &self.variant {
            Some(variant) => write!(f, "/{variant}"),
            None => Ok(()),
        }
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = text.split('/').collect();
        let valid = |part: &&str| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        match parts.as_slice() {
            [os, arch, rest @ ..] if rest.len() <= 1 && parts.iter().all(valid) => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: rest.first().map(|v| v.to_string()),
            }),
            _ => Err(format!(
                "{text:?} is not a platform: use OS/ARCH or OS/ARCH/VARIANT, e.g. linux/arm64"
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_platforms() {
        let p: Platform = "linux/arm64/v8".parse().unwrap();
        assert_eq!(p.variant.as_deref(), Some("v8"));
        assert_eq!(p.to_string(), "linux/arm64/v8");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/arm/v7/x",
            "linux/a md64",
        ] {
            assert!(bad.parse::<Platform>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_request_without_variant_takes_any_variant() {
        let any: Platform = "linux/arm64".parse().unwrap();
        let v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(any.matches(&v8));
        assert!(!v8.matches(&any));
        assert!(!any.matches(&"linux/amd64".parse().unwrap()));
    }
}
