//! `berth push` from the user's side: real archives from the real Docker engine and
//! skopeo, hand-built OCI layouts, each pushed by the real binary into Garage and
//! into a directory store, then checked key by key.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use berth_core::store::{S3Options, S3Store, WriteMeta};
use berth_core::{Repository, catalog};
use berth_e2e::docker::{build_image, save, skopeo};
use berth_e2e::oci::{self, Layout};
use berth_e2e::slow_link::SlowLink;
use berth_e2e::{Backend, TestStore, both_backends, failure, success, unique};
use serde_json::{Value, json};

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Images built once per test run by the real Docker engine.
struct Fixtures {
    _dir: tempfile::TempDir,
    image: String,
    /// `docker save` output (the legacy format on Debian's engine).
    archive: PathBuf,
    /// The same image as an OCI layout written by skopeo.
    layout: PathBuf,
}

fn fixtures() -> &'static Fixtures {
    static FIXTURES: OnceLock<Fixtures> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let image = format!("berth-e2e/hello:{}", unique("push"));
        build_image(&image, "hello from berth");
        let archive = dir.path().join("image.tar");
        save(&image, &archive);
        let layout = dir.path().join("layout");
        let from = format!("docker-archive:{}", archive.display());
        let to = format!("oci:{}:v1", layout.display());
        success(&skopeo(&["copy", &from, &to]));
        Fixtures {
            _dir: dir,
            image,
            archive,
            layout,
        }
    })
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

both_backends!(
    docker_save_tarball_publishes_blobs_manifests_and_tags,
    |t: TestStore| async move {
        let f = fixtures();
        let report = t.push(path(&f.archive), "acme/hello:v1", &["-t", "latest"]);
        assert_eq!(report["repository"], "acme/hello");
        assert_eq!(report["tags"], json!(["v1", "latest"]));
        assert_eq!(report["media_type"], DOCKER_MANIFEST);
        assert_eq!(
            report["blobs_uploaded"], 3,
            "config and two layers: {report}"
        );
        assert_eq!(report["blobs_skipped"], 0);
        assert!(
            report["bytes_uploaded"].as_u64().unwrap() > 1_000_000,
            "busybox is in a layer"
        );

        for tag in ["v1", "latest"] {
            let manifest = t.assert_tag_complete("acme/hello", tag).await;
            assert_eq!(manifest["mediaType"], DOCKER_MANIFEST);
        }
        let digest = report["digest"].as_str().unwrap();
        let head = t
            .store
            .head(&format!("v2/acme/hello/manifests/{digest}"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.content_type.as_deref(), Some(DOCKER_MANIFEST));

        assert_eq!(
            t.get_json("v2/acme/hello/tags/list").await,
            json!({ "name": "acme/hello", "tags": ["latest", "v1"] })
        );
        assert_eq!(
            t.get_json("v2/_catalog").await,
            json!({ "repositories": ["acme/hello"] })
        );
        assert_eq!(t.get_json("v2/index.html").await, json!({}));
        assert_eq!(
            t.get_json("_berth/layout.json").await,
            json!({ "version": 1 })
        );
    }
);

both_backends!(
    republishing_an_unchanged_image_uploads_no_blob,
    |t: TestStore| async move {
        let f = fixtures();
        let first = t.push(path(&f.archive), "acme/again:v1", &[]);
        let second = t.push(path(&f.archive), "acme/again:v1", &[]);
        assert_eq!(second["digest"], first["digest"]);
        assert_eq!(second["blobs_uploaded"], 0);
        assert_eq!(second["blobs_skipped"], 3);
        assert_eq!(second["bytes_uploaded"], 0);
        assert_eq!(second["manifests_written"], 0);
    }
);

both_backends!(
    blobs_another_repository_has_are_copied_not_resent,
    |t: TestStore| async move {
        let f = fixtures();
        t.push(path(&f.archive), "team/one:v1", &[]);
        let second = t.push(path(&f.archive), "team/two:v1", &[]);
        assert_eq!(second["blobs_uploaded"], 0, "{second}");
        assert_eq!(second["blobs_copied"], 3);
        assert_eq!(second["bytes_uploaded"], 0);
        t.assert_tag_complete("team/two", "v1").await;
        let catalog = t.get_json("v2/_catalog").await;
        assert_eq!(catalog, json!({ "repositories": ["team/one", "team/two"] }));
    }
);

both_backends!(
    oci_layout_directory_and_tar_keep_the_digest_skopeo_wrote,
    |t: TestStore| async move {
        let f = fixtures();
        let index: Value =
            serde_json::from_slice(&std::fs::read(f.layout.join("index.json")).unwrap()).unwrap();
        let skopeo_digest = index["manifests"][0]["digest"].as_str().unwrap().to_owned();

        let from_dir = t.push(path(&f.layout), "oci/dir:v1", &[]);
        assert_eq!(from_dir["digest"], skopeo_digest.as_str());
        let manifest = t.assert_tag_complete("oci/dir", "v1").await;
        assert_eq!(manifest["mediaType"], oci::OCI_MANIFEST);

        let packed = tempfile::tempdir().unwrap();
        let tar = packed.path().join("layout.tar");
        Layout {
            dir: f.layout.clone(),
        }
        .pack(&tar);
        let from_tar = t.push(&format!("oci:{}", path(&tar)), "oci/tar:v1", &[]);
        assert_eq!(from_tar["digest"], skopeo_digest.as_str());
        t.assert_tag_complete("oci/tar", "v1").await;
    }
);

both_backends!(
    gzipped_docker_archive_publishes_the_same_image,
    |t: TestStore| async move {
        let f = fixtures();
        let dir = tempfile::tempdir().unwrap();
        let gz = dir.path().join("image.tar.gz");
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "gzip -1 -c '{}' > '{}'",
                path(&f.archive),
                path(&gz)
            ))
            .status()
            .unwrap();
        assert!(status.success());
        let plain = t.push(path(&f.archive), "gz/plain:v1", &[]);
        let gzipped = t.push(path(&gz), "gz/packed:v1", &[]);
        assert_eq!(gzipped["digest"], plain["digest"]);
    }
);

