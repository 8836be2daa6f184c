//! Webhooks end to end: hooks added with the real `berth webhook` verbs, a real
//! `berth push`, and a real HTTP receiver on loopback that records what arrives.

use std::collections::BTreeSet;
use std::process::Output;

use berth_e2e::oci::Layout;
use berth_e2e::receiver::{Receiver, dead_url};
use berth_e2e::{Backend, TestStore, both_backends, failure, success};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

/// A one-image OCI layout, built by hand (no network, no Docker).
struct Image {
    dir: tempfile::TempDir,
}

impl Image {
    fn new() -> Image {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let manifest = layout.image("amd64", "hello from a webhook test");
        layout.set_index(vec![manifest]);
        Image { dir }
    }

    fn source(&self) -> &str {
        self.dir.path().to_str().unwrap()
    }
}

/// `berth push SOURCE TARGET --json EXTRA...`, which must exit 0: its report and stderr.
fn push(t: &TestStore, image: &Image, target: &str, extra: &[&str]) -> (Value, String) {
    let mut args = vec!["push", image.source(), target, "--json"];
    args.extend_from_slice(extra);
    let output = t.berth(&args);
    let report = serde_json::from_str(&success(&output)).unwrap();
    (report, stderr(&output))
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

fn add_hook(t: &TestStore, pattern: &str, url: &str, name: &str, secret: Option<&str>) {
    let output = match secret {
        Some(secret) => t.berth_with_input(
            &[
                "webhook",
                "add",
                pattern,
                url,
                "--name",
                name,
                "--secret-stdin",
            ],
            &format!("{secret}\n"),
        ),
        None => t.berth(&["webhook", "add", pattern, url, "--name", name]),
    };
    success(&output);
}

fn hmac_sha256_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

both_backends!(
    each_pushed_tag_is_posted_as_a_signed_docker_hub_payload,
    |t: TestStore| async move {
        let receiver = Receiver::start();
        let secret = "s3cret with spaces";
        add_hook(&t, "acme/web", &receiver.url, "ci", Some(secret));
        let image = Image::new();
        let before = now();
        let (report, _) = push(
            &t,
            &image,
            "acme/web:v1",
            &[
                "-t",
                "latest",
                "--pusher",
                "ci-bot",
                "--public-url",
                "https://registry.example.com/",
            ],
        );

        let webhooks = report["webhooks"].as_array().unwrap();
        assert_eq!(webhooks.len(), 2, "one delivery per tag: {report}");
        for delivery in webhooks {
            assert_eq!(delivery["name"], "ci");
            assert_eq!(delivery["status"], "delivered");
            assert_eq!(delivery["http_status"], 200);
            assert_eq!(delivery["attempts"], 1);
        }

        let received = receiver.received();
        assert_eq!(received.len(), 2);
        let mut tags = BTreeSet::new();
        let mut ids = BTreeSet::new();
        for request in &received {
            let payload = request.json();
            tags.insert(payload["push_data"]["tag"].as_str().unwrap().to_owned());
            let pushed_at = payload["push_data"]["pushed_at"].as_u64().unwrap();
            assert!((before..=now()).contains(&pushed_at), "{payload}");
            assert_eq!(payload["push_data"]["pusher"], "ci-bot");
            assert_eq!(
                payload["repository"],
                json!({
                    "repo_name": "acme/web",
                    "namespace": "acme",
                    "name": "web",
                    "repo_url": "https://registry.example.com/acme/web",
                    "status": "Active",
                })
            );
            assert_eq!(payload["digest"], report["digest"]);
            assert_eq!(payload["media_type"], report["media_type"]);
            assert_eq!(request.header("content-type"), Some("application/json"));

            // The signature covers the raw body, verified with an independent HMAC.
            let expected = format!("sha256={}", hmac_sha256_hex(secret, &request.body));
            assert_eq!(request.header("x-berth-signature-256"), Some(&*expected));
            let wrong = format!("sha256={}", hmac_sha256_hex("other", &request.body));
            assert_ne!(request.header("x-berth-signature-256"), Some(&*wrong));
            ids.insert(request.header("x-berth-delivery").unwrap().to_owned());
        }
        assert_eq!(tags, BTreeSet::from(["v1".into(), "latest".into()]));
        assert_eq!(ids.len(), 2, "every delivery has its own id");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hook_without_a_secret_sends_no_signature() {
    let t = TestStore::new(Backend::Dir, "webhook-unsigned").await;
    let receiver = Receiver::start();
    add_hook(&t, "acme/web", &receiver.url, "plain", None);
    let (report, _) = push(&t, &Image::new(), "acme/web:v1", &[]);
    assert_eq!(report["webhooks"][0]["status"], "delivered");
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].header("x-berth-signature-256"), None);
    assert!(received[0].header("x-berth-delivery").is_some());
    assert_eq!(received[0].json()["repository"]["repo_url"], "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_errors_are_retried_until_delivered() {
    let t = TestStore::new(Backend::Dir, "webhook-retry").await;
    let receiver = Receiver::answering(&[500, 503]);
    add_hook(&t, "acme/web", &receiver.url, "flaky", None);
    let (report, stderr) = push(&t, &Image::new(), "acme/web:v1", &[]);
    let delivery = &report["webhooks"][0];
    assert_eq!(delivery["status"], "delivered", "{report}");
    assert_eq!(delivery["attempts"], 3);
    assert_eq!(delivery["http_status"], 200);
    assert!(!stderr.contains("warning"), "{stderr}");
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    let ids: BTreeSet<_> = received
        .iter()
        .map(|r| r.header("x-berth-delivery").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "a retry is the same delivery");
    assert!(received.iter().all(|r| r.body == received[0].body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_errors_are_not_retried() {
    let t = TestStore::new(Backend::Dir, "webhook-4xx").await;
    let receiver = Receiver::answering(&[404]);
    add_hook(&t, "acme/web", &receiver.url, "gone", None);
    let (report, stderr) = push(&t, &Image::new(), "acme/web:v1", &[]);
    let delivery = &report["webhooks"][0];
    assert_eq!(delivery["status"], "failed", "{report}");
    assert_eq!(delivery["attempts"], 1);
    assert_eq!(delivery["http_status"], 404);
    assert_eq!(receiver.received().len(), 1);
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].contains("gone") && warnings[0].contains("404"),
        "{stderr}"
    );

    // A bad delivery setting stops the push before anything is published.
    let image = Image::new();
    let args = [
        "push",
        image.source(),
        "acme/web:v9",
        "--webhook-timeout",
        "soon",
    ];
    assert!(failure(&t.berth(&args)).contains("--webhook-timeout"));
    assert!(!t.exists("v2/acme/web/manifests/v9").await);
}

both_backends!(
    a_dead_receiver_leaves_the_publish_successful,
    |t: TestStore| async move {
        add_hook(&t, "acme/*", &dead_url(), "dead", None);
        let output = t.berth(&[
            "push",
            Image::new().source(),
            "acme/web:v1",
            "--json",
            "--webhook-attempts",
            "2",
        ]);
        assert!(output.status.success(), "{}", stderr(&output));
        let report: Value = serde_json::from_slice(&output.stdout).unwrap();
        let delivery = &report["webhooks"][0];
        assert_eq!(delivery["status"], "failed");
        assert_eq!(delivery["attempts"], 2);
        assert_eq!(delivery["http_status"], Value::Null);
        assert!(
            delivery["error"]
                .as_str()
                .unwrap()
                .contains("could not connect")
        );
        let stderr = stderr(&output);
        let warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect();
        assert_eq!(warnings.len(), 1, "{stderr}");
        assert!(warnings[0].contains("webhook dead (acme/web:v1) failed after 2 attempt(s)"));
        // The image is published all the same.
        assert!(t.exists("v2/acme/web/manifests/v1").await);
        let log = success(&t.berth(&["webhook", "log", "acme/web"]));
        assert!(
            log.contains("\tdead\tv1\tfailed\tno answer\t2 attempt(s)\t"),
            "{log}"
        );
    }
);

both_backends!(
    a_pattern_hook_fires_only_for_matching_repositories,
    |t: TestStore| async move {
        let receiver = Receiver::start();
        add_hook(&t, "acme/*", &receiver.url, "all-acme", None);
        let image = Image::new();

        let (report, _) = push(&t, &image, "other/web:v1", &[]);
        assert_eq!(report["webhooks"], json!([]));
        assert_eq!(receiver.received().len(), 0);

        let (report, _) = push(&t, &image, "acme/web:v1", &[]);
        assert_eq!(report["webhooks"][0]["pattern"], "acme/*");
        let received = receiver.received();
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].json()["repository"]["repo_name"], "acme/web");

        let listed = success(&t.berth(&["webhook", "list", "acme/web"]));
        assert!(listed.starts_with("acme/*\tall-acme\t"), "{listed}");
        assert_eq!(success(&t.berth(&["webhook", "list", "other/web"])), "");
    }
);

both_backends!(
    webhooks_are_listed_removed_and_logged,
    |t: TestStore| async move {
        let receiver = Receiver::start();
        add_hook(&t, "acme/web", &receiver.url, "ci", Some("hush-hush"));
        add_hook(&t, "acme/web", &receiver.url, "audit", None);
        let listed = success(&t.berth(&["webhook", "list", "acme/web"]));
        let lines: Vec<&str> = listed.lines().collect();
        assert_eq!(
            lines,
            [
                format!("acme/web\taudit\t{}\tunsigned", receiver.url),
                format!("acme/web\tci\t{}\tsigned", receiver.url),
            ]
        );
        assert!(!listed.contains("hush-hush"), "secrets are never printed");

        let again = t.berth(&["webhook", "add", "acme/web", &receiver.url, "--name", "ci"]);
        assert!(failure(&again).contains("already has a webhook named ci"));
        let bad = t.berth(&["webhook", "add", "acme/web", "ftp://x", "--name", "x"]);
        assert!(failure(&bad).contains("not an http:// or https:// URL"));
        let bad = t.berth(&["webhook", "add", "Acme/../web", &receiver.url]);
        assert!(failure(&bad).contains("invalid pattern"));

        let image = Image::new();
        push(&t, &image, "acme/web:v1", &[]);
        success(&t.berth(&["webhook", "remove", "acme/web", "audit"]));
        let missing = t.berth(&["webhook", "remove", "acme/web", "audit"]);
        assert!(failure(&missing).contains("no webhook named audit"));
        assert_eq!(
            success(&t.berth(&["webhook", "list", "acme/web"]))
                .lines()
                .count(),
            1
        );
        push(&t, &image, "acme/web:v2", &[]);
        assert_eq!(receiver.received().len(), 3, "audit fired once, ci twice");

        let log = success(&t.berth(&["webhook", "log", "acme/web"]));
        let lines: Vec<Vec<&str>> = log.lines().map(|l| l.split('\t').collect()).collect();
        assert_eq!(lines.len(), 3, "{log}");
        assert_eq!(
            lines[0][1..6],
            ["ci", "v2", "delivered", "HTTP 200", "1 attempt(s)"]
        );
        let older: BTreeSet<&str> = lines[1..].iter().map(|l| l[1]).collect();
        assert_eq!(older, BTreeSet::from(["ci", "audit"]));
        assert!(
            lines[1..].iter().all(|l| l[2] == "v1"),
            "newest first: {log}"
        );
        let limited = success(&t.berth(&["webhook", "log", "acme/web", "--limit", "1"]));
        assert_eq!(limited.lines().count(), 1);
    }
);
