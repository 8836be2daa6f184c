//! Support for berth's end-to-end tests: the real `berth` binary, a real Garage
//! bucket (started by `scripts/garage-up`) or a directory store, and the real Docker
//! engine, skopeo and podman. Tests call these helpers; none of them fakes a part.

pub mod background;
pub mod distribution;
pub mod docker;
pub mod faulty_s3;
pub mod garage_metrics;
pub mod oci;
pub mod receiver;
pub mod server;
pub mod slow_link;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use berth_core::Digest;
use berth_core::store::{self, OpenOptions, S3Options, Store};

/// Which store a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Garage,
    Dir,
}

/// The Garage environment written by `scripts/garage-up`, read once. Variables
/// already set win, so `scripts/test` and a developer's shell agree.
pub fn garage_env() -> &'static Vec<(String, String)> {
    static ENV: OnceLock<Vec<(String, String)>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = std::env::var("BERTH_GARAGE_DIR").unwrap_or_else(|_| "/tmp/berth-garage".into());
        let text = std::fs::read_to_string(Path::new(&path).join("env")).unwrap_or_else(|e| {
            panic!("Garage is not set up ({path}/env: {e}); run scripts/garage-up or scripts/test")
        });
        text.lines()
            .filter_map(|line| line.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| {
                let value = std::env::var(k).unwrap_or_else(|_| v.to_owned());
                (k.to_owned(), value)
            })
            .collect()
    })
}

pub fn garage_var(name: &str) -> String {
    garage_env()
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("{name} missing from the Garage env file"))
}

/// A unique name for this test run, usable in repository names and prefixes.
pub fn unique(label: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{label}-{:x}{:x}", nanos, std::process::id())
}

/// A fresh, empty store of the given backend: a unique prefix of the Garage test
/// bucket, or a temporary directory.
pub struct TestStore {
    pub backend: Backend,
    pub url: String,
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
}

impl TestStore {
    pub async fn new(backend: Backend, label: &str) -> Self {
        let url = match backend {
            Backend::Garage => {
                format!("s3://{}/{}", garage_var("BERTH_TEST_BUCKET"), unique(label))
            }
            Backend::Dir => String::new(),
        };
        Self::open(backend, url).await
    }

    /// The Garage bucket's root, which its web endpoint serves.
    pub async fn garage_bucket_root() -> Self {
        Self::open(
            Backend::Garage,
            format!("s3://{}", garage_var("BERTH_TEST_BUCKET")),
        )
        .await
    }

    async fn open(backend: Backend, url: String) -> Self {
        let (url, dir) = match backend {
            Backend::Garage => {
                for (k, v) in garage_env() {
                    // Tests share one process environment; these values never differ.
                    unsafe { std::env::set_var(k, v) };
                }
                (url, None)
            }
            Backend::Dir => {
                let dir = tempfile::tempdir().unwrap();
                (dir.path().join("store").display().to_string(), Some(dir))
            }
        };
        let options = OpenOptions {
            s3: S3Options {
                part_size: 5 << 20,
                single_copy_limit: 8 << 20,
                ..S3Options::default()
            },
        };
        let store = store::open(&url, &options).await.unwrap();
        TestStore {
            backend,
            url,
            store,
            _dir: dir,
        }
    }

    /// Runs `berth ARGS` against this store.
    pub fn berth(&self, args: &[&str]) -> Output {
        berth(&self.url, args)
    }

    /// `berth ARGS` against this store, not yet run (to add variables or spawn it).
    pub fn command(&self, args: &[&str]) -> Command {
        berth_command(&self.url, args)
    }