both_backends!(
    docker_daemon_source_matches_the_saved_archive,
    |t: TestStore| async move {
        let f = fixtures();
        let from_archive = t.push(path(&f.archive), "daemon/archive:v1", &[]);
        let from_daemon = t.push(
            &format!("docker-daemon:{}", f.image),
            "daemon/engine:v1",
            &[],
        );
        assert_eq!(from_daemon["digest"], from_archive["digest"]);
        t.assert_tag_complete("daemon/engine", "v1").await;
    }
);

both_backends!(
    multi_platform_index_is_published_children_first,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let amd64 = layout.platform_image("amd64", "x86");
        let arm64 = layout.platform_image("arm64", "arm");
        let index = layout.index_blob(vec![amd64.clone(), arm64.clone()]);
        layout.set_index(vec![index.clone()]);

        let report = t.push(path(dir.path()), "multi/arch:v1", &[]);
        assert_eq!(report["digest"], index["digest"]);
        assert_eq!(report["media_type"], oci::OCI_INDEX);
        assert_eq!(report["blobs_uploaded"], 4);
        assert_eq!(report["manifests_written"], 3);
        let stored = t.assert_tag_complete("multi/arch", "v1").await;
        assert_eq!(stored["manifests"].as_array().unwrap().len(), 2);
        let head = t
            .store
            .head(&format!(
                "v2/multi/arch/manifests/{}",
                index["digest"].as_str().unwrap()
            ))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(head.content_type.as_deref(), Some(oci::OCI_INDEX));
    }
);

both_backends!(
    non_image_artifacts_publish_like_images,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let config = layout.blob("application/vnd.oci.empty.v1+json", b"{}");
        let sbom = layout.blob("application/spdx+json", br#"{"spdxVersion":"SPDX-2.3"}"#);
        let manifest = layout.json_blob(
            oci::OCI_MANIFEST,
            &json!({
                "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST,
                "artifactType": "application/spdx+json", "config": config, "layers": [sbom]
            }),
        );
        layout.set_index(vec![manifest.clone()]);
        let report = t.push(path(dir.path()), "acme/sbom:v1", &[]);
        assert_eq!(report["digest"], manifest["digest"]);
        let stored = t.assert_tag_complete("acme/sbom", "v1").await;
        assert_eq!(stored["artifactType"], "application/spdx+json");
    }
);

