//! A remote Distribution-API registry as a source (`berth copy docker://HOST/NAME:TAG`):
//! manifests are read whole into memory (verified against their digests), blobs are
//! fetched on demand by [`download::Downloads`], so a publish downloads only what the
//! store lacks. The registry client is `oci-client`; it answers Bearer (token) and
//! Basic challenges with the user's docker credentials ([`credentials`]).

mod credentials;
mod download;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use berth_core::Digest;
use berth_core::media_type;
use bytes::Bytes;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};

pub use download::{DownloadStats, Downloads};

use super::{BlobRef, Bundle, MAX_DOCUMENT_SIZE};
use crate::error::PublishError;
use crate::platform::Platform;

/// The scheme that marks a registry source.
pub const SCHEME: &str = "docker://";

/// Manifest forms asked for: both registries' single manifests and indexes.
const ACCEPTED: &[&str] = &[
    media_type::OCI_INDEX,
    media_type::OCI_MANIFEST,
    media_type::DOCKER_MANIFEST_LIST,
    media_type::DOCKER_MANIFEST,
];

#[derive(Debug, Clone, Default)]
pub struct RemoteOptions {
    /// Copy only this platform's image out of an index.
    pub platform: Option<Platform>,
    /// Plain HTTP even for a registry that is not on this machine.
    pub plain_http: bool,
    /// Where downloads are kept until they are in the store.
    pub cache_dir: PathBuf,
}

/// Reads the root manifest (and, for an index, its children or the chosen
/// platform's image) from the registry `spec` names.
pub async fn open(
    spec: &str,
    options: &RemoteOptions,
) -> Result<(Bundle, Arc<Downloads>), PublishError> {
    let image = parse(spec)?;
    let registry = image.resolve_registry().to_owned();
    let auth = credentials::for_registry(spec, image.registry())?;
    let origin = Origin {
        spec: spec.to_owned(),
        registry: image.registry().to_owned(),
        with_credentials: !matches!(auth, RegistryAuth::Anonymous),
        plain_http: options.plain_http || is_loopback(&registry),
    };
    let client = Client::new(ClientConfig {
        protocol: if origin.plain_http {
            ClientProtocol::Http
        } else {
            ClientProtocol::Https
        },
        ..ClientConfig::default()
    });
    // Asked first so that wrong credentials fail here, with the registry's reason.
    client
        .auth(&image, &auth, RegistryOperation::Pull)
        .await
        .map_err(|e| origin.request_error(&format!("logging in to {registry}"), e))?;

    let reader = Manifests {
        client: &client,
        image: &image,
        auth: &auth,
        origin: &origin,
        fetched: HashMap::new(),
    };
    let (root, synthesized) = reader.read(options.platform.as_ref()).await?;
    let downloads = Arc::new(Downloads::new(
        client.clone(),
        image.clone(),
        origin.clone(),
        &options.cache_dir,
    ));
    downloads.prune().await;
    Ok((
        Bundle::remote(root, synthesized, downloads.clone()),
        downloads,
    ))
}

/// `docker://[HOST[:PORT]/]NAME[:TAG|@DIGEST]`, named as `docker pull` names images.
fn parse(spec: &str) -> Result<Reference, PublishError> {
    let name = spec.strip_prefix(SCHEME).ok_or_else(|| {
        PublishError::source(spec, format!("a registry source starts with {SCHEME}"))
    })?;
    // `docker://HOST:PORT` alone would read as Docker Hub image HOST, tag PORT.
    if !name.contains('/') && name.split(':').next().is_some_and(is_loopback_or_ip) {
        return Err(PublishError::source(
            spec,
            format!("name the image on that registry: {SCHEME}{name}/NAME:TAG"),
        ));
    }
    name.parse().map_err(|e| {
        PublishError::source(
            spec,
            format!("not an image reference ({e}): use {SCHEME}HOST/NAME:TAG or {SCHEME}HOST/NAME@sha256:DIGEST"),
        )
    })
}

