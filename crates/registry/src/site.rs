//! The catalog site, as the publisher wrote it into the store (`index.html`,
//! `site/index.json`, `r/<name>/index.html`): streamed read-only at `/` and the site's
//! paths, so `berth serve` and the function show the same pages as a static host. The
//! site holds only public repositories, so no authorization applies; every other
//! path is 404.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Redirect, Response};
use berth_core::layout;

use crate::{Registry, RegistryError, read_only};

const DEFAULT_TYPE: &str = "text/html; charset=utf-8";

pub async fn serve(
    State(registry): State<std::sync::Arc<Registry>>,
    method: Method,
    uri: Uri,
) -> Result<Response, RegistryError> {
    read_only(&method)?;
    let path = uri.path().trim_start_matches('/');
    let Some(key) = layout::site_key_for_path(path) else {
        // `r/acme/web` names a page whose relative links need the trailing slash.
        if layout::site_key_for_path(&format!("{path}/")).is_some() {
            return Ok(Redirect::permanent(&format!("/{path}/")).into_response());
        }
        return Err(RegistryError::NotFound);
    };
    let (meta, body) = if method == Method::HEAD {
        let meta = registry.store.head(&key).await?;
        (meta, Body::empty())
    } else {
        match registry.store.read(&key, None).await? {
            Some(reader) => (Some(reader.meta), Body::from_stream(reader.body)),
            None => (None, Body::empty()),
        }
    };
    let meta = meta.ok_or(RegistryError::NotFound)?;
    let content_type = meta
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static(DEFAULT_TYPE));
    let mut response = Response::new(body);
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, content_type);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(meta.size));
    // Pages change with every publish; let caches revalidate quickly.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("max-age=60"),
    );
    Ok(response)
}
