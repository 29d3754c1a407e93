//! A fault-injecting HTTP/1.1 proxy to put between an S3 client and
//! [`crate::LocalS3`].
//!
//! For each request, drawn from a seeded RNG:
//! - with probability `slow_down_rate`: `503 Service Unavailable` with an S3
//!   `SlowDown` XML error (the request is not forwarded);
//! - with probability `reset_rate`: the connection is closed without any
//!   response (the client sees an I/O error, "connection closed before
//!   message completed" or a reset; the request is not forwarded);
//! - otherwise: forwarded verbatim (method, path and query, every header
//!   including `Host` and `Authorization` so SigV4 stays valid, streaming
//!   body) and the upstream response is streamed back.
//!
//! `fail_all` answers every request with the `SlowDown` 503. `lose_reply_once` forwards
//! the first PUT whose path contains the given text, lets the server apply it, then closes
//! the connection without its response (the write happened; the client cannot know);
//! `lose_complete_reply_once` does the same to the first CompleteMultipartUpload.
//! `answer_once` answers the first PUT whose path contains the text with the given status
//! and its S3 error code (409 `ConditionalRequestConflict`, 412 `PreconditionFailed`...)
//! without forwarding it. `throttle` answers `429` with `Retry-After` at a rate (HTTP API
//! clients). `hang` holds requests whose path contains the text without ever
//! answering (a server that hangs), up to the given number of times.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::LocalS3Error;
use crate::server::{self, ServerHandle};

/// What faults to inject. Rates are probabilities in `[0, 1]` per request;
/// values outside are clamped. `slow_down_rate + reset_rate` above 1 means
/// every request faults (slow-downs drawn first).
#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Probability of answering `503 SlowDown` instead of forwarding.
    pub slow_down_rate: f64,
    /// Probability of closing the connection without a response.
    pub reset_rate: f64,
    /// Answer every request with `503 SlowDown`.
    pub fail_all: bool,
    /// Seed of the RNG that draws the faults (runs are reproducible for a
    /// given request order).
    pub seed: u64,
    /// Forward the first PUT whose path contains this text, then drop its response
    /// (once; other faults are not drawn for that request).
    pub lose_reply_once: Option<String>,
    /// Forward the first CompleteMultipartUpload (a POST with an `uploadId`), then drop
    /// its response (once): the object is complete, the client sees a lost reply.
    pub lose_complete_reply_once: bool,
    /// Answer the first PUT whose path contains this text with this status (and its S3
    /// error code), without forwarding it (once).
    pub answer_once: Option<(String, u16)>,
    /// Never answer requests whose path contains this text (nor forward them), this many
    /// times; the client's timeout ends each.
    pub hang: Option<(String, u32)>,
    /// Answer requests `429 Too Many Requests` with a `Retry-After` header instead of
    /// forwarding them (for HTTP API clients), at the given rate.
    pub throttle: Option<Throttle>,
}

/// Throttling answers: `429` with `Retry-After: retry_after_secs`.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    /// Probability per request, drawn after the slow-down and reset rates.
    pub rate: f64,
    /// The `Retry-After` value, in seconds.
    pub retry_after_secs: u64,
}

impl Default for FaultConfig {
    /// No faults: everything is forwarded.
    fn default() -> Self {
        Self {
            slow_down_rate: 0.0,
            reset_rate: 0.0,
            fail_all: false,
            seed: 0,
            lose_reply_once: None,
            lose_complete_reply_once: false,
            answer_once: None,
            hang: None,
            throttle: None,
        }
    }
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FaultStats {
    /// Requests received (faulted or forwarded).
    pub requests: u64,
    /// Requests answered with `503 SlowDown`.
    pub slow_downs: u64,
    /// Requests whose connection was dropped without a response.
    pub resets: u64,
    /// Requests forwarded and applied whose response was then dropped.
    pub lost_replies: u64,
    /// Requests answered `429` with `Retry-After`.
    pub throttled: u64,
}

/// One request the proxy received: method, path, query and headers (without
/// `authorization`), names lower case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenRequest {
    /// `GET`, `PUT`...
    pub method: String,
    /// `/bucket/key`.
    pub path: String,
    /// The query string, without `?`.
    pub query: String,
    /// Header names (lower case) and values.
    pub headers: Vec<(String, String)>,
}

