//! Registry errors and the one place they become OCI error responses.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use berth_core::reference::ParseError;
use berth_core::store::StoreError;
use serde_json::json;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{0}")]
    NameInvalid(String),
    #[error("{0}")]
    TagInvalid(String),
    #[error("{0}")]
    DigestInvalid(String),
    #[error("{0}")]
    PaginationInvalid(String),
    #[error("manifest unknown: {0}")]
    ManifestUnknown(String),
    #[error("repository name not known to registry: {0}")]
    NameUnknown(String),
    #[error("blob unknown to registry: {0}")]
    BlobUnknown(String),
    #[error("this registry is read-only: publish with `berth push`")]
    Unsupported,
    #[error("not found")]
    NotFound,
    #[error("requested range not satisfiable")]
    RangeNotSatisfiable { size: u64 },
    #[error("{message}")]
    Unauthorized { challenge: String, message: String },
    #[error("{0}")]
    Credentials(String),
    #[error("{0}")]
    TokenRequest(String),
    #[error("storage is unavailable, try again")]
    Store(#[from] StoreError),
}

impl From<ParseError> for RegistryError {
    fn from(error: ParseError) -> Self {
        match error {
            ParseError::Repository(..) => RegistryError::NameInvalid(error.to_string()),
            ParseError::Tag(..) => RegistryError::TagInvalid(error.to_string()),
            ParseError::Digest(..) => RegistryError::DigestInvalid(error.to_string()),
        }
    }
}

impl RegistryError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            RegistryError::NameInvalid(_) => (StatusCode::BAD_REQUEST, "NAME_INVALID"),
            RegistryError::TagInvalid(_) => (StatusCode::BAD_REQUEST, "TAG_INVALID"),
            RegistryError::DigestInvalid(_) => (StatusCode::BAD_REQUEST, "DIGEST_INVALID"),
            RegistryError::PaginationInvalid(_) => {
                (StatusCode::BAD_REQUEST, "PAGINATION_NUMBER_INVALID")
            }
            RegistryError::ManifestUnknown(_) => (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN"),
            RegistryError::NameUnknown(_) => (StatusCode::NOT_FOUND, "NAME_UNKNOWN"),
            RegistryError::BlobUnknown(_) => (StatusCode::NOT_FOUND, "BLOB_UNKNOWN"),
            RegistryError::Unsupported => (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED"),
            RegistryError::NotFound => (StatusCode::NOT_FOUND, "NOT_FOUND"),
            RegistryError::RangeNotSatisfiable { .. } => {
                (StatusCode::RANGE_NOT_SATISFIABLE, "RANGE_INVALID")
            }
            RegistryError::Unauthorized { .. } | RegistryError::Credentials(_) => {
                (StatusCode::UNAUTHORIZED, "UNAUTHORIZED")
            }
            RegistryError::TokenRequest(_) => (StatusCode::BAD_REQUEST, "UNSUPPORTED"),
            RegistryError::Store(_) => (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
        }
    }
}

impl IntoResponse for RegistryError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let RegistryError::Store(error) = &self {
            // Store messages name the operation and key, never credentials or URLs.
            tracing::error!(%error, "store request failed");
        }
        let body =
            json!({ "errors": [{ "code": code, "message": self.to_string(), "detail": null }] });
        let mut response = (status, Json(body)).into_response();
        let headers = response.headers_mut();
        match &self {
            // Throttled, failing or too slow, the store is worth another try soon:
            // a timeout is often the SDK's backoff after throttling running out.
            RegistryError::Store(_) => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            RegistryError::RangeNotSatisfiable { size } => {
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            RegistryError::Unsupported => {
                headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            }
            RegistryError::Unauthorized { challenge, .. } => {
                if let Ok(value) = HeaderValue::from_str(challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, value);
                }
            }
            _ => {}
        }
        response
    }
}
