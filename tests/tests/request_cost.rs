//! What each read costs in S3 requests, counted by Garage itself: a manifest GET or
//! HEAD is one request, a blob HEAD or redirect one HEAD (none while the repository's
//! membership is cached), the API root none. One test in its own binary, because
//! Garage's counters are node-wide and other tests would add to them.

use std::collections::BTreeMap;

use berth_e2e::garage_metrics::{delta, s3_requests};
use berth_e2e::oci;
use berth_e2e::server::{Server, http};
use berth_e2e::{Backend, TestStore};
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};

const N: u64 = 10;

/// The S3 requests `N` identical requests cost, by operation.
async fn cost(
    method: Method,
    url: &str,
    accept: &str,
    status: StatusCode,
) -> BTreeMap<String, u64> {
    let before = s3_requests().await;
    for _ in 0..N {
        let response = http()
            .request(method.clone(), url)
            .header(ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), status, "{method} {url}");
    }
    delta(&before, &s3_requests().await)
}

fn each(operation: &str) -> BTreeMap<String, u64> {
    BTreeMap::from([(operation.to_owned(), N)])
}

#[tokio::test]
async fn each_read_costs_at_most_one_s3_request() {
    let t = TestStore::new(Backend::Garage, "request-cost").await;
    let dir = tempfile::tempdir().unwrap();
    let manifest = oci::one_image(dir.path(), "counted");
    t.push(dir.path().to_str().unwrap(), "cost/app:v1", &[]);
    let digest = manifest["digest"].as_str().unwrap();
    let layer = &t.first_layer("cost/app", &manifest).await;
    let media_type = manifest["mediaType"].as_str().unwrap();

    // The access configuration is read at start; a long cache keeps its reload out
    // of the counts.
    let common = [
        ("BERTH_PUBLIC_S3_ENDPOINT", "http://localhost:3900"),
        ("BERTH_ACCESS_CACHE_SECS", "3600"),
    ];
    let uncached = Server::start(
        &t.url,
        &[common[0], common[1], ("BERTH_BLOB_CACHE_SECS", "0")],
    );
    let cached = Server::start(&t.url, &common);

    let root = cost(Method::GET, &uncached.url("/v2/"), "*/*", StatusCode::OK).await;
    assert_eq!(root, BTreeMap::new(), "GET /v2/");
    for (reference, what) in [("v1", "by tag"), (digest, "by digest")] {
        let url = uncached.url(&format!("/v2/cost/app/manifests/{reference}"));
        let get = cost(Method::GET, &url, media_type, StatusCode::OK).await;
        assert_eq!(get, each("GetObject"), "manifest GET {what}");
        let head = cost(Method::HEAD, &url, media_type, StatusCode::OK).await;
        assert_eq!(head, each("HeadObject"), "manifest HEAD {what}");
    }
    let blob = format!("/v2/cost/app/blobs/{layer}");
    let head = cost(Method::HEAD, &uncached.url(&blob), "*/*", StatusCode::OK).await;
    assert_eq!(head, each("HeadObject"), "blob HEAD");
    let redirect = cost(
        Method::GET,
        &uncached.url(&blob),
        "*/*",
        StatusCode::TEMPORARY_REDIRECT,
    )
    .await;
    assert_eq!(
        redirect,
        each("HeadObject"),
        "blob GET redirect (presigning is local)"
    );

    let first = cost(Method::HEAD, &cached.url(&blob), "*/*", StatusCode::OK).await;
    assert_eq!(
        first,
        BTreeMap::from([("HeadObject".to_owned(), 1)]),
        "first blob HEAD, then cached"
    );
    let redirects = cost(
        Method::GET,
        &cached.url(&blob),
        "*/*",
        StatusCode::TEMPORARY_REDIRECT,
    )
    .await;
    assert_eq!(
        redirects,
        BTreeMap::new(),
        "cached membership: redirects cost nothing"
    );
}