/// Docker reaches registries on this machine over plain HTTP without being told to.
fn is_loopback(registry: &str) -> bool {
    let host = match registry.rsplit_once(':') {
        Some((host, port)) if port.chars().all(|c| c.is_ascii_digit()) => host,
        _ => registry,
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn is_loopback_or_ip(host: &str) -> bool {
    is_loopback(host) || host.parse::<std::net::IpAddr>().is_ok()
}

/// Reads manifests from the source repository, each verified against its digest.
struct Manifests<'a> {
    client: &'a Client,
    image: &'a Reference,
    auth: &'a RegistryAuth,
    origin: &'a Origin,
    fetched: HashMap<Digest, Bytes>,
}

impl Manifests<'_> {
    /// The root to publish and everything read to get there, by digest.
    async fn read(
        mut self,
        platform: Option<&Platform>,
    ) -> Result<(BlobRef, HashMap<Digest, Bytes>), PublishError> {
        let mut root = self.manifest(self.image.clone()).await?;
        if let Some(platform) = platform {
            if media_type::is_index(&root.media_type) {
                let index = self.index(&root)?;
                let child = platform.choose(&index).map_err(|m| self.error(m))?;
                let digest = parse_digest(child.digest().as_ref()).map_err(|m| self.error(m))?;
                root = self.manifest(self.by_digest(&digest)).await?;
            }
            self.check_platform(&root, platform).await?;
        } else {
            self.children(&root).await?;
        }
        Ok((root, self.fetched))
    }

    /// Reads every manifest an index lists, depth first.
    async fn children(&mut self, parent: &BlobRef) -> Result<(), PublishError> {
        if !media_type::is_index(&parent.media_type) {
            return Ok(());
        }
        let index = self.index(parent)?;
        for child in index.manifests() {
            let digest = parse_digest(child.digest().as_ref()).map_err(|m| self.error(m))?;
            if !self.fetched.contains_key(&digest) {
                let child = self.manifest(self.by_digest(&digest)).await?;
                Box::pin(self.children(&child)).await?;
            }
        }
        Ok(())
    }

    /// Fetches one manifest; its descriptor carries the media type it declares.
    async fn manifest(&mut self, reference: Reference) -> Result<BlobRef, PublishError> {
        let (bytes, _) = self
            .client
            .pull_manifest_raw(&reference, self.auth, ACCEPTED)
            .await
            .map_err(|e| {
                self.origin
                    .request_error(&format!("manifest {reference}"), e)
            })?;
        // oci-client checked the bytes against the requested digest, or the
        // registry's digest header; the digest is computed here either way.
        let digest = Digest::of(&bytes);
        if bytes.len() as u64 > MAX_DOCUMENT_SIZE {
            return Err(self.error(format!("manifest {digest} is larger than 16 MiB")));
        }
        let blob = BlobRef {
            media_type: declared_media_type(&bytes),
            digest: digest.clone(),
            size: bytes.len() as u64,
        };
        self.fetched.insert(digest, bytes);
        Ok(blob)
    }

    fn index(&self, blob: &BlobRef) -> Result<ImageIndex, PublishError> {
        serde_json::from_slice(&self.fetched[&blob.digest]).map_err(|e| {
            PublishError::InvalidManifest {
                digest: blob.digest.clone(),
                message: e.to_string(),
            }
        })
    }

    /// Refuses an image built for another platform than the one asked for, as
    /// `docker pull --platform` does; its config is read (and kept) to tell.
    async fn check_platform(
        &mut self,
        root: &BlobRef,
        platform: &Platform,
    ) -> Result<(), PublishError> {
        let invalid = |message: String| PublishError::InvalidManifest {
            digest: root.digest.clone(),
            message,
        };
        let manifest: ImageManifest = serde_json::from_slice(&self.fetched[&root.digest])
            .map_err(|e| invalid(e.to_string()))?;
        let config = manifest.config();
        if config.size() > MAX_DOCUMENT_SIZE {
            return Err(invalid("its config is larger than 16 MiB".into()));
        }
        let digest = parse_digest(config.digest().as_ref()).map_err(invalid)?;
        let mut bytes = Vec::new();
        self.client
            .pull_blob(self.image, digest.as_str(), &mut bytes)
            .await
            .map_err(|e| self.origin.request_error(&format!("config {digest}"), e))?;
        if Digest::of(&bytes) != digest {
            return Err(PublishError::ManifestMismatch { digest });
        }
        let parsed: ImageConfiguration =
            serde_json::from_slice(&bytes).map_err(|e| invalid(format!("config: {e}")))?;
        let found = Platform::of_config(&parsed);
        if !platform.matches(&found) {
            return Err(self.error(format!(
                "the image is for {found}, not {platform}; leave out --platform to copy it"
            )));
        }
        self.fetched.insert(digest, Bytes::from(bytes));
        Ok(())
    }

    fn by_digest(&self, digest: &Digest) -> Reference {
        Reference::with_digest(
            self.image.registry().to_owned(),
            self.image.repository().to_owned(),
            digest.to_string(),
        )
    }

    fn error(&self, message: impl Into<String>) -> PublishError {
        self.origin.error(message)
    }
}

/// The media type a manifest declares; one without (OCI allows that) is told
/// apart by its shape, as the publish plan does.
fn declared_media_type(bytes: &[u8]) -> String {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(bytes) else {
        return String::new();
    };
    match value.get("mediaType").and_then(|t| t.as_str()) {
        Some(declared) => declared.to_owned(),
        None if value.get("manifests").is_some() => media_type::OCI_INDEX.to_owned(),
        None => media_type::OCI_MANIFEST.to_owned(),
    }
}

