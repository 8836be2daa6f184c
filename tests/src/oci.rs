//! Hand-built OCI image layouts: multi-platform indexes, artifacts and corrupt
//! layouts that no tool here would write.

use std::path::{Path, PathBuf};

use berth_core::Digest;
use serde_json::{Value, json};

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";

pub struct Layout {
    pub dir: PathBuf,
}

impl Layout {
    pub fn create(dir: &Path) -> Self {
        std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        Layout {
            dir: dir.to_owned(),
        }
    }

    /// Stores `bytes` as a blob and returns its descriptor.
    pub fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        let digest = Digest::of(bytes);
        std::fs::write(self.dir.join("blobs/sha256").join(digest.hex()), bytes).unwrap();
        json!({ "mediaType": media_type, "digest": digest.to_string(), "size": bytes.len() })
    }

    /// Stores a JSON document as a blob and returns its descriptor.
    pub fn json_blob(&self, media_type: &str, value: &Value) -> Value {
        self.blob(media_type, &serde_json::to_vec(value).unwrap())
    }

    /// A one-layer image for `arch` whose layer holds `/hello` = `text`.
    pub fn image(&self, arch: &str, text: &str) -> Value {
        let layer = self.blob(OCI_LAYER, &tar_with_file("hello", text.as_bytes()));
        let config = self.json_blob(
            OCI_CONFIG,
            &json!({
                "architecture": arch, "os": "linux",
                "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
                "config": { "Cmd": ["/hello"] }
            }),
        );
        self.json_blob(
            OCI_MANIFEST,
            &json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer] }),
        )
    }

    /// A [`Layout::image`] for `arch` whose descriptor names its platform, for an index.
    pub fn platform_image(&self, arch: &str, text: &str) -> Value {
        with_platform(self.image(arch, text), arch)
    }

    /// An index of `manifests`, stored as a blob; returns its descriptor.
    pub fn index_blob(&self, manifests: Vec<Value>) -> Value {
        self.json_blob(
            OCI_INDEX,
            &json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }),
        )
    }

    /// An index of one [`Layout::platform_image`] per arch (`"{text} on {arch}"`),
    /// stored as a blob; returns the index's descriptor.
    pub fn platform_index(&self, archs: &[&str], text: &str) -> Value {
        let manifests = archs
            .iter()
            .map(|arch| self.platform_image(arch, &format!("{text} on {arch}")))
            .collect();
        self.index_blob(manifests)
    }

    /// Writes `index.json` naming `manifests`.
    pub fn set_index(&self, manifests: Vec<Value>) {
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
        std::fs::write(
            self.dir.join("index.json"),
            serde_json::to_vec(&index).unwrap(),
        )
        .unwrap();
    }

    /// Path of the blob a descriptor names.
    pub fn blob_path(&self, descriptor: &Value) -> PathBuf {
        let digest: Digest = descriptor["digest"].as_str().unwrap().parse().unwrap();
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    /// The layout packed as a tar archive at `path`.
    pub fn pack(&self, path: &Path) {
        let mut builder = tar::Builder::new(std::fs::File::create(path).unwrap());
        builder.append_dir_all(".", &self.dir).unwrap();
        builder.finish().unwrap();
    }
}

/// A layout at `dir` holding one [`Layout::image`] for amd64; its manifest descriptor.
pub fn one_image(dir: &Path, text: &str) -> Value {
    let layout = Layout::create(dir);
    let manifest = layout.image("amd64", text);
    layout.set_index(vec![manifest.clone()]);
    manifest
}

/// A layout at `dir` holding one amd64 image whose single layer is `len` bytes
/// derived from `seed` (different seeds, different bytes: a fresh upload); the
/// descriptors of its manifest and of that layer.
pub fn big_image(dir: &Path, len: u32, seed: &str) -> (Value, Value) {
    let layout = Layout::create(dir);
    let seed = seed.as_bytes();
    let bytes: Vec<u8> = (0..len)
        .map(|i| seed[i as usize % seed.len()] ^ (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let layer = layout.blob(OCI_LAYER, &bytes);
    let config = layout.json_blob(
        OCI_CONFIG,
        &json!({ "architecture": "amd64", "os": "linux" }),
    );
    let manifest = layout.json_blob(
        OCI_MANIFEST,
        &json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer] }),
    );
    layout.set_index(vec![manifest.clone()]);
    (manifest, layer)
}

/// Adds a platform to a manifest descriptor, for an index.
pub fn with_platform(mut descriptor: Value, arch: &str) -> Value {
    descriptor["platform"] = json!({ "architecture": arch, "os": "linux" });
    descriptor
}

pub fn tar_with_file(name: &str, contents: &[u8]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(contents.len() as u64);
    header.set_mode(0o755);
    header.set_cksum();
    builder.append_data(&mut header, name, contents).unwrap();
    builder.into_inner().unwrap()
}