both_backends!(
    a_layout_with_several_images_needs_a_ref,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let mut one = layout.image("amd64", "one");
        one["annotations"] = json!({ "org.opencontainers.image.ref.name": "one" });
        let mut two = layout.image("amd64", "two");
        two["annotations"] = json!({ "org.opencontainers.image.ref.name": "two" });
        layout.set_index(vec![one, two.clone()]);

        let line = failure(&t.berth(&["push", path(dir.path()), "pick/me:v1"]));
        assert!(line.contains("pick one with oci:PATH:REF"), "{line}");
        let report = t.push(&format!("oci:{}:two", path(dir.path())), "pick/me:v1", &[]);
        assert_eq!(report["digest"], two["digest"]);
    }
);

/// A refused push writes no tag (and, when refused before publishing, nothing).
async fn assert_nothing_tagged(t: &TestStore, repo: &str) {
    assert!(
        !t.exists(&format!("v2/{repo}/manifests/v1")).await,
        "a tag was written"
    );
    assert!(!t.exists(&format!("_berth/repositories/{repo}")).await);
}

both_backends!(
    a_corrupt_layer_is_refused_and_nothing_is_tagged,
    |t: TestStore| async move {
        let f = fixtures();
        let dir = tempfile::tempdir().unwrap();
        let corrupt = dir.path().join("corrupt.tar");
        std::fs::copy(&f.archive, &corrupt).unwrap();
        flip_byte_in_first_layer(&corrupt);
        let line = failure(&t.berth(&["push", path(&corrupt), "bad/layer:v1"]));
        assert!(line.contains("does not match its digest"), "{line}");
        assert_nothing_tagged(&t, "bad/layer").await;
        // The damaged blob never became an object either.
        let listed = t
            .store
            .list("v2/bad/layer/manifests/", None, 10)
            .await
            .unwrap();
        assert!(listed.is_empty(), "{listed:?}");
    }
);

fn flip_byte_in_first_layer(archive: &Path) {
    let mut tar = tar::Archive::new(std::fs::File::open(archive).unwrap());
    let offset = tar
        .entries()
        .unwrap()
        .map(Result::unwrap)
        .find(|e| e.path().unwrap().to_string_lossy().ends_with("layer.tar") && e.size() > 1000)
        .map(|e| e.raw_file_position() + 600)
        .expect("a layer in the archive");
    let mut bytes = std::fs::read(archive).unwrap();
    bytes[offset as usize] ^= 0xff;
    std::fs::write(archive, bytes).unwrap();
}

both_backends!(a_truncated_archive_is_refused, |t: TestStore| async move {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.tar");
    let bytes = std::fs::read(&f.archive).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let line = failure(&t.berth(&["push", path(&cut), "bad/cut:v1"]));
    assert!(line.contains("malformed or truncated"), "{line}");
    assert_nothing_tagged(&t, "bad/cut").await;
    assert!(
        !t.exists("_berth/layout.json").await,
        "refused before writing anything"
    );
});

both_backends!(
    a_file_that_is_not_an_image_is_refused,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.tar");
        std::fs::write(&junk, b"this is not a tar archive at all").unwrap();
        let line = failure(&t.berth(&["push", path(&junk), "bad/junk:v1"]));
        assert!(line.contains("junk.tar"), "{line}");
        let missing = failure(&t.berth(&["push", "/nonexistent/image.tar", "bad/junk:v1"]));
        assert!(missing.contains("cannot open"), "{missing}");
        assert!(!t.exists("_berth/layout.json").await);
    }
);

both_backends!(
    invalid_names_and_tags_are_refused_before_anything_is_written,
    |t: TestStore| async move {
        let f = fixtures();
        for (target, extra, expected) in [
            ("Acme/Web:v1", None, "invalid repository name"),
            ("acme/manifests:v1", None, "reserved"),
            ("acme/web:-bad", None, "invalid tag"),
            ("acme/web:v1", Some("no spaces"), "invalid tag"),
            ("acme/web@sha256:abc", None, "invalid digest"),
        ] {
            let mut args = vec!["push", path(&f.archive), target];
            if let Some(tag) = extra {
                args.extend(["-t", tag]);
            }
            let line = failure(&t.berth(&args));
            assert!(line.contains(expected), "{target}: {line}");
        }
        assert!(!t.exists("_berth/layout.json").await);
    }
);

