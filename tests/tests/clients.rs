//! Real clients against `berth serve`, unmodified: docker pull/run/build, podman and
//! skopeo, over Garage (blobs through presigned redirects to a hostname other than
//! the registry's) and over a directory store (blobs streamed).

use std::path::Path;

use berth_e2e::docker::{build_image, docker, podman, save, skopeo};
use berth_e2e::oci::{self, Layout};
use berth_e2e::server::Server;
use berth_e2e::{TestStore, both_backends, success, unique};
use serde_json::{Value, json};

/// A freshly built image (new layers, so docker really downloads them), published
/// into the store as `<repo>:v1`; returns (repo, message, push report).
fn publish_fresh_image(t: &TestStore, dir: &Path) -> (String, String, Value) {
    let message = unique("hello through berth");
    let local = format!("berth-e2e/client:{}", unique("v"));
    build_image(&local, &message);
    let archive = dir.join("image.tar");
    save(&local, &archive);
    // Three segments: names are routed by their last path part, not by position.
    let repo = format!("clients/{}/app", unique("team"));
    let report = t.push(archive.to_str().unwrap(), &format!("{repo}:v1"), &[]);
    (repo, message, report)
}

fn serve(t: &TestStore) -> Server {
    // localhost != 127.0.0.1: docker must not forward credentials to S3.
    Server::start(
        &t.url,
        &[("BERTH_PUBLIC_S3_ENDPOINT", "http://localhost:3900")],
    )
}

both_backends!(
    docker_pulls_runs_and_builds_from_berth,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let (repo, message, _) = publish_fresh_image(&t, dir.path());
        let server = serve(&t);
        let image = format!("{}/{repo}:v1", server.address);

        let pulled = success(&docker(&["pull", &image]));
        assert!(pulled.contains("Downloaded newer image"), "{pulled}");
        let output = success(&docker(&["run", "--rm", "--network", "none", &image]));
        assert_eq!(output.trim(), message);

        let context = dir.path().join("context");
        std::fs::create_dir(&context).unwrap();
        std::fs::write(
        context.join("Dockerfile"),
        format!("FROM {image}\nRUN [\"/bin/busybox\", \"sh\", \"-c\", \"echo built on berth > /built\"]\nCMD [\"/bin/busybox\", \"cat\", \"/message.txt\", \"/built\"]\n"),
    )
    .unwrap();
        let built = format!("berth-e2e/built:{}", unique("v"));
        success(&docker(&[
            "build",
            "--pull",
            "--network",
            "none",
            "-q",
            "-t",
            &built,
            context.to_str().unwrap(),
        ]));
        let output = success(&docker(&["run", "--rm", "--network", "none", &built]));
        assert_eq!(output.trim(), format!("{message}\nbuilt on berth"));

        let missing = docker(&["pull", &format!("{}/{repo}:missing", server.address)]);
        assert!(!missing.status.success());
        let stderr = String::from_utf8_lossy(&missing.stderr);
        assert!(
            stderr.contains("not found") || stderr.contains("manifest unknown"),
            "{stderr}"
        );
    }
);

both_backends!(
    skopeo_and_podman_read_what_berth_push_wrote,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let (repo, _, report) = publish_fresh_image(&t, dir.path());
        let server = serve(&t);
        let reference = format!("docker://{}/{repo}:v1", server.address);

        let inspected: Value = serde_json::from_str(&success(&skopeo(&[
            "inspect",
            "--tls-verify=false",
            &reference,
        ])))
        .unwrap();
        assert_eq!(
            inspected["Digest"], report["digest"],
            "skopeo sees the digest berth push printed"
        );

        let copy = dir.path().join("copy");
        // `dir:` keeps the manifest as served (an OCI layout would convert it).
        let to = format!("dir:{}", copy.display());
        let digest_file = dir.path().join("copied-digest");
        success(&skopeo(&[
            "copy",
            "--src-tls-verify=false",
            "--digestfile",
            digest_file.to_str().unwrap(),
            &reference,
            &to,
        ]));
        let copied = std::fs::read(copy.join("manifest.json")).unwrap();
        assert_eq!(
            berth_core::Digest::of(&copied).as_str(),
            report["digest"].as_str().unwrap()
        );
        assert_eq!(
            std::fs::read_to_string(&digest_file).unwrap().trim(),
            report["digest"].as_str().unwrap(),
            "skopeo copied the digest berth push printed"
        );

        let podman_ref = format!("{}/{repo}:v1", server.address);
        success(&podman(&["pull", "--tls-verify=false", &podman_ref]));
        let digest = success(&podman(&[
            "image",
            "inspect",
            "--format",
            "{{.Digest}}",
            &podman_ref,
        ]));
        assert_eq!(digest.trim(), report["digest"].as_str().unwrap());
        success(&podman(&["rmi", &podman_ref]));
    }
);

both_backends!(
    a_multi_platform_index_pulls_by_tag_and_by_digest,
    |t: TestStore| async move {
        let dir = tempfile::tempdir().unwrap();
        let message = unique("multi-platform");
        let local = format!("berth-e2e/multi:{}", unique("v"));
        build_image(&local, &message);
        let layout_dir = dir.path().join("layout");
        let archive = dir.path().join("image.tar");
        save(&local, &archive);
        let from = format!("docker-archive:{}", archive.display());
        let to = format!("oci:{}:amd64", layout_dir.display());
        success(&skopeo(&["copy", &from, &to]));

        // The amd64 image from docker plus a made-up arm64 one, under one index.
        let layout = Layout {
            dir: layout_dir.clone(),
        };
        let index_json: Value =
            serde_json::from_slice(&std::fs::read(layout_dir.join("index.json")).unwrap()).unwrap();
        let mut amd64 = index_json["manifests"][0].clone();
        amd64.as_object_mut().unwrap().remove("annotations");
        let amd64 = oci::with_platform(amd64, "amd64");
        let arm64 = oci::with_platform(layout.image("arm64", "not runnable here"), "arm64");
        let index = layout.json_blob(
        oci::OCI_INDEX,
        &json!({ "schemaVersion": 2, "mediaType": oci::OCI_INDEX, "manifests": [arm64, amd64] }),
    );
        layout.set_index(vec![index.clone()]);
        let repo = format!("clients/{}", unique("multi"));
        let report = t.push(layout_dir.to_str().unwrap(), &format!("{repo}:v1"), &[]);
        assert_eq!(report["digest"], index["digest"]);

        let server = serve(&t);
        let by_tag = format!("{}/{repo}:v1", server.address);
        success(&docker(&["pull", &by_tag]));
        assert_eq!(
            success(&docker(&["run", "--rm", "--network", "none", &by_tag])).trim(),
            message
        );
        let by_digest = format!(
            "{}/{repo}@{}",
            server.address,
            index["digest"].as_str().unwrap()
        );
        success(&docker(&["pull", &by_digest]));
        assert_eq!(
            success(&docker(&["run", "--rm", "--network", "none", &by_digest])).trim(),
            message
        );
    }
);
