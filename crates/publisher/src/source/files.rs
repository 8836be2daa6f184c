//! A source's files, whether they sit in a directory or inside a tar archive.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::unix::fs::FileExt;
use std::path::{Component, Path, PathBuf};

use berth_core::store::FileSegment;

use crate::error::PublishError;

/// Named files of a source: relative `/`-separated paths to byte ranges.
#[derive(Debug)]
pub enum Files {
    Dir(PathBuf),
    Tar(HashMap<String, FileSegment>),
}

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

impl Files {
    /// Opens a directory, or indexes a tar archive (gunzipping it to a scratch file
    /// first if needed; the scratch directory must outlive the index).
    pub fn open(
        name: &str,
        path: &Path,
    ) -> Result<(Files, Option<tempfile::TempDir>), PublishError> {
        let meta = std::fs::metadata(path)
            .map_err(|e| PublishError::source(name, format!("cannot open: {e}")))?;
        if meta.is_dir() {
            return Ok((Files::Dir(path.to_owned()), None));
        }
        if starts_with(path, &GZIP_MAGIC).map_err(|e| PublishError::source(name, e.to_string()))? {
            let scratch = tempfile::tempdir()
                .map_err(|e| PublishError::source(name, format!("no scratch space: {e}")))?;
            let plain = scratch.path().join("source.tar");
            gunzip(path, &plain).map_err(|e| PublishError::malformed(name, e))?;
            let index = index_tar(&plain).map_err(|e| PublishError::malformed(name, e))?;
            return Ok((Files::Tar(index), Some(scratch)));
        }
        let index = index_tar(path).map_err(|e| PublishError::malformed(name, e))?;
        Ok((Files::Tar(index), None))
    }

    pub fn contains(&self, path: &str) -> bool {
        self.segment(path).is_some()
    }

    /// The byte range holding `path`, if it is a regular file.
    pub fn segment(&self, path: &str) -> Option<FileSegment> {
        match self {
            Files::Tar(index) => index.get(path).cloned(),
            Files::Dir(root) => {
                let full = root.join(safe_relative(path)?);
                let meta = std::fs::metadata(&full).ok()?;
                meta.is_file().then_some(FileSegment {
                    path: full,
                    offset: 0,
                    len: meta.len(),
                })
            }
        }
    }

    /// Paths of the files directly inside `dir` (e.g. `blobs/sha256`).
    pub fn list(&self, dir: &str) -> Vec<String> {
        let prefix = format!("{}/", dir.trim_end_matches('/'));
        match self {
            Files::Tar(index) => index
                .keys()
                .filter(|k| {
                    k.strip_prefix(&prefix)
                        .is_some_and(|rest| !rest.contains('/'))
                })
                .cloned()
                .collect(),
            Files::Dir(root) => std::fs::read_dir(root.join(dir))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|e| Some(format!("{prefix}{}", e.file_name().into_string().ok()?)))
                .collect(),
        }
    }

    /// Reads a small file (a manifest, config or index) whole.
    pub fn read(&self, name: &str, path: &str) -> Result<Vec<u8>, PublishError> {
        let segment = self
            .segment(path)
            .ok_or_else(|| PublishError::source(name, format!("{path} is missing")))?;
        read_segment(&segment).map_err(|e| PublishError::malformed(name, format!("{path}: {e}")))
    }
}

/// Reads a small segment whole, refusing documents too large to be one.
pub fn read_segment(segment: &FileSegment) -> io::Result<Vec<u8>> {
    if segment.len > super::MAX_DOCUMENT_SIZE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "{} bytes is too large for a manifest or config",
                segment.len
            ),
        ));
    }
    let mut bytes = vec![0; segment.len as usize];
    File::open(&segment.path)?.read_exact_at(&mut bytes, segment.offset)?;
    Ok(bytes)
}