fn parse_digest(text: &str) -> Result<Digest, String> {
    text.parse()
        .map_err(|e: berth_core::reference::ParseError| e.to_string())
}

/// The source as errors name it: which registry, and whether the user's
/// credentials were offered, which decides what a refusal means.
#[derive(Debug, Clone)]
pub(super) struct Origin {
    pub spec: String,
    registry: String,
    with_credentials: bool,
    plain_http: bool,
}

impl Origin {
    /// The error line for this source. URLs lose their query strings: a blob's may
    /// be a presigned S3 URL, a bearer credential that must not reach logs.
    pub fn error(&self, message: impl Into<String>) -> PublishError {
        PublishError::source(&self.spec, without_queries(&message.into()))
    }

    /// One line for a failed registry request, saying what to do where it can.
    pub fn request_error(&self, what: &str, error: OciDistributionError) -> PublishError {
        let registry = &self.registry;
        let message = match &error {
            OciDistributionError::AuthenticationFailure(reason) => format!(
                "{what}: the registry refused the docker config's credentials ({}): run `docker login {registry}` again",
                registry_message(reason)
            ),
            OciDistributionError::UnauthorizedError { .. } if self.with_credentials => format!(
                "{what}: unauthorized with the docker config's credentials for {registry}: they may be wrong (run `docker login {registry}` again), or this user may not pull this name"
            ),
            OciDistributionError::UnauthorizedError { .. } => format!(
                "{what}: unauthorized, and the docker config has no credentials for {registry}: run `docker login {registry}` first, or check the name"
            ),
            OciDistributionError::RegistryError { envelope, .. } => {
                let codes: Vec<String> = envelope
                    .errors
                    .iter()
                    .map(|e| format!("{} ({:?})", e.message, e.code))
                    .collect();
                format!("{what}: {}", codes.join("; "))
            }
            OciDistributionError::ServerError { code, message, .. } => {
                format!(
                    "{what}: the registry answered {code} {}",
                    registry_message(message)
                )
            }
            OciDistributionError::RequestError(e) if self.plain_http => {
                format!("{what}: {} (is {registry} reachable?)", error_chain(e))
            }
            OciDistributionError::RequestError(e) => format!(
                "{what}: {} (is {registry} reachable? --plain-http reaches one without TLS)",
                error_chain(e)
            ),
            other => format!("{what}: {other}"),
        };
        self.error(message)
    }
}

/// The messages of an OCI error body, else its first line, kept short.
fn registry_message(body: &str) -> String {
    let from_json = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            let messages: Vec<String> = v
                .get("errors")?
                .as_array()?
                .iter()
                .filter_map(|e| e.get("message")?.as_str().map(str::to_owned))
                .collect();
            (!messages.is_empty()).then(|| messages.join("; "))
        });
    let text =
        from_json.unwrap_or_else(|| body.lines().next().unwrap_or_default().trim().to_owned());
    text.chars().take(200).collect()
}

/// `text` with the query string of every URL in it replaced by `?…`.
fn without_queries(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("://") {
        let (before, url) = rest.split_at(start);
        out.push_str(before);
        let end = url
            .find(|c: char| c.is_whitespace() || c == ')' || c == '"')
            .unwrap_or(url.len());
        match url[..end].find('?') {
            Some(query) => {
                out.push_str(&url[..query]);
                out.push_str("?…");
            }
            None => out.push_str(&url[..end]),
        }
        rest = &url[end..];
    }
    out.push_str(rest);
    out
}

/// An error and its causes on one line (reqwest hides the useful part in a source).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_registries_are_recognised() {
        for local in [
            "127.0.0.1:5000",
            "localhost:5000",
            "localhost",
            "[::1]:5000",
        ] {
            assert!(is_loopback(local), "{local}");
        }
        for remote in ["ghcr.io", "10.0.0.1:5000", "registry.example:443"] {
            assert!(!is_loopback(remote), "{remote}");
        }
    }

    #[test]
    fn error_lines_never_carry_presigned_queries() {
        let line = without_queries(
            "error decoding response body for url (http://localhost:3900/b/v2/x?X-Amz-Signature=abc&X-Amz-Credential=k) then http://h/p",
        );
        assert_eq!(
            line,
            "error decoding response body for url (http://localhost:3900/b/v2/x?…) then http://h/p"
        );
    }

    #[test]
    fn sources_need_the_scheme_and_a_valid_reference() {
        assert!(parse("127.0.0.1:5000/acme/web:v1").is_err());
        assert!(parse("docker://127.0.0.1:5000/acme/web@sha256:abc").is_err());
        assert!(parse("docker://127.0.0.1:5000").is_err());
        let image = parse("docker://127.0.0.1:5000/acme/web:v1").unwrap();
        assert_eq!(image.registry(), "127.0.0.1:5000");
        assert_eq!(image.repository(), "acme/web");
        assert_eq!(image.tag(), Some("v1"));
    }
}
