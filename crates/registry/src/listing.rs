//! `GET /v2/<name>/tags/list` and `GET /v2/_catalog`: sorted, paginated with `n` and
//! `last`, with a `Link: <...>; rel="next"` header while more remain.

use axum::Json;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use berth_core::{Repository, Tag, catalog, layout};
use serde_json::json;

use crate::Registry;
use crate::auth::Caller;
use crate::error::RegistryError;

/// Page size when the client gives no `n`, and the most it may ask for.
pub const MAX_PAGE: usize = 1000;

pub async fn tags(
    registry: &Registry,
    name: &Repository,
    query: &[(String, String)],
) -> Result<Response, RegistryError> {
    let (n, last) = page(query)?;
    let last: Option<Tag> = last.map(|l| l.parse()).transpose()?;
    let mut tags = catalog::tags(&*registry.store, name, last.as_ref(), n + 1).await?;
    // An empty page is a repository without (further) tags or no repository: only
    // then is the marker read.
    if tags.is_empty() && !repository_exists(registry, name).await? {
        return Err(RegistryError::NameUnknown(name.to_string()));
    }
    let more = tags.len() > n;
    tags.truncate(n);
    let next = more
        .then(|| tags.last())
        .flatten()
        .map(|last| format!("/v2/{name}/tags/list?n={n}&last={last}"));
    let body =
        json!({ "name": name.as_str(), "tags": tags.iter().map(Tag::as_str).collect::<Vec<_>>() });
    Ok(with_next(Json(body).into_response(), next))
}

/// The catalog lists only repositories the caller may pull; pages are filled by
/// listing further until `n` visible ones are found.
pub async fn catalog(
    registry: &Registry,
    query: &[(String, String)],
    caller: &Caller,
) -> Result<Response, RegistryError> {
    let (n, last) = page(query)?;
    let mut cursor: Option<Repository> = last.map(|l| l.parse()).transpose()?;
    let mut repositories = Vec::new();
    while repositories.len() <= n {
        let page = catalog::repositories(&*registry.store, cursor.as_ref(), n + 1).await?;
        let exhausted = page.len() <= n;
        cursor = page.last().cloned();
        repositories.extend(page.into_iter().filter(|r| caller.may_list(r)));
        if exhausted {
            break;
        }
    }
    let more = repositories.len() > n;
    repositories.truncate(n);
    let next = more
        .then(|| repositories.last())
        .flatten()
        .map(|last| format!("/v2/_catalog?n={n}&last={last}"));
    let body =
        json!({ "repositories": repositories.iter().map(Repository::as_str).collect::<Vec<_>>() });
    Ok(with_next(Json(body).into_response(), next))
}

pub async fn repository_exists(
    registry: &Registry,
    name: &Repository,
) -> Result<bool, RegistryError> {
    Ok(registry
        .store
        .head(&layout::repository_marker_key(name))
        .await?
        .is_some())
}

/// `n` (bounded by [`MAX_PAGE`]) and `last` from the query string.
fn page(query: &[(String, String)]) -> Result<(usize, Option<&str>), RegistryError> {
    let mut n = MAX_PAGE;
    let mut last = None;
    for (key, value) in query {
        match key.as_str() {
            "n" => {
                n = value.parse::<usize>().map_err(|_| {
                    RegistryError::PaginationInvalid(format!("n={value} is not a number"))
                })?;
                n = n.min(MAX_PAGE);
            }
            "last" if !value.is_empty() => last = Some(value.as_str()),
            _ => {}
        }
    }
    Ok((n, last))
}

fn with_next(mut response: Response, next: Option<String>) -> Response {
    if let Some(next) = next
        && let Ok(value) = HeaderValue::from_str(&format!("<{next}>; rel=\"next\""))
    {
        response.headers_mut().insert(header::LINK, value);
    }
    response
}
