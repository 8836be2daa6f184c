//! `berth copy` from the user's side: images pulled from a real CNCF distribution
//! registry (open, or behind htpasswd) and from another `berth serve` (token auth),
//! into Garage and directory stores, with credentials only in the user's docker
//! config; then pulled back out through `berth serve` by skopeo and docker and
//! compared byte for byte with what the source serves.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Output;

use berth_core::Digest;
use berth_e2e::distribution::Distribution;
use berth_e2e::docker::{build_image, client_config, docker, pull_to_dir, save, skopeo};
use berth_e2e::oci::{self, Layout};
use berth_e2e::server::Server;
use berth_e2e::slow_link::SlowLink;
use berth_e2e::{Backend, TestStore, both_backends, failure, success, unique};
use serde_json::{Value, json};

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Someone running `berth copy`: their docker client configuration (`DOCKER_CONFIG`,
/// empty for an anonymous user) and their download cache (`BERTH_CACHE_DIR`), both
/// fresh, so no test sees another's credentials or partial downloads.
struct User {
    config: tempfile::TempDir,
    cache: tempfile::TempDir,
}

impl User {
    fn anonymous() -> User {
        User {
            config: tempfile::tempdir().unwrap(),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// A user whose `config.json` holds `user:password` for `address`.
    fn with_auth(address: &str, user: &str, password: &str) -> User {
        User {
            config: client_config(address, user, password),
            cache: tempfile::tempdir().unwrap(),
        }
    }

    /// `berth copy ARGS` into `t`.
    fn copy(&self, t: &TestStore, args: &[&str]) -> Output {
        let mut all = vec!["copy"];
        all.extend_from_slice(args);
        t.berth_with_env(&all, &self.env())
    }

    fn env(&self) -> [(&str, &str); 2] {
        [
            ("DOCKER_CONFIG", path(self.config.path())),
            ("BERTH_CACHE_DIR", path(self.cache.path())),
        ]
    }

    /// `berth copy SOURCE TARGET EXTRA... --json`, which must succeed; its report.
    fn copy_json(&self, t: &TestStore, source: &str, target: &str, extra: &[&str]) -> Value {
        let mut args = vec![source, target, "--json"];
        args.extend_from_slice(extra);
        let report: Value = serde_json::from_str(&success(&self.copy(t, &args))).unwrap();
        assert_eq!(report["source"], source, "{report}");
        report
    }
}

/// A manifest or index as the source registry serves it.
struct Served {
    raw: Vec<u8>,
    digest: String,
    body: Value,
}

impl Served {
    fn read(dist: &Distribution, name_and_reference: &str) -> Served {
        let raw = dist.manifest(name_and_reference);
        Served {
            digest: Digest::of(&raw).to_string(),
            body: serde_json::from_slice(&raw).unwrap(),
            raw,
        }
    }

    /// The child of this index for `linux/<arch>`.
    fn child(&self, dist: &Distribution, repo: &str, arch: &str) -> Served {
        let entry = self.body["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["platform"]["architecture"] == arch)
            .unwrap_or_else(|| panic!("no {arch} in {}", self.body));
        Served::read(
            dist,
            &format!("{repo}@{}", entry["digest"].as_str().unwrap()),
        )
    }

    /// Every blob (config and layers) this manifest, or each child of this index,
    /// names: digest -> size.
    fn blobs(&self, dist: &Distribution, repo: &str) -> BTreeMap<String, u64> {
        let mut blobs = BTreeMap::new();
        match self.body["manifests"].as_array() {
            Some(children) => {
                for child in children {
                    let digest = child["digest"].as_str().unwrap();
                    let child = Served::read(dist, &format!("{repo}@{digest}"));
                    blobs.extend(child.blobs(dist, repo));
                }
            }
            None => {
                let layers = self.body["layers"].as_array().unwrap();
                for descriptor in std::iter::once(&self.body["config"]).chain(layers) {
                    let digest = descriptor["digest"].as_str().unwrap().to_owned();
                    blobs.insert(digest, descriptor["size"].as_u64().unwrap());
                }
            }
        }
        blobs
    }
}

/// Asserts the report counted every blob in `blobs` as downloaded, and nothing as
/// resumed. `bytes_downloaded` counts blob bytes fetched, like `bytes_uploaded` in
/// `berth push --json`: manifests are not blobs and are not counted.
fn assert_downloaded_all(report: &Value, blobs: &BTreeMap<String, u64>) {
    assert_eq!(report["blobs_downloaded"], blobs.len(), "{report}");
    assert_eq!(
        report["bytes_downloaded"],
        blobs.values().sum::<u64>(),
        "{report}"
    );
    assert_eq!(report["bytes_resumed"], 0, "{report}");
}

/// A two-platform (linux/amd64, linux/arm64) OCI index pushed to `repo:v1` of
/// `dist` by skopeo.
fn seed_index(dist: &Distribution, repo: &str) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path());
    let index = layout.platform_index(&["amd64", "arm64"], &unique("copied"));
    layout.set_index(vec![index]);
    dist.seed(&format!("oci:{}", path(dir.path())), &format!("{repo}:v1"));
    Served::read(dist, &format!("{repo}:v1"))
}

/// A one-platform image whose only layer holds `/data` = `data`, pushed to
/// `repo:v1` of `dist` by skopeo.
fn seed_image(dist: &Distribution, repo: &str, data: &[u8]) -> Served {
    let dir = tempfile::tempdir().unwrap();
    let layout = Layout::create(dir.path());
    let layer = layout.blob(oci::OCI_LAYER, &oci::tar_with_file("data", data));
    let config = layout.json_blob(
        oci::OCI_CONFIG,
        &json!({
            "architecture": "amd64", "os": "linux",
            "rootfs": { "type": "layers", "diff_ids": [layer["digest"]] },
        }),
    );
    let manifest = layout.json_blob(
        oci::OCI_MANIFEST,
        &json!({ "schemaVersion": 2, "mediaType": oci::OCI_MANIFEST, "config": config, "layers": [layer] }),
    );
    layout.set_index(vec![manifest]);
    dist.seed(&format!("oci:{}", path(dir.path())), &format!("{repo}:v1"));
    Served::read(dist, &format!("{repo}:v1"))
}

/// `len` bytes that do not compress (xorshift), so a layer made of them stays
/// about as large in the registry, after skopeo gzips it, as it was.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Every file of two `skopeo copy --all ... dir:` pulls (manifests, blobs) is
/// byte-identical, and neither has a file the other lacks.
fn assert_same_pull(expected: &Path, actual: &Path) {
    let files = |dir: &Path| -> BTreeMap<String, Vec<u8>> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| {
                let entry = entry.unwrap();
                let name = entry.file_name().to_string_lossy().into_owned();
                (name, std::fs::read(entry.path()).unwrap())
            })
            .collect()
    };
    let (expected, actual) = (files(expected), files(actual));
    assert_eq!(
        expected.keys().collect::<Vec<_>>(),
        actual.keys().collect::<Vec<_>>()
    );
    for (name, bytes) in &expected {
        assert!(&actual[name] == bytes, "{name} differs");
    }
}

