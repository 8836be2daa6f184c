//! A real `berth serve` process on a free loopback port, stopped when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use crate::{berth_bin, docker, garage_env};

pub struct Server {
    child: Child,
    /// `127.0.0.1:PORT`, as clients name the registry.
    pub address: String,
    /// Everything the server has logged (its stderr) since it listened.
    logs: Arc<Mutex<String>>,
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
        let mut line = String::new();
        let mut before = String::new();
        let address = loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("berth serve exited before listening: {before}");
            }
            // Its one `berth: serving STORE at URL` line; debug logs may name URLs too.
            let serving = line.trim().strip_prefix("berth: serving ");
            if let Some(rest) = serving.and_then(|s| s.split(" at http://").nth(1)) {
                break rest.trim_end_matches("/v2/").to_owned();
            }
            before.push_str(&line);
        };
        // Keep draining stderr so the server never blocks on a full pipe.
        let logs = Arc::new(Mutex::new(before));
        let kept = logs.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while stderr.read_line(&mut line).unwrap_or(0) > 0 {
                kept.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Server {
            child,
            address,
            logs,
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

    /// The server's log lines so far (`BERTH_LOG` in `env` sets how many).
    pub fn logs(&self) -> String {
        self.logs.lock().unwrap().clone()
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
