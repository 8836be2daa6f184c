//! The classic `docker save` tarball: `manifest.json` names a config and layer
//! tarballs, and berth writes the registry manifest for them (Docker schema 2, as
//! `docker push` would). Uncompressed layers are published as they are
//! (`...rootfs.diff.tar`): their digest is the config's diff ID, so the image's
//! identity is kept and nothing is hashed twice; `docs/layout.md` explains why.

use std::collections::HashMap;
use std::os::unix::fs::FileExt;

use berth_core::media_type::{DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LAYER_GZIP, DOCKER_MANIFEST};
use berth_core::store::FileSegment;
use berth_core::{Digest, digest::Hasher};
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{BlobRef, Files};
use crate::error::PublishError;

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ArchiveEntry {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

#[derive(Deserialize)]
struct ImageConfig {
    rootfs: RootFs,
}

#[derive(Deserialize)]
struct RootFs {
    diff_ids: Vec<String>,
}

/// The registry manifest berth writes, fields in the order `docker push` uses.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Schema2Manifest<'a> {
    schema_version: u32,
    media_type: &'a str,
    config: Descriptor<'a>,
    layers: Vec<Descriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Descriptor<'a> {
    media_type: &'a str,
    size: u64,
    digest: &'a str,
}

type Read = (
    BlobRef,
    HashMap<Digest, FileSegment>,
    HashMap<Digest, Bytes>,
);

pub fn read(name: &str, files: &Files) -> Result<Read, PublishError> {
    let malformed = |m: String| PublishError::malformed(name, m);
    let entries: Vec<ArchiveEntry> = serde_json::from_slice(&files.read(name, "manifest.json")?)
        .map_err(|e| malformed(format!("manifest.json: {e}")))?;
    let entry = match entries.as_slice() {
        [entry] => entry,
        [] => return Err(PublishError::source(name, "manifest.json lists no image")),
        many => {
            let names: Vec<String> = many
                .iter()
                .flat_map(|e| e.repo_tags.clone().unwrap_or_default())
                .collect();
            return Err(PublishError::source(
                name,
                format!(
                    "the archive holds {} images ({}); save one image per archive",
                    many.len(),
                    names.join(", ")
                ),
            ));
        }
    };

    let config_bytes = files.read(name, &entry.config)?;
    let config: ImageConfig = serde_json::from_slice(&config_bytes)
        .map_err(|e| malformed(format!("{}: not an image config: {e}", entry.config)))?;
    if config.rootfs.diff_ids.len() != entry.layers.len() {
        return Err(malformed(format!(
            "the config lists {} layers but manifest.json {}",
            config.rootfs.diff_ids.len(),
            entry.layers.len()
        )));
    }
    let config_digest = Digest::of(&config_bytes);
    let mut blobs = HashMap::new();
    blobs.insert(
        config_digest.clone(),
        files
            .segment(&entry.config)
            .expect("config was just read from the archive"),
    );

    let mut layers = Vec::new();
    for (path, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
        let segment = files
            .segment(path)
            .ok_or_else(|| malformed(format!("layer {path} is missing")))?;
        let (media_type, digest) = if is_gzip(&segment) {
            (
                DOCKER_LAYER_GZIP,
                hash_segment(&segment).map_err(|e| malformed(e.to_string()))?,
            )
        } else {
            let digest = diff_id
                .parse()
                .map_err(|e| malformed(format!("config diff ID: {e}")))?;
            (DOCKER_LAYER, digest)
        };
        layers.push((media_type, digest, segment.len));
        blobs.insert(layers.last().expect("just pushed").1.clone(), segment);
    }

    let manifest = Schema2Manifest {
        schema_version: 2,
        media_type: DOCKER_MANIFEST,
        config: Descriptor {
            media_type: DOCKER_CONFIG,
            size: config_bytes.len() as u64,
            digest: config_digest.as_str(),
        },
        layers: layers
            .iter()
            .map(|(media_type, digest, size)| Descriptor {
                media_type,
                size: *size,
                digest: digest.as_str(),
            })
            .collect(),
    };
    let bytes = Bytes::from(serde_json::to_vec_pretty(&manifest).expect("manifest serializes"));
    let root = BlobRef {
        media_type: DOCKER_MANIFEST.to_owned(),
        digest: Digest::of(&bytes),
        size: bytes.len() as u64,
    };
    let synthesized = HashMap::from([(root.digest.clone(), bytes)]);
    Ok((root, blobs, synthesized))
}

fn is_gzip(segment: &FileSegment) -> bool {
    let mut magic = [0; 2];
    segment.len >= 2
        && std::fs::File::open(&segment.path)
            .and_then(|f| f.read_exact_at(&mut magic, segment.offset))
            .is_ok()
        && magic == [0x1f, 0x8b]
}

/// Compressed layers have no recorded digest, so it is computed here.
fn hash_segment(segment: &FileSegment) -> std::io::Result<Digest> {
    let file = std::fs::File::open(&segment.path)?;
    let mut hasher = Hasher::default();
    let mut buffer = vec![0; 1 << 20];
    let mut done = 0;
    while done < segment.len {
        let n = (segment.len - done).min(buffer.len() as u64) as usize;
        file.read_exact_at(&mut buffer[..n], segment.offset + done)?;
        hasher.update(&buffer[..n]);
        done += n as u64;
    }
    Ok(hasher.finish())
}
