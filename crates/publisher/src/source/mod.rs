//! Publish sources, all read into one model: a [`Bundle`].
//!
//! `SOURCE` on the command line is a path (detected) or prefixed:
//! `docker-archive:PATH`, `oci:PATH[:REF]` (layout directory or its tar),
//! `docker-daemon:IMAGE`. Archives are never unpacked: a blob is a byte range of the
//! tar file, read straight from there when uploading. Gzip-compressed archives are
//! decompressed once into a scratch file first. A remote registry ([`registry`],
//! `berth copy`) carries its manifests in memory and fetches blobs on demand.

mod daemon;
mod docker_archive;
mod files;
mod oci_layout;
pub mod registry;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use berth_core::Digest;
use berth_core::store::FileSegment;
use bytes::Bytes;

pub use files::{Files, read_segment};

use crate::error::PublishError;

/// Media type, digest and size: what a manifest says about the content it references.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobRef {
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
}

/// An image (or index, or artifact) ready to publish: its root descriptor and where
/// the bytes of everything it may reference are.
#[derive(Debug)]
pub struct Bundle {
    pub root: BlobRef,
    /// Content stored in files, by digest (manifests included, for layouts).
    pub files: HashMap<Digest, FileSegment>,
    /// Content held in memory, by digest: manifests a reader wrote itself (a legacy
    /// `docker save` has none), or every object of an image built in memory.
    pub synthesized: HashMap<Digest, Bytes>,
    /// Fetches the blobs the bundle does not hold, when the store lacks them too.
    pub remote: Option<Arc<dyn Fetch>>,
    /// Holds decompressed or exported archives alive while the bundle is used.
    _scratch: Option<tempfile::TempDir>,
}

/// Blobs that live elsewhere (a remote registry), fetched only when a publish needs
/// their bytes: what the store already has is never downloaded.
#[async_trait::async_trait]
pub trait Fetch: Send + Sync + std::fmt::Debug {
    /// Brings `blob` into a local file, checked against its digest and size.
    async fn fetch(&self, blob: &BlobRef) -> Result<FileSegment, PublishError>;
    /// `blob` is now in the store: its local copy is no longer needed.
    async fn stored(&self, blob: &BlobRef);
}

/// Where the bytes of one blob are.
#[derive(Debug, Clone, Copy)]
pub enum Content<'a> {
    File(&'a FileSegment),
    Memory(&'a Bytes),
}

impl Content<'_> {
    pub fn size(&self) -> u64 {
        match self {
            Content::File(segment) => segment.len,
            Content::Memory(bytes) => bytes.len() as u64,
        }
    }
}

impl Bundle {
    /// A small image built in memory (a signature): its root manifest of `media_type`
    /// and the blobs it references. Digests are computed here, so they always match.
    pub fn in_memory(
        media_type: &str,
        manifest: Bytes,
        blobs: impl IntoIterator<Item = Bytes>,
    ) -> Self {
        let root = BlobRef {
            media_type: media_type.to_owned(),
            digest: Digest::of(&manifest),
            size: manifest.len() as u64,
        };
        let synthesized = std::iter::once(manifest)
            .chain(blobs)
            .map(|bytes| (Digest::of(&bytes), bytes))
            .collect();
        Bundle {
            root,
            files: HashMap::new(),
            synthesized,
            remote: None,
            _scratch: None,
        }
    }

    /// Where a remote source's manifests (and any small blobs it read) are in memory
    /// and every other blob is fetched from `remote` on demand.
    pub fn remote(
        root: BlobRef,
        synthesized: HashMap<Digest, Bytes>,
        remote: Arc<dyn Fetch>,
    ) -> Self {
        Bundle {
            root,
            files: HashMap::new(),
            synthesized,
            remote: Some(remote),
            _scratch: None,
        }
    }

    /// Where the bytes of `digest` are, if the source has them.
    pub fn content(&self, digest: &Digest) -> Option<Content<'_>> {
        self.files
            .get(digest)
            .map(Content::File)
            .or_else(|| self.synthesized.get(digest).map(Content::Memory))
    }

    /// Fetches a blob the bundle does not hold from its remote source.
    pub async fn fetch(&self, blob: &BlobRef) -> Result<FileSegment, PublishError> {
        match &self.remote {
            Some(remote) => remote.fetch(blob).await,
            None => Err(PublishError::MissingBlob {
                digest: blob.digest.clone(),
            }),
        }
    }

    /// The file range holding `digest`, if the source has it in a file.
    pub fn segment(&self, digest: &Digest) -> Option<&FileSegment> {
        self.files.get(digest)
    }
}

