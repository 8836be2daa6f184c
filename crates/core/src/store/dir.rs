//! A store in a local directory: the embedded default (`./berth-data`).
//!
//! Keys map to files under the root, so the directory looks like the bucket and any
//! static file server can serve it. Content type and metadata live in JSON sidecars
//! under `.berth-meta/`; writes go through `.berth-tmp/` and a rename, so a reader
//! never sees a partial object. A key that is also a prefix of other keys (the
//! repository marker of `acme/web` beside that of `acme/web/api`) keeps its bytes in
//! `<key>/.berth-object`, since one path cannot be a file and a directory.

use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{
    FileSegment, ListEntry, Object, ObjectMeta, ObjectReader, Progress, Store, StoreError,
    WriteMeta,
};
use crate::digest::{Digest, Hasher};

const META_DIR: &str = ".berth-meta";
const TMP_DIR: &str = ".berth-tmp";
/// The file holding an object whose key is also a directory (see the module doc).
const NESTED_OBJECT: &str = ".berth-object";
const COPY_BUFFER: usize = 1 << 20;

#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

#[derive(Serialize, Deserialize, Default)]
struct Sidecar {
    content_type: Option<String>,
    #[serde(default)]
    metadata: std::collections::BTreeMap<String, String>,
}

impl DirStore {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        DirStore { root: root.into() }
    }

    fn object_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        check_key(key)?;
        Ok(self.root.join(key))
    }

    /// Where an existing object's bytes are: its path, or the nested file when the
    /// path is a directory.
    fn existing_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let path = self.object_path(key)?;
        Ok(if path.is_dir() {
            path.join(NESTED_OBJECT)
        } else {
            path
        })
    }

    /// Where to write `key`, with every directory above it in place: a file standing
    /// where a directory must go (an object whose key is a prefix of this one) moves
    /// into that directory as its nested object first.
    fn writable_path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let path = self.object_path(key)?;
        let mut dir = self.root.clone();
        let parents: Vec<&str> = key.split('/').collect();
        for part in &parents[..parents.len() - 1] {
            dir.push(part);
            self.ensure_dir(&dir)?;
        }
        Ok(if path.is_dir() {
            path.join(NESTED_OBJECT)
        } else {
            path
        })
    }

    /// Makes `dir` a directory, moving a file found there to `dir/.berth-object`.
    /// Another writer may do the same at once: whoever loses a step finds it done.
    fn ensure_dir(&self, dir: &Path) -> Result<(), StoreError> {
        match fs::symlink_metadata(dir) {
            Ok(m) if m.is_dir() => return Ok(()),
            Ok(_) => {
                // Parked in the temporary directory for the moment the path must be
                // free: readers of that one key find it absent meanwhile.
                let parked = self.temp_file()?.into_temp_path();
                // Never deleted on drop: on an error below, the object stays there.
                let parked = parked.keep().map_err(|e| StoreError::io(dir, e.error))?;
                match fs::rename(dir, &parked) {
                    Ok(()) => {
                        make_dir(dir)?;
                        fs::rename(&parked, dir.join(NESTED_OBJECT))
                            .map_err(|e| StoreError::io(dir, e))?;
                    }
                    Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(dir)?,
                    Err(e) => return Err(StoreError::io(dir, e)),
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_dir(dir)?,
            Err(e) => return Err(StoreError::io(dir, e)),
        }
        Ok(())
    }

    fn sidecar_path(&self, key: &str) -> PathBuf {
        self.root.join(META_DIR).join(format!("{key}.json"))
    }

    fn read_meta(&self, key: &str, file: &fs::Metadata) -> Result<ObjectMeta, StoreError> {
        let path = self.sidecar_path(key);
        let sidecar: Sidecar = match fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Sidecar::default(),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        Ok(ObjectMeta {
            size: file.len(),
            content_type: sidecar.content_type,
            metadata: sidecar.metadata,
            modified: file.modified().ok(),
        })
    }

    /// A fresh temporary file on the same filesystem as the objects, for rename.
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        let dir = self.root.join(TMP_DIR);
        fs::create_dir_all(&dir).map_err(|e| StoreError::io(&dir, e))?;
        tempfile::NamedTempFile::new_in(&dir).map_err(|e| StoreError::io(&dir, e))
    }

    /// Makes a finished temporary file visible under `key`, sidecar first so the
    /// object never appears without its metadata.
    fn commit(
        &self,
        key: &str,
        temp: tempfile::NamedTempFile,
        meta: &WriteMeta,
    ) -> Result<(), StoreError> {
        let sidecar = Sidecar {
            content_type: Some(meta.content_type.clone()),
            metadata: meta.metadata.clone(),
        };
        let sidecar_bytes = serde_json::to_vec(&sidecar).expect("sidecar serializes");
        self.write_atomic(&self.sidecar_path(key), &sidecar_bytes)?;
        let path = self.writable_path(key)?;
        temp.as_file()
            .sync_all()
            .map_err(|e| StoreError::io(temp.path(), e))?;
        temp.persist(&path)
            .map_err(|e| StoreError::io(&path, e.error))?;
        Ok(())
    }

    fn write_atomic(&self, path: &Path, bytes: &[u8]) -> Result<(), StoreError> {
        let mut temp = self.temp_file()?;
        temp.write_all(bytes)
            .map_err(|e| StoreError::io(temp.path(), e))?;
        create_parent(path)?;
        temp.persist(path)
            .map_err(|e| StoreError::io(path, e.error))?;
        Ok(())
    }

    fn put_sync(&self, key: &str, body: &[u8], meta: &WriteMeta) -> Result<(), StoreError> {
        self.object_path(key)?;
        let mut temp = self.temp_file()?;
        temp.write_all(body)
            .map_err(|e| StoreError::io(temp.path(), e))?;
        self.commit(key, temp, meta)
    }

    fn put_verified_sync(
        &self,
        key: &str,
        source: &FileSegment,
        expected: &Digest,
        meta: &WriteMeta,
        progress: Progress,
    ) -> Result<(), StoreError> {
        self.object_path(key)?;
        let mut input = File::open(&source.path).map_err(|e| StoreError::io(&source.path, e))?;
        input
            .seek(SeekFrom::Start(source.offset))
            .map_err(|e| StoreError::io(&source.path, e))?;
        let mut input = input.take(source.len);
        let mut temp = self.temp_file()?;
        let mut hasher = Hasher::default();
        let mut buffer = vec![0; COPY_BUFFER];
        loop {
            let n = input
                .read(&mut buffer)
                .map_err(|e| StoreError::io(&source.path, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            temp.write_all(&buffer[..n])
                .map_err(|e| StoreError::io(temp.path(), e))?;
            progress(n as u64);
        }
        let len = hasher.len();
        let actual = hasher.finish();
        if &actual != expected || len != source.len {
            return Err(StoreError::DigestMismatch {
                expected: expected.clone(),
                actual,
                len,
            });
        }
        self.commit(key, temp, meta)
    }

    fn copy_sync(&self, from: &str, to: &str) -> Result<bool, StoreError> {
        let source = self.existing_path(from)?;
        self.object_path(to)?;
        let meta = match fs::metadata(&source) {
            Ok(m) => self.read_meta(from, &m)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(StoreError::io(source, e)),
        };
        let temp = self.temp_file()?;
        // A hard link shares the bytes like a server-side copy; fall back to copying.
        let temp_path = temp.path().to_owned();
        fs::remove_file(&temp_path).map_err(|e| StoreError::io(&temp_path, e))?;
        if fs::hard_link(&source, &temp_path).is_err() {
            match fs::copy(&source, &temp_path) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(StoreError::io(source, e)),
            }
        }
        let write_meta = WriteMeta {
            content_type: meta.content_type.unwrap_or_default(),
            metadata: meta.metadata,
        };
        self.commit(to, temp, &write_meta)?;
        Ok(true)
    }

    fn list_sync(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListEntry>, StoreError> {
        // Walk only the deepest directory the prefix names.
        let base = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let mut keys = Vec::new();
        walk(&self.root.join(base), base, &mut keys)?;
        keys.retain(|k| k.starts_with(prefix) && start_after.is_none_or(|s| k.as_str() > s));
        keys.sort();
        keys.truncate(limit);
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            let path = self.existing_path(&key)?;
            let file = match fs::metadata(&path) {
                Ok(file) => file,
                // Removed since the walk: a listing is a snapshot anyway.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(StoreError::io(path, e)),
            };
            let modified = file.modified().map_err(|e| StoreError::io(&path, e))?;
            entries.push(ListEntry {
                key,
                size: file.len(),
                modified,
            });
        }
        Ok(entries)
    }

    fn touch_sync(&self, key: &str) -> Result<bool, StoreError> {
        let path = self.existing_path(key)?;
        // A hard-linked copy shares the inode, so its holders are renewed too: harmless,
        // garbage collection only ever keeps more.
        let file = match File::options().write(true).open(&path) {
            Ok(file) => file,
            Err(e) if absent(&e) => return Ok(false),
            Err(e) => return Err(StoreError::io(path, e)),
        };
        file.set_modified(std::time::SystemTime::now())
            .map_err(|e| StoreError::io(&path, e))?;
        Ok(true)
    }
}

/// Collects the keys of all files under `dir`, whose key prefix is `key_base`.
/// The error says nothing is at the path (a missing component, or a file where a
/// directory was expected): the object does not exist.
fn absent(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory
    )
}

