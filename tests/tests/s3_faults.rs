//! S3 failing under berth: throttling, internal errors, stalls, wrong credentials and
//! a missing bucket, from the real Garage through a faulty relay
//! ([`berth_e2e::faulty_s3`]). The publisher must retry transient faults and give up
//! with one line past its budget; the registry must answer 503 with error JSON and
//! `Retry-After`, in bounded time, and log what failed without secrets. Garage only:
//! these are S3's failure modes, which a directory store does not have.

use std::time::{Duration, Instant};

use berth_core::store::{OpenOptions, S3Options};
use berth_e2e::faulty_s3::{Answer, Fault, FaultyS3};
use berth_e2e::oci;
use berth_e2e::server::{Server, http};
use berth_e2e::{Backend, TestStore, failure, garage_var, success, unique};
use reqwest::header::{CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// A fresh one-image OCI layout, so every push uploads new blobs.
fn image_layout(text: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let manifest = oci::one_image(dir.path(), &unique(text));
    (dir, manifest)
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

/// `berth push` of `dir` as `target` with S3 reached through `relay`.
fn push_through(
    relay: &FaultyS3,
    t: &TestStore,
    dir: &tempfile::TempDir,
    target: &str,
    env: &[(&str, &str)],
) -> std::process::Output {
    let endpoint = relay.endpoint();
    let mut env = env.to_vec();
    env.push(("AWS_ENDPOINT_URL", &endpoint));
    t.berth_with_env(&["push", path(dir), target, "--json"], &env)
}

/// The first uploads fail with `answer`; the SDK retries them and the push completes.
async fn a_push_outlasts(answer: Answer) {
    let t = TestStore::new(Backend::Garage, "faults").await;
    let relay = FaultyS3::start(Fault::first(2, answer).on(Method::PUT));
    let (dir, manifest) = image_layout("outlast");
    let report: Value = serde_json::from_str(&success(&push_through(
        &relay,
        &t,
        &dir,
        "flaky/s3:v1",
        &[],
    )))
    .unwrap();
    assert_eq!(report["digest"], manifest["digest"]);
    t.assert_tag_complete("flaky/s3", "v1").await;
    assert_eq!(relay.faulted(), 2);
    assert!(relay.seen() > 2, "the faulted uploads were not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_uploads_are_retried_and_the_push_completes() {
    a_push_outlasts(Answer::SlowDown).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internal_errors_on_upload_are_retried_and_the_push_completes() {
    a_push_outlasts(Answer::InternalError).await;
}

/// A fresh one-image layout whose 12 MiB layer goes up in three parts with
/// [`THREE_PARTS`].
fn multipart_layout(label: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let (manifest, _) = oci::big_image(dir.path(), 12 << 20, &unique(label));
    (dir, manifest)
}

const THREE_PARTS: (&str, &str) = ("BERTH_PART_SIZE_MIB", "5");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_part_uploads_are_retried_and_the_multipart_push_completes() {
    let t = TestStore::new(Backend::Garage, "faults").await;
    let relay = FaultyS3::start(Fault::first(2, Answer::SlowDown).touching("partNumber="));
    let (dir, _) = multipart_layout("parts");
    success(&push_through(
        &relay,
        &t,
        &dir,
        "flaky/parts:v1",
        &[THREE_PARTS],
    ));
    t.assert_tag_complete("flaky/parts", "v1").await;
    assert_eq!(relay.faulted(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_retried_after_the_read_timeout() {
    let t = TestStore::new(Backend::Garage, "faults").await;
    let relay = FaultyS3::start(Fault::first(1, Answer::Stall).on(Method::PUT));
    let (dir, _) = image_layout("stall");
    let started = Instant::now();
    let output = push_through(
        &relay,
        &t,
        &dir,
        "stalled/s3:v1",
        &[("BERTH_S3_READ_TIMEOUT_SECS", "2")],
    );
    success(&output);
    let took = started.elapsed();
    t.assert_tag_complete("stalled/s3", "v1").await;
    assert_eq!(relay.faulted(), 1);
    assert!(
        took >= Duration::from_secs(2) && took < Duration::from_secs(30),
        "took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_failing_past_the_retry_budget_fail_with_one_line_and_keep_the_old_tag() {
    let t = TestStore::new(Backend::Garage, "faults").await;
    let (old, _) = image_layout("old");
    let before = t.push(path(&old), "doomed/s3:v1", &[]);

    let relay = FaultyS3::start(Fault::always(Answer::SlowDown).on(Method::PUT));
    let (new, _) = image_layout("new");
    let line = failure(&push_through(&relay, &t, &new, "doomed/s3:v1", &[]));
    assert!(line.contains(&t.url), "{line}");
    assert!(line.contains("PutObject"), "{line}");
    assert!(line.contains("SlowDown"), "{line}");
    assert!(line.contains("run the push again"), "{line}");
    // The SDK's standard strategy: five attempts per request, each one seen here.
    assert!(relay.faulted() >= 5, "{} faulted", relay.faulted());
    assert_eq!(relay.faulted() % 5, 0, "{} faulted", relay.faulted());

    t.assert_tag_complete("doomed/s3", "v1").await;
    let tag = t
        .store
        .get("v2/doomed/s3/manifests/v1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        berth_core::Digest::of(&tag.body).to_string(),
        before["digest"].as_str().unwrap(),
        "the old tag moved"
    );
}

/// A registry error answer: 503 `UNAVAILABLE` as OCI error JSON (HEAD answers have
/// no body), with `Retry-After`.
async fn assert_unavailable(response: reqwest::Response, what: &str) {
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{what}");
    assert!(
        response.headers().contains_key(RETRY_AFTER),
        "{what}: no Retry-After"
    );
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "application/json",
        "{what}"
    );
    let body = response.text().await.unwrap();
    if !body.is_empty() {
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["errors"][0]["code"], "UNAVAILABLE", "{what}");
    }
}

/// The requests of a pull that reach the store: manifest GET, blob HEAD and GET,
/// tags/list, all sent at once; each must be answered with 503 within `limit` (they
/// must not queue behind each other's store timeouts).
async fn assert_pull_unavailable(server: &Server, repo: &str, blob: &str, limit: Duration) {
    let requests = [
        (Method::GET, format!("/v2/{repo}/manifests/v1")),
        (Method::HEAD, format!("/v2/{repo}/blobs/{blob}")),
        (Method::GET, format!("/v2/{repo}/blobs/{blob}")),
        (Method::GET, format!("/v2/{repo}/tags/list")),
    ];
    let started = Instant::now();
    let mut answers = Vec::new();
    for (method, path) in requests {
        let request = http().request(method.clone(), server.url(&path)).send();
        let timed = async move {
            let answer = request.await;
            (answer, started.elapsed())
        };
        answers.push((format!("{method} {path}"), tokio::spawn(timed)));
    }
    for (what, answer) in answers {
        let (answer, took) = answer.await.unwrap();
        assert!(took < limit, "{what} took {took:?}");
        assert_unavailable(answer.unwrap(), &what).await;
    }
}

/// An image pushed to Garage directly; returns the store and the image's layer digest.
async fn pushed_image(label: &str) -> (TestStore, String) {
    let t = TestStore::new(Backend::Garage, "faults").await;
    let (dir, _) = image_layout(label);
    t.push(path(&dir), &format!("{label}/app:v1"), &[]);
    let manifest = t.assert_tag_complete(&format!("{label}/app"), "v1").await;
    let layer = manifest["layers"][0]["digest"].as_str().unwrap().to_owned();
    (t, layer)
}

/// The server's logs once it has had a moment to write them: they name a failed S3
/// operation and hold no signature and no secret key.
fn assert_logs_safe(server: &Server, secret: &str) -> String {
    std::thread::sleep(Duration::from_millis(300));
    let logs = server.logs();
    assert!(
        ["GetObject", "HeadObject", "ListObjectsV2"]
            .iter()
            .any(|operation| logs.contains(operation)),
        "the logs do not say what failed: {logs}"
    );
    assert!(!logs.contains("X-Amz-Signature"), "{logs}");
    assert!(
        !logs.contains(secret),
        "the logs hold the secret key: {logs}"
    );
    logs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttling_bucket_is_503_with_retry_after_in_bounded_time() {
    let (t, layer) = pushed_image("throttled").await;
    // The access configuration (read before every request) stays readable, so each
    // request reaches and fails its own S3 operation.
    let relay = FaultyS3::start(Fault::always(Answer::SlowDown).sparing("_berth/access/"));
    let endpoint = relay.endpoint();
    let server = Server::start(
        &t.url,
        &[
            ("AWS_ENDPOINT_URL", &endpoint),
            ("BERTH_BLOB_CACHE_SECS", "0"),
            ("BERTH_STORE_TIMEOUT_SECS", "5"),
            ("BERTH_LOG", "info"),
        ],
    );
    // Five attempts with backoff outlast the 5 s store timeout: the answers come
    // from the timeout, and must still say when to retry.
    assert_pull_unavailable(&server, "throttled/app", &layer, Duration::from_secs(9)).await;
    assert!(relay.faulted() > 4, "the registry did not retry S3");
    let logs = assert_logs_safe(&server, &garage_var("AWS_SECRET_ACCESS_KEY"));
    for operation in ["GetObject", "HeadObject"] {
        assert!(logs.contains(operation), "{operation} not logged: {logs}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_secret_key_is_503_not_unknown_and_stays_out_of_the_logs() {
    let (t, layer) = pushed_image("forbidden").await;
    let secret = "wrong-secret-0123456789abcdef";
    let server = Server::start(
        &t.url,
        &[
            ("AWS_SECRET_ACCESS_KEY", secret),
            ("BERTH_BLOB_CACHE_SECS", "0"),
            ("BERTH_LOG", "info"),
        ],
    );
    assert_pull_unavailable(&server, "forbidden/app", &layer, Duration::from_secs(20)).await;
    assert_logs_safe(&server, secret);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_503_not_name_unknown() {
    let server = Server::start(
        &format!("s3://{}/app", unique("no-such-bucket")),
        &[("BERTH_LOG", "info")],
    );
    let blob = berth_core::Digest::of(b"never stored").to_string();
    assert_pull_unavailable(&server, "acme/app", &blob, Duration::from_secs(9)).await;
    let logs = assert_logs_safe(&server, &garage_var("AWS_SECRET_ACCESS_KEY"));
    assert!(logs.contains("NoSuchBucket"), "{logs}");
}

/// Below the registry: reads that S3 answers with `NoSuchBucket` are errors, not
/// absent objects (which the registry would turn into 404s). A HEAD answer has no
/// body to name the bucket, so it cannot tell.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_bucket_is_a_store_error_not_an_absent_object() {
    // Sets the Garage environment that `store::open` reads.
    let _garage = TestStore::new(Backend::Garage, "faults").await;
    let options = OpenOptions {
        s3: S3Options::default(),
    };
    let url = format!("s3://{}/app", unique("no-such-bucket"));
    let store = berth_core::store::open(&url, &options).await.unwrap();
    let key = "v2/acme/app/manifests/v1";
    let error = store.get(key).await.unwrap_err().to_string();
    assert!(
        error.contains("GetObject") && error.contains("NoSuchBucket"),
        "{error}"
    );
    let error = store.copy(key, "v2/acme/app/manifests/v2", 10).await;
    assert!(
        error.is_err(),
        "a copy in a missing bucket found nothing: {error:?}"
    );
    assert!(store.head(key).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presigned_blob_urls_stay_out_of_the_logs() {
    let (t, layer) = pushed_image("presigned").await;
    let server = Server::start(&t.url, &[("BERTH_LOG", "debug")]);
    let response = http()
        .get(server.url(&format!("/v2/presigned/app/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::TEMPORARY_REDIRECT);
    let location = response.headers()[LOCATION].to_str().unwrap().to_owned();
    let signature = location
        .split(['?', '&'])
        .find_map(|pair| pair.strip_prefix("X-Amz-Signature="))
        .unwrap_or_else(|| panic!("not presigned: {location}"));
    std::thread::sleep(Duration::from_millis(300));
    let logs = server.logs();
    // Debug logs trace the request and the SDK's work, yet never the URL it signed.
    assert!(logs.contains(&layer), "the request was not logged: {logs}");
    assert!(!logs.contains(signature), "{logs}");
    assert!(!logs.contains("X-Amz-Signature"), "{logs}");
}

/// Uploads are sent without a SigV4 payload signature but with a CRC32C that S3
/// checks: bytes damaged on the way (in a whole-object PUT or in one part) are
/// refused, never stored, and sent again; the push completes with the right bytes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_damaged_on_the_way_is_refused_and_sent_again() {
    let t = TestStore::new(Backend::Garage, "faults").await;
    let cases = [
        ("damaged/put", image_layout("damaged"), "/blobs/", vec![]),
        (
            "damaged/part",
            multipart_layout("damaged"),
            "partNumber=",
            vec![THREE_PARTS],
        ),
    ];
    for (repo, (dir, manifest), touching, env) in cases {
        let relay = FaultyS3::start(
            Fault::first(1, Answer::Corrupt)
                .on(Method::PUT)
                .touching(touching),
        );
        let report: Value = serde_json::from_str(&success(&push_through(
            &relay,
            &t,
            &dir,
            &format!("{repo}:v1"),
            &env,
        )))
        .unwrap();
        assert_eq!(relay.faulted(), 1, "{repo}");
        assert_eq!(report["digest"], manifest["digest"], "{repo}");
        let blobs = t
            .store
            .list(&format!("v2/{repo}/blobs/"), None, 100)
            .await
            .unwrap();
        assert!(!blobs.is_empty());
        for key in &blobs {
            let object = t.store.get(key).await.unwrap().unwrap();
            let digest = key.rsplit('/').next().unwrap();
            assert_eq!(
                berth_core::Digest::of(&object.body).as_str(),
                digest,
                "damaged bytes stored under {key}"
            );
        }
        t.assert_tag_complete(repo, "v1").await;
    }
}
