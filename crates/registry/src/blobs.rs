//! `GET`/`HEAD /v2/<name>/blobs/<digest>`. A repository serves only blobs it holds
//! (its own object under its own prefix), so knowing a digest opens nothing of
//! another repository. GET redirects to a presigned URL when the store can sign one
//! (bytes never flow through the function); the directory store streams, with Range.

use std::ops::Range;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use berth_core::layout;
use berth_core::{Digest, Repository};

use crate::Registry;
use crate::error::RegistryError;
use crate::manifests::DIGEST_HEADER;

pub async fn serve(
    registry: &Registry,
    name: &Repository,
    digest: &Digest,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response, RegistryError> {
    let key = layout::blob_key(name, digest);
    // The membership check, and for HEAD the whole answer: never redirected, since a
    // HEAD on a presigned GET URL is refused by S3.
    let size = match registry.membership.get(name, digest) {
        Some(size) => size,
        None => {
            let meta = registry
                .store
                .head(&key)
                .await?
                .ok_or_else(|| RegistryError::BlobUnknown(format!("{name}@{digest}")))?;
            registry.membership.insert(name, digest, meta.size);
            meta.size
        }
    };
    if head {
        return Ok(blob_response(StatusCode::OK, digest, size, Body::empty()));
    }
    if let Some(url) = registry
        .store
        .presign_get(&key, registry.presign_expiry)
        .await?
    {
        let mut response = Response::new(Body::empty());
        *response.status_mut() = StatusCode::TEMPORARY_REDIRECT;
        let location = HeaderValue::from_str(&url).map_err(|_| {
            RegistryError::BlobUnknown(format!("{name}@{digest}: unusable presigned URL"))
        })?;
        response.headers_mut().insert(header::LOCATION, location);
        response.headers_mut().insert(
            DIGEST_HEADER,
            HeaderValue::from_str(digest.as_str()).expect("digests are ASCII"),
        );
        return Ok(response);
    }

    let range = requested_range(headers, size)?;
    let reader = registry
        .store
        .read(&key, range.clone())
        .await?
        .ok_or_else(|| RegistryError::BlobUnknown(format!("{name}@{digest}")))?;
    let body = Body::from_stream(reader.body);
    Ok(match range {
        None => blob_response(StatusCode::OK, digest, size, body),
        Some(range) => {
            let mut response = blob_response(
                StatusCode::PARTIAL_CONTENT,
                digest,
                range.end - range.start,
                body,
            );
            let content_range = format!("bytes {}-{}/{}", range.start, range.end - 1, size);
            response.headers_mut().insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&content_range).expect("ASCII"),
            );
            response
        }
    })
}

fn blob_response(status: StatusCode, digest: &Digest, len: u64, body: Body) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    headers.insert(
        DIGEST_HEADER,
        HeaderValue::from_str(digest.as_str()).expect("digests are ASCII"),
    );
    headers.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{digest}\"")).expect("digests are ASCII"),
    );
    response
}

/// A single `Range: bytes=...` resolved against the blob's size. Unparseable ranges
/// are ignored (whole blob, as RFC 9110 allows); unsatisfiable ones are 416.
fn requested_range(headers: &HeaderMap, size: u64) -> Result<Option<Range<u64>>, RegistryError> {
    let Some(value) = headers.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return Ok(None);
    };
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((start, end)) = spec.split_once('-') else {
        return Ok(None);
    };
    let unsatisfiable = RegistryError::RangeNotSatisfiable { size };
    let range = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let Ok(n) = suffix.parse::<u64>() else {
                return Ok(None);
            };
            if n == 0 {
                return Err(unsatisfiable);
            }
            size.saturating_sub(n)..size
        }
        (start, end) => {
            let Ok(start) = start.parse::<u64>() else {
                return Ok(None);
            };
            let end = match end {
                "" => size,
                end => match end.parse::<u64>() {
                    Ok(end) if end >= start => (end + 1).min(size),
                    _ => return Ok(None),
                },
            };
            if start >= size {
                return Err(unsatisfiable);
            }
            start..end
        }
    };
    Ok(Some(range))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(value: &str, size: u64) -> Result<Option<Range<u64>>, RegistryError> {
        let mut headers = HeaderMap::new();
        headers.insert(header::RANGE, HeaderValue::from_str(value).unwrap());
        requested_range(&headers, size)
    }

    #[test]
    fn resolves_byte_ranges() {
        assert_eq!(range("bytes=0-9", 100).unwrap(), Some(0..10));
        assert_eq!(range("bytes=90-", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=-10", 100).unwrap(), Some(90..100));
        assert_eq!(range("bytes=50-500", 100).unwrap(), Some(50..100));
        assert_eq!(range("bytes=5-1", 100).unwrap(), None);
        assert_eq!(range("items=0-1", 100).unwrap(), None);
        assert!(matches!(
            range("bytes=100-", 100),
            Err(RegistryError::RangeNotSatisfiable { .. })
        ));
    }
}