impl SeenRequest {
    /// The value of header `name` (lower case), if present.
    #[must_use]
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// A running fault-injecting proxy. Stop it with [`FaultProxy::shutdown`].
pub struct FaultProxy {
    upstream: SocketAddr,
    shared: Arc<Shared>,
    server: ServerHandle,
}

impl fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.server.addr())
            .field("upstream", &self.upstream)
            .field("config", &self.shared.config())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl FaultProxy {
    /// Starts a proxy on `127.0.0.1:<free port>` forwarding to `upstream`.
    ///
    /// # Errors
    /// [`LocalS3Error::Bind`] if no port could be bound.
    pub async fn start(
        upstream: SocketAddr,
        config: FaultConfig,
    ) -> Result<FaultProxy, LocalS3Error> {
        Self::start_on(upstream, config, SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await
    }

    /// Like [`FaultProxy::start`], listening on `listen`.
    ///
    /// # Errors
    /// [`LocalS3Error::Bind`] naming `listen` if it could not be bound.
    pub async fn start_on(
        upstream: SocketAddr,
        config: FaultConfig,
        listen: SocketAddr,
    ) -> Result<FaultProxy, LocalS3Error> {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new()).build(connector);
        let shared = Arc::new(Shared {
            upstream,
            client,
            state: Mutex::new(FaultState::new(config)),
            requests: AtomicU64::new(0),
            slow_downs: AtomicU64::new(0),
            resets: AtomicU64::new(0),
            lost_replies: AtomicU64::new(0),
            throttled: AtomicU64::new(0),
            seen: Mutex::new(Vec::new()),
        });

        let listener = server::bind(listen).await?;
        let http = {
            let mut b = ConnBuilder::new(TokioExecutor::new());
            // Forwarding is HTTP/1.1; S3 clients speak HTTP/1.1 over plain TCP.
            b = b.http1_only();
            b
        };
        let service = ProxyService {
            shared: Arc::clone(&shared),
        };
        let server = ServerHandle::spawn(listener, move |socket, graceful| {
            let conn = http.serve_connection(TokioIo::new(socket), service.clone());
            let conn = graceful.watch(conn.into_owned());
            tokio::spawn(async move {
                // An injected reset ends the connection with an error: the
                // socket is dropped without a response being written.
                if let Err(err) = conn.await {
                    tracing::debug!(error = %err, "fault-proxy connection ended with an error");
                }
            });
        })?;
        Ok(FaultProxy {
            upstream,
            shared,
            server,
        })
    }

    /// The base URL to give clients, e.g. `http://127.0.0.1:40124`.
    #[must_use]
    pub fn endpoint(&self) -> String {
        server::endpoint_for(self.server.addr())
    }

    /// The address the proxy listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.server.addr()
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> FaultStats {
        FaultStats {
            requests: self.shared.requests.load(Ordering::Relaxed),
            slow_downs: self.shared.slow_downs.load(Ordering::Relaxed),
            resets: self.shared.resets.load(Ordering::Relaxed),
            lost_replies: self.shared.lost_replies.load(Ordering::Relaxed),
            throttled: self.shared.throttled.load(Ordering::Relaxed),
        }
    }

    /// Every request received so far, in order (for tests of what a client sends).
    #[must_use]
    pub fn seen(&self) -> Vec<SeenRequest> {
        self.shared
            .seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the fault configuration for the requests that follow; the RNG
    /// is re-seeded from `config.seed`. Counters are kept.
    pub fn set_config(&self, config: FaultConfig) {
        *self
            .shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = FaultState::new(config);
    }

    /// Stops accepting, lets in-flight requests finish (up to 5 s) and ends
    /// the proxy task.
    pub async fn shutdown(self) {
        self.server.shutdown().await;
    }
}

struct Shared {
    upstream: SocketAddr,
    client: Client<HttpConnector, Incoming>,
    state: Mutex<FaultState>,
    requests: AtomicU64,
    slow_downs: AtomicU64,
    resets: AtomicU64,
    lost_replies: AtomicU64,
    throttled: AtomicU64,
    seen: Mutex<Vec<SeenRequest>>,
}

impl Shared {
    fn config(&self) -> FaultConfig {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .config
            .clone()
    }

    fn decide(&self, method: &hyper::Method, path: &str, query: &str) -> Decision {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if method == hyper::Method::POST
            && state.config.lose_complete_reply_once
            && query.split('&').any(|p| p.starts_with("uploadId="))
        {
            state.config.lose_complete_reply_once = false;
            return Decision::ForwardThenDrop;
        }
        if let Some((text, times)) = &mut state.config.hang
            && *times > 0
            && path.contains(text.as_str())
        {
            *times -= 1;
            return Decision::Hang;
        }
        if method == hyper::Method::PUT
            && let Some((text, status)) = &state.config.answer_once
            && path.contains(text.as_str())
        {
            let status = *status;
            state.config.answer_once = None;
            return Decision::Answer(status);
        }
        if method == hyper::Method::PUT
            && let Some(text) = &state.config.lose_reply_once
            && path.contains(text.as_str())
        {
            state.config.lose_reply_once = None;
            return Decision::ForwardThenDrop;
        }
        state.draw()
    }
}

struct FaultState {
    config: FaultConfig,
    rng: StdRng,
}

impl FaultState {
    fn new(config: FaultConfig) -> Self {
        let rng = StdRng::seed_from_u64(config.seed);
        Self { config, rng }
    }

    fn draw(&mut self) -> Decision {
        // Always draw, so the sequence of decisions depends only on the seed
        // and the order of requests.
        let u: f64 = self.rng.random();
        let slow = self.config.slow_down_rate.clamp(0.0, 1.0);
        let reset = self.config.reset_rate.clamp(0.0, 1.0);
        if self.config.fail_all || u < slow {
            Decision::SlowDown
        } else if u < slow + reset {
            Decision::Reset
        } else if let Some(t) = &self.config.throttle
            && u < slow + reset + t.rate.clamp(0.0, 1.0)
        {
            Decision::Throttle(t.retry_after_secs)
        } else {
            Decision::Forward
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    SlowDown,
    Reset,
    Forward,
    ForwardThenDrop,
    /// Answer with this status, not forwarded.
    Answer(u16),
    /// Never answer.
    Hang,
    /// `429` with this `Retry-After`, not forwarded.
    Throttle(u64),
}

/// The service error that makes hyper drop the connection without answering.
#[derive(Debug)]
struct InjectedReset;

impl fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("fault proxy: injected connection reset")
    }
}

impl std::error::Error for InjectedReset {}

type ProxyBody = BoxBody<Bytes, hyper::Error>;

#[derive(Clone)]
struct ProxyService {
    shared: Arc<Shared>,
}

impl hyper::service::Service<Request<Incoming>> for ProxyService {
    type Response = Response<ProxyBody>;
    type Error = InjectedReset;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { handle(&shared, req).await })
    }
}