/// Pulls `repo:tag` from `dist` and from a `berth serve` of `t`, and asserts both
/// pulls are the same bytes.
fn assert_pulls_identically(dist: &Distribution, source: &str, t: &TestStore, target: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (from_source, from_berth) = (dir.path().join("source"), dir.path().join("berth"));
    pull_to_dir(&dist.image(source), dist.creds.as_deref(), &from_source);
    let server = Server::for_clients(&t.url);
    let image = format!("docker://{}/{target}", server.address);
    pull_to_dir(&image, None, &from_berth);
    assert_same_pull(&from_source, &from_berth);
}

/// The raw manifest `berth serve` of `t` answers for `name_and_reference`.
fn served_by_berth(t: &TestStore, name_and_reference: &str) -> Vec<u8> {
    let server = Server::for_clients(&t.url);
    let image = format!("docker://{}/{name_and_reference}", server.address);
    let output = skopeo(&["inspect", "--raw", "--tls-verify=false", &image]);
    success(&output);
    output.stdout
}

/// The tag was never written, nor the repository created.
async fn assert_nothing_tagged(t: &TestStore, repo: &str, tag: &str) {
    let key = format!("v2/{repo}/manifests/{tag}");
    assert!(!t.exists(&key).await, "{key} was written");
    assert!(!t.exists(&format!("_berth/repositories/{repo}")).await);
}

