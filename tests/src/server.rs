//! A real `berth serve` process on a free loopback port, stopped when dropped.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use crate::{berth_bin, docker, garage_env};

pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`, as clients name the registry.
    pub address: String,
    /// Everything the server wrote to stderr so far ([`Server::log`]).
    log: tempfile::NamedTempFile,
}

impl Server {
    /// Serves `store_url`; `env` adds or overrides variables (e.g. the S3 endpoint).
    pub fn start(store_url: &str, env: &[(&str, &str)]) -> Server {
        let mut command = Command::new(berth_bin());
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--store", store_url])
            .envs(garage_env().iter().map(|(k, v)| (k, v)))
            .env("DOCKER_HOST", docker::docker_host())
            .env("BERTH_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let log = tempfile::NamedTempFile::new().unwrap();
        let mut sink = log.reopen().unwrap();
        let mut line = String::new();
        let address = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("berth serve exited before listening");
            }
            sink.write_all(line.as_bytes()).unwrap();
            if let Some(rest) = line.trim().split("http://").nth(1) {
                break rest.trim_end_matches("/v2/").to_owned();
            }
        };
        // Keep draining stderr into the log so the server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                let _ = sink.write_all(line.as_bytes());
                line.clear();
            }
        });
        Server {
            child,
            address,
            log,
        }
    }

    /// Serves `store_url` so that clients on this machine (skopeo, docker) can follow
    /// blob redirects: presigned URLs name `localhost`, not the registry's 127.0.0.1,
    /// so docker never forwards registry credentials to S3.
    pub fn for_clients(store_url: &str) -> Server {
        Server::start(
            store_url,
            &[("BERTH_PUBLIC_S3_ENDPOINT", "http://localhost:3900")],
        )
    }

    /// What the server wrote to stderr so far (set `BERTH_LOG` to see more).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// The JSON body of an anonymous `GET path`.
    pub async fn get_json(&self, path: &str) -> serde_json::Value {
        http()
            .get(self.url(path))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An HTTP client that shows redirects instead of following them.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}
