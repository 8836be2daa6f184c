//! Deleting and garbage collection through the real `berth` binary: `tag rm`, `rm`,
//! `repo rm` and `gc`, checked key by key in the store and through a real
//! `berth serve`, and `gc` racing a publishing loop.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_core::Digest;
use berth_core::store::{Store, list_all};
use berth_e2e::docker::skopeo;
use berth_e2e::oci::{self, Layout};
use berth_e2e::server::{Server, http};
use berth_e2e::{Backend, TestStore, both_backends, failure, success};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// An OCI layout holding one single-platform image whose layer says `text` (the same
/// text gives the same image); its manifest descriptor.
fn layout_of(text: &str) -> (tempfile::TempDir, Value) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path());
    let manifest = layout.image("amd64", text);
    layout.set_index(vec![manifest.clone()]);
    (dir, manifest)
}

fn path(dir: &tempfile::TempDir) -> &str {
    dir.path().to_str().unwrap()
}

/// Pushes the image of [`layout_of`] as `target`; its manifest descriptor.
fn push_image(t: &TestStore, target: &str, text: &str) -> Value {
    let (dir, manifest) = layout_of(text);
    t.push(path(&dir), target, &[]);
    manifest
}

fn digest_of(descriptor: &Value) -> Digest {
    descriptor["digest"].as_str().unwrap().parse().unwrap()
}

/// `berth gc --json ARGS`, which must succeed; its report.
fn gc(t: &TestStore, args: &[&str]) -> Value {
    let mut all = vec!["gc", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&success(&t.berth(&all))).unwrap()
}

/// The keys of the repository's manifests by digest and blobs.
async fn content_keys(t: &TestStore, repo: &str) -> Vec<String> {
    list_all(&*t.store, &format!("v2/{repo}/"))
        .await
        .unwrap()
        .into_iter()
        .filter(|k| k.contains("/blobs/") || k.contains("/manifests/sha256:"))
        .collect()
}

/// The manifest and everything it reaches exist in the repository.
async fn assert_complete(store: &dyn Store, repo: &str, digest: &Digest) {
    let mut pending = vec![digest.clone()];
    while let Some(digest) = pending.pop() {
        let key = format!("v2/{repo}/manifests/{digest}");
        let object = store.get(&key).await.unwrap();
        let object = object.unwrap_or_else(|| panic!("{key} missing"));
        let manifest: Value = serde_json::from_slice(&object.body).unwrap();
        for child in manifest["manifests"].as_array().into_iter().flatten() {
            pending.push(digest_of(child));
        }
        let blobs = manifest["layers"].as_array().into_iter().flatten();
        for blob in blobs.chain(manifest.get("config")) {
            let key = format!("v2/{repo}/blobs/{}", blob["digest"].as_str().unwrap());
            assert!(store.head(&key).await.unwrap().is_some(), "{key} missing");
        }
    }
}

async fn error_code(response: reqwest::Response) -> (StatusCode, String) {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["errors"][0]["code"].as_str().unwrap().to_owned(),
    )
}

async fn manifest_status(server: &Server, path: &str) -> (StatusCode, String) {
    let response = http()
        .get(server.url(path))
        .header("accept", oci::OCI_MANIFEST)
        .send()
        .await
        .unwrap();
    if response.status() == StatusCode::OK {
        return (StatusCode::OK, String::new());
    }
    error_code(response).await
}