/// Manifests and configs are small; refuse absurd ones instead of reading them whole.
pub(crate) const MAX_DOCUMENT_SIZE: u64 = 16 << 20;

#[derive(Debug, Clone, PartialEq, Eq)]
enum SourceSpec {
    /// Detect from what is at the path.
    Path(PathBuf),
    DockerArchive(PathBuf),
    Oci {
        path: PathBuf,
        reference: Option<String>,
    },
    DockerDaemon(String),
}

impl SourceSpec {
    fn parse(spec: &str) -> Self {
        if let Some(image) = spec.strip_prefix("docker-daemon:") {
            SourceSpec::DockerDaemon(image.to_owned())
        } else if let Some(path) = spec.strip_prefix("docker-archive:") {
            SourceSpec::DockerArchive(path.into())
        } else if let Some(rest) = spec
            .strip_prefix("oci:")
            .or_else(|| spec.strip_prefix("oci-archive:"))
        {
            // `oci:PATH:REF`, unless the whole thing is an existing path.
            match rest.rsplit_once(':') {
                Some((path, reference)) if !Path::new(rest).exists() => SourceSpec::Oci {
                    path: path.into(),
                    reference: Some(reference.to_owned()),
                },
                _ => SourceSpec::Oci {
                    path: rest.into(),
                    reference: None,
                },
            }
        } else {
            SourceSpec::Path(spec.into())
        }
    }
}

/// Reads the source named by `spec` into a [`Bundle`].
pub async fn open(spec: &str) -> Result<Bundle, PublishError> {
    let (path, forced, reference) = match SourceSpec::parse(spec) {
        SourceSpec::DockerDaemon(image) => return daemon::export(&image).await,
        SourceSpec::Path(path) => (path, None, None),
        SourceSpec::DockerArchive(path) => (path, Some(Kind::DockerArchive), None),
        SourceSpec::Oci { path, reference } => (path, Some(Kind::OciLayout), reference),
    };
    let name = spec.to_owned();
    tokio::task::spawn_blocking(move || {
        let (files, scratch) = Files::open(&name, &path)?;
        read_files(&name, files, scratch, forced, reference.as_deref())
    })
    .await
    .expect("source reader panicked")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DockerArchive,
    OciLayout,
}

/// Detects the format of an opened file tree (unless forced) and reads it.
fn read_files(
    name: &str,
    files: Files,
    scratch: Option<tempfile::TempDir>,
    forced: Option<Kind>,
    reference: Option<&str>,
) -> Result<Bundle, PublishError> {
    // Newer `docker save` writes both forms; the OCI index carries the real digests.
    let kind = forced.or_else(|| {
        if files.contains("oci-layout") && files.contains("index.json") {
            Some(Kind::OciLayout)
        } else if files.contains("manifest.json") {
            Some(Kind::DockerArchive)
        } else {
            None
        }
    });
    let (root, blobs, synthesized) = match kind {
        Some(Kind::OciLayout) => oci_layout::read(name, &files, reference)?,
        Some(Kind::DockerArchive) => docker_archive::read(name, &files)?,
        None => {
            return Err(PublishError::source(
                name,
                "not an image: expected a `docker save` tarball (manifest.json) or an OCI image layout (oci-layout, index.json)",
            ));
        }
    };
    Ok(Bundle {
        root,
        files: blobs,
        synthesized,
        remote: None,
        _scratch: scratch,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_source_prefixes() {
        assert_eq!(
            SourceSpec::parse("docker-daemon:busybox:1"),
            SourceSpec::DockerDaemon("busybox:1".into())
        );
        assert_eq!(
            SourceSpec::parse("oci:/nonexistent/layout:v1"),
            SourceSpec::Oci {
                path: "/nonexistent/layout".into(),
                reference: Some("v1".into())
            }
        );
        assert_eq!(
            SourceSpec::parse("image.tar"),
            SourceSpec::Path("image.tar".into())
        );
    }
}
