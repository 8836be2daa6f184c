//! `berth push` from the user's side: real archives from the real Docker engine and
//! skopeo, hand-built OCI layouts, each pushed by the real binary into Garage and
//! into a directory store, then checked key by key.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use berth_e2e::docker::{build_image, save, skopeo};
use berth_e2e::oci::{self, Layout};
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

/// Killing a publish at any moment leaves every existing tag complete: here a push
/// of a larger image to the same tag is killed while its blobs upload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_publish_leaves_existing_tags_complete() {
    for backend in [Backend::Garage, Backend::Dir] {
        let t = TestStore::new(backend, "killed").await;
        t.push(path(&fixtures().archive), "acme/kill:v1", &[]);

        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(dir.path());
        let big: Vec<u8> = (0..64u32 << 20)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect();
        let layer = layout.blob(oci::OCI_LAYER, &big);
        let config = layout.json_blob(
            oci::OCI_CONFIG,
            &json!({ "architecture": "amd64", "os": "linux" }),
        );
        let manifest = layout.json_blob(
            oci::OCI_MANIFEST,
            &json!({ "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST, "config": config, "layers": [layer] }),
        );
        layout.set_index(vec![manifest]);

        for delay_ms in [50, 300] {
            let mut child = std::process::Command::new(berth_e2e::berth_bin())
                .args(["push", path(dir.path()), "acme/kill:v1", "--store", &t.url])
                .envs(berth_e2e::garage_env().iter().map(|(k, v)| (k, v)))
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(std::time::Duration::from_millis(delay_ms));
            child.kill().unwrap();
            child.wait().unwrap();
            t.assert_tag_complete("acme/kill", "v1").await;
        }
    }
}
