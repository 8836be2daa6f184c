//! The registry's read API, request by request, through a real `berth serve` over
//! Garage (blob GETs redirect to presigned URLs) and over a directory store (blobs
//! stream, with Range).

use berth_core::Digest;
use berth_e2e::oci::{self, Layout};
use berth_e2e::server::{Server, http};
use berth_e2e::{Backend, TestStore, both_backends};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION, RANGE};
use serde_json::{Value, json};

/// Clients must reach presigned URLs by a hostname other than the registry's.
const PUBLIC_S3: &str = "http://localhost:3900";

fn serve(t: &TestStore) -> Server {
    Server::start(&t.url, &[("BERTH_PUBLIC_S3_ENDPOINT", PUBLIC_S3)])
}

/// An OCI layout holding one single-platform image, pushed as `repo:v1`; returns the
/// manifest descriptor.
fn push_image(t: &TestStore, repo: &str, text: &str, extra: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let manifest = oci::one_image(dir.path(), text);
    t.push(dir.path().to_str().unwrap(), &format!("{repo}:v1"), extra);
    manifest
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    assert_eq!(
        response.headers()[CONTENT_TYPE],
        "application/json",
        "errors are OCI error JSON"
    );
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["errors"][0]["code"].as_str().unwrap().to_owned(),
    )
}

both_backends!(
    api_root_answers_200_with_the_version_header,
    |t: TestStore| async move {
        let server = serve(&t);
        for url in [server.url("/v2/"), server.url("/v2")] {
            let response = http().get(&url).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::OK);
            assert_eq!(
                response.headers()["docker-distribution-api-version"],
                "registry/2.0"
            );
            assert_eq!(response.json::<Value>().await.unwrap(), json!({}));
        }
    }
);

both_backends!(
    manifests_carry_digest_type_length_and_etag,
    |t: TestStore| async move {
        let manifest = push_image(&t, "acme/web", "web", &[]);
        let digest = manifest["digest"].as_str().unwrap();
        let server = serve(&t);
        for reference in ["v1", digest] {
            let url = server.url(&format!("/v2/acme/web/manifests/{reference}"));
            let get = http().get(&url).send().await.unwrap();
            assert_eq!(get.status(), StatusCode::OK);
            let headers = get.headers().clone();
            assert_eq!(headers[CONTENT_TYPE], oci::OCI_MANIFEST);
            assert_eq!(headers["docker-content-digest"], digest);
            assert_eq!(headers["etag"], format!("\"{digest}\""));
            assert_eq!(headers[CONTENT_LENGTH], manifest["size"].to_string());
            let body = get.bytes().await.unwrap();
            assert_eq!(
                Digest::of(&body).as_str(),
                digest,
                "the stored bytes exactly"
            );

            let head = http().head(&url).send().await.unwrap();
            assert_eq!(head.status(), StatusCode::OK);
            for name in [
                CONTENT_TYPE.as_str(),
                "docker-content-digest",
                "content-length",
            ] {
                assert_eq!(head.headers()[name], headers[name], "{name} on HEAD");
            }
        }
    }
);

