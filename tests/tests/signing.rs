//! `berth key generate`, `berth sign` and `berth verify`, judged by an independent
//! verifier: `tests/verify_cosign.py`, written against cosign's documented format
//! with Python's `cryptography`, reading through the registry's HTTP API.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use berth_core::store::WriteMeta;
use berth_core::{Digest, Repository, layout};
use berth_e2e::oci::Layout;
use berth_e2e::server::{Server, http};
use berth_e2e::{Backend, TestStore, both_backends, failure, openssl, openssl_p256_key, success};
use bytes::Bytes;
use serde_json::Value;

const SIMPLE_SIGNING: &str = "application/vnd.dev.cosign.simplesigning.v1+json";

/// Pushes a one-layer image as `repo:v1`; returns its manifest digest.
fn push_image(t: &TestStore, repo: &str, text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path());
    let manifest = layout.image("amd64", text);
    layout.set_index(vec![manifest.clone()]);
    t.push(dir.path().to_str().unwrap(), &format!("{repo}:v1"), &[]);
    manifest["digest"].as_str().unwrap().to_owned()
}

/// `berth key generate --out DIR/NAME`; returns (private, public) paths.
fn generate_key(t: &TestStore, dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let prefix = dir.join(name);
    success(&t.berth(&["key", "generate", "--out", prefix.to_str().unwrap()]));
    (prefix.with_extension("key"), prefix.with_extension("pub"))
}

fn sign(t: &TestStore, image: &str, key: &Path) -> Value {
    let out = t.berth(&["sign", image, "--key", key.to_str().unwrap(), "--json"]);
    serde_json::from_str(&success(&out)).unwrap()
}

fn berth_verify(t: &TestStore, image: &str, key: &Path) -> std::process::Output {
    t.berth(&["verify", image, "--key", key.to_str().unwrap(), "--json"])
}

/// A Python with the `cryptography` package: the one on PATH, else Debian's
/// (`scripts/test` installs python3-cryptography when neither has it).
fn python() -> &'static str {
    static PYTHON: OnceLock<&'static str> = OnceLock::new();
    PYTHON.get_or_init(|| {
        ["python3", "/usr/bin/python3"]
            .into_iter()
            .find(|python| {
                Command::new(python)
                    .args(["-c", "import cryptography"])
                    .output()
                    .is_ok_and(|o| o.status.success())
            })
            .expect(
                "no python3 with the cryptography package: apt-get install python3-cryptography",
            )
    })
}

