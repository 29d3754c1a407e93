//! A Lambda Runtime API server for tests: the HTTP protocol a custom runtime (`bootstrap`)
//! talks to, on 127.0.0.1, with real epoch-millisecond deadlines and request ids.
//!
//! Implements `GET /2018-06-01/runtime/invocation/next` (long poll),
//! `POST /2018-06-01/runtime/invocation/{id}/response`, `POST .../invocation/{id}/error`,
//! `POST /2018-06-01/runtime/init/error`, and the Extensions API calls a runtime makes to
//! receive SIGTERM (`POST /2020-01-01/extension/register`, `GET .../extension/event/next`).
//! The server does not enforce timeouts (it records when each answer arrived, so a test can
//! compare it with the deadline) and answers 413 to responses over 6 MB, like Lambda.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Method, Request, Response, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};

/// Lambda's limit on a synchronous response payload.
pub const MAX_RESPONSE_BYTES: usize = 6 * 1024 * 1024;

/// How an invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// `/response` with this body.
    Response(Bytes),
    /// `/error` with this body and `Lambda-Runtime-Function-Error-Type` header.
    Error {
        /// `errorType` of the body.
        error_type: String,
        /// `errorMessage` of the body.
        error_message: String,
        /// The `Lambda-Runtime-Function-Error-Type` header, if any.
        header: Option<String>,
    },
}

/// One finished invocation.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The request id the server assigned.
    pub request_id: String,
    /// The deadline the server sent, ms since the epoch.
    pub deadline_ms: u64,
    /// When the answer arrived, ms since the epoch.
    pub answered_ms: u64,
    /// What the runtime answered.
    pub outcome: Outcome,
}

impl Finished {
    /// The response body as JSON; panics (test helper) if the invocation failed.
    pub fn json(&self) -> serde_json::Value {
        match &self.outcome {
            Outcome::Response(b) => serde_json::from_slice(b).expect("response is JSON"),
            Outcome::Error {
                error_type,
                error_message,
                ..
            } => panic!(
                "invocation {} failed: {error_type}: {error_message}",
                self.request_id
            ),
        }
    }

    /// `(errorType, errorMessage)`; panics (test helper) if the invocation succeeded.
    pub fn error(&self) -> (String, String) {
        match &self.outcome {
            Outcome::Error {
                error_type,
                error_message,
                ..
            } => (error_type.clone(), error_message.clone()),
            Outcome::Response(b) => panic!(
                "invocation {} succeeded: {}",
                self.request_id,
                String::from_utf8_lossy(b)
            ),
        }
    }
}

/// An `/init/error` report.
#[derive(Debug, Clone, PartialEq)]
pub struct InitError {
    /// `errorType`.
    pub error_type: String,
    /// `errorMessage`.
    pub error_message: String,
}

struct Queued {
    request_id: String,
    deadline_ms: u64,
    payload: Bytes,
}

#[derive(Default)]
struct State {
    queue: Mutex<VecDeque<Queued>>,
    queued: Notify,
    waiting: Mutex<HashMap<String, (u64, oneshot::Sender<Finished>)>>,
    init_errors: Mutex<Vec<InitError>>,
    next_calls: Mutex<Vec<Instant>>,
    next_called: Notify,
    extensions: Mutex<Vec<String>>,
    shutdown: Notify,
    counter: AtomicU64,
}

/// The server. Dropping it stops it.
#[derive(Debug)]
pub struct RuntimeApiServer {
    addr: SocketAddr,
    state: Arc<StateHandle>,
    task: tokio::task::JoinHandle<()>,
}

struct StateHandle(State);

impl std::fmt::Debug for StateHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RuntimeApiState")
    }
}

