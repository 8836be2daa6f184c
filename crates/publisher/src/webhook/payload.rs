//! The JSON a hook receives: Docker Hub's push payload (`push_data`, `repository`),
//! so receivers written for Docker Hub work unchanged, plus the manifest's `digest`
//! and `media_type`. `docs/webhooks.md` shows an example.

use berth_core::Repository;
use hmac::{Hmac, KeyInit, Mac};
use serde::Serialize;
use sha2::Sha256;

use crate::publish::PublishReport;

/// Header carrying `sha256=<hex HMAC-SHA256 of the body>` when the hook has a secret.
pub const SIGNATURE_HEADER: &str = "X-Berth-Signature-256";
/// Header carrying a unique id per delivery (a UUID), the same on every retry.
pub const DELIVERY_HEADER: &str = "X-Berth-Delivery";

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Payload {
    pub push_data: PushData,
    pub repository: RepositoryData,
    /// Digest of the pushed manifest or index.
    pub digest: String,
    pub media_type: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PushData {
    /// Unix seconds.
    pub pushed_at: u64,
    pub pusher: String,
    pub tag: String,
}

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RepositoryData {
    /// The full name, `acme/web`.
    pub repo_name: String,
    /// The first path component (the user or organisation); empty for `web`.
    pub namespace: String,
    /// The rest of the name.
    pub name: String,
    /// `<public URL>/<repo_name>`, or empty when no public URL is configured.
    pub repo_url: String,
    /// Always `Active`, as on Docker Hub.
    pub status: &'static str,
}

impl Payload {
    pub fn new(
        repository: &Repository,
        tag: &str,
        report: &PublishReport,
        pushed_at: u64,
        pusher: &str,
        public_url: Option<&str>,
    ) -> Self {
        let full = repository.as_str();
        let (namespace, name) = full.split_once('/').unwrap_or(("", full));
        Payload {
            push_data: PushData {
                pushed_at,
                pusher: pusher.to_owned(),
                tag: tag.to_owned(),
            },
            repository: RepositoryData {
                repo_name: full.to_owned(),
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                repo_url: public_url
                    .map(|base| format!("{}/{full}", base.trim_end_matches('/')))
                    .unwrap_or_default(),
                status: "Active",
            },
            digest: report.digest.clone(),
            media_type: report.media_type.clone(),
        }
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC accepts keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_matches_rfc_4231_case_2() {
        // RFC 4231 test case 2: key "Jefe".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn names_split_into_namespace_and_name() {
        let repository: Repository = "acme/tools/web".parse().unwrap();
        let tags = ["v1".parse().unwrap()];
        let digest = "sha256:0000000000000000000000000000000000000000000000000000000000000000";
        let report = PublishReport::new(&repository, &tags, &digest.parse().unwrap(), "m");
        let payload = Payload::new(&repository, "v1", &report, 7, "ci", Some("https://r.io/"));
        assert_eq!(payload.repository.namespace, "acme");
        assert_eq!(payload.repository.name, "tools/web");
        assert_eq!(payload.repository.repo_url, "https://r.io/acme/tools/web");
        let single: Repository = "web".parse().unwrap();
        let payload = Payload::new(&single, "v1", &report, 7, "ci", None);
        assert_eq!(
            (
                payload.repository.namespace.as_str(),
                payload.repository.name.as_str()
            ),
            ("", "web")
        );
        assert_eq!(payload.repository.repo_url, "");
    }
}