/// `.partial` files left in a cache directory.
fn partials(cache: &Path) -> Vec<String> {
    match std::fs::read_dir(cache.join("sha256")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|name| name.ends_with(".partial"))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// The blob object of `repo` in the store holds exactly `digest`'s bytes.
async fn stored_blob(t: &TestStore, repo: &str, digest: &str) -> Vec<u8> {
    let key = format!("v2/{repo}/blobs/{digest}");
    let object = t.store.get(&key).await.unwrap();
    let body = object.unwrap_or_else(|| panic!("{key} missing")).body;
    assert_eq!(
        Digest::of(&body).to_string(),
        digest,
        "{key} holds other bytes"
    );
    body.to_vec()
}

fn mentions_credentials(line: &str) -> bool {
    let line = line.to_lowercase();
    ["authentication", "unauthorized", "credentials"]
        .iter()
        .any(|word| line.contains(word))
}

/// The fixture the copy tests stand on: skopeo pushes a two-platform index into an
/// open distribution and reads it back anonymously; the htpasswd one refuses
/// anonymous and wrong-password reads and serves its user (else the "copy without
/// credentials fails" tests below would prove nothing).
#[test]
fn distribution_fixture_serves_what_skopeo_pushes_and_htpasswd_guards_it() {
    let open = Distribution::start();
    let index = seed_index(&open, "upstream/multi");
    assert_eq!(index.body["mediaType"], oci::OCI_INDEX);
    let archs: Vec<&str> = index.body["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap())
        .collect();
    assert_eq!(archs, ["amd64", "arm64"]);
    let arm64 = index.child(&open, "upstream/multi", "arm64");
    assert_eq!(arm64.body["mediaType"], oci::OCI_MANIFEST);
    assert_eq!(index.blobs(&open, "upstream/multi").len(), 4);
    let by_digest = success(&open.inspect_raw(&format!("upstream/multi@{}", index.digest), None));
    assert_eq!(by_digest.as_bytes(), index.raw.as_slice());

    let guarded = Distribution::with_htpasswd("carol", "s3cret pass");
    seed_image(&guarded, "upstream/private", b"guarded");
    let anonymous = guarded.inspect_raw("upstream/private:v1", None);
    assert!(!anonymous.status.success());
    let stderr = String::from_utf8_lossy(&anonymous.stderr);
    assert!(
        stderr.contains("unauthorized") || stderr.contains("401"),
        "{stderr}"
    );
    let wrong = guarded.inspect_raw("upstream/private:v1", Some("carol:wrong"));
    assert!(!wrong.status.success());
    let right = guarded.inspect_raw("upstream/private:v1", Some("carol:s3cret pass"));
    let manifest: Value = serde_json::from_str(&success(&right)).unwrap();
    assert_eq!(manifest["mediaType"], oci::OCI_MANIFEST);
}

both_backends!(
    a_multi_platform_index_is_copied_whole_or_one_platform,
    |t: TestStore| async move {
        let dist = Distribution::start();
        let repo = "upstream/multi";
        let index = seed_index(&dist, repo);
        let user = User::anonymous();
        let source = dist.image(&format!("{repo}:v1"));

        // Whole, by default: the same index, every child and blob.
        let report = user.copy_json(&t, &source, "copy/multi:v1", &["-t", "latest"]);
        assert_eq!(report["repository"], "copy/multi");
        assert_eq!(report["tags"], json!(["v1", "latest"]));
        assert_eq!(report["digest"], index.digest);
        assert_eq!(report["media_type"], oci::OCI_INDEX);
        assert_eq!(report["manifests_written"], 3, "{report}");
        assert_downloaded_all(&report, &index.blobs(&dist, repo));
        assert_pulls_identically(&dist, &format!("{repo}:v1"), &t, "copy/multi:v1");
        assert_eq!(served_by_berth(&t, "copy/multi:latest"), index.raw);
        for arch in ["amd64", "arm64"] {
            let child = index.child(&dist, repo, arch);
            let reference = format!("copy/multi@{}", child.digest);
            assert_eq!(served_by_berth(&t, &reference), child.raw, "{arch}");
        }
        assert!(partials(user.cache.path()).is_empty());

        // `--all-platforms` says the default out loud.
        let report = user.copy_json(&t, &source, "copy/multi:all", &["--all-platforms"]);
        assert_eq!(report["digest"], index.digest);

        // One platform: that child alone, under its own digest.
        let arm64 = index.child(&dist, repo, "arm64");
        let report = user.copy_json(
            &t,
            &source,
            "copy/multi:arm64",
            &["--platform", "linux/arm64"],
        );
        assert_eq!(report["digest"], arm64.digest);
        assert_eq!(report["media_type"], oci::OCI_MANIFEST);
        assert_eq!(served_by_berth(&t, "copy/multi:arm64"), arm64.raw);

        // By digest.
        let by_digest = dist.image(&format!("{repo}@{}", index.digest));
        let report = user.copy_json(&t, &by_digest, "copy/pinned:v1", &[]);
        assert_eq!(report["digest"], index.digest);
        assert_pulls_identically(&dist, &format!("{repo}:v1"), &t, "copy/pinned:v1");

        // A platform the index lacks: one line naming those it has.
        let line = failure(&user.copy(
            &t,
            &[&source, "copy/multi:s390x", "--platform", "linux/s390x"],
        ));
        assert!(line.contains("linux/s390x"), "{line}");
        assert!(
            line.contains("linux/amd64") && line.contains("linux/arm64"),
            "{line}"
        );
        assert!(!t.exists("v2/copy/multi/manifests/s390x").await);
    }
);

/// htpasswd (bcrypt) on the source, the password only in the user's docker config;
/// the copy then pulls and runs with the real docker client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_the_docker_config_open_an_htpasswd_registry() {
    let t = TestStore::new(Backend::Garage, "copy-htpasswd").await;
    let dist = Distribution::with_htpasswd("carol", "s3cret pass");
    let dir = tempfile::tempdir().unwrap();
    let message = unique("copied from distribution");
    let local = format!("berth-e2e/copy:{}", unique("v"));
    build_image(&local, &message);
    let archive = dir.path().join("image.tar");
    save(&local, &archive);
    dist.seed(
        &format!("docker-archive:{}", path(&archive)),
        "upstream/app:v1",
    );
    let source = dist.image("upstream/app:v1");
    let upstream = Served::read(&dist, "upstream/app:v1");

    let line = failure(&User::anonymous().copy(&t, &[&source, "copy/app:v1"]));
    assert!(mentions_credentials(&line), "{line}");
    let wrong = User::with_auth(&dist.address, "carol", "not the password");
    let line = failure(&wrong.copy(&t, &[&source, "copy/app:v1"]));
    assert!(mentions_credentials(&line), "{line}");
    let other_registry = User::with_auth("127.0.0.1:1", "carol", "s3cret pass");
    let line = failure(&other_registry.copy(&t, &[&source, "copy/app:v1"]));
    assert!(mentions_credentials(&line), "{line}");
    assert_nothing_tagged(&t, "copy/app", "v1").await;

    let user = User::with_auth(&dist.address, "carol", "s3cret pass");
    let report = user.copy_json(&t, &source, "copy/app:v1", &[]);
    assert_eq!(report["digest"], upstream.digest);
    assert_downloaded_all(&report, &upstream.blobs(&dist, "upstream/app"));
    assert_pulls_identically(&dist, "upstream/app:v1", &t, "copy/app:v1");

    let server = Server::for_clients(&t.url);
    let image = format!("{}/copy/app:v1", server.address);
    success(&docker(&["pull", &image]));
    let output = success(&docker(&["run", "--rm", "--network", "none", &image]));
    assert_eq!(output.trim(), message);
}

/// A docker credential helper (`credHelpers` in config.json) supplies the password
/// when config.json holds none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_docker_credential_helper_supplies_the_password() {
    let t = TestStore::new(Backend::Dir, "copy-helper").await;
    let dist = Distribution::with_htpasswd("dave", "helper pass");
    let upstream = seed_image(&dist, "upstream/helped", b"through a helper");
    let user = User::anonymous();
    let bin = tempfile::tempdir().unwrap();
    let helper = bin.path().join("docker-credential-berth-e2e");
    // The protocol: `get`, the server on stdin, JSON on stdout; a server it does
    // not know is an error, as with real helpers.
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 1\nread -r server\n\
             case \"${{server#*://}}\" in\n  {address}) printf '{{\"ServerURL\":\"%s\",\"Username\":\"dave\",\"Secret\":\"helper pass\"}}' \"$server\" ;;\n\
             *) echo 'credentials not found in native keychain'; exit 1 ;;\nesac\n",
            address = dist.address
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        user.config.path().join("config.json"),
        serde_json::to_vec(&json!({ "credHelpers": { &dist.address: "berth-e2e" } })).unwrap(),
    )
    .unwrap();
    let search_path = format!(
        "{}:{}",
        path(bin.path()),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut env = user.env().to_vec();
    env.push(("PATH", &search_path));
    let source = dist.image("upstream/helped:v1");
    let output = t.berth_with_env(&["copy", &source, "copy/helped:v1", "--json"], &env);
    let report: Value = serde_json::from_str(&success(&output)).unwrap();
    assert_eq!(report["digest"], upstream.digest);
}

