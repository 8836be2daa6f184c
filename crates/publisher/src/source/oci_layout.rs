//! OCI image layouts (a directory or its tar, including newer `docker save` output):
//! `index.json` names the root, `blobs/sha256/<hex>` hold everything, manifests
//! included, byte for byte.

use std::collections::HashMap;

use berth_core::Digest;
use berth_core::store::FileSegment;
use bytes::Bytes;
use oci_spec::image::{Descriptor, ImageIndex};

use super::{BlobRef, Files};
use crate::error::PublishError;

const REF_NAME: &str = "org.opencontainers.image.ref.name";
const CONTAINERD_NAME: &str = "io.containerd.image.name";

type Read = (
    BlobRef,
    HashMap<Digest, FileSegment>,
    HashMap<Digest, Bytes>,
);

pub fn read(name: &str, files: &Files, reference: Option<&str>) -> Result<Read, PublishError> {
    let malformed = |m: String| PublishError::malformed(name, m);
    let layout: serde_json::Value = serde_json::from_slice(&files.read(name, "oci-layout")?)
        .map_err(|e| malformed(format!("oci-layout: {e}")))?;
    if layout.get("imageLayoutVersion").is_none() {
        return Err(malformed("oci-layout has no imageLayoutVersion".into()));
    }
    let index: ImageIndex = serde_json::from_slice(&files.read(name, "index.json")?)
        .map_err(|e| malformed(format!("index.json: {e}")))?;
    let root = select(name, index.manifests(), reference)?;
    let root = BlobRef {
        media_type: root.media_type().to_string(),
        digest: root
            .digest()
            .to_string()
            .parse()
            .map_err(|e| malformed(format!("index.json: {e}")))?,
        size: root.size(),
    };

    let blobs = files
        .list("blobs/sha256")
        .into_iter()
        .filter_map(|path| {
            let digest = format!("sha256:{}", path.rsplit('/').next()?)
                .parse()
                .ok()?;
            Some((digest, files.segment(&path)?))
        })
        .collect();
    Ok((root, blobs, HashMap::new()))
}

/// The one manifest `index.json` names, or the one whose ref name is `reference`.
fn select<'a>(
    name: &str,
    manifests: &'a [Descriptor],
    reference: Option<&str>,
) -> Result<&'a Descriptor, PublishError> {
    let ref_name =
        |d: &Descriptor, key: &str| d.annotations().as_ref().and_then(|a| a.get(key).cloned());
    let candidates: Vec<&Descriptor> = match reference {
        None => manifests.iter().collect(),
        Some(wanted) => manifests
            .iter()
            .filter(|d| {
                ref_name(d, REF_NAME).as_deref() == Some(wanted)
                    || ref_name(d, CONTAINERD_NAME)
                        .is_some_and(|n| n == wanted || n.ends_with(&format!("/{wanted}")))
            })
            .collect(),
    };
    match candidates.as_slice() {
        [one] => Ok(one),
        [] => Err(PublishError::source(
            name,
            match reference {
                Some(r) => format!("the layout has no image named {r:?}"),
                None => "the layout's index.json lists no image".into(),
            },
        )),
        many => {
            let names: Vec<String> = many
                .iter()
                .map(|d| ref_name(d, REF_NAME).unwrap_or_else(|| d.digest().to_string()))
                .collect();
            Err(PublishError::source(
                name,
                format!(
                    "the layout holds {} images ({}); pick one with oci:PATH:REF",
                    many.len(),
                    names.join(", ")
                ),
            ))
        }
    }
}