impl Drop for RuntimeApiServer {
    fn drop(&mut self) {
        self.state.0.shutdown.notify_waiters();
        self.task.abort();
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl RuntimeApiServer {
    /// Start on a free port of 127.0.0.1.
    pub async fn start() -> RuntimeApiServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(StateHandle(State::default()));
        let s = state.clone();
        let task = crate::http_server::spawn_http_server(listener, move |req| {
            let s = s.clone();
            async move { route(&s.0, req).await }
        });
        RuntimeApiServer { addr, state, task }
    }

    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub fn endpoint(&self) -> String {
        self.addr.to_string()
    }

    /// The environment Lambda gives a custom runtime (function `name`, `memory_mb`).
    pub fn lambda_env(&self, name: &str, memory_mb: u32) -> Vec<(String, String)> {
        [
            ("AWS_LAMBDA_RUNTIME_API", self.endpoint()),
            ("AWS_LAMBDA_FUNCTION_NAME", name.to_string()),
            ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", memory_mb.to_string()),
            ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_string()),
            ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
            (
                "AWS_LAMBDA_LOG_STREAM_NAME",
                "2024/01/01/[$LATEST]0123456789abcdef".to_string(),
            ),
            ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_string()),
            (
                "AWS_EXECUTION_ENV",
                "AWS_Lambda_provided.al2023".to_string(),
            ),
            ("_HANDLER", "bootstrap".to_string()),
            ("LAMBDA_TASK_ROOT", "/var/task".to_string()),
            ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_string()),
            ("TZ", ":UTC".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Queue an invocation with `payload` and a deadline `timeout` from now; returns its
    /// request id and a receiver for its outcome.
    pub fn enqueue(
        &self,
        payload: impl Into<Bytes>,
        deadline_ms: u64,
    ) -> (String, oneshot::Receiver<Finished>) {
        let st = &self.state.0;
        let n = st.counter.fetch_add(1, Ordering::Relaxed);
        let request_id = format!("8476a536-e9f4-11e8-9739-{:012x}", n + 1);
        let (tx, rx) = oneshot::channel();
        st.waiting
            .lock()
            .expect("lock")
            .insert(request_id.clone(), (deadline_ms, tx));
        st.queue.lock().expect("lock").push_back(Queued {
            request_id: request_id.clone(),
            deadline_ms,
            payload: payload.into(),
        });
        st.queued.notify_one();
        (request_id, rx)
    }

    /// Invoke with a deadline `timeout` from now and wait for the answer (at most
    /// `timeout` + 60 s; panics — test helper — if none comes).
    pub async fn invoke(&self, payload: impl Into<Bytes>, timeout: Duration) -> Finished {
        self.invoke_with_deadline(payload, now_ms() + timeout.as_millis() as u64, timeout)
            .await
    }

    /// Invoke with an explicit `deadline_ms` and wait up to `wait` + 60 s for the answer.
    pub async fn invoke_with_deadline(
        &self,
        payload: impl Into<Bytes>,
        deadline_ms: u64,
        wait: Duration,
    ) -> Finished {
        let (id, rx) = self.enqueue(payload, deadline_ms);
        match tokio::time::timeout(wait + Duration::from_secs(60), rx).await {
            Ok(Ok(f)) => f,
            _ => panic!("invocation {id}: no answer from the runtime"),
        }
    }

    /// The `/init/error` reports so far.
    pub fn init_errors(&self) -> Vec<InitError> {
        self.state.0.init_errors.lock().expect("lock").clone()
    }

    /// When each `/invocation/next` request arrived.
    pub fn next_calls(&self) -> Vec<Instant> {
        self.state.0.next_calls.lock().expect("lock").clone()
    }

    /// Wait until `/invocation/next` has been requested `n` times (at most `timeout`);
    /// returns whether it was.
    pub async fn wait_next_calls(&self, n: usize, timeout: Duration) -> bool {
        let st = &self.state.0;
        tokio::time::timeout(timeout, async {
            loop {
                let notified = st.next_called.notified();
                if st.next_calls.lock().expect("lock").len() >= n {
                    return;
                }
                notified.await;
            }
        })
        .await
        .is_ok()
    }

    /// Names of the extensions registered so far.
    pub fn extensions(&self) -> Vec<String> {
        self.state.0.extensions.lock().expect("lock").clone()
    }
}

type Body = Full<Bytes>;

fn reply(status: StatusCode, body: impl Into<Bytes>) -> Response<Body> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

fn error_json(kind: &str, message: &str) -> Bytes {
    Bytes::from(
        serde_json::json!({"errorType": kind, "errorMessage": message})
            .to_string()
            .into_bytes(),
    )
}

async fn route(st: &State, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let error_type_header = req
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let extension_name = req
        .headers()
        .get("lambda-extension-name")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => {
            return reply(
                StatusCode::BAD_REQUEST,
                error_json("InvalidRequest", "body"),
            );
        }
    };
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["2018-06-01", "runtime", "invocation", "next"]) => next(st).await,
        (&Method::POST, ["2018-06-01", "runtime", "invocation", id, kind])
            if *kind == "response" || *kind == "error" =>
        {
            let Some((deadline_ms, tx)) = st.waiting.lock().expect("lock").remove(*id) else {
                return reply(
                    StatusCode::BAD_REQUEST,
                    error_json("InvalidRequestID", "unknown or already answered request id"),
                );
            };
            let outcome = if *kind == "response" {
                if body.len() > MAX_RESPONSE_BYTES {
                    Outcome::Error {
                        error_type: "Function.ResponseSizeTooLarge".into(),
                        error_message: format!("response payload of {} bytes", body.len()),
                        header: None,
                    }
                } else {
                    Outcome::Response(body)
                }
            } else {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                Outcome::Error {
                    error_type: v["errorType"].as_str().unwrap_or_default().to_string(),
                    error_message: v["errorMessage"].as_str().unwrap_or_default().to_string(),
                    header: error_type_header,
                }
            };
            let too_large = matches!(&outcome, Outcome::Error { error_type, .. } if error_type == "Function.ResponseSizeTooLarge");
            let _ = tx.send(Finished {
                request_id: id.to_string(),
                deadline_ms,
                answered_ms: now_ms(),
                outcome,
            });
            if too_large {
                reply(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    error_json("RequestEntityTooLarge", "response over 6 MB"),
                )
            } else {
                reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            }
        }
        (&Method::POST, ["2018-06-01", "runtime", "init", "error"]) => {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            st.init_errors.lock().expect("lock").push(InitError {
                error_type: v["errorType"].as_str().unwrap_or_default().to_string(),
                error_message: v["errorMessage"].as_str().unwrap_or_default().to_string(),
            });
            reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (&Method::POST, ["2020-01-01", "extension", "register"]) => {
            let name = extension_name.unwrap_or_default();
            let mut ext = st.extensions.lock().expect("lock");
            ext.push(name);
            let id = format!("ext-{}", ext.len());
            drop(ext);
            let mut r = reply(
                StatusCode::OK,
                r#"{"functionName":"test-function","functionVersion":"$LATEST","handler":"bootstrap"}"#,
            );
            r.headers_mut().insert(
                "lambda-extension-identifier",
                hyper::header::HeaderValue::from_str(&id).expect("header"),
            );
            r
        }
        (&Method::GET, ["2020-01-01", "extension", "event", "next"]) => {
            // No events are ever delivered to an extension that subscribed to none.
            st.shutdown.notified().await;
            reply(
                StatusCode::INTERNAL_SERVER_ERROR,
                error_json("Shutdown", "stopping"),
            )
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            error_json("NotFound", &format!("{method} {path}")),
        ),
    }
}

async fn next(st: &State) -> Response<Body> {
    st.next_calls.lock().expect("lock").push(Instant::now());
    st.next_called.notify_waiters();
    let item = loop {
        let notified = st.queued.notified();
        if let Some(item) = st.queue.lock().expect("lock").pop_front() {
            break item;
        }
        notified.await;
    };
    let mut r = reply(StatusCode::OK, item.payload);
    let h = r.headers_mut();
    let mut set = |k: &'static str, v: String| {
        if let Ok(v) = hyper::header::HeaderValue::from_str(&v) {
            h.insert(k, v);
        }
    };
    set("lambda-runtime-aws-request-id", item.request_id.clone());
    set("lambda-runtime-deadline-ms", item.deadline_ms.to_string());
    set(
        "lambda-runtime-invoked-function-arn",
        "arn:aws:lambda:us-east-1:123456789012:function:test-function".into(),
    );
    set(
        "lambda-runtime-trace-id",
        "Root=1-5bef4de7-ad49b0e87f6ef6c87fc2e700;Parent=9a9197af755a6419;Sampled=1".into(),
    );
    r
}
