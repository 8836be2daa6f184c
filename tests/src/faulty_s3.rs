//! A faulty network path to the real Garage: an HTTP relay on a free loopback port
//! that answers the requests a [`Fault`] picks itself, as a struggling S3 does (503
//! SlowDown, 500 InternalError, or no answer at all), and passes every other request
//! to Garage and its answer back. The SDK signs the `Host` it connects to, so the
//! relay keeps the client's `Host` when it forwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use crate::background::Background;
use crate::garage_var;

/// What the relay answers in Garage's place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// 503 `SlowDown`: S3's throttling answer.
    SlowDown,
    /// 500 `InternalError`.
    InternalError,
    /// Reads the request and never answers.
    Stall,
    /// Passes the request on with one byte of its body flipped, as a bad link would.
    Corrupt,
}

/// Which requests the relay answers itself, and how.
#[derive(Debug, Clone)]
pub struct Fault {
    answer: Answer,
    method: Option<Method>,
    /// Only requests whose decoded path and query hold this are faulted.
    touching: Option<String>,
    /// Requests whose decoded path and query hold this are always relayed.
    spared: Option<String>,
    /// Faults at most this many requests, then relays the rest.
    times: usize,
}

impl Fault {
    /// Every request, for as long as the relay runs.
    pub fn always(answer: Answer) -> Fault {
        Fault {
            answer,
            method: None,
            touching: None,
            spared: None,
            times: usize::MAX,
        }
    }

    /// The first `times` requests (that also match [`Fault::on`]).
    pub fn first(times: usize, answer: Answer) -> Fault {
        Fault {
            times,
            ..Fault::always(answer)
        }
    }

    /// Only requests of this method (`PUT` covers PutObject and UploadPart).
    pub fn on(self, method: Method) -> Fault {
        Fault {
            method: Some(method),
            ..self
        }
    }

    /// Only requests whose path and query, percent-decoded, contain `text`
    /// (`partNumber=` picks UploadPart).
    pub fn touching(self, text: &str) -> Fault {
        Fault {
            touching: Some(text.to_owned()),
            ..self
        }
    }

    /// Relays the requests whose path and query, percent-decoded, contain `text`
    /// (a key prefix such as `_berth/access/`, wherever the SDK puts it).
    pub fn sparing(self, text: &str) -> Fault {
        Fault {
            spared: Some(text.to_owned()),
            ..self
        }
    }

    fn matches(&self, method: &Method, uri: &Uri) -> bool {
        let target = percent_decode(uri.path_and_query().map_or("", |p| p.as_str()));
        self.method.as_ref().is_none_or(|m| m == method)
            && self
                .touching
                .as_ref()
                .is_none_or(|text| target.contains(text.as_str()))
            && self
                .spared
                .as_ref()
                .is_none_or(|text| !target.contains(text.as_str()))
    }
}

struct Relay {
    upstream: String,
    fault: Mutex<Fault>,
    client: reqwest::Client,
    seen: AtomicUsize,
    faulted: AtomicUsize,
}

pub struct FaultyS3 {
    relay: Arc<Relay>,
    server: Background,
}

impl FaultyS3 {
    /// A relay in front of Garage's S3 endpoint (`AWS_ENDPOINT_URL` of the Garage env).
    pub fn start(fault: Fault) -> FaultyS3 {
        let relay = Arc::new(Relay {
            upstream: garage_var("AWS_ENDPOINT_URL")
                .trim_end_matches('/')
                .to_owned(),
            fault: Mutex::new(fault),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seen: AtomicUsize::new(0),
            faulted: AtomicUsize::new(0),
        });
        let app = axum::Router::new()
            .fallback(handle)
            .with_state(relay.clone());
        let server = Background::serve(move |listener| async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultyS3 { relay, server }
    }

    /// `http://127.0.0.1:PORT`: an `AWS_ENDPOINT_URL` that leads through the relay.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.server.address)
    }

    /// Requests that reached the relay, faulted or not.
    pub fn seen(&self) -> usize {
        self.relay.seen.load(Ordering::SeqCst)
    }

    /// Requests the relay answered with a fault (or stalled).
    pub fn faulted(&self) -> usize {
        self.relay.faulted.load(Ordering::SeqCst)
    }
}

async fn handle(State(relay): State<Arc<Relay>>, request: Request) -> Response {
    relay.seen.fetch_add(1, Ordering::SeqCst);
    let answer = {
        let mut fault = relay.fault.lock().unwrap();
        if fault.times > 0 && fault.matches(request.method(), request.uri()) {
            fault.times -= 1;
            Some(fault.answer)
        } else {
            None
        }
    };
    let (parts, body) = request.into_parts();
    // Read the whole request first, as S3 does before it answers an upload.
    let body = axum::body::to_bytes(body, usize::MAX).await.unwrap();
    let Some(answer) = answer else {
        return forward(&relay, parts, body).await;
    };
    relay.faulted.fetch_add(1, Ordering::SeqCst);
    if answer == Answer::Corrupt {
        let mut body = body.to_vec();
        let middle = body.len() / 2;
        if let Some(byte) = body.get_mut(middle) {
            *byte ^= 0x01;
        }
        return forward(&relay, parts, body.into()).await;
    }
    let (status, code, message) = match answer {
        Answer::SlowDown => (
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate.",
        ),
        Answer::InternalError => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalError",
            "We encountered an internal error. Please try again.",
        ),
        Answer::Stall => std::future::pending().await,
        Answer::Corrupt => unreachable!("corrupted requests are forwarded above"),
    };
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
         <Message>{message}</Message><Resource>{}</Resource>\
         <RequestId>faulty-s3</RequestId></Error>",
        parts.uri.path()
    );
    let body = if parts.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(xml)
    };
    (status, [(header::CONTENT_TYPE, "application/xml")], body).into_response()
}

/// Connection-scoped headers, which belong to each hop rather than to the request.
/// `Content-Length` stays: the SDK signs it, even as 0 on an empty PUT.
const HOP_BY_HOP: [HeaderName; 3] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::EXPECT,
];

async fn forward(
    relay: &Relay,
    parts: axum::http::request::Parts,
    body: axum::body::Bytes,
) -> Response {
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    let mut headers = parts.headers;
    for name in &HOP_BY_HOP {
        headers.remove(name);
    }
    let sent = relay
        .client
        .request(parts.method, format!("{}{path}", relay.upstream))
        .headers(headers)
        .body(body)
        .send()
        .await;
    let answer = match sent {
        Ok(answer) => answer,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let status = answer.status();
    let mut headers = answer.headers().clone();
    let body = answer.bytes().await.unwrap_or_default();
    headers.remove(header::CONNECTION);
    headers.remove(header::TRANSFER_ENCODING);
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// `%XX` escapes decoded, enough to read keys in S3 paths and queries.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok());
        match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) if bytes[i] == b'%' => {
                out.push(byte);
                i += 3;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