    /// Runs `berth ARGS` with extra environment variables, as a user whose shell sets
    /// them (`DOCKER_CONFIG`, `BERTH_CACHE_DIR`, ...).
    pub fn berth_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        output_of(self.command(args).envs(env.iter().copied()))
    }

    /// Runs `berth ARGS` with stdout and stderr on a pseudo-terminal, as in an
    /// interactive shell (util-linux `script`); the output, escapes and all.
    pub fn berth_on_terminal(&self, args: &[&str]) -> Output {
        let berth = self.command(args);
        let line: Vec<String> = std::iter::once(berth.get_program())
            .chain(berth.get_args())
            .map(|word| format!("'{}'", word.to_str().unwrap().replace('\'', r"'\''")))
            .collect();
        let mut script = Command::new("script");
        script.args(["-qec", &line.join(" "), "/dev/null"]);
        for (name, value) in berth.get_envs() {
            match value {
                Some(value) => script.env(name, value),
                None => script.env_remove(name),
            };
        }
        output_of(&mut script)
    }

    /// Runs `berth ARGS` with `stdin` as its input (passwords).
    pub fn berth_with_input(&self, args: &[&str], stdin: &str) -> Output {
        run_with_input(berth_command(&self.url, args), stdin)
    }

    /// `berth push SOURCE TARGET EXTRA... --json`, which must succeed; its report.
    pub fn push(&self, source: &str, target: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["push", source, target, "--json"];
        args.extend_from_slice(extra);
        serde_json::from_str(&success(&self.berth(&args))).unwrap()
    }

    pub async fn exists(&self, key: &str) -> bool {
        self.store.head(key).await.unwrap().is_some()
    }

    pub async fn get_json(&self, key: &str) -> serde_json::Value {
        let object = self
            .store
            .get(key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"));
        serde_json::from_slice(&object.body).unwrap()
    }

    /// The digest of the first layer of the manifest `manifest` (a descriptor) of `repo`.
    pub async fn first_layer(&self, repo: &str, manifest: &serde_json::Value) -> String {
        let digest = manifest["digest"].as_str().unwrap();
        let body = self
            .get_json(&format!("v2/{repo}/manifests/{digest}"))
            .await;
        body["layers"][0]["digest"].as_str().unwrap().to_owned()
    }

    /// Every tag of the repository resolves to a manifest whose blobs and children all
    /// exist: the invariant publish order guarantees.
    pub async fn assert_tag_complete(&self, repo: &str, tag: &str) -> serde_json::Value {
        let tag_object = self
            .store
            .get(&format!("v2/{repo}/manifests/{tag}"))
            .await
            .unwrap();
        let tag_object = tag_object.unwrap_or_else(|| panic!("{repo}:{tag} missing"));
        let digest = Digest::of(&tag_object.body);
        assert_eq!(
            tag_object.meta.metadata.get("digest"),
            Some(&digest.to_string())
        );
        self.assert_manifest_complete(repo, &digest).await;
        serde_json::from_slice(&tag_object.body).unwrap()
    }

    pub async fn assert_manifest_complete(&self, repo: &str, digest: &Digest) {
        let key = format!("v2/{repo}/manifests/{digest}");
        let object = self
            .store
            .get(&key)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{key} missing"));
        assert_eq!(&Digest::of(&object.body), digest, "{key} holds other bytes");
        assert_eq!(
            object.meta.metadata.get("digest"),
            Some(&digest.to_string())
        );
        let manifest: serde_json::Value = serde_json::from_slice(&object.body).unwrap();
        if let Some(children) = manifest["manifests"].as_array() {
            for child in children {
                let child: Digest = child["digest"].as_str().unwrap().parse().unwrap();
                Box::pin(self.assert_manifest_complete(repo, &child)).await;
            }
            return;
        }
        let layers = manifest["layers"].as_array().unwrap();
        for blob in layers.iter().chain([&manifest["config"]]) {
            let key = format!("v2/{repo}/blobs/{}", blob["digest"].as_str().unwrap());
            let head = self
                .store
                .head(&key)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{key} missing"));
            assert_eq!(head.size, blob["size"].as_u64().unwrap());
        }
    }
}

/// The `berth` binary, built (once per test process) beside this test executable:
/// cargo only builds the binaries of the package under test, and these tests live in
/// their own package.
pub fn berth_bin() -> PathBuf {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        // Without the variables cargo sets for this test process (CARGO_PKG_NAME,
        // CARGO_MANIFEST_DIR, ...), as in a shell: ring's build script reruns when
        // they change, which rebuilt the AWS stack on every alternation between
        // this build and a developer's `cargo build`.
        let mut command = Command::new(cargo);
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_tests = ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_"]
                .iter()
                .any(|prefix| name.starts_with(prefix))
                || name == "CARGO_PRIMARY_PACKAGE"
                || name == "CARGO_TARGET_TMPDIR";
            if set_for_tests {
                command.env_remove(&*name);
            }
        }
        let status = command
            .args([
                "build",
                "--quiet",
                "-p",
                "berth-publisher",
                "--bin",
                "berth",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "building berth failed");
        let exe = std::env::current_exe().unwrap();
        exe.parent().unwrap().parent().unwrap().join("berth")
    })
    .clone()
}

/// Runs the real `berth` binary with the Garage environment and `--store URL`.
pub fn berth(store_url: &str, args: &[&str]) -> Output {
    output_of(&mut berth_command(store_url, args))
}

fn berth_command(store_url: &str, args: &[&str]) -> Command {
    let mut command = Command::new(berth_bin());
    command
        .args(args)
        .env("BERTH_STORE", store_url)
        .env("DOCKER_HOST", docker::docker_host())
        .env_remove("BERTH_LOG");
    for (k, v) in garage_env() {
        command.env(k, v);
    }
    command
}

/// Runs the `openssl` command (keys and certificates made as users make theirs).
pub fn openssl(args: &[&str]) {
    success(&output_of(Command::new("openssl").args(args)));
}

/// A new ECDSA P-256 private key in PKCS#8 PEM at `path`, as `openssl genpkey` writes it.
pub fn openssl_p256_key(path: &str) {
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        path,
    ]);
}

/// Runs `command` to the end and collects its output; a tool that cannot be started
/// fails the test naming it (`scripts/test` installs every tool the tests run).
pub fn output_of(command: &mut Command) -> Output {
    command.output().unwrap_or_else(|e| {
        panic!(
            "cannot run {:?}: {e} (scripts/test installs it)",
            command.get_program()
        )
    })
}

/// Runs `command` with `stdin` written to its input, collecting its output.
pub fn run_with_input(mut command: Command, stdin: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

/// Stdout of a successful run, or a panic that shows what went wrong.
pub fn success(output: &Output) -> String {
    assert!(
        output.status.success(),
        "command failed ({}): stdout: {} stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The one `error: ...` line of a failed run.
pub fn failure(output: &Output) -> String {
    assert!(
        !output.status.success(),
        "command should have failed; stdout: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    let stderr = String::from_utf8(output.stderr.clone()).unwrap();
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "expected one error line, got: {stderr}");
    errors[0].to_owned()
}

/// Runs both backends of a test body: `both_backends!(name, |store| async { ... })`.
#[macro_export]
macro_rules! both_backends {
    ($name:ident, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_garage() {
                let store =
                    $crate::TestStore::new($crate::Backend::Garage, stringify!($name)).await;
                ($body)(store).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_directory() {
                let store = $crate::TestStore::new($crate::Backend::Dir, stringify!($name)).await;
                ($body)(store).await;
            }
        }
    };
}