fn walk(dir: &Path, key_base: &str, keys: &mut Vec<String>) -> Result<(), StoreError> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if absent(&e) => return Ok(()),
        Err(e) => return Err(StoreError::io(dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| StoreError::io(dir, e))?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name == NESTED_OBJECT && !key_base.is_empty() {
            keys.push(key_base.to_owned());
            continue;
        }
        if name.starts_with(".berth-") {
            continue;
        }
        let key = if key_base.is_empty() {
            name
        } else {
            format!("{key_base}/{name}")
        };
        let file_type = entry
            .file_type()
            .map_err(|e| StoreError::io(entry.path(), e))?;
        if file_type.is_dir() {
            walk(&entry.path(), &key, keys)?;
        } else {
            keys.push(key);
        }
    }
    Ok(())
}

fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) => fs::create_dir_all(parent).map_err(|e| StoreError::io(parent, e)),
        None => Ok(()),
    }
}

/// Creates one directory; one another writer just made is as good.
fn make_dir(dir: &Path) -> Result<(), StoreError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists && dir.is_dir() => Ok(()),
        Err(e) => Err(StoreError::io(dir, e)),
    }
}

/// Keys come from the layout, built from validated names; this is the last line of
/// defence against a key escaping the root.
fn check_key(key: &str) -> Result<(), StoreError> {
    let unsafe_key = key.is_empty()
        || key.contains('\0')
        || key.contains('\\')
        || key.split('/').any(|part| {
            part.is_empty() || part == "." || part == ".." || part.starts_with(".berth-")
        });
    if unsafe_key {
        Err(StoreError::InvalidKey(key.into()))
    } else {
        Ok(())
    }
}