both_backends!(
    another_berth_is_a_source_behind_token_auth,
    |t: TestStore| async move {
        let other = match t.backend {
            Backend::Garage => Backend::Dir,
            Backend::Dir => Backend::Garage,
        };
        let origin = TestStore::new(other, "copy-origin").await;
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::create(&dir.path().join("layout"));
        layout.set_index(vec![
            layout.platform_index(&["amd64", "arm64"], &unique("berth")),
        ]);
        let pushed = origin.push(path(&layout.dir), "alice/app:v1", &[]);
        success(&origin.berth_with_input(
            &["user", "add", "alice", "--password-stdin"],
            "alice's password\n",
        ));
        let created = success(&origin.berth(&[
            "token",
            "create",
            "alice",
            "--name",
            "copy",
            "--expires",
            "1h",
        ]));
        let token = created.lines().last().unwrap().trim().to_owned();
        let key = dir.path().join("token-key.pem");
        let server = Server::start(
            &origin.url,
            &[
                ("BERTH_TOKEN_KEY_FILE", path(&key)),
                ("BERTH_PUBLIC_S3_ENDPOINT", "http://localhost:3900"),
            ],
        );
        let source = format!("docker://{}/alice/app:v1", server.address);

        // alice/app is private now that a user exists.
        let line = failure(&User::anonymous().copy(&t, &[&source, "mirror/app:v1"]));
        assert!(mentions_credentials(&line), "{line}");
        assert_nothing_tagged(&t, "mirror/app", "v1").await;

        let user = User::with_auth(&server.address, "alice", &token);
        let report = user.copy_json(&t, &source, "mirror/app:v1", &[]);
        assert_eq!(report["digest"], pushed["digest"]);
        assert_eq!(report["media_type"], oci::OCI_INDEX);
        assert_eq!(report["manifests_written"], 3, "{report}");

        let pulls = tempfile::tempdir().unwrap();
        let (from_origin, from_mirror) = (pulls.path().join("origin"), pulls.path().join("mirror"));
        pull_to_dir(&source, Some(&format!("alice:{token}")), &from_origin);
        let mirror = Server::for_clients(&t.url);
        let image = format!("docker://{}/mirror/app:v1", mirror.address);
        pull_to_dir(&image, None, &from_mirror);
        assert_same_pull(&from_origin, &from_mirror);
    }
);