/// The independent verdict: (verified, the checker's JSON report).
fn independent_verify(server: &Server, repo: &str, reference: &str, key: &Path) -> (bool, Value) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("verify_cosign.py");
    let output = Command::new(python())
        .arg(script)
        .args([&server.url(""), repo, reference, key.to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let report = serde_json::from_slice(&output.stdout)
        .unwrap_or_else(|e| panic!("verifier output is not JSON ({e}); stderr: {stderr}"));
    (output.status.success(), report)
}

fn serve(t: &TestStore) -> Server {
    Server::start(
        &t.url,
        &[("BERTH_PUBLIC_S3_ENDPOINT", "http://localhost:3900")],
    )
}

async fn object(t: &TestStore, key: &str) -> Bytes {
    t.store.get(key).await.unwrap().unwrap().body
}

both_backends!(
    signed_image_passes_the_independent_verifier_and_is_left_untouched,
    |t: TestStore| async move {
        let keys = tempfile::tempdir().unwrap();
        let digest = push_image(&t, "acme/web", "web");
        let repo: Repository = "acme/web".parse().unwrap();
        let tag_key = layout::tag_key(&repo, &"v1".parse().unwrap());
        let by_digest = layout::manifest_digest_key(&repo, &digest.parse().unwrap());
        let before = (object(&t, &tag_key).await, object(&t, &by_digest).await);

        let (key, public) = generate_key(&t, keys.path(), "release");
        let report = sign(&t, "acme/web:v1", &key);
        assert_eq!(report["digest"], digest.as_str());
        assert_eq!(report["signatures"], 1);
        let sig_tag = format!("sha256-{}.sig", &digest["sha256:".len()..]);
        assert_eq!(report["signature_tag"], sig_tag.as_str());

        let server = serve(&t);
        let (ok, verdict) = independent_verify(&server, "acme/web", "v1", &public);
        assert!(ok, "independent verifier refused: {verdict}");
        assert_eq!(verdict["digest"], digest.as_str());
        assert_eq!(verdict["docker-reference"], "acme/web");
        let ours: Value =
            serde_json::from_str(&success(&berth_verify(&t, "acme/web:v1", &public))).unwrap();
        assert_eq!(ours["digest"], digest.as_str());
        assert_eq!(ours["payload"], verdict["payload"]);

        // The signed image's bytes are exactly as pushed.
        let after = (object(&t, &tag_key).await, object(&t, &by_digest).await);
        assert_eq!(before, after, "signing must not touch the signed image");

        // The signature manifest is discoverable by the OCI 1.1 referrers API, and
        // the `.sig` tag is listed like any tag.
        let referrers: Value = server
            .get_json(&format!("/v2/acme/web/referrers/{digest}"))
            .await;
        let listed = referrers["manifests"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{referrers}");
        assert_eq!(listed[0]["digest"], report["signature_manifest"]);
        assert_eq!(
            listed[0]["artifactType"],
            "application/vnd.dev.cosign.artifact.sig.v1+json"
        );
        let tags: Value = server.get_json("/v2/acme/web/tags/list").await;
        assert!(
            tags["tags"]
                .as_array()
                .unwrap()
                .contains(&sig_tag.as_str().into())
        );
    }
);

both_backends!(
    signatures_accumulate_and_each_key_verifies,
    |t: TestStore| async move {
        let keys = tempfile::tempdir().unwrap();
        let digest = push_image(&t, "acme/app", "app");
        let (key_a, pub_a) = generate_key(&t, keys.path(), "a");
        let (key_b, pub_b) = generate_key(&t, keys.path(), "b");
        sign(&t, "acme/app:v1", &key_a);
        // By digest too: the same image, so the same signature manifest grows.
        let second = sign(&t, &format!("acme/app@{digest}"), &key_b);
        assert_eq!(second["signatures"], 2);

        let server = serve(&t);
        for public in [&pub_a, &pub_b] {
            let (ok, verdict) = independent_verify(&server, "acme/app", "v1", public);
            assert!(ok, "{}: {verdict}", public.display());
            success(&berth_verify(&t, "acme/app:v1", public));
        }
        let manifest: Value = http()
            .get(server.url(&format!(
                "/v2/acme/app/manifests/sha256-{}.sig",
                &digest["sha256:".len()..]
            )))
            .header("accept", "application/vnd.oci.image.manifest.v1+json")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let layers = manifest["layers"].as_array().unwrap();
        assert_eq!(layers.len(), 2);
        assert!(layers.iter().all(|l| l["mediaType"] == SIMPLE_SIGNING));
        assert_eq!(manifest["subject"]["digest"], digest.as_str());

        // Signing again with a key that already signed adds nothing.
        let again = sign(&t, "acme/app:v1", &key_a);
        assert_eq!(again["added"], false);
        assert_eq!(again["signature_manifest"], second["signature_manifest"]);

        // Only the current signature manifest is listed as a referrer.
        let referrers: Value = server
            .get_json(&format!("/v2/acme/app/referrers/{digest}"))
            .await;
        let listed = referrers["manifests"].as_array().unwrap();
        assert_eq!(listed.len(), 1, "{referrers}");
        assert_eq!(listed[0]["digest"], second["signature_manifest"]);
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openssl_pkcs8_and_sec1_keys_sign() {
    let t = TestStore::new(Backend::Dir, "openssl-keys").await;
    let keys = tempfile::tempdir().unwrap();
    let path = |name: &str| keys.path().join(name).display().to_string();
    push_image(&t, "acme/ssl", "ssl");
    // PKCS#8 (`BEGIN PRIVATE KEY`).
    openssl_p256_key(&path("pkcs8.key"));
    openssl(&[
        "pkey",
        "-in",
        &path("pkcs8.key"),
        "-pubout",
        "-out",
        &path("pkcs8.pub"),
    ]);
    // SEC1 (`BEGIN EC PRIVATE KEY`, after an `EC PARAMETERS` block).
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "prime256v1",
        "-out",
        &path("sec1.key"),
    ]);
    openssl(&[
        "ec",
        "-in",
        &path("sec1.key"),
        "-pubout",
        "-out",
        &path("sec1.pub"),
    ]);
    for name in ["pkcs8", "sec1"] {
        sign(&t, "acme/ssl:v1", Path::new(&path(&format!("{name}.key"))));
    }
    let server = serve(&t);
    for name in ["pkcs8", "sec1"] {
        let public = PathBuf::from(path(&format!("{name}.pub")));
        let (ok, verdict) = independent_verify(&server, "acme/ssl", "v1", &public);
        assert!(ok, "{name}: {verdict}");
        success(&berth_verify(&t, "acme/ssl:v1", &public));
    }
    // A key of another curve is refused with the reason.
    openssl(&[
        "ecparam",
        "-genkey",
        "-name",
        "secp384r1",
        "-out",
        &path("p384.key"),
    ]);
    let out = t.berth(&["sign", "acme/ssl:v1", "--key", &path("p384.key")]);
    assert!(failure(&out).contains("not an ECDSA P-256 private key"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_generate_protects_and_never_overwrites_the_private_key() {
    let t = TestStore::new(Backend::Dir, "keygen").await;
    let keys = tempfile::tempdir().unwrap();
    let (key, public) = generate_key(&t, keys.path(), "k");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&key).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&key).unwrap();
    assert!(text.starts_with("-----BEGIN PRIVATE KEY-----"), "{text}");
    // openssl reads both files as P-256 keys.
    let out = Command::new("openssl")
        .args([
            "pkey",
            "-pubin",
            "-in",
            public.to_str().unwrap(),
            "-noout",
            "-text",
        ])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("P-256"));
    openssl(&["pkey", "-in", key.to_str().unwrap(), "-noout"]);

    let prefix = keys.path().join("k");
    let out = t.berth(&["key", "generate", "--out", prefix.to_str().unwrap()]);
    assert!(failure(&out).contains("already exists"));
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        text,
        "the key is unchanged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_with_the_wrong_key_fails_with_the_reason() {
    let t = TestStore::new(Backend::Dir, "wrong-key").await;
    let keys = tempfile::tempdir().unwrap();
    push_image(&t, "acme/web", "web");
    let (key, _) = generate_key(&t, keys.path(), "signer");
    let (_, other) = generate_key(&t, keys.path(), "other");
    sign(&t, "acme/web:v1", &key);

    let line = failure(&berth_verify(&t, "acme/web:v1", &other));
    assert!(line.contains("does not verify with this key"), "{line}");
    let server = serve(&t);
    let (ok, verdict) = independent_verify(&server, "acme/web", "v1", &other);
    assert!(!ok, "the independent verifier must refuse too: {verdict}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_image_fails_verification() {
    let t = TestStore::new(Backend::Dir, "unsigned").await;
    let keys = tempfile::tempdir().unwrap();
    push_image(&t, "acme/web", "web");
    let (_, public) = generate_key(&t, keys.path(), "k");

    let line = failure(&berth_verify(&t, "acme/web:v1", &public));
    assert!(line.contains("is not signed"), "{line}");
    let server = serve(&t);
    let (ok, verdict) = independent_verify(&server, "acme/web", "v1", &public);
    assert!(!ok, "{verdict}");
    assert!(
        verdict["reasons"][0]
            .as_str()
            .unwrap()
            .starts_with("unsigned")
    );

    let line = failure(&t.berth(&["sign", "acme/nothing:v1", "--key", "/nonexistent"]));
    assert!(line.contains("/nonexistent"), "{line}");
}

both_backends!(
    tampered_payloads_fail_verification,
    |t: TestStore| async move {
        let keys = tempfile::tempdir().unwrap();
        let repo: Repository = "acme/web".parse().unwrap();
        let digest = push_image(&t, "acme/web", "web");
        let (key, public) = generate_key(&t, keys.path(), "k");
        sign(&t, "acme/web:v1", &key);

        // A signature copied onto another image: valid, but it names the first one.
        let other = push_image(&t, "acme/web2", "other");
        let other_repo: Repository = "acme/web2".parse().unwrap();
        let sig_tag = |d: &str| {
            format!("sha256-{}.sig", &d["sha256:".len()..])
                .parse()
                .unwrap()
        };
        let sig_manifest = object(&t, &layout::tag_key(&repo, &sig_tag(&digest))).await;
        let manifest: Value = serde_json::from_slice(&sig_manifest).unwrap();
        let payload_digest: Digest = manifest["layers"][0]["digest"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let payload = object(&t, &layout::blob_key(&repo, &payload_digest)).await;
        let meta = WriteMeta::new("application/octet-stream");
        t.store
            .put(
                &layout::blob_key(&other_repo, &payload_digest),
                payload.clone(),
                &meta,
            )
            .await
            .unwrap();
        t.store
            .put(
                &layout::tag_key(&other_repo, &sig_tag(&other)),
                sig_manifest,
                &WriteMeta::new("application/vnd.oci.image.manifest.v1+json"),
            )
            .await
            .unwrap();
        let line = failure(&berth_verify(&t, "acme/web2:v1", &public));
        assert!(
            line.contains(&format!("the payload signs {digest}, not this image")),
            "{line}"
        );

        // The payload rewritten in place: same length, another digest named.
        let forged = String::from_utf8(payload.to_vec())
            .unwrap()
            .replace(&digest, &other);
        t.store
            .put(
                &layout::blob_key(&repo, &payload_digest),
                Bytes::from(forged),
                &meta,
            )
            .await
            .unwrap();
        let line = failure(&berth_verify(&t, "acme/web:v1", &public));
        assert!(line.contains("was tampered with"), "{line}");

        let server = serve(&t);
        for name in ["acme/web", "acme/web2"] {
            let (ok, verdict) = independent_verify(&server, name, "v1", &public);
            assert!(
                !ok,
                "{name}: the independent verifier must refuse too: {verdict}"
            );
        }
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cosign_encrypted_keys_sign_with_cosign_password() {
    let t = TestStore::new(Backend::Dir, "cosign-key").await;
    let keys = tempfile::tempdir().unwrap();
    push_image(&t, "acme/web", "web");
    let (plain, public) = generate_key(&t, keys.path(), "k");
    // Sealed by an independent writer of cosign's format, not by berth.
    let sealed = keys.path().join("cosign.key");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("cosign_encrypt_key.py");
    let status = Command::new(python())
        .arg(script)
        .args([plain.to_str().unwrap(), "s3cret", sealed.to_str().unwrap()])
        .status()
        .unwrap();
    assert!(status.success());
    let sign_with = |password: Option<&str>| {
        let mut command = Command::new(berth_e2e::berth_bin());
        command
            .args(["sign", "acme/web:v1", "--key", sealed.to_str().unwrap()])
            .env("BERTH_STORE", &t.url)
            .env_remove("COSIGN_PASSWORD");
        if let Some(password) = password {
            command.env("COSIGN_PASSWORD", password);
        }
        command.output().unwrap()
    };

    assert!(failure(&sign_with(None)).contains("set COSIGN_PASSWORD"));
    assert!(failure(&sign_with(Some("wrong"))).contains("wrong password"));
    success(&sign_with(Some("s3cret")));
    let server = serve(&t);
    let (ok, verdict) = independent_verify(&server, "acme/web", "v1", &public);
    assert!(ok, "{verdict}");
}

both_backends!(
    concurrent_signers_all_keep_their_signatures,
    |t: TestStore| async move {
        const SIGNERS: usize = 4;
        let keys = tempfile::tempdir().unwrap();
        let pairs: Vec<_> = (0..SIGNERS)
            .map(|i| generate_key(&t, keys.path(), &format!("k{i}")))
            .collect();
        // Every signer reads the signature set, adds its own and writes it back at
        // the same moment: no signature may be lost to another's write.
        for repo in ["acme/web0", "acme/web1", "acme/web2"] {
            push_image(&t, repo, "web");
            let image = format!("{repo}:v1");
            let children: Vec<_> = pairs
                .iter()
                .map(|(key, _)| {
                    t.command(&["sign", &image, "--key", key.to_str().unwrap()])
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped())
                        .spawn()
                        .unwrap()
                })
                .collect();
            for child in children {
                let output = child.wait_with_output().unwrap();
                assert!(
                    output.status.success(),
                    "{}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            for (_, public) in &pairs {
                success(&berth_verify(&t, &image, public));
            }
            let server = serve(&t);
            for (_, public) in &pairs {
                let (ok, verdict) = independent_verify(&server, repo, "v1", public);
                assert!(ok, "{repo}: {verdict}");
            }
        }
    }
);
