//! A real HTTP server on a free loopback port that records every request it gets
//! and answers with scripted statuses: the far end of berth's webhooks. It runs on
//! its own thread and runtime, so tests may block on `berth` processes meanwhile.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::background::Background;

/// One request as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Script {
    /// Statuses to answer with, in order; 200 once they run out.
    statuses: VecDeque<u16>,
    received: Vec<Received>,
}

pub struct Receiver {
    /// `http://127.0.0.1:PORT/hook`
    pub url: String,
    script: Arc<Mutex<Script>>,
    _server: Background,
}

impl Receiver {
    /// Answers 200 to everything.
    pub fn start() -> Receiver {
        Self::answering(&[])
    }

    /// Answers the first requests with `statuses`, in order, then 200.
    pub fn answering(statuses: &[u16]) -> Receiver {
        let script = Arc::new(Mutex::new(Script {
            statuses: statuses.iter().copied().collect(),
            received: Vec::new(),
        }));
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(receive))
            .with_state(script.clone());
        let server = Background::serve(move |listener| async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            url: format!("http://{}/hook", server.address),
            script,
            _server: server,
        }
    }

    /// Every request received so far, in order.
    pub fn received(&self) -> Vec<Received> {
        self.script.lock().unwrap().received.clone()
    }
}

async fn receive(
    State(script): State<Arc<Mutex<Script>>>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let mut script = script.lock().unwrap();
    script.received.push(Received { headers, body });
    let status = script.statuses.pop_front().unwrap_or(200);
    StatusCode::from_u16(status).unwrap()
}

/// A loopback URL nothing listens on: a port bound and released again.
pub fn dead_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{address}/hook")
}