both_backends!(
    blobs_the_store_has_are_never_downloaded,
    |t: TestStore| async move {
        let dist = Distribution::start();
        let repo = "upstream/skip";
        let index = seed_index(&dist, repo);
        let blobs = index.blobs(&dist, repo);
        let user = User::anonymous();
        let source = dist.image(&format!("{repo}:v1"));

        let first = user.copy_json(&t, &source, "copy/skip:v1", &[]);
        assert_downloaded_all(&first, &blobs);

        // Again, same repository: everything is there.
        let again = user.copy_json(&t, &source, "copy/skip:v1", &[]);
        assert_eq!(again["digest"], index.digest);
        assert_eq!(again["blobs_downloaded"], 0, "{again}");
        assert_eq!(again["bytes_downloaded"], 0, "{again}");
        assert_eq!(again["blobs_skipped"], blobs.len(), "{again}");

        // Another repository of the same store: copied inside the store.
        let elsewhere = user.copy_json(&t, &source, "copy/elsewhere:v1", &[]);
        assert_eq!(elsewhere["digest"], index.digest);
        assert_eq!(elsewhere["blobs_downloaded"], 0, "{elsewhere}");
        assert_eq!(elsewhere["bytes_downloaded"], 0, "{elsewhere}");
        assert_eq!(elsewhere["blobs_copied"], blobs.len(), "{elsewhere}");
        assert_pulls_identically(&dist, &format!("{repo}:v1"), &t, "copy/elsewhere:v1");
        assert!(partials(user.cache.path()).is_empty());
    }
);

