//! `GET`/`HEAD /v2/<name>/manifests/<reference>`: the stored bytes exactly, with
//! their media type and digest. One store request on a hit.

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use berth_core::layout::{self, DIGEST_METADATA};
use berth_core::media_type::{self, OCI_MANIFEST};
use berth_core::store::Object;
use berth_core::{Digest, Reference, Repository};
use bytes::Bytes;

use crate::error::RegistryError;
use crate::{Registry, listing};

pub const DIGEST_HEADER: &str = "docker-content-digest";

pub async fn serve(
    registry: &Registry,
    name: &Repository,
    reference: &Reference,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, RegistryError> {
    let accept = Accept::from_headers(headers);
    let key = layout::manifest_key(name, reference);
    if head {
        // A HEAD is one store HEAD unless the client needs another form of an index.
        match registry.store.head(&key).await? {
            None => return Err(unknown(registry, name, reference).await),
            Some(meta) => {
                let media_type = meta
                    .content_type
                    .clone()
                    .unwrap_or_else(|| OCI_MANIFEST.into());
                let digest = meta
                    .metadata
                    .get(DIGEST_METADATA)
                    .and_then(|d| d.parse().ok());
                if let (Some(digest), true) = (digest, accept.allows(&media_type)) {
                    return Ok(respond(&media_type, &digest, meta.size, Body::empty()));
                }
            }
        }
    }
    let Some(object) = registry.store.get(&key).await? else {
        return Err(unknown(registry, name, reference).await);
    };
    let (media_type, body) = negotiate(registry, name, object, &accept).await?;
    let digest = Digest::of(&body);
    let size = body.len() as u64;
    let body = if head {
        Body::empty()
    } else {
        Body::from(body)
    };
    Ok(respond(&media_type, &digest, size, body))
}

fn respond(media_type: &str, digest: &Digest, size: u64, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(media_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    let digest_value = HeaderValue::from_str(digest.as_str()).expect("digests are ASCII");
    headers.insert(DIGEST_HEADER, digest_value);
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{digest}\"")).expect("digests are ASCII"),
    );
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    response
}

/// The stored manifest in a form the client accepts: as stored, or for a client that
/// takes no indexes, the index's linux/amd64 image (as distribution does).
async fn negotiate(
    registry: &Registry,
    name: &Repository,
    object: Object,
    accept: &Accept,
) -> Result<(String, Bytes), RegistryError> {
    let media_type = object
        .meta
        .content_type
        .clone()
        .unwrap_or_else(|| OCI_MANIFEST.into());
    if accept.allows(&media_type) {
        return Ok((media_type, object.body));
    }
    let not_accepted = || {
        RegistryError::ManifestUnknown(format!(
            "the manifest is {media_type}, which the client's Accept header does not include"
        ))
    };
    if !media_type::is_index(&media_type) {
        return Err(not_accepted());
    }
    let child = default_platform_child(&object.body).ok_or_else(not_accepted)?;
    let child_object = registry
        .store
        .get(&layout::manifest_digest_key(name, &child))
        .await?
        .ok_or_else(not_accepted)?;
    let child_type = child_object
        .meta
        .content_type
        .unwrap_or_else(|| OCI_MANIFEST.into());
    if !accept.allows(&child_type) {
        return Err(not_accepted());
    }
    Ok((child_type, child_object.body))
}

/// The linux/amd64 entry of an index, if any.
fn default_platform_child(index: &[u8]) -> Option<Digest> {
    let index: serde_json::Value = serde_json::from_slice(index).ok()?;
    index["manifests"].as_array()?.iter().find_map(|m| {
        let platform = &m["platform"];
        (platform["os"] == "linux" && platform["architecture"] == "amd64")
            .then(|| m["digest"].as_str()?.parse().ok())
            .flatten()
    })
}

/// Tells an unknown manifest of a known repository from an unknown repository; runs
/// only on a miss, so hits stay one request.
async fn unknown(registry: &Registry, name: &Repository, reference: &Reference) -> RegistryError {
    match listing::repository_exists(registry, name).await {
        Ok(true) => RegistryError::ManifestUnknown(format!("{name}:{reference}")),
        Ok(false) => RegistryError::NameUnknown(name.to_string()),
        Err(e) => e,
    }
}

/// The media types a client accepts; no `Accept` header accepts anything.
pub struct Accept(Vec<String>);

impl Accept {
    pub fn from_headers(headers: &HeaderMap) -> Self {
        Accept(
            headers
                .get_all(header::ACCEPT)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(|t| {
                    t.split(';')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .to_ascii_lowercase()
                })
                .filter(|t| !t.is_empty())
                .collect(),
        )
    }

    pub fn allows(&self, media_type: &str) -> bool {
        self.0.is_empty()
            || self
                .0
                .iter()
                .any(|t| t == media_type || t == "*/*" || t == "application/*")
    }
}