const UNKNOWN: (StatusCode, &str) = (StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN");

fn is_unknown(answer: (StatusCode, String)) -> bool {
    answer.0 == UNKNOWN.0 && answer.1 == UNKNOWN.1
}

/// Store clocks keep whole seconds: wait until what was written counts as older than
/// a one-second grace window.
async fn age_past_one_second_grace() {
    tokio::time::sleep(Duration::from_millis(3100)).await;
}

both_backends!(
    removed_tags_and_manifests_are_unknown_to_the_registry_at_once,
    |t: TestStore| async move {
        let manifest = push_image(&t, "acme/web:v1", "web");
        push_image(&t, "acme/web:v2", "web");
        let digest = digest_of(&manifest);
        let server = Server::for_clients(&t.url);
        let by_digest = format!("/v2/acme/web/manifests/{digest}");
        // Asked before, so any cache would now hold them.
        for path in [
            "/v2/acme/web/manifests/v1",
            "/v2/acme/web/manifests/v2",
            &by_digest,
        ] {
            assert_eq!(manifest_status(&server, path).await.0, StatusCode::OK);
        }

        success(&t.berth(&["tag", "rm", "acme/web:v1"]));
        assert!(is_unknown(
            manifest_status(&server, "/v2/acme/web/manifests/v1").await
        ));
        assert_eq!(
            manifest_status(&server, "/v2/acme/web/manifests/v2")
                .await
                .0,
            StatusCode::OK
        );
        assert_eq!(
            t.get_json("v2/acme/web/tags/list").await,
            json!({ "name": "acme/web", "tags": ["v2"] })
        );
        let line = failure(&t.berth(&["tag", "rm", "acme/web:nope"]));
        assert!(line.contains("acme/web:nope: no such tag"), "{line}");

        let target = format!("acme/web@{digest}");
        let line = failure(&t.berth(&["rm", &target]));
        assert!(
            line.contains("still referenced by tag v2") && line.contains("--force"),
            "{line}"
        );
        assert_eq!(manifest_status(&server, &by_digest).await.0, StatusCode::OK);
        success(&t.berth(&["rm", "--force", &target]));
        assert!(is_unknown(manifest_status(&server, &by_digest).await));
        assert!(is_unknown(
            manifest_status(&server, "/v2/acme/web/manifests/v2").await
        ));
        assert_eq!(
            t.get_json("v2/acme/web/tags/list").await,
            json!({ "name": "acme/web", "tags": [] })
        );
        let line = failure(&t.berth(&["rm", &target]));
        assert!(line.contains("no such manifest"), "{line}");
    }
);

both_backends!(
    rm_is_refused_while_an_index_lists_it_and_takes_its_referrer_record,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let amd64 = layout.platform_image("amd64", "x86");
        let arm64 = layout.platform_image("arm64", "arm");
        let index = layout.index_blob(vec![amd64.clone(), arm64.clone()]);
        layout.set_index(vec![index.clone()]);
        t.push(dir.path().to_str().unwrap(), "multi/arch:v1", &[]);
        let line = failure(&t.berth(&[
            "rm",
            &format!("multi/arch@{}", amd64["digest"].as_str().unwrap()),
        ]));
        assert!(
            line.contains("still referenced by") && line.contains("index v1"),
            "{line}"
        );

        let (image, artifact, _dir) = push_with_sbom(&t, "ref/app");
        let record = format!(
            "_berth/referrers/ref/app/{}/{}",
            image["digest"].as_str().unwrap(),
            artifact["digest"].as_str().unwrap()
        );
        assert!(t.exists(&record).await);
        success(&t.berth(&["tag", "rm", "ref/app:sbom"]));
        success(&t.berth(&[
            "rm",
            &format!("ref/app@{}", artifact["digest"].as_str().unwrap()),
        ]));
        assert!(
            !t.exists(&record).await,
            "the referrer record outlived its manifest"
        );
        let server = Server::for_clients(&t.url);
        let referrers = server
            .get_json(&format!(
                "/v2/ref/app/referrers/{}",
                image["digest"].as_str().unwrap()
            ))
            .await;
        assert_eq!(referrers["manifests"], json!([]));
    }
);