both_backends!(
    unknown_manifests_and_repositories_are_told_apart,
    |t: TestStore| async move {
        push_image(&t, "acme/web", "web", &[]);
        let server = serve(&t);
        let missing_tag = http()
            .get(server.url("/v2/acme/web/manifests/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(missing_tag).await,
            (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into())
        );
        let missing_repo = http()
            .get(server.url("/v2/acme/nothing/manifests/v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(missing_repo).await,
            (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into())
        );
        let head = http()
            .head(server.url("/v2/acme/web/manifests/nope"))
            .send()
            .await
            .unwrap();
        assert_eq!(head.status(), StatusCode::NOT_FOUND);
        let tags = http()
            .get(server.url("/v2/acme/nothing/tags/list"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(tags).await,
            (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into())
        );
    }
);

both_backends!(
    invalid_names_tags_and_digests_are_400,
    |t: TestStore| async move {
        let server = serve(&t);
        for (path, code) in [
            ("/v2/Acme/manifests/v1", "NAME_INVALID"),
            ("/v2/a/..%2Fetc/manifests/v1", "NAME_INVALID"),
            ("/v2/a/manifests/-v1", "TAG_INVALID"),
            ("/v2/a/manifests/sha256:abc", "DIGEST_INVALID"),
            ("/v2/a/blobs/sha256:XYZ", "DIGEST_INVALID"),
            (
                "/v2/a/blobs/md5:d41d8cd98f00b204e9800998ecf8427e",
                "DIGEST_INVALID",
            ),
            ("/v2/a/tags/list?n=many", "PAGINATION_NUMBER_INVALID"),
        ] {
            let response = http().get(server.url(path)).send().await.unwrap();
            assert_eq!(
                error_code(response).await,
                (StatusCode::BAD_REQUEST, code.into()),
                "{path}"
            );
        }
    }
);

both_backends!(
    write_methods_are_405_unsupported_and_unknown_routes_404,
    |t: TestStore| async move {
        let server = serve(&t);
        let client = http();
        for (method, path) in [
            (reqwest::Method::PUT, "/v2/a/manifests/v1"),
            (reqwest::Method::DELETE, "/v2/a/manifests/v1"),
            (reqwest::Method::POST, "/v2/a/blobs/uploads/"),
            (reqwest::Method::PATCH, "/v2/a/blobs/uploads/123"),
            (reqwest::Method::POST, "/v2/"),
        ] {
            let response = client
                .request(method.clone(), server.url(path))
                .send()
                .await
                .unwrap();
            let code = error_code(response).await;
            assert_eq!(
                code,
                (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED".into()),
                "{method} {path}"
            );
        }
        for path in ["/v2/a/b", "/elsewhere", "/v2/a/b/c/d/blob/x"] {
            let response = client.get(server.url(path)).send().await.unwrap();
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
        }
        // Upload sessions exist only on registries that accept pushes.
        let upload = client
            .get(server.url("/v2/a/blobs/uploads/123"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(upload).await,
            (StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED".into())
        );
    }
);

both_backends!(
    blob_head_answers_directly_and_get_redirects_or_streams,
    |t: TestStore| async move {
        let manifest = push_image(&t, "acme/blob", "some layer bytes", &[]);
        let server = serve(&t);
        let object = t
            .store
            .get(&format!(
                "v2/acme/blob/manifests/{}",
                manifest["digest"].as_str().unwrap()
            ))
            .await
            .unwrap()
            .unwrap();
        let body: Value = serde_json::from_slice(&object.body).unwrap();
        let layer = &body["layers"][0];
        let digest = layer["digest"].as_str().unwrap();
        let size = layer["size"].as_u64().unwrap();
        let url = server.url(&format!("/v2/acme/blob/blobs/{digest}"));

        let head = http().head(&url).send().await.unwrap();
        assert_eq!(head.status(), StatusCode::OK);
        assert_eq!(head.headers()[CONTENT_LENGTH], size.to_string());
        assert_eq!(head.headers()["docker-content-digest"], digest);

        let get = http().get(&url).send().await.unwrap();
        let bytes = match t.backend {
            Backend::Garage => {
                assert_eq!(get.status(), StatusCode::TEMPORARY_REDIRECT);
                let location = get.headers()[LOCATION].to_str().unwrap().to_owned();
                assert!(location.starts_with(PUBLIC_S3), "{location}");
                assert!(location.contains("X-Amz-Expires=900"), "{location}");
                let fetched = reqwest::get(&location).await.unwrap();
                assert_eq!(fetched.status(), StatusCode::OK);
                fetched.bytes().await.unwrap()
            }
            Backend::Dir => {
                assert_eq!(get.status(), StatusCode::OK);
                get.bytes().await.unwrap()
            }
        };
        assert_eq!(Digest::of(&bytes).as_str(), digest);

        if t.backend == Backend::Dir {
            let ranged = http()
                .get(&url)
                .header(RANGE, "bytes=10-19")
                .send()
                .await
                .unwrap();
            assert_eq!(ranged.status(), StatusCode::PARTIAL_CONTENT);
            assert_eq!(
                ranged.headers()["content-range"],
                format!("bytes 10-19/{size}")
            );
            assert_eq!(&ranged.bytes().await.unwrap()[..], &bytes[10..20]);
            let beyond = http()
                .get(&url)
                .header(RANGE, format!("bytes={size}-"))
                .send()
                .await
                .unwrap();
            assert_eq!(beyond.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        }
    }
);

both_backends!(
    a_repository_never_serves_another_repositorys_blob,
    |t: TestStore| async move {
        let private = push_image(&t, "secret/app", "only in secret", &[]);
        push_image(&t, "open/app", "only in open", &[]);
        let server = serve(&t);
        for digest in [
            private["digest"].as_str().unwrap().to_owned(),
            t.first_layer("secret/app", &private).await,
        ] {
            let url = server.url(&format!("/v2/open/app/blobs/{digest}"));
            let response = http().get(&url).send().await.unwrap();
            assert_eq!(
                error_code(response).await,
                (StatusCode::NOT_FOUND, "BLOB_UNKNOWN".into())
            );
            let head = http().head(&url).send().await.unwrap();
            assert_eq!(head.status(), StatusCode::NOT_FOUND);
            let by_digest = http()
                .get(server.url(&format!("/v2/open/app/manifests/{digest}")))
                .send()
                .await
                .unwrap();
            assert_eq!(by_digest.status(), StatusCode::NOT_FOUND);
        }
    }
);

both_backends!(
    indexes_go_to_clients_that_accept_them_and_amd64_to_others,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let arm64 = layout.platform_image("arm64", "arm");
        let amd64 = layout.platform_image("amd64", "x86");
        let index = layout.index_blob(vec![arm64.clone(), amd64.clone()]);
        layout.set_index(vec![index.clone()]);
        t.push(dir.path().to_str().unwrap(), "multi/arch:v1", &[]);
        let server = serve(&t);
        let url = server.url("/v2/multi/arch/manifests/v1");
        let get = |accept: &'static str| {
            let request = http().get(&url);
            if accept.is_empty() {
                request
            } else {
                request.header(ACCEPT, accept)
            }
        };

        let both = get(
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json",
        )
        .send()
        .await
        .unwrap();
        assert_eq!(
            both.headers()["docker-content-digest"],
            index["digest"].as_str().unwrap()
        );
        let no_header = get("").send().await.unwrap();
        assert_eq!(no_header.headers()[CONTENT_TYPE], oci::OCI_INDEX);

        let single = get(oci::OCI_MANIFEST).send().await.unwrap();
        assert_eq!(single.status(), StatusCode::OK);
        assert_eq!(single.headers()[CONTENT_TYPE], oci::OCI_MANIFEST);
        assert_eq!(
            single.headers()["docker-content-digest"],
            amd64["digest"].as_str().unwrap()
        );
        let head = http()
            .head(&url)
            .header(ACCEPT, oci::OCI_MANIFEST)
            .send()
            .await
            .unwrap();
        assert_eq!(
            head.headers()["docker-content-digest"],
            amd64["digest"].as_str().unwrap()
        );

        let docker_only = get("application/vnd.docker.distribution.manifest.v2+json")
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(docker_only).await,
            (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN".into())
        );
    }
);

async fn page(url: &str) -> (Value, Option<String>) {
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{url}");
    let link = response
        .headers()
        .get(LINK)
        .map(|l| l.to_str().unwrap().to_owned());
    (response.json().await.unwrap(), link)
}

both_backends!(
    tags_and_catalog_paginate_with_n_last_and_link,
    |t: TestStore| async move {
        push_image(
            &t,
            "page/one",
            "1",
            &["-t", "t2", "-t", "t3", "-t", "t4", "-t", "t5"],
        );
        push_image(&t, "page/two", "2", &[]);
        push_image(&t, "page/three", "3", &[]);
        let server = serve(&t);

        let (body, link) = page(&server.url("/v2/page/one/tags/list")).await;
        assert_eq!(
            body,
            json!({ "name": "page/one", "tags": ["t2", "t3", "t4", "t5", "v1"] })
        );
        assert_eq!(link, None);
        let (body, link) = page(&server.url("/v2/page/one/tags/list?n=2")).await;
        assert_eq!(body["tags"], json!(["t2", "t3"]));
        let link = link.expect("more tags remain");
        assert_eq!(link, "</v2/page/one/tags/list?n=2&last=t3>; rel=\"next\"");
        let next = link.trim_start_matches('<').split('>').next().unwrap();
        let (body, link) = page(&server.url(next)).await;
        assert_eq!(body["tags"], json!(["t4", "t5"]));
        assert!(link.is_some());
        let (body, link) = page(&server.url("/v2/page/one/tags/list?n=2&last=t5")).await;
        assert_eq!(body["tags"], json!(["v1"]));
        assert_eq!(link, None);
        let (body, _) = page(&server.url("/v2/page/one/tags/list?n=0")).await;
        assert_eq!(body["tags"], json!([]));
        let (body, _) = page(&server.url("/v2/page/one/tags/list?last=v1")).await;
        assert_eq!(body["tags"], json!([]));

        let (body, link) = page(&server.url("/v2/_catalog?n=2")).await;
        assert_eq!(body, json!({ "repositories": ["page/one", "page/three"] }));
        assert_eq!(
            link.as_deref(),
            Some("</v2/_catalog?n=2&last=page/three>; rel=\"next\"")
        );
        let (body, link) = page(&server.url("/v2/_catalog?n=2&last=page/three")).await;
        assert_eq!(body["repositories"], json!(["page/two"]));
        assert_eq!(link, None);
        for past_the_end in ["/v2/_catalog?n=0", "/v2/_catalog?last=zzz"] {
            let (body, link) = page(&server.url(past_the_end)).await;
            assert_eq!(body["repositories"], json!([]), "{past_the_end}");
            assert_eq!(link, None, "{past_the_end}");
        }
        // A cursor does not make an unknown repository known.
        let unknown = http()
            .get(server.url("/v2/page/none/tags/list?last=v1"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            error_code(unknown).await,
            (StatusCode::NOT_FOUND, "NAME_UNKNOWN".into())
        );
    }
);

both_backends!(
    pages_hold_at_most_1000_entries_whatever_n_asks,
    |t: TestStore| async move {
        let tags: Vec<String> = (0..1001).map(|i| format!("t{i:04}")).collect();
        let mut extra = Vec::new();
        for tag in &tags[1..] {
            extra.extend(["-t", tag.as_str()]);
        }
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        layout.set_index(vec![layout.image("amd64", "many tags")]);
        t.push(
            dir.path().to_str().unwrap(),
            &format!("many/tagged:{}", tags[0]),
            &extra,
        );
        let server = serve(&t);
        for query in ["", "?n=5000"] {
            let (body, link) =
                page(&server.url(&format!("/v2/many/tagged/tags/list{query}"))).await;
            assert_eq!(body["tags"], json!(tags[..1000]), "{query}");
            assert_eq!(
                link.as_deref(),
                Some("</v2/many/tagged/tags/list?n=1000&last=t0999>; rel=\"next\""),
                "{query}"
            );
        }
        let (body, link) = page(&server.url("/v2/many/tagged/tags/list?n=1000&last=t0999")).await;
        assert_eq!(body["tags"], json!(["t1000"]));
        assert_eq!(link, None);
    }
);

both_backends!(
    referrers_list_manifests_whose_subject_is_the_digest,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let image = layout.image("amd64", "signed");
        let config = layout.blob("application/vnd.oci.empty.v1+json", b"{}");
        let sbom = layout.blob("application/spdx+json", b"{}");
        let subject = json!({ "mediaType": oci::OCI_MANIFEST, "digest": image["digest"], "size": image["size"] });
        let artifact = layout.json_blob(
        oci::OCI_MANIFEST,
        &json!({
            "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST, "artifactType": "application/spdx+json",
            "config": config, "layers": [sbom], "subject": subject,
            "annotations": { "org.example": "yes" }
        }),
    );
        let mut tagged_image = image.clone();
        tagged_image["annotations"] = json!({ "org.opencontainers.image.ref.name": "image" });
        let mut tagged_artifact = artifact.clone();
        tagged_artifact["annotations"] = json!({ "org.opencontainers.image.ref.name": "sbom" });
        layout.set_index(vec![tagged_image, tagged_artifact]);
        let path = dir.path().to_str().unwrap();
        t.push(&format!("oci:{path}:image"), "ref/app:v1", &[]);
        t.push(&format!("oci:{path}:sbom"), "ref/app:sbom", &[]);
        let server = serve(&t);

        let url = server.url(&format!(
            "/v2/ref/app/referrers/{}",
            image["digest"].as_str().unwrap()
        ));
        let response = http().get(&url).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], oci::OCI_INDEX);
        let index: Value = response.json().await.unwrap();
        assert_eq!(
            index["manifests"],
            json!([{
                "mediaType": oci::OCI_MANIFEST, "digest": artifact["digest"], "size": artifact["size"],
                "artifactType": "application/spdx+json", "annotations": { "org.example": "yes" }
            }])
        );
        let filtered = http()
            .get(format!("{url}?artifactType=application/other"))
            .send()
            .await
            .unwrap();
        assert_eq!(filtered.headers()["oci-filters-applied"], "artifactType");
        assert_eq!(
            filtered.json::<Value>().await.unwrap()["manifests"],
            json!([])
        );
        let kept = http()
            .get(format!("{url}?artifactType=application/spdx%2Bjson"))
            .send()
            .await
            .unwrap();
        assert_eq!(kept.headers()["oci-filters-applied"], "artifactType");
        assert_eq!(
            kept.json::<Value>().await.unwrap()["manifests"][0]["digest"],
            artifact["digest"]
        );
        let none = http()
            .get(server.url(&format!(
                "/v2/ref/app/referrers/{}",
                artifact["digest"].as_str().unwrap()
            )))
            .send()
            .await
            .unwrap();
        assert_eq!(none.json::<Value>().await.unwrap()["manifests"], json!([]));
    }
);

#[tokio::test]
async fn an_unreachable_bucket_is_503_with_error_json_not_a_hang() {
    let server = Server::start(
        "s3://berth-test/unreachable",
        &[
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
            ("BERTH_STORE_TIMEOUT_SECS", "5"),
        ],
    );
    let started = std::time::Instant::now();
    let response = http()
        .get(server.url("/v2/acme/web/manifests/v1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(response).await,
        (StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE".into())
    );
    assert!(
        started.elapsed().as_secs() < 30,
        "took {:?}",
        started.elapsed()
    );
}

/// Credentials that say when they expire (here from a `credential_process` profile,
/// as SSO, assume-role and instance roles do) cap the URLs they sign, and the
/// registry learns that expiry without asking the credential chain per redirect.
#[tokio::test]
async fn presigned_urls_never_outlive_their_credentials() {
    let t = TestStore::new(Backend::Garage, "presign-cap").await;
    let manifest = push_image(&t, "acme/capped", "capped layer", &[]);
    let layer = t.first_layer("acme/capped", &manifest).await;
    let dir = tempfile::tempdir().unwrap();
    let calls = dir.path().join("calls");
    let script = dir.path().join("credentials.sh");
    std::fs::write(
        &script,
        format!(
            "echo call >> {calls}\n\
             printf '{{\"Version\":1,\"AccessKeyId\":\"%s\",\"SecretAccessKey\":\"%s\",\"Expiration\":\"%s\"}}' \
             {key} {secret} \"$(date -u -d '+300 seconds' +%Y-%m-%dT%H:%M:%SZ)\"\n",
            calls = calls.display(),
            key = berth_e2e::garage_var("AWS_ACCESS_KEY_ID"),
            secret = berth_e2e::garage_var("AWS_SECRET_ACCESS_KEY"),
        ),
    )
    .unwrap();
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[profile capped]\ncredential_process = sh {}\n",
            script.display()
        ),
    )
    .unwrap();
    let profile_env = [
        ("BERTH_PUBLIC_S3_ENDPOINT", PUBLIC_S3),
        // Blank keys make the chain skip the environment and read the profile.
        ("AWS_ACCESS_KEY_ID", ""),
        ("AWS_SECRET_ACCESS_KEY", ""),
        ("AWS_PROFILE", "capped"),
        ("AWS_CONFIG_FILE", config.to_str().unwrap()),
        ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent"),
    ];
    let server = Server::start(&t.url, &profile_env);
    let url = server.url(&format!("/v2/acme/capped/blobs/{layer}"));
    for _ in 0..10 {
        let get = http().get(&url).send().await.unwrap();
        assert_eq!(get.status(), StatusCode::TEMPORARY_REDIRECT);
        let location = get.headers()[LOCATION].to_str().unwrap().to_owned();
        let expires: u64 = location
            .split("X-Amz-Expires=")
            .nth(1)
            .and_then(|rest| rest.split('&').next())
            .unwrap()
            .parse()
            .unwrap();
        assert!((250..=300).contains(&expires), "X-Amz-Expires={expires}");
        let fetched = reqwest::get(&location).await.unwrap();
        assert_eq!(
            fetched.status(),
            StatusCode::OK,
            "signed with the profile's keys"
        );
        assert_eq!(Digest::of(&fetched.bytes().await.unwrap()).as_str(), layer);
    }
    let process_runs = std::fs::read_to_string(&calls).unwrap().lines().count();
    // One per client (the store's and the presigner's) and one first look at the
    // expiry: never one per redirect.
    assert!(
        process_runs <= 3,
        "credential_process ran {process_runs} times"
    );
    drop(server);

    let shorter = Server::start(
        &t.url,
        &[
            ("BERTH_PUBLIC_S3_ENDPOINT", PUBLIC_S3),
            ("BERTH_PRESIGN_EXPIRY_SECS", "60"),
        ],
    );
    let get = http()
        .get(shorter.url(&format!("/v2/acme/capped/blobs/{layer}")))
        .send()
        .await
        .unwrap();
    let location = get.headers()[LOCATION].to_str().unwrap();
    assert!(location.contains("X-Amz-Expires=60&"), "{location}");
}

#[test]
fn a_presign_expiry_s3_would_refuse_stops_the_registry_at_start() {
    for bad in ["0", "604801"] {
        let output = std::process::Command::new(berth_e2e::berth_bin())
            .args(["serve", "--store", "s3://berth-test/never-read"])
            .env("BERTH_PRESIGN_EXPIRY_SECS", bad)
            .output()
            .unwrap();
        let stderr = berth_e2e::failure(&output);
        assert!(
            stderr.contains("presign-expiry-secs") && stderr.contains("604800"),
            "{stderr}"
        );
    }
}