/// An image of one big incompressible layer in `dist` as `repo:v1`; returns it and
/// the layer's (digest, bytes) as the registry serves them.
async fn seed_big_layer(dist: &Distribution, repo: &str, len: usize) -> (Served, String, Vec<u8>) {
    let image = seed_image(dist, repo, &noise(len, len as u64));
    let layer = image.body["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    let bytes = dist.blob(repo, &layer).await;
    (image, layer, bytes)
}

fn partial_path(cache: &Path, digest: &str) -> std::path::PathBuf {
    let hex = digest.strip_prefix("sha256:").unwrap();
    cache.join("sha256").join(format!("{hex}.partial"))
}

both_backends!(
    an_interrupted_download_resumes_from_its_partial_file,
    |t: TestStore| async move {
        let dist = Distribution::start();
        let repo = "upstream/resume";
        let (image, layer, bytes) = seed_big_layer(&dist, repo, 6 << 20).await;
        let blobs = image.blobs(&dist, repo);
        let cache = tempfile::tempdir().unwrap();
        let partial = partial_path(cache.path(), &layer);
        std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
        let half = bytes.len() / 2;
        std::fs::write(&partial, &bytes[..half]).unwrap();

        let user = User::anonymous();
        let report = user.copy_json(
            &t,
            &dist.image(&format!("{repo}:v1")),
            "copy/resume:v1",
            &["--cache-dir", path(cache.path())],
        );
        assert_eq!(report["digest"], image.digest);
        assert_eq!(report["bytes_resumed"], half, "{report}");
        assert_eq!(report["blobs_downloaded"], blobs.len(), "{report}");
        let all: u64 = blobs.values().sum();
        assert_eq!(report["bytes_downloaded"], all - half as u64, "{report}");
        assert!(stored_blob(&t, "copy/resume", &layer).await == bytes);
        assert!(!partial.exists(), "the .partial outlived the copy");
        assert!(partials(cache.path()).is_empty());
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partial_file_with_wrong_bytes_is_discarded() {
    let t = TestStore::new(Backend::Dir, "copy-bad-partial").await;
    let dist = Distribution::start();
    let repo = "upstream/garbled";
    let (image, layer, bytes) = seed_big_layer(&dist, repo, 3 << 20).await;
    let cache = tempfile::tempdir().unwrap();
    let partial = partial_path(cache.path(), &layer);
    std::fs::create_dir_all(partial.parent().unwrap()).unwrap();
    let garbled: Vec<u8> = bytes[..bytes.len() / 2].iter().map(|b| !b).collect();
    std::fs::write(&partial, garbled).unwrap();

    let report = User::anonymous().copy_json(
        &t,
        &dist.image(&format!("{repo}:v1")),
        "copy/garbled:v1",
        &["--cache-dir", path(cache.path())],
    );
    assert_eq!(report["digest"], image.digest);
    // However it found out, every byte of the layer had to come from the source.
    assert!(
        report["bytes_downloaded"].as_u64().unwrap() >= bytes.len() as u64,
        "{report}"
    );
    assert!(stored_blob(&t, "copy/garbled", &layer).await == bytes);
    assert!(partials(cache.path()).is_empty());
}

/// Downloads of copies nobody ran again go after a week; recent ones stay for the
/// copy that left them to resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_downloads_are_pruned_from_the_cache() {
    let t = TestStore::new(Backend::Dir, "copy-prune").await;
    let dist = Distribution::start();
    seed_image(&dist, "upstream/small", b"small");
    let cache = tempfile::tempdir().unwrap();
    let dir = cache.path().join("sha256");
    std::fs::create_dir_all(&dir).unwrap();
    let aged = |name: &str, days: u64| {
        let file = std::fs::File::create(dir.join(name)).unwrap();
        let age = std::time::Duration::from_secs(days * 24 * 60 * 60);
        file.set_modified(std::time::SystemTime::now() - age)
            .unwrap();
    };
    aged(&format!("{}.partial", "a".repeat(64)), 8);
    aged(&"b".repeat(64), 8);
    aged(&format!("{}.partial", "c".repeat(64)), 1);

    User::anonymous().copy_json(
        &t,
        &dist.image("upstream/small:v1"),
        "copy/small:v1",
        &["--cache-dir", path(cache.path())],
    );
    let mut left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, vec![format!("{}.partial", "c".repeat(64))]);
}

/// A copy killed (SIGKILL) while a layer downloads leaves that layer's
/// `.partial` file; the next run continues it from its length and finishes an
/// intact image. The source sits behind a slow link (24 MiB at 8 MiB/s) so the
/// kill lands mid-download.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copy_killed_mid_download_is_resumed_by_the_next_run() {
    let dist = Distribution::start();
    let repo = "upstream/killed";
    let (image, layer, bytes) = seed_big_layer(&dist, repo, 24 << 20).await;
    let blobs = image.blobs(&dist, repo);
    let link = SlowLink::start(&dist.address, 8 << 20);
    let source = format!("docker://{}/{repo}:v1", link.address());
    for backend in [Backend::Garage, Backend::Dir] {
        let t = TestStore::new(backend, "copy-killed").await;
        let user = User::anonymous();
        let mut child = t
            .command(&["copy", &source, "copy/killed:v1"])
            .envs(user.env())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Killed once a MiB of the layer is down, however slowly the copy started.
        let partial = partial_path(user.cache.path(), &layer);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while std::fs::metadata(&partial).map_or(0, |m| m.len()) < 1 << 20 {
            assert!(child.try_wait().unwrap().is_none(), "the copy ended first");
            assert!(
                std::time::Instant::now() < deadline,
                "no {}",
                partial.display()
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let kept = std::fs::metadata(&partial).unwrap().len();
        assert!(
            kept < bytes.len() as u64,
            "the whole layer was down: {kept}"
        );
        assert!(!t.exists("v2/copy/killed/manifests/v1").await);

        let report = user.copy_json(&t, &source, "copy/killed:v1", &[]);
        assert_eq!(report["digest"], image.digest);
        assert_eq!(report["bytes_resumed"], kept, "{report}");
        for digest in blobs.keys() {
            stored_blob(&t, "copy/killed", digest).await;
        }
        let tag = t.store.get("v2/copy/killed/manifests/v1").await.unwrap();
        assert_eq!(Digest::of(&tag.unwrap().body).to_string(), image.digest);
        assert!(partials(user.cache.path()).is_empty());
    }
}

both_backends!(
    bad_sources_fail_with_one_line_and_tag_nothing,
    |t: TestStore| async move {
        let dist = Distribution::start();
        seed_image(&dist, "upstream/real", b"real");
        let address = &dist.address;
        let user = User::anonymous();
        let bad_digest = format!("docker://{address}/upstream/real@sha256:abc");
        let unknown_tag = format!("docker://{address}/upstream/real:nope");
        let unknown_repo = format!("docker://{address}/upstream/absent:v1");
        let no_name = format!("docker://{address}/");
        let host_only = format!("docker://{address}");
        let cases: [(&str, &[&str]); 6] = [
            ("docker://", &[]),
            (&no_name, &[]),
            (&host_only, &["name the image"]),
            (&bad_digest, &["digest"]),
            (&unknown_tag, &["unknown", "not found"]),
            (&unknown_repo, &["unknown", "not found"]),
        ];
        for (source, any_of) in cases {
            let line = failure(&user.copy(&t, &[source, "copy/bad:v1"]));
            let lower = line.to_lowercase();
            assert!(
                any_of.is_empty() || any_of.iter().any(|w| lower.contains(w)),
                "{source}: {line}"
            );
            assert_nothing_tagged(&t, "copy/bad", "v1").await;
        }
    }
);