async fn handle(
    shared: &Shared,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, InjectedReset> {
    let n = shared.requests.fetch_add(1, Ordering::Relaxed) + 1;
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or_default().to_owned();
    shared
        .seen
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push(SeenRequest {
            method: req.method().to_string(),
            path: path.clone(),
            query: query.clone(),
            headers: req
                .headers()
                .iter()
                .filter(|(n, _)| *n != hyper::header::AUTHORIZATION)
                .map(|(n, v)| {
                    (
                        n.as_str().to_string(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        });
    match shared.decide(req.method(), &path, &query) {
        Decision::Reset => {
            shared.resets.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(n, method = %req.method(), uri = %req.uri(), "fault proxy: reset");
            Err(InjectedReset)
        }
        Decision::SlowDown => {
            shared.slow_downs.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(n, method = %req.method(), uri = %req.uri(), "fault proxy: 503 SlowDown");
            let resource = req.uri().path().to_owned();
            // Read and discard the body first, so the client is done sending
            // when the 503 arrives and reliably reads it (closing on unread
            // request bytes would turn the 503 into a TCP reset).
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
            Ok(slow_down_response(&resource, n))
        }
        Decision::Answer(status) => {
            tracing::debug!(n, %path, status, "fault proxy: answered without forwarding");
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
            let code = match status {
                409 => "ConditionalRequestConflict",
                412 => "PreconditionFailed",
                403 => "AccessDenied",
                404 => "NoSuchKey",
                500 => "InternalError",
                503 => "SlowDown",
                _ => "InjectedError",
            };
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            Ok(error_response(
                status,
                code,
                "injected by the fault proxy",
                n,
            ))
        }
        Decision::Throttle(secs) => {
            shared.throttled.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(n, %path, "fault proxy: 429 with Retry-After");
            let mut body = req.into_body();
            while let Some(frame) = body.frame().await {
                if frame.is_err() {
                    break;
                }
            }
            let mut response = error_response(
                StatusCode::TOO_MANY_REQUESTS,
                "TooManyRequests",
                "injected by the fault proxy",
                n,
            );
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert(hyper::header::RETRY_AFTER, v);
            }
            Ok(response)
        }
        Decision::Hang => {
            tracing::debug!(n, %path, "fault proxy: hanging");
            // Until the client gives up and closes the connection (the server task ends
            // with it) or the proxy shuts down.
            std::future::pending::<()>().await;
            Err(InjectedReset)
        }
        Decision::Forward => Ok(forward(shared, req, n).await),
        Decision::ForwardThenDrop => {
            let response = forward(shared, req, n).await;
            // Wait for the whole upstream answer (the write is applied), then drop it.
            let _ = response.into_body().collect().await;
            shared.lost_replies.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(n, %path, "fault proxy: forwarded, reply dropped");
            Err(InjectedReset)
        }
    }
}

async fn forward(shared: &Shared, req: Request<Incoming>, n: u64) -> Response<ProxyBody> {
    let (mut parts, body) = req.into_parts();
    let path_and_query = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri: Uri = match format!("http://{}{path_and_query}", shared.upstream).parse() {
        Ok(uri) => uri,
        Err(err) => {
            return error_response(StatusCode::BAD_REQUEST, "InvalidURI", &err.to_string(), n);
        }
    };
    parts.uri = uri;
    parts.version = Version::HTTP_11;
    // Server-side extensions (hyper internals) mean nothing to the client.
    parts.extensions = hyper::http::Extensions::new();
    // Headers are kept as they are: `Host` stays the one the client signed
    // (hyper's client only adds `Host` when it is missing).
    match shared
        .client
        .request(Request::from_parts(parts, body))
        .await
    {
        Ok(resp) => resp.map(BodyExt::boxed),
        Err(err) => {
            tracing::debug!(n, error = %err, "fault proxy: upstream request failed");
            error_response(
                StatusCode::BAD_GATEWAY,
                "InternalError",
                &format!("fault proxy could not reach upstream: {err}"),
                n,
            )
        }
    }
}

fn slow_down_response(resource: &str, n: u64) -> Response<ProxyBody> {
    let request_id = format!("fault-proxy-{n}");
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code>\
         <Message>Please reduce your request rate.</Message><Resource>{}</Resource>\
         <RequestId>{request_id}</RequestId></Error>",
        xml_escape(resource)
    );
    xml_response(StatusCode::SERVICE_UNAVAILABLE, xml, &request_id)
}

fn error_response(status: StatusCode, code: &str, message: &str, n: u64) -> Response<ProxyBody> {
    let request_id = format!("fault-proxy-{n}");
    let xml = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{}</Message>\
         <RequestId>{request_id}</RequestId></Error>",
        xml_escape(message)
    );
    xml_response(status, xml, &request_id)
}

fn xml_response(status: StatusCode, xml: String, request_id: &str) -> Response<ProxyBody> {
    let len = xml.len();
    let mut resp = Response::new(
        Full::new(Bytes::from(xml))
            .map_err(|never: Infallible| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/xml"));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(len));
    if let Ok(v) = HeaderValue::from_str(request_id) {
        headers.insert("x-amz-request-id", v);
    }
    resp
}

fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decisions(config: FaultConfig, n: usize) -> Vec<Decision> {
        let mut state = FaultState::new(config);
        (0..n).map(|_| state.draw()).collect()
    }

    #[test]
    fn same_seed_same_faults() {
        let cfg = FaultConfig {
            slow_down_rate: 0.3,
            reset_rate: 0.1,
            fail_all: false,
            seed: 7,
            lose_reply_once: None,
            lose_complete_reply_once: false,
            answer_once: None,
            hang: None,
            throttle: None,
        };
        let a = decisions(cfg.clone(), 1000);
        assert_eq!(a, decisions(cfg, 1000));
        let slow = a.iter().filter(|&&d| d == Decision::SlowDown).count();
        let reset = a.iter().filter(|&&d| d == Decision::Reset).count();
        assert!((200..400).contains(&slow), "{slow}");
        assert!((50..150).contains(&reset), "{reset}");
    }

    #[test]
    fn fail_all_always_slows_down() {
        let cfg = FaultConfig {
            fail_all: true,
            ..FaultConfig::default()
        };
        assert!(decisions(cfg, 100).iter().all(|&d| d == Decision::SlowDown));
        assert!(
            decisions(FaultConfig::default(), 100)
                .iter()
                .all(|&d| d == Decision::Forward)
        );
    }

    #[test]
    fn escapes_xml() {
        assert_eq!(xml_escape("/b/k?a=1&b=<2>"), "/b/k?a=1&amp;b=&lt;2&gt;");
    }
}