both_backends!(
    a_layout_missing_a_blob_or_lying_about_sizes_is_refused,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let manifest = layout.image("amd64", "gone");
        layout.set_index(vec![manifest.clone()]);
        let body: Value =
            serde_json::from_slice(&std::fs::read(layout.blob_path(&manifest)).unwrap()).unwrap();
        std::fs::remove_file(layout.blob_path(&body["layers"][0])).unwrap();
        let line = failure(&t.berth(&["push", path(dir.path()), "bad/missing:v1"]));
        assert!(line.contains("is missing from the source"), "{line}");
        assert_nothing_tagged(&t, "bad/missing").await;

        let mut wrong_size = manifest.clone();
        wrong_size["size"] = json!(manifest["size"].as_u64().unwrap() + 1);
        layout.set_index(vec![wrong_size]);
        let line = failure(&t.berth(&["push", path(dir.path()), "bad/missing:v1"]));
        assert!(line.contains("does not match its digest or size"), "{line}");
        assert_nothing_tagged(&t, "bad/missing").await;
    }
);

#[test]
fn an_unreachable_s3_endpoint_fails_with_one_line() {
    let f = fixtures();
    let output = std::process::Command::new(berth_e2e::berth_bin())
        .args([
            "push",
            path(&f.archive),
            "acme/web:v1",
            "--store",
            "s3://nowhere",
        ])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .env("AWS_ACCESS_KEY_ID", "x")
        .env("AWS_SECRET_ACCESS_KEY", "y")
        .env("AWS_REGION", "garage")
        .output()
        .unwrap();
    let line = failure(&output);
    assert!(line.contains("s3://nowhere"), "{line}");
}

// Killing a publish leaves every existing tag complete, and running the same push
// again finishes it. The kill lands at observed points: (a) while the new image's
// big layer is uploading, (b) once a child manifest of a new index is stored under
// its digest but the tag still names the old image.
both_backends!(
    a_killed_publish_leaves_existing_tags_complete,
    |t: TestStore| async move {
        let old = t.push(path(&fixtures().archive), "acme/kill:v1", &[]);

        // (a) A 64 MiB layer, killed once its upload is seen in flight.
        let big_dir = tempfile::tempdir().unwrap();
        let (manifest, layer) = oci::big_image(big_dir.path(), 64 << 20, "kill");
        let layer_digest = layer["digest"].as_str().unwrap();
        let layer_key = format!("v2/acme/kill/blobs/{layer_digest}");

        // Garage takes 64 MiB in a blink on loopback: its answers come slowly
        // through a relay, so the upload is still open when the watch sees it.
        let link = (t.backend == Backend::Garage).then(|| {
            let garage = berth_e2e::garage_var("AWS_ENDPOINT_URL");
            SlowLink::start(garage.strip_prefix("http://").unwrap(), 2_000)
        });
        let endpoint = link.as_ref().map(|l| format!("http://{}", l.address()));
        let slow: Vec<(&str, &str)> = endpoint
            .iter()
            .map(|e| ("AWS_ENDPOINT_URL", e.as_str()))
            .collect();
        let mut child = spawn_push(&t, path(big_dir.path()), "acme/kill:v1", &slow);
        let uploads = UploadWatch::new(&t).await;
        stop_when(&mut child, "the layer upload starts", || {
            uploads.in_flight(layer_digest)
        })
        .await;
        assert!(
            !t.exists(&layer_key).await,
            "stopped after the layer landed"
        );
        kill(child);
        assert_tag_names(&t, "acme/kill", "v1", &old["digest"]).await;

        let report = t.push(path(big_dir.path()), "acme/kill:v1", &[]);
        assert_eq!(report["digest"], manifest["digest"]);
        assert_tag_names(&t, "acme/kill", "v1", &manifest["digest"]).await;
        assert_eq!(
            t.get_json("v2/acme/kill/tags/list").await,
            json!({ "name": "acme/kill", "tags": ["v1"] })
        );

        // (b) An index of many children (sharing one config and layer): manifests
        // are written one by one, children first, so there is a window between the
        // first child and the tag.
        let index_dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(index_dir.path());
        let config = layout.json_blob(
            oci::OCI_CONFIG,
            &json!({ "architecture": "amd64", "os": "linux" }),
        );
        let layer = layout.blob(oci::OCI_LAYER, &oci::tar_with_file("hello", b"hi"));
        let children: Vec<Value> = (0..200)
            .map(|n| {
                oci::with_platform(
                    layout.json_blob(
                        oci::OCI_MANIFEST,
                        &json!({
                            "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST,
                            "config": config, "layers": [layer],
                            "annotations": { "org.example.child": n.to_string() }
                        }),
                    ),
                    "amd64",
                )
            })
            .collect();
        let index = layout.index_blob(children.clone());
        layout.set_index(vec![index.clone()]);
        let first_child = format!(
            "v2/acme/kill/manifests/{}",
            children[0]["digest"].as_str().unwrap()
        );

        let mut child = spawn_push(&t, path(index_dir.path()), "acme/kill:v1", &[]);
        stop_when(&mut child, "the first child manifest is stored", || {
            t.exists(&first_child)
        })
        .await;
        assert_tag_names(&t, "acme/kill", "v1", &manifest["digest"]).await;
        kill(child);
        assert_tag_names(&t, "acme/kill", "v1", &manifest["digest"]).await;

        let report = t.push(path(index_dir.path()), "acme/kill:v1", &[]);
        assert_eq!(report["digest"], index["digest"]);
        assert_tag_names(&t, "acme/kill", "v1", &index["digest"]).await;
        assert_eq!(
            t.get_json("v2/acme/kill/tags/list").await,
            json!({ "name": "acme/kill", "tags": ["v1"] })
        );
    }
);