/// An image tagged `v1` and an SBOM about it tagged `sbom`; returns both descriptors.
fn push_with_sbom(t: &TestStore, repo: &str) -> (Value, Value, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path());
    let image = layout.image("amd64", "signed");
    let config = layout.blob("application/vnd.oci.empty.v1+json", b"{}");
    let sbom = layout.blob("application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
    let subject =
        json!({ "mediaType": oci::OCI_MANIFEST, "digest": image["digest"], "size": image["size"] });
    let artifact = layout.json_blob(
        oci::OCI_MANIFEST,
        &json!({
            "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST, "artifactType": "application/spdx+json",
            "config": config, "layers": [sbom], "subject": subject
        }),
    );
    let mut tagged_image = image.clone();
    tagged_image["annotations"] = json!({ "org.opencontainers.image.ref.name": "image" });
    let mut tagged_artifact = artifact.clone();
    tagged_artifact["annotations"] = json!({ "org.opencontainers.image.ref.name": "sbom" });
    layout.set_index(vec![tagged_image, tagged_artifact]);
    let path = dir.path().to_str().unwrap();
    t.push(&format!("oci:{path}:image"), &format!("{repo}:v1"), &[]);
    t.push(&format!("oci:{path}:sbom"), &format!("{repo}:sbom"), &[]);
    (image, artifact, dir)
}

both_backends!(
    repo_rm_asks_first_and_spares_nested_repositories,
    |t: TestStore| async move {
        let other = "acme/web/api";
        push_image(&t, "acme/web:v1", "web");
        push_image(&t, &format!("{other}:v1"), "api");
        let line = failure(&t.berth(&["repo", "rm", "acme/web"]));
        assert!(line.contains("pass --yes"), "{line}");
        assert!(t.exists("v2/acme/web/manifests/v1").await);

        success(&t.berth(&["repo", "rm", "acme/web", "--yes"]));
        let left = list_all(&*t.store, "v2/acme/web").await.unwrap();
        assert!(
            left.iter().all(|k| k.starts_with(&format!("v2/{other}/"))),
            "{left:?}"
        );
        assert!(!left.is_empty());
        assert!(!t.exists("_berth/repositories/acme/web").await);
        assert_eq!(
            t.get_json("v2/_catalog").await,
            json!({ "repositories": [other] })
        );
        let server = Server::for_clients(&t.url);
        let gone = manifest_status(&server, "/v2/acme/web/manifests/v1").await;
        assert_eq!(gone.0, StatusCode::NOT_FOUND);
        assert_eq!(
            manifest_status(&server, &format!("/v2/{other}/manifests/v1"))
                .await
                .0,
            StatusCode::OK
        );
        let line = failure(&t.berth(&["repo", "rm", "acme/web", "--yes"]));
        assert!(line.contains("does not exist"), "{line}");
    }
);

both_backends!(
    gc_frees_an_untagged_image_but_keeps_blobs_another_repository_shares,
    |t: TestStore| async move {
        let shared = push_image(&t, "one/a:v1", "shared");
        let (dir, _) = layout_of("shared");
        let report = t.push(path(&dir), "two/b:v1", &[]);
        assert_eq!(
            report["blobs_copied"], 2,
            "the second repository copies server-side"
        );
        push_image(&t, "one/a:old", "gone");
        success(&t.berth(&["tag", "rm", "one/a:v1", "one/a:old"]));
        let doomed = content_keys(&t, "one/a").await;
        assert_eq!(doomed.len(), 6, "{doomed:?}");
        let kept = content_keys(&t, "two/b").await;
        let mut bytes = 0;
        for key in &doomed {
            bytes += t.store.head(key).await.unwrap().unwrap().size;
        }
        age_past_one_second_grace().await;

        let dry = gc(&t, &["--dry-run", "--grace", "1s"]);
        assert_eq!(
            (
                dry["dry_run"].clone(),
                dry["manifests"].clone(),
                dry["blobs"].clone()
            ),
            (json!(true), json!(2), json!(4))
        );
        assert_eq!(dry["bytes"], bytes);
        let mut listed: Vec<&str> = dry["removed"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["key"].as_str().unwrap())
            .collect();
        listed.sort();
        assert_eq!(listed, doomed);
        for key in &doomed {
            assert!(t.exists(key).await, "a dry run removed {key}");
        }
        let text = success(&t.berth(&["gc", "--dry-run", "--grace", "1s"]));
        assert!(
            text.contains(&format!("would remove {}", doomed[0])),
            "{text}"
        );

        let report = gc(&t, &["--grace", "1s"]);
        assert_eq!(
            (
                report["manifests"].clone(),
                report["blobs"].clone(),
                report["bytes"].clone()
            ),
            (json!(2), json!(4), json!(bytes))
        );
        // Four blob-holder records go with their blobs.
        assert_eq!(report["objects"], 10);
        assert!(content_keys(&t, "one/a").await.is_empty());
        assert_eq!(content_keys(&t, "two/b").await, kept);
        for layer in list_all(&*t.store, "_berth/blob-holders/").await.unwrap() {
            assert!(layer.ends_with("/two/b"), "{layer} outlived its blob");
        }
        assert_complete(&*t.store, "two/b", &digest_of(&shared)).await;
        if t.backend == Backend::Garage {
            let server = Server::for_clients(&t.url);
            let copy = tempfile::tempdir().unwrap();
            success(&skopeo(&[
                "copy",
                "--src-tls-verify=false",
                &format!("docker://{}/two/b:v1", server.address),
                &format!("oci:{}:v1", copy.path().display()),
            ]));
        }

        let again = gc(&t, &["--grace", "1s"]);
        assert_eq!(
            (again["objects"].clone(), again["bytes"].clone()),
            (json!(0), json!(0))
        );
    }
);

