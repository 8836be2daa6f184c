//! A real CNCF distribution registry (Debian's `docker-registry`, installed by
//! `scripts/docker-up`) on a free loopback port, open or behind htpasswd basic
//! auth, stopped when dropped: the foreign registry `berth copy` reads from. Images
//! get into it the way they get into any registry, with skopeo.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::docker::skopeo;
use crate::success;

const BINARY: &str = "/usr/bin/docker-registry";

pub struct Distribution {
    child: Child,
    /// `127.0.0.1:PORT`, as clients name the registry.
    pub address: String,
    /// `user:password` of its one user, when it requires authentication.
    pub creds: Option<String>,
    _dir: tempfile::TempDir,
}

impl Distribution {
    /// A registry anyone may push to and pull from.
    pub fn start() -> Distribution {
        Self::launch(None)
    }

    /// A registry that answers only `user` with `password` (HTTP basic auth against
    /// an htpasswd file) and challenges everyone else with 401.
    pub fn with_htpasswd(user: &str, password: &str) -> Distribution {
        Self::launch(Some((user, password)))
    }

    fn launch(user: Option<(&str, &str)>) -> Distribution {
        let dir = tempfile::tempdir().unwrap();
        let auth = match user {
            Some((name, password)) => {
                // distribution accepts only bcrypt in htpasswd files. It checks the
                // hash on every request, so the cheapest cost keeps pulls fast.
                let hash = bcrypt::hash(password, 4).unwrap();
                let file = dir.path().join("htpasswd");
                std::fs::write(&file, format!("{name}:{hash}\n")).unwrap();
                format!(
                    "auth:\n  htpasswd:\n    realm: berth-e2e\n    path: {}\n",
                    yaml_string(&file)
                )
            }
            None => String::new(),
        };
        let log = dir.path().join("registry.log");
        // The free port is found by binding and releasing it, so another process may
        // take it first; the registry then exits, and another port is tried.
        for _ in 0..5 {
            let address = free_address();
            let config = dir.path().join("config.yml");
            std::fs::write(
                &config,
                format!(
                    "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
                     storage:\n  filesystem:\n    rootdirectory: {}\n  maintenance:\n    uploadpurging:\n      enabled: false\n\
                     http:\n  addr: {address}\n  secret: berth-e2e\n{auth}",
                    yaml_string(&dir.path().join("data")),
                ),
            )
            .unwrap();
            let log_file = std::fs::File::create(&log).unwrap();
            let mut child = Command::new(BINARY)
                .arg("serve")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log_file.try_clone().unwrap())
                .stderr(log_file)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot run {BINARY} ({e}); scripts/docker-up installs docker-registry")
                });
            if wait_until_serving(&mut child, &address) {
                return Distribution {
                    child,
                    address,
                    creds: user.map(|(name, password)| format!("{name}:{password}")),
                    _dir: dir,
                };
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!(
            "docker-registry did not start; its log:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// `docker://ADDRESS/NAME_AND_REFERENCE`, as skopeo and `berth copy` name images.
    pub fn image(&self, name_and_reference: &str) -> String {
        format!("docker://{}/{name_and_reference}", self.address)
    }

    /// Pushes `source` (any skopeo transport: `oci:DIR`, `docker-archive:PATH`) to
    /// `NAME:TAG` here, every platform of an index, as its user.
    ///
    /// skopeo compresses uncompressed layers on the way into a registry, so what
    /// the registry holds may have other digests than the source: read them back
    /// with [`Distribution::manifest`].
    pub fn seed(&self, source: &str, target: &str) {
        let dest = self.image(target);
        let mut args = vec!["copy", "--all", "--dest-tls-verify=false"];
        if let Some(creds) = &self.creds {
            args.extend(["--dest-creds", creds]);
        }
        args.extend([source, &dest]);
        success(&skopeo(&args));
    }

    /// `skopeo inspect --raw` of `NAME:TAG` or `NAME@DIGEST` with `creds`
    /// (`user:password`, or none for an anonymous read).
    pub fn inspect_raw(&self, name_and_reference: &str, creds: Option<&str>) -> Output {
        let image = self.image(name_and_reference);
        let mut args = vec!["inspect", "--raw", "--tls-verify=false"];
        if let Some(creds) = creds {
            args.extend(["--creds", creds]);
        }
        args.push(&image);
        skopeo(&args)
    }

    /// The manifest or index bytes the registry serves for `NAME:TAG` or
    /// `NAME@DIGEST`, read as its user.
    pub fn manifest(&self, name_and_reference: &str) -> Vec<u8> {
        let output = self.inspect_raw(name_and_reference, self.creds.as_deref());
        success(&output);
        output.stdout
    }

    /// The bytes of blob `digest` of repository `name`, read as its user.
    pub async fn blob(&self, name: &str, digest: &str) -> Vec<u8> {
        let url = format!("http://{}/v2/{name}/blobs/{digest}", self.address);
        let mut request = reqwest::Client::new().get(url);
        if let Some((user, password)) = self.creds.as_deref().and_then(|c| c.split_once(':')) {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.unwrap();
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.unwrap().to_vec()
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_address() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().to_string()
}

/// A path as a YAML (JSON-compatible) double-quoted string.
fn yaml_string(path: &std::path::Path) -> String {
    serde_json::to_string(path.to_str().unwrap()).unwrap()
}

/// Polls `GET /v2/` until the registry answers 200 (open) or 401 (auth required);
/// false if the process exits first or nothing answers within 20 s.
fn wait_until_serving(child: &mut Child, address: &str) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        if let Some(status) = api_root_status(address)
            && (status == 200 || status == 401)
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// The status of a plain `GET /v2/`, or None when nothing answers yet.
fn api_root_status(address: &str) -> Option<u16> {
    let mut stream = TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = format!("GET /v2/ HTTP/1.0\r\nHost: {address}\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}