fn starts_with(path: &Path, magic: &[u8]) -> io::Result<bool> {
    let mut head = vec![0; magic.len()];
    let n = File::open(path)?.read(&mut head)?;
    Ok(n == magic.len() && head == magic)
}

fn gunzip(from: &Path, to: &Path) -> io::Result<()> {
    let mut input = flate2::read::MultiGzDecoder::new(BufReader::new(File::open(from)?));
    let mut output = File::create(to)?;
    io::copy(&mut input, &mut output)?;
    Ok(())
}

/// Records where each regular file's bytes sit in the archive; symbolic links (which
/// a legacy `docker save` uses for repeated layers) resolve to their targets.
fn index_tar(path: &Path) -> io::Result<HashMap<String, FileSegment>> {
    let archive_len = std::fs::metadata(path)?.len();
    let mut archive = tar::Archive::new(File::open(path)?);
    let mut index = HashMap::new();
    let mut links = Vec::new();
    for entry in archive.entries()? {
        let entry = entry?;
        let Some(name) = safe_relative(&entry.path()?.to_string_lossy()).map(path_key) else {
            return Err(invalid(format!(
                "entry {:?} escapes the archive",
                entry.path()?
            )));
        };
        if name.is_empty() {
            continue; // the archive's own root directory, "./"
        }
        match entry.header().entry_type() {
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                let segment = FileSegment {
                    path: path.to_owned(),
                    offset: entry.raw_file_position(),
                    len: entry.size(),
                };
                if segment.offset + segment.len > archive_len {
                    return Err(invalid(format!("{name} is cut short")));
                }
                index.insert(name, segment);
            }
            tar::EntryType::Symlink | tar::EntryType::Link => {
                if let Some(target) = entry.link_name()? {
                    links.push((name, entry.header().entry_type(), target.into_owned()));
                }
            }
            _ => {}
        }
    }
    for (name, kind, target) in links {
        // Hard links name archive paths; symlinks are relative to their directory.
        let base = match kind {
            tar::EntryType::Symlink => Path::new(&name)
                .parent()
                .unwrap_or(Path::new(""))
                .join(target),
            _ => target,
        };
        if let Some(segment) = normalize(&base).and_then(|t| index.get(&path_key(t)).cloned()) {
            index.insert(name, segment);
        }
    }
    Ok(index)
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, message)
}

fn path_key(path: PathBuf) -> String {
    path.to_string_lossy().into_owned()
}

/// `path` without `.` parts (empty for the root itself), or `None` if it is
/// absolute or climbs out with `..`.
fn safe_relative(path: &str) -> Option<PathBuf> {
    let path = Path::new(path);
    if path.is_absolute() {
        return None;
    }
    normalize(path)
}

fn normalize(path: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths_cannot_escape() {
        assert_eq!(safe_relative("./a/b"), Some(PathBuf::from("a/b")));
        assert_eq!(safe_relative("a/../b"), Some(PathBuf::from("b")));
        assert_eq!(safe_relative("./"), Some(PathBuf::new()));
        assert_eq!(safe_relative("../b"), None);
        assert_eq!(safe_relative("/etc/passwd"), None);
    }

    #[test]
    fn indexes_tar_entries_and_resolves_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.tar");
        let mut builder = tar::Builder::new(File::create(&path).unwrap());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_cksum();
        builder
            .append_data(&mut header, "a/layer.tar", &b"hello"[..])
            .unwrap();
        let mut link = tar::Header::new_gnu();
        link.set_entry_type(tar::EntryType::Symlink);
        link.set_size(0);
        builder
            .append_link(&mut link, "b/layer.tar", "../a/layer.tar")
            .unwrap();
        builder.finish().unwrap();
        drop(builder);

        let index = index_tar(&path).unwrap();
        let a = &index["a/layer.tar"];
        assert_eq!(read_segment(a).unwrap(), b"hello");
        assert_eq!(&index["b/layer.tar"], a);
    }
}