both_backends!(
    gc_keeps_fresh_unreachable_objects_and_referrers_of_tagged_images,
    |t: TestStore| async move {
        let (image, artifact, _dir) = push_with_sbom(&t, "ref/app");
        // The SBOM stays reachable through its subject once its tag is gone.
        success(&t.berth(&["tag", "rm", "ref/app:sbom"]));
        push_image(&t, "ref/app:tmp", "fresh");
        success(&t.berth(&["tag", "rm", "ref/app:tmp"]));
        let fresh = gc(&t, &["--grace", "1h"]);
        assert_eq!(fresh["objects"], 0);
        assert_eq!(fresh["kept_recent"], 3);
        age_past_one_second_grace().await;
        let report = gc(&t, &["--grace", "1s"]);
        assert_eq!(
            (report["manifests"].clone(), report["blobs"].clone()),
            (json!(1), json!(2))
        );
        assert_complete(&*t.store, "ref/app", &digest_of(&image)).await;
        assert_complete(&*t.store, "ref/app", &digest_of(&artifact)).await;
    }
);

/// Images move through a few tags while `gc --grace 6s` runs in a loop. An image
/// becomes unreachable when its tag moves on and is published again at a random later
/// time, often just as it ages past the grace window, while a collection that listed
/// it as unreachable is running: exactly when a publish that reused it without
/// renewing it would lose it. Before every push, every tag must reach complete
/// content; at the end every tag must pull.
/// A collection's marker (`_berth/gc/running/<id>`, what makes publishes wait) is
/// gone when the run ends; a dead run's marker is removed once a day old, a running
/// one's never. On the directory store, where a marker's age can be set.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_removes_its_own_marker_and_dead_runs_stale_ones() {
    let t = TestStore::new(Backend::Dir, "gc-markers").await;
    push_image(&t, "acme/app:v1", "marked");
    let markers = std::path::Path::new(&t.url).join("_berth/gc/running");
    std::fs::create_dir_all(&markers).unwrap();
    let dead = std::fs::File::create(markers.join("dead-run")).unwrap();
    dead.set_modified(std::time::SystemTime::now() - Duration::from_secs(25 * 3600))
        .unwrap();
    std::fs::File::create(markers.join("running-run")).unwrap();
    let listed = || async { list_all(&*t.store, "_berth/gc/running/").await.unwrap() };

    gc(&t, &["--dry-run"]);
    assert_eq!(
        listed().await.len(),
        2,
        "a dry run deletes nothing, markers included"
    );
    gc(&t, &[]);
    assert_eq!(listed().await, vec!["_berth/gc/running/running-run"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gc_running_in_a_loop_never_breaks_a_concurrent_publish() {
    const IMAGES: u64 = 24;
    const RUN: Duration = Duration::from_secs(25);
    // A slow machine gets fewer pushes in RUN; it goes on (up to this) until a
    // collected image has been re-published, so the race this test is about happened.
    const MAX_RUN: Duration = Duration::from_secs(90);
    const TAGS: [(&str, &str); 3] = [("race/app", "t0"), ("race/app", "t1"), ("race/copy", "t0")];
    // Built before the clock starts, so the race runs for the whole time.
    berth_e2e::berth_bin();
    let t = Arc::new(TestStore::new(Backend::Garage, "gc-race").await);
    let layouts: Vec<tempfile::TempDir> = (0..IMAGES)
        .map(|i| layout_of(&format!("race {i}")).0)
        .collect();
    let stop = Arc::new(AtomicBool::new(false));

    let collector = {
        let (t, stop) = (t.clone(), stop.clone());
        tokio::task::spawn_blocking(move || {
            let (mut runs, mut removed) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                let report = gc(&t, &["--grace", "6s"]);
                assert_eq!(report["skipped"], json!([]));
                removed += report["blobs"].as_u64().unwrap();
                runs += 1;
                std::thread::sleep(Duration::from_millis(100));
            }
            (runs, removed)
        })
    };
    let started = Instant::now();
    let handle = tokio::runtime::Handle::current();
    let publisher = {
        let t = t.clone();
        tokio::task::spawn_blocking(move || {
            let (mut pushes, mut reuses, mut resent) = (0, 0, 0);
            let mut seen = std::collections::HashSet::new();
            // A fixed pseudo-random sequence spreads the gaps between re-publishes.
            let mut state: u64 = 0x2545_f491_4f6c_dd1d;
            while started.elapsed() < RUN
                || ((resent == 0 || reuses == 0) && started.elapsed() < MAX_RUN)
            {
                for (repo, tag) in TAGS {
                    let key = format!("v2/{repo}/manifests/{tag}");
                    if let Some(object) = handle.block_on(t.store.get(&key)).unwrap() {
                        let digest = Digest::of(&object.body);
                        handle.block_on(assert_complete(&*t.store, repo, &digest));
                    }
                }
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1);
                let image = (state >> 33) % IMAGES;
                let (repo, tag) = TAGS[(state >> 20) as usize % TAGS.len()];
                let report = t.push(
                    path(&layouts[image as usize]),
                    &format!("{repo}:{tag}"),
                    &[],
                );
                if report["blobs_skipped"].as_u64().unwrap() > 0 {
                    reuses += 1;
                }
                let sent = report["blobs_uploaded"].as_u64().unwrap()
                    + report["blobs_copied"].as_u64().unwrap();
                if !seen.insert((repo, image)) && sent > 0 {
                    resent += 1;
                }
                pushes += 1;
            }
            (pushes, reuses, resent)
        })
    };
    let (pushes, reuses, resent) = publisher.await.unwrap();
    stop.store(true, Ordering::Relaxed);
    let (runs, removed) = collector.await.unwrap();
    eprintln!(
        "{pushes} pushes ({reuses} reusing, {resent} re-sending collected blobs), {runs} collections removing {removed} blobs"
    );
    assert!(
        reuses > 0 && resent > 0 && removed > 0,
        "the race never happened"
    );
    assert!(runs > 10);

    let server = Server::for_clients(&t.url);
    for (repo, tag) in TAGS {
        let object = t
            .store
            .get(&format!("v2/{repo}/manifests/{tag}"))
            .await
            .unwrap()
            .unwrap();
        assert_complete(&*t.store, repo, &Digest::of(&object.body)).await;
        let copy = tempfile::tempdir().unwrap();
        success(&skopeo(&[
            "copy",
            "--src-tls-verify=false",
            &format!("docker://{}/{repo}:{tag}", server.address),
            &format!("oci:{}:x", copy.path().display()),
        ]));
    }
}
