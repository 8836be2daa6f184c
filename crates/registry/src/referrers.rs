//! `GET /v2/<name>/referrers/<digest>` (OCI 1.1): an image index of the manifests
//! whose `subject` is the digest, from the descriptors the publisher records beside
//! them; `artifactType` filters.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_core::media_type::OCI_INDEX;
use berth_core::{Digest, Repository, layout};
use futures::{StreamExt, TryStreamExt, stream};
use serde_json::{Value, json};

use crate::Registry;
use crate::error::RegistryError;

const MAX_REFERRERS: usize = 1000;
const FETCHES_AT_ONCE: usize = 8;

pub async fn serve(
    registry: &Registry,
    name: &Repository,
    subject: &Digest,
    query: &[(String, String)],
) -> Result<Response, RegistryError> {
    let artifact_type = query
        .iter()
        .find(|(k, _)| k == "artifactType")
        .map(|(_, v)| v.as_str());
    let keys = registry
        .store
        .list(
            &layout::referrers_prefix(name, subject),
            None,
            MAX_REFERRERS,
        )
        .await?;
    let descriptors: Vec<Value> = stream::iter(keys)
        .map(|key| async move { registry.store.get(&key).await })
        .buffered(FETCHES_AT_ONCE)
        .try_filter_map(|object| async move {
            Ok(object.and_then(|o| serde_json::from_slice::<Value>(&o.body).ok()))
        })
        .try_collect()
        .await?;
    let manifests: Vec<Value> = descriptors
        .into_iter()
        .filter(|d| artifact_type.is_none_or(|t| d["artifactType"] == t))
        .collect();
    let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut response = (
        [(header::CONTENT_TYPE, HeaderValue::from_static(OCI_INDEX))],
        serde_json::to_vec(&index).expect("index serializes"),
    )
        .into_response();
    if artifact_type.is_some() {
        response.headers_mut().insert(
            "oci-filters-applied",
            HeaderValue::from_static("artifactType"),
        );
    }
    Ok(response)
}