/// A file's bytes and the metadata of the same open file.
fn read_with_metadata(path: &Path) -> io::Result<(Vec<u8>, fs::Metadata)> {
    let mut file = File::open(path)?;
    let metadata = file.metadata()?;
    if metadata.is_dir() {
        return Err(io::ErrorKind::IsADirectory.into());
    }
    let mut body = Vec::with_capacity(metadata.len() as usize);
    file.read_to_end(&mut body)?;
    Ok((body, metadata))
}

/// Runs blocking file I/O off the async runtime.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .expect("store I/O task panicked")
}

#[async_trait]
impl Store for DirStore {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.object_path(key)?;
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || match fs::metadata(this.existing_path(&key)?) {
            Ok(m) if m.is_file() => this.read_meta(&key, &m).map(Some),
            Ok(_) => Ok(None),
            Err(e) if absent(&e) => Ok(None),
            Err(e) => Err(StoreError::io(this.root.join(&key), e)),
        })
        .await
    }

    async fn get(&self, key: &str) -> Result<Option<Object>, StoreError> {
        self.object_path(key)?;
        let this = self.clone();
        let key = key.to_owned();
        blocking(
            move || match read_with_metadata(&this.existing_path(&key)?) {
                Ok((body, file)) => Ok(Some(Object {
                    meta: this.read_meta(&key, &file)?,
                    body: Bytes::from(body),
                })),
                Err(e) if absent(&e) => Ok(None),
                Err(e) => Err(StoreError::io(this.root.join(&key), e)),
            },
        )
        .await
    }

    async fn read(
        &self,
        key: &str,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<Option<ObjectReader>, StoreError> {
        let path = {
            let this = self.clone();
            let key = key.to_owned();
            blocking(move || this.existing_path(&key)).await?
        };
        let mut file = match tokio::fs::File::open(&path).await {
            Ok(file) => file,
            Err(e) if absent(&e) => {
                return Ok(None);
            }
            Err(e) => return Err(StoreError::io(path, e)),
        };
        let metadata = file
            .metadata()
            .await
            .map_err(|e| StoreError::io(&path, e))?;
        if !metadata.is_file() {
            return Ok(None);
        }
        let size = metadata.len();
        let range = range.unwrap_or(0..size);
        file.seek(SeekFrom::Start(range.start))
            .await
            .map_err(|e| StoreError::io(&path, e))?;
        let meta = {
            let this = self.clone();
            let key = key.to_owned();
            blocking(move || this.read_meta(&key, &metadata)).await?
        };
        let body = tokio_util::io::ReaderStream::new(file.take(range.end - range.start));
        Ok(Some(ObjectReader {
            meta,
            body: Box::pin(body),
        }))
    }

    async fn presign_get(
        &self,
        _: &str,
        _: std::time::Duration,
    ) -> Result<Option<String>, StoreError> {
        Ok(None)
    }

    async fn put(&self, key: &str, body: Bytes, meta: &WriteMeta) -> Result<(), StoreError> {
        let this = self.clone();
        let (key, meta) = (key.to_owned(), meta.clone());
        blocking(move || this.put_sync(&key, &body, &meta)).await
    }

    async fn put_verified(
        &self,
        key: &str,
        source: &FileSegment,
        expected: &Digest,
        meta: &WriteMeta,
        progress: Progress,
    ) -> Result<(), StoreError> {
        let this = self.clone();
        let (key, source, expected, meta) = (
            key.to_owned(),
            source.clone(),
            expected.clone(),
            meta.clone(),
        );
        blocking(move || this.put_verified_sync(&key, &source, &expected, &meta, progress)).await
    }

    async fn copy(&self, from: &str, to: &str, _size: u64) -> Result<bool, StoreError> {
        let this = self.clone();
        let (from, to) = (from.to_owned(), to.to_owned());
        blocking(move || this.copy_sync(&from, &to)).await
    }

    async fn list_entries(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Vec<ListEntry>, StoreError> {
        let this = self.clone();
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        blocking(move || this.list_sync(&prefix, start_after.as_deref(), limit)).await
    }

    async fn touch(&self, key: &str) -> Result<bool, StoreError> {
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || this.touch_sync(&key)).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.object_path(key)?;
        let this = self.clone();
        let key = key.to_owned();
        blocking(move || {
            for p in [this.existing_path(&key)?, this.sidecar_path(&key)] {
                match fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(StoreError::io(p, e)),
                }
            }
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_keys_that_escape_the_root() {
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a//b",
            ".berth-meta/x",
            "a\\b",
        ] {
            assert!(check_key(bad).is_err(), "{bad:?} should be refused");
        }
        assert!(check_key("v2/a/blobs/sha256:00").is_ok());
        assert!(check_key("a/.berth-object").is_err());
    }

    #[tokio::test]
    async fn a_key_can_also_be_the_prefix_of_others() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirStore::new(dir.path());
        let meta = WriteMeta::new("text/plain");
        store
            .put("m/acme/web", Bytes::from("web"), &meta)
            .await
            .unwrap();
        store
            .put("m/acme/web/api", Bytes::from("api"), &meta)
            .await
            .unwrap();
        store
            .put("m/acme/web/api/x", Bytes::from("x"), &meta)
            .await
            .unwrap();
        for (key, body) in [
            ("m/acme/web", "web"),
            ("m/acme/web/api", "api"),
            ("m/acme/web/api/x", "x"),
        ] {
            let object = store.get(key).await.unwrap().unwrap();
            assert_eq!(object.body, body);
            assert_eq!(object.meta.content_type.as_deref(), Some("text/plain"));
        }
        assert_eq!(
            store.list("m/acme/", None, 10).await.unwrap(),
            vec!["m/acme/web", "m/acme/web/api", "m/acme/web/api/x"]
        );
        assert!(store.touch("m/acme/web").await.unwrap());
        store
            .put("m/acme/web", Bytes::from("web2"), &meta)
            .await
            .unwrap();
        assert_eq!(store.get("m/acme/web").await.unwrap().unwrap().body, "web2");
        store.delete("m/acme/web").await.unwrap();
        assert!(store.head("m/acme/web").await.unwrap().is_none());
        assert_eq!(
            store.list("m/acme/", None, 10).await.unwrap(),
            vec!["m/acme/web/api", "m/acme/web/api/x"]
        );
        assert!(store.copy("m/acme/web/api", "m/other", 3).await.unwrap());
        assert_eq!(store.get("m/other").await.unwrap().unwrap().body, "api");
    }
}
