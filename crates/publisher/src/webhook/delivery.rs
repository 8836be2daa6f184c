//! Delivering one payload to one hook: a POST with a timeout, retried with
//! exponential backoff when the receiver may recover (connection errors, timeouts,
//! 5xx) and never when it refused the request (4xx) or redirected it (3xx, not
//! followed: a redirected POST would lose its body or method).

use std::time::Duration;

use bytes::Bytes;
use serde::Serialize;

use super::hook::Hook;
use super::payload::{DELIVERY_HEADER, Payload, SIGNATURE_HEADER, signature};

#[derive(Debug, Clone)]
pub struct DeliveryOptions {
    /// Attempts per delivery, the first included (at least 1).
    pub attempts: u32,
    /// Limit on each attempt, connecting included.
    pub timeout: Duration,
    /// Wait before the second attempt; doubled before each further one.
    pub backoff: Duration,
}

impl Default for DeliveryOptions {
    fn default() -> Self {
        DeliveryOptions {
            attempts: 3,
            timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(500),
        }
    }
}

/// One delivery's outcome, as `berth push --json` prints it under `webhooks`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeliveryReport {
    /// The hook's label.
    pub name: String,
    /// The pattern the hook was added for.
    pub pattern: String,
    pub tag: String,
    /// `delivered` (a 2xx answer) or `failed`.
    pub status: DeliveryStatus,
    /// The last answer's HTTP status, if there was one.
    pub http_status: Option<u16>,
    pub attempts: u32,
    /// The `X-Berth-Delivery` id.
    pub delivery: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    Delivered,
    Failed,
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Failed => "failed",
        })
    }
}

pub fn client(options: &DeliveryOptions) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(options.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// What one attempt came to.
enum Attempt {
    Delivered(u16),
    /// Worth another attempt.
    Retryable {
        status: Option<u16>,
        error: String,
    },
    Refused(u16),
}

/// POSTs `payload` to `hook` until it is delivered, refused or out of attempts.
pub async fn deliver(
    client: &reqwest::Client,
    hook: &Hook,
    tag: &str,
    payload: &Payload,
    options: &DeliveryOptions,
) -> DeliveryReport {
    let body = Bytes::from(serde_json::to_vec(payload).expect("the payload serializes"));
    let id = uuid::Uuid::new_v4().to_string();
    let mut report = DeliveryReport {
        name: hook.label.clone(),
        pattern: hook.pattern.as_str().to_owned(),
        tag: tag.to_owned(),
        status: DeliveryStatus::Failed,
        http_status: None,
        attempts: 0,
        delivery: id.clone(),
        error: None,
    };
    let mut backoff = options.backoff;
    loop {
        report.attempts += 1;
        match attempt(client, hook, &id, body.clone()).await {
            Attempt::Delivered(status) => {
                report.status = DeliveryStatus::Delivered;
                report.http_status = Some(status);
                report.error = None;
                return report;
            }
            Attempt::Refused(status) => {
                report.http_status = Some(status);
                report.error = Some(format!("the receiver answered HTTP {status}"));
                return report;
            }
            Attempt::Retryable { status, error } => {
                report.http_status = status;
                report.error = Some(error);
                if report.attempts >= options.attempts.max(1) {
                    return report;
                }
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = backoff.saturating_mul(2);
    }
}

async fn attempt(client: &reqwest::Client, hook: &Hook, id: &str, body: Bytes) -> Attempt {
    let mut request = client
        .post(&hook.record.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(DELIVERY_HEADER, id);
    if let Some(secret) = &hook.record.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, &body));
    }
    match request.body(body).send().await {
        Ok(response) => {
            let status = response.status();
            let code = status.as_u16();
            if status.is_success() {
                Attempt::Delivered(code)
            } else if status.is_server_error() {
                Attempt::Retryable {
                    status: Some(code),
                    error: format!("the receiver answered HTTP {code}"),
                }
            } else {
                Attempt::Refused(code)
            }
        }
        // reqwest's Display names the URL, which may hold a token; say what failed.
        Err(e) => Attempt::Retryable {
            status: None,
            error: describe(&e),
        },
    }
}

fn describe(error: &reqwest::Error) -> String {
    let what = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "could not connect"
    } else {
        "the request failed"
    };
    let mut cause = std::error::Error::source(error);
    let mut root = None;
    while let Some(e) = cause {
        root = Some(e);
        cause = e.source();
    }
    match root {
        Some(root) => format!("{what}: {root}"),
        None => what.to_owned(),
    }
}