/// `repo:tag` is complete and names the manifest `digest`.
async fn assert_tag_names(t: &TestStore, repo: &str, tag: &str, digest: &Value) {
    t.assert_tag_complete(repo, tag).await;
    let head = t
        .store
        .head(&format!("v2/{repo}/manifests/{tag}"))
        .await
        .unwrap()
        .unwrap();
    let named = head.metadata.get("digest").unwrap();
    assert_eq!(Some(named.as_str()), digest.as_str(), "{repo}:{tag} moved");
}

/// `berth push SOURCE TARGET` against `t` with `env` on top, running in the background.
fn spawn_push(t: &TestStore, source: &str, target: &str, env: &[(&str, &str)]) -> Child {
    t.command(&["push", source, target])
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Polls `reached` while `child` runs and stops the child (SIGSTOP) as soon as it
/// holds, so the caller can check the state a kill will land in.
async fn stop_when<F, Fut>(child: &mut Child, what: &str, mut reached: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if reached().await {
            signal(child, "STOP");
            return;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("the push ended ({status}) before {what}");
        }
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(child.id().to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} failed");
}

/// SIGKILL, as a crash or an OOM killer would end the publish.
fn kill(mut child: Child) {
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Sees an upload in flight: a growing file in the directory store's temporary
/// directory, or an open multipart upload in the bucket.
enum UploadWatch {
    Dir(PathBuf),
    S3 { store: S3Store, prefix: String },
}

impl UploadWatch {
    async fn new(t: &TestStore) -> Self {
        match t.backend {
            Backend::Dir => UploadWatch::Dir(Path::new(&t.url).join(".berth-tmp")),
            Backend::Garage => {
                let rest = t.url.strip_prefix("s3://").unwrap();
                let (bucket, prefix) = rest.split_once('/').unwrap();
                let store = S3Store::connect(bucket, prefix, S3Options::default()).await;
                UploadWatch::S3 {
                    prefix: format!("{prefix}/"),
                    store,
                }
            }
        }
    }

    /// Whether the blob `digest` is being uploaded now.
    async fn in_flight(&self, digest: &str) -> bool {
        match self {
            // The only big temporary file is the layer's (the config is a few bytes).
            UploadWatch::Dir(tmp) => std::fs::read_dir(tmp).into_iter().flatten().any(|entry| {
                entry
                    .and_then(|e| e.metadata())
                    .is_ok_and(|m| m.len() >= 1 << 20)
            }),
            UploadWatch::S3 { store, prefix } => store
                .client()
                .list_multipart_uploads()
                .bucket(store.bucket())
                .prefix(prefix)
                .send()
                .await
                .unwrap()
                .uploads()
                .iter()
                .any(|u| u.key().is_some_and(|k| k.ends_with(digest))),
        }
    }
}

both_backends!(
    without_a_terminal_progress_is_one_plain_line_per_blob,
    |t: TestStore| async move {
        let f = fixtures();
        let first = t.berth(&["push", path(&f.archive), "progress/plain:v1"]);
        let summary = success(&first);
        let stderr = String::from_utf8(first.stderr).unwrap();
        for text in [&summary, &stderr] {
            assert!(
                !text.contains(['\r', '\x1b']),
                "terminal control in {text:?}"
            );
        }
        let blob_line = |line: &str, outcome: &str| {
            line.split_once(": ").is_some_and(|(short, rest)| {
                short.len() == 12
                    && short.bytes().all(|b| b.is_ascii_hexdigit())
                    && rest.starts_with(outcome)
            })
        };
        let uploaded = stderr
            .lines()
            .filter(|l| blob_line(l, "uploaded ("))
            .count();
        assert_eq!(uploaded, 3, "one line per blob: {stderr}");
        let digest = stderr
            .lines()
            .find_map(|l| l.strip_prefix("progress/plain:v1: digest: "))
            .unwrap_or_else(|| panic!("no tag line: {stderr}"))
            .split(' ')
            .next()
            .unwrap()
            .to_owned();
        let expected_start = format!("progress/plain@{digest}: 3 blobs uploaded (");
        assert!(summary.starts_with(&expected_start), "{summary}");
        assert!(
            summary.ends_with("), 0 already present, 0 reused\n"),
            "{summary}"
        );
        assert_eq!(summary.lines().count(), 1);

        let again = t.berth(&["push", path(&f.archive), "progress/plain:v1"]);
        let summary = success(&again);
        let stderr = String::from_utf8(again.stderr).unwrap();
        let present = stderr
            .lines()
            .filter(|l| blob_line(l, "already present"))
            .count();
        assert_eq!(present, 3, "{stderr}");
        assert_eq!(
            summary,
            format!(
                "progress/plain@{digest}: 0 blobs uploaded (0 B), 3 already present, 0 reused\n"
            )
        );
    }
);

both_backends!(
    on_a_terminal_progress_draws_bars,
    |t: TestStore| async move {
        let f = fixtures();
        let output = t.berth_on_terminal(&["push", path(&f.archive), "progress/tty:v1"]);
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{text}");
        // indicatif redraws with cursor movement and line clearing (ESC [).
        assert!(text.contains("\x1b["), "no bar drawn: {text:?}");
        assert!(text.contains(": uploaded ("), "{text:?}");
        assert!(text.contains("progress/tty@sha256:"), "{text:?}");
        t.assert_tag_complete("progress/tty", "v1").await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_store_is_berth_data_in_the_current_directory() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(berth_e2e::berth_bin())
        .args(["push", path(&f.archive), "acme/here:v1"])
        .current_dir(dir.path())
        .env_remove("BERTH_STORE")
        .output()
        .unwrap();
    success(&output);
    let tag = dir.path().join("berth-data/v2/acme/here/manifests/v1");
    assert!(tag.is_file(), "{} missing", tag.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_urls_name_a_directory_store_and_other_schemes_are_refused() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("via-url");
    let url = format!("file://{}", path(&root));
    success(&berth_e2e::berth(
        &url,
        &["push", path(&f.archive), "acme/url:v1"],
    ));
    assert!(root.join("v2/acme/url/manifests/v1").is_file());

    for url in ["http://x", "gs://bucket/prefix"] {
        let line = failure(&berth_e2e::berth(
            url,
            &["push", path(&f.archive), "acme/url:v1"],
        ));
        assert!(line.contains(url), "{url}: {line}");
    }
}

/// Virtual-hosted addressing (`--s3-path-style false`) sends requests to
/// `BUCKET.ENDPOINT-HOST`, which garage-up maps to loopback for the test bucket.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_style_off_addresses_the_bucket_by_host_name() {
    let f = fixtures();
    let t = TestStore::new(Backend::Garage, "vhost").await;
    // Garage's S3 root_domain, which scripts/garage-up maps (with the test bucket's
    // name under it) to loopback in /etc/hosts.
    let garage = berth_e2e::garage_var("AWS_ENDPOINT_URL");
    let port = garage.rsplit_once(':').unwrap().1;
    let endpoint = format!("http://s3.garage.localhost:{port}");
    let push = |store: &str, path_style: &str| {
        Command::new(berth_e2e::berth_bin())
            .args(["push", path(&f.archive), "acme/vhost:v1"])
            .args(["--store", store, "--s3-path-style", path_style])
            .envs(berth_e2e::garage_env().iter().map(|(k, v)| (k, v)))
            .env("AWS_ENDPOINT_URL", &endpoint)
            .output()
            .unwrap()
    };
    success(&push(&t.url, "false"));
    t.assert_tag_complete("acme/vhost", "v1").await;

    // A bucket whose host name resolves nowhere: virtual-hosted requests cannot
    // reach it; path-style ones reach Garage, which does not know the bucket.
    let absent = format!("s3://{}/x", unique("absent"));
    let by_host = failure(&push(&absent, "false"));
    let by_path = failure(&push(&absent, "true"));
    assert!(by_host.contains(&absent), "{by_host}");
    assert_ne!(by_host, by_path, "the flag changed nothing");
}

both_backends!(
    malformed_layouts_and_absent_images_are_refused_in_one_line,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let refuse = |source: &str, expected: &[&str]| {
            let line = failure(&t.berth(&["push", source, "bad/input:v1"]));
            for part in expected {
                assert!(line.contains(part), "{source}: {line} lacks {part:?}");
            }
        };
        let source = path(dir.path());

        std::fs::write(dir.path().join("index.json"), b"{\"manifests\": [").unwrap();
        refuse(source, &["index.json"]);

        let broken = layout.blob(oci::OCI_MANIFEST, b"{\"schemaVersion\": 2, ");
        layout.set_index(vec![broken.clone()]);
        refuse(source, &[broken["digest"].as_str().unwrap()]);

        for (digest, wrong) in [
            ("sha256:abc", "digest length"),
            ("md5:d41d8cd98f00b204e9800998ecf8427e", "md5"),
        ] {
            layout.set_index(vec![
                json!({ "mediaType": oci::OCI_MANIFEST, "digest": digest, "size": 10 }),
            ]);
            refuse(source, &["index.json", wrong]);
        }

        refuse(
            "docker-daemon:berth-e2e/absent:nope",
            &["berth-e2e/absent:nope"],
        );
        assert_nothing_tagged(&t, "bad/input").await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_directory_store_that_is_a_file_is_refused() {
    let f = fixtures();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"just a file").unwrap();
    let line = failure(&berth_e2e::berth(
        path(&file),
        &["push", path(&f.archive), "bad/store:v1"],
    ));
    assert!(line.contains(path(&file)), "{line}");
    assert_eq!(line.matches("Not a directory").count(), 1, "{line}");
    assert_eq!(std::fs::read(&file).unwrap(), b"just a file");
}

// Docker 25+ `docker save` writes an OCI layout with a legacy manifest.json beside
// it: the image keeps the OCI manifest's digest rather than a converted one.
both_backends!(
    a_docker_save_with_an_oci_layout_keeps_the_oci_digest,
    |t: TestStore| async move {
        let f = fixtures();
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(&dir.path().join("save"));
        for entry in std::fs::read_dir(f.layout.join("blobs/sha256")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(
                entry.path(),
                layout.dir.join("blobs/sha256").join(entry.file_name()),
            )
            .unwrap();
        }
        std::fs::copy(f.layout.join("index.json"), layout.dir.join("index.json")).unwrap();
        let index: Value =
            serde_json::from_slice(&std::fs::read(layout.dir.join("index.json")).unwrap()).unwrap();
        let oci_manifest = index["manifests"][0].clone();
        let manifest: Value =
            serde_json::from_slice(&std::fs::read(layout.blob_path(&oci_manifest)).unwrap())
                .unwrap();
        let blob_file = |descriptor: &Value| {
            format!(
                "blobs/sha256/{}",
                descriptor["digest"]
                    .as_str()
                    .unwrap()
                    .strip_prefix("sha256:")
                    .unwrap()
            )
        };
        let docker_manifest = json!([{
            "Config": blob_file(&manifest["config"]),
            "RepoTags": [f.image],
            "Layers": manifest["layers"].as_array().unwrap().iter().map(blob_file).collect::<Vec<_>>(),
        }]);
        std::fs::write(
            layout.dir.join("manifest.json"),
            serde_json::to_vec(&docker_manifest).unwrap(),
        )
        .unwrap();
        let tar = dir.path().join("saved.tar");
        layout.pack(&tar);

        let report = t.push(path(&tar), "save/oci:v1", &[]);
        assert_eq!(report["digest"], oci_manifest["digest"]);
        assert_eq!(report["media_type"], oci::OCI_MANIFEST);
        t.assert_tag_complete("save/oci", "v1").await;
    }
);

both_backends!(
    a_store_of_a_newer_or_unreadable_layout_is_refused,
    |t: TestStore| async move {
        let f = fixtures();
        let meta = WriteMeta::new("application/json");
        t.store
            .put(
                "_berth/layout.json",
                br#"{"version":2}"#.to_vec().into(),
                &meta,
            )
            .await
            .unwrap();
        let line = failure(&t.berth(&["push", path(&f.archive), "newer/layout:v1"]));
        assert!(
            line.contains("version 2") && line.contains("upgrade berth"),
            "{line}"
        );
        assert_nothing_tagged(&t, "newer/layout").await;

        t.store
            .put("_berth/layout.json", b"{\"vers".to_vec().into(), &meta)
            .await
            .unwrap();
        let line = failure(&t.berth(&["push", path(&f.archive), "newer/layout:v1"]));
        assert!(line.contains("_berth/layout.json is unreadable"), "{line}");
        assert_nothing_tagged(&t, "newer/layout").await;
    }
);

/// A 20 MiB layer in 5 MiB parts, two at a time: the object is the source byte for
/// byte, and was assembled from parts (a multipart ETag ends in `-PARTS`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_uploads_big_layers_in_parts_of_the_size_asked() {
    let t = TestStore::new(Backend::Garage, "parts").await;
    let dir = tempfile::tempdir().unwrap();
    let (_, layer) = oci::big_image(dir.path(), 20 << 20, "parts");
    let digest = layer["digest"].as_str().unwrap();
    let big = std::fs::read(dir.path().join("blobs/sha256").join(&digest[7..])).unwrap();
    t.push(
        path(dir.path()),
        "acme/parts:v1",
        &["--part-size-mib", "5", "--jobs", "2"],
    );

    let key = format!("v2/acme/parts/blobs/{digest}");
    let stored = t.store.get(&key).await.unwrap().unwrap();
    assert!(
        stored.body[..] == big[..],
        "stored bytes differ from the layer"
    );
    let rest = t.url.strip_prefix("s3://").unwrap();
    let (bucket, prefix) = rest.split_once('/').unwrap();
    let s3 = S3Store::connect(bucket, prefix, S3Options::default()).await;
    let head = s3
        .client()
        .head_object()
        .bucket(bucket)
        .key(s3.object_key(&key))
        .send()
        .await
        .unwrap();
    let etag = head.e_tag().unwrap();
    assert!(etag.trim_matches('"').ends_with("-4"), "etag {etag}");
}

both_backends!(
    concurrent_pushes_of_tags_all_land_in_the_tag_list,
    |t: TestStore| async move {
        let f = fixtures();
        let pushes: Vec<Child> = (1..=4)
            .map(|n| spawn_push(&t, path(&f.archive), &format!("acme/many:t{n}"), &[]))
            .collect();
        for child in pushes {
            let output = child.wait_with_output().unwrap();
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        let expected = json!({ "name": "acme/many", "tags": ["t1", "t2", "t3", "t4"] });
        assert_eq!(t.get_json("v2/acme/many/tags/list").await, expected);
        let repository: Repository = "acme/many".parse().unwrap();
        let listed = catalog::all_tags(&*t.store, &repository).await.unwrap();
        let listed: Vec<&str> = listed.iter().map(|tag| tag.as_str()).collect();
        assert_eq!(listed, ["t1", "t2", "t3", "t4"]);

        // A damaged static copy is rewritten whole by the next push.
        t.store
            .put(
                "v2/acme/many/tags/list",
                b"{}".to_vec().into(),
                &WriteMeta::new("application/json"),
            )
            .await
            .unwrap();
        t.push(path(&f.archive), "acme/many:t5", &[]);
        assert_eq!(
            t.get_json("v2/acme/many/tags/list").await,
            json!({ "name": "acme/many", "tags": ["t1", "t2", "t3", "t4", "t5"] })
        );
    }
);
