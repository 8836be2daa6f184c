//! The registry function: the OCI Distribution read API over a berth store.
//!
//! One axum router serves both the local server (`berth serve`, `berth-registry`)
//! and AWS Lambda. It never writes to the store. Requests are parsed at the edge
//! ([`route`]) into validated names and references, so no crafted path reaches a
//! store key; handlers ([`manifests`], [`blobs`], [`listing`], [`referrers`]) are
//! short and return [`RegistryError`], which maps to OCI error JSON in one place.
//! Outside `/v2/`, [`site`] serves the catalog site the publisher wrote.

pub mod auth;
pub mod blobs;
pub mod config;
pub mod error;
pub mod listing;
pub mod manifests;
pub mod membership;
pub mod referrers;
pub mod route;
pub mod server;
pub mod site;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use berth_core::store::Store;

pub use config::ServeArgs;
pub use error::RegistryError;
use route::Route;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct Registry {
    pub store: Arc<dyn Store>,
    /// Lifetime of presigned blob URLs.
    pub presign_expiry: Duration,
    pub auth: auth::Auth,
    pub membership: membership::MembershipCache,
}

pub const API_VERSION_HEADER: &str = "docker-distribution-api-version";

/// The router: `/v2/...` is the Distribution API, `/`, `/site/index.json` and
/// `/r/...` the catalog site; anything else is 404.
pub fn router(registry: Registry) -> Router {
    Router::new()
        .route("/", any(site::serve))
        .route("/index.html", any(site::serve))
        .route("/site/index.json", any(site::serve))
        .route("/r/{*rest}", any(site::serve))
        .route("/v2", any(api_root))
        .route("/v2/", any(api_root))
        .route("/v2/{*rest}", any(dispatch))
        .route(
            "/token",
            get(auth::endpoint::get).post(auth::endpoint::post),
        )
        .fallback(|| async { RegistryError::NotFound })
        .layer(axum::middleware::map_response(add_api_version))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(Arc::new(registry))
}

async fn add_api_version(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(API_VERSION_HEADER, HeaderValue::from_static("registry/2.0"));
    response
}

async fn api_root(
    State(registry): State<Arc<Registry>>,
    method: Method,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    read_only(&method)?;
    registry.auth.authorize_root(&headers).await?;
    Ok(axum::Json(serde_json::json!({})).into_response())
}

/// Only GET and HEAD exist: publishing goes straight to the bucket.
fn read_only(method: &Method) -> Result<(), RegistryError> {
    if method == Method::GET || method == Method::HEAD {
        Ok(())
    } else {
        Err(RegistryError::Unsupported)
    }
}

async fn dispatch(
    State(registry): State<Arc<Registry>>,
    method: Method,
    Path(rest): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, RegistryError> {
    read_only(&method)?;
    let head = method == Method::HEAD;
    let route = Route::parse(&rest)?;
    if let Some(repository) = route.repository() {
        registry.auth.authorize_pull(&headers, repository).await?;
    }
    match route {
        Route::Manifest(name, reference) => {
            manifests::serve(&registry, &name, &reference, &headers, head).await
        }
        Route::Blob(name, digest) => blobs::serve(&registry, &name, &digest, &headers, head).await,
        Route::Tags(name) => listing::tags(&registry, &name, &query).await,
        Route::Catalog => {
            let caller = registry
                .auth
                .caller(&headers, Some("registry:catalog:*".into()))
                .await?;
            listing::catalog(&registry, &query, &caller).await
        }
        Route::Referrers(name, digest) => referrers::serve(&registry, &name, &digest, &query).await,
    }
}
