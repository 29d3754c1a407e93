//! [`HttpClient`]: one reqwest client (rustls) with the connector's credentials, a
//! client-side token bucket (`governor`) and retries with exponential backoff and full
//! jitter that honour `Retry-After`.
//!
//! The retry loop is written here rather than taken from a middleware crate: the
//! well-kept ones (reqwest-retry) are built for another reqwest major version, and the
//! loop must also re-authenticate once on a 401 and refuse a `Retry-After` longer than the
//! run can wait, which is a few lines on top of a plain loop.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use connector_sdk::{ConnectorError, ConnectorErrorKind};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use http::{HeaderMap, Method, StatusCode};
use rand::Rng;
use url::Url;

use crate::auth::Auth;
use crate::options::{HttpOptions, RetryOptions, endpoint_of};

/// An answered request: the URL it went to, status, headers and the whole body.
#[derive(Debug, Clone)]
pub struct HttpResponse {
    /// The URL requested.
    pub url: Url,
    /// A 2xx status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: HeaderMap,
    /// The body.
    pub body: Bytes,
}

impl HttpResponse {
    /// The body as JSON; the error names the URL and where the JSON is broken.
    pub fn json(&self) -> Result<serde_json::Value, ConnectorError> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ConnectorError::source_error(format!(
                "GET {} answered a body that is not JSON ({e}); the connector reads JSON APIs",
                self.url
            ))
        })
    }
}

/// Counters of one client, for run logs and benchmarks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestStats {
    /// Requests sent (retries included).
    pub requests: u64,
    /// Requests retried (throttled, failed or unanswered).
    pub retries: u64,
    /// 429 answers.
    pub throttled: u64,
    /// OAuth2 tokens fetched.
    pub token_fetches: u64,
}

/// The connector's HTTP client. Cheap to share (`Arc` inside); one per run.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    auth: Auth,
    limiter: Option<DefaultDirectRateLimiter>,
    retry: RetryOptions,
    requests: AtomicU64,
    retries: AtomicU64,
    throttled: AtomicU64,
}

/// Why an attempt did not succeed, when another attempt may.
enum Retryable {
    Status {
        status: StatusCode,
        retry_after: Option<Duration>,
        snippet: String,
    },
    Transport(reqwest::Error),
}

impl HttpClient {
    /// A client for `options` (validated here; secrets read here). No request is sent.
    pub fn new(options: &HttpOptions) -> Result<HttpClient, ConnectorError> {
        options.validate()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &options.headers {
            // Validated above.
            if let (Ok(n), Ok(v)) = (
                http::HeaderName::try_from(name.as_str()),
                http::HeaderValue::try_from(value.as_str()),
            ) {
                headers.insert(n, v);
            }
        }
        let http = reqwest::Client::builder()
            .user_agent(concat!("connector-http/", env!("CARGO_PKG_VERSION")))
            .default_headers(headers)
            .timeout(Duration::from_secs(options.timeout_secs))
            .connect_timeout(Duration::from_secs(options.connect_timeout_secs))
            // Redirects are not followed: a redirect to another host would reach an
            // endpoint the manifest does not declare.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| {
                ConnectorError::internal(format!("cannot build the HTTP client: {e}"))
                    .with_source(e)
            })?;
        let auth = Auth::resolve(options.auth.as_ref(), &http)?;
        let limiter = options.rate_limit.as_ref().map(|l| {
            let period = Duration::from_secs_f64(1.0 / l.requests_per_second);
            let burst = NonZeroU32::new(l.burst).unwrap_or(NonZeroU32::MIN);
            // `with_period` only fails for a zero period, which validation rules out.
            let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
                .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
                .allow_burst(burst);
            RateLimiter::direct(quota)
        });
        Ok(HttpClient {
            inner: Arc::new(Inner {
                http,
                auth,
                limiter,
                retry: options.retry.clone(),
                requests: AtomicU64::new(0),
                retries: AtomicU64::new(0),
                throttled: AtomicU64::new(0),
            }),
        })
    }

    /// The counters so far.
    pub fn stats(&self) -> RequestStats {
        RequestStats {
            requests: self.inner.requests.load(Ordering::Relaxed),
            retries: self.inner.retries.load(Ordering::Relaxed),
            throttled: self.inner.throttled.load(Ordering::Relaxed),
            token_fetches: self.inner.auth.token_fetches(),
        }
    }

    /// GET `url`; a 2xx answer with its whole body, after retries.
    pub async fn get(&self, url: &Url) -> Result<HttpResponse, ConnectorError> {
        self.send(Method::GET, url, None).await
    }

    /// POST `body` as JSON to `url` (a query API such as GraphQL: the request must be safe
    /// to repeat, since it is retried like a GET).
    pub async fn post_json(
        &self,
        url: &Url,
        body: &serde_json::Value,
    ) -> Result<HttpResponse, ConnectorError> {
        let body = serde_json::to_vec(body)
            .map_err(|e| ConnectorError::internal(format!("cannot encode the request: {e}")))?;
        self.send(Method::POST, url, Some(body)).await
    }

    /// Send one request, with the rate limit, credentials and retries.
    pub async fn send(
        &self,
        method: Method,
        url: &Url,
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse, ConnectorError> {
        let inner = &self.inner;
        let retry = &inner.retry;
        let mut attempt = 0u32;
        let mut reauthenticated = false;
        loop {
            attempt += 1;
            if let Some(limiter) = &inner.limiter {
                limiter.until_ready().await;
            }
            let mut request = inner.http.request(method.clone(), url.clone());
            let credential = inner.auth.header().await?;
            let mut used_token = None;
            if let Some((name, value, token)) = credential {
                request = request.header(name, value);
                used_token = token;
            }
            if let Some(body) = &body {
                request = request
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            inner.requests.fetch_add(1, Ordering::Relaxed);
            let failure = match request.send().await {
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() {
                        let headers = response.headers().clone();
                        match response.bytes().await {
                            Ok(body) => {
                                return Ok(HttpResponse {
                                    url: url.clone(),
                                    status,
                                    headers,
                                    body,
                                });
                            }
                            Err(e) => Retryable::Transport(e),
                        }
                    } else if status == StatusCode::UNAUTHORIZED
                        && inner.auth.refreshable()
                        && !reauthenticated
                    {
                        // An expired or revoked token: fetch a new one, once per request.
                        reauthenticated = true;
                        inner.auth.invalidate(used_token.as_ref()).await;
                        attempt -= 1;
                        continue;
                    } else if retryable_status(status) {
                        let retry_after = retry_after(response.headers(), SystemTime::now());
                        let snippet = snippet(response).await;
                        Retryable::Status {
                            status,
                            retry_after,
                            snippet,
                        }
                    } else {
                        return Err(status_error(&method, url, status, snippet(response).await));
                    }
                }
                Err(e) => Retryable::Transport(e),
            };
            if attempt >= retry.max_attempts {
                return Err(exhausted(&method, url, attempt, failure));
            }
            let delay = match &failure {
                Retryable::Status {
                    retry_after: Some(wait),
                    status,
                    ..
                } => {
                    if wait.as_secs() > retry.max_retry_after_secs {
                        return Err(ConnectorError::source_error(format!(
                            "{method} {url} answered {status} asking to retry after {} s, more than http.retry.max_retry_after_secs ({}); raise it or run later",
                            wait.as_secs(),
                            retry.max_retry_after_secs
                        )));
                    }
                    *wait
                }
                _ => backoff(retry, attempt),
            };
            if let Retryable::Status { status, .. } = &failure
                && *status == StatusCode::TOO_MANY_REQUESTS
            {
                inner.throttled.fetch_add(1, Ordering::Relaxed);
            }
            inner.retries.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                %method, %url, attempt, delay_ms = delay.as_millis() as u64,
                reason = %failure.describe(),
                "retrying"
            );
            tokio::time::sleep(delay).await;
        }
    }
}

impl Retryable {
    fn describe(&self) -> String {
        match self {
            Retryable::Status {
                status, snippet, ..
            } if snippet.is_empty() => status.to_string(),
            Retryable::Status {
                status, snippet, ..
            } => format!("{status}: {snippet}"),
            Retryable::Transport(e) => cause_chain(e),
        }
    }
}

/// 429 and the 5xx that mean "try again".
fn retryable_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 408 | 429 | 500 | 502 | 503 | 504)
}

/// The wait before retry `attempt` (1 = the first retry): uniform in
/// `[0, min(max, initial · 2^(attempt-1))]` ("full jitter").
pub fn backoff(retry: &RetryOptions, attempt: u32) -> Duration {
    let cap = retry
        .initial_backoff_ms
        .saturating_mul(1u64 << attempt.saturating_sub(1).min(40))
        .min(retry.max_backoff_ms);
    Duration::from_millis(rand::rng().random_range(0..=cap))
}

/// The `Retry-After` header: delta-seconds or an HTTP date (RFC 9110 §10.2.3), relative to
/// `now`. A date in the past is no wait.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

/// The start of an error body, on one line, for messages (at most 200 characters).
async fn snippet(response: reqwest::Response) -> String {
    let text = response.text().await.unwrap_or_default();
    let line = connector_sdk::one_line(text.trim());
    match line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line,
    }
}

fn status_error(method: &Method, url: &Url, status: StatusCode, snippet: String) -> ConnectorError {
    let body = if snippet.is_empty() {
        String::new()
    } else {
        format!(": {snippet}")
    };
    let (kind, hint) = match status.as_u16() {
        401 | 403 => (
            ConnectorErrorKind::Auth,
            " (the API refused the credentials; check http.auth and its secret)",
        ),
        400 | 404 | 405 | 410 | 422 => (
            ConnectorErrorKind::Config,
            " (check the URL, path and query parameters the config builds)",
        ),
        _ => (ConnectorErrorKind::Source, ""),
    };
    ConnectorError::new(
        kind,
        format!("{method} {url} answered {status}{body}{hint}"),
    )
}

fn exhausted(method: &Method, url: &Url, attempts: u32, failure: Retryable) -> ConnectorError {
    match failure {
        Retryable::Transport(e) if e.is_connect() || e.is_timeout() => {
            let endpoint = endpoint_of(url).unwrap_or_else(|| url.to_string());
            ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!(
                    "cannot reach {endpoint} ({method} {url}) after {attempts} attempt(s): {} (check the URL, the port and the network path)",
                    cause_chain(&e)
                ),
            )
            .with_source(e)
        }
        failure => ConnectorError::source_error(format!(
            "{method} {url} failed after {attempts} attempt(s); the last: {} (raise http.retry.max_attempts if the API recovers slowly)",
            failure.describe()
        )),
    }
}

/// An error and its causes on one line ("error sending request: connection refused").
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    connector_sdk::one_line(&parts.join(": "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        assert_eq!(retry_after(&h, now), None);
        h.insert(http::header::RETRY_AFTER, "0".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(http::header::RETRY_AFTER, "120".parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(120)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        h.insert(http::header::RETRY_AFTER, later.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::from_secs(7)));
        let past = httpdate::fmt_http_date(now - Duration::from_secs(7));
        h.insert(http::header::RETRY_AFTER, past.parse().unwrap());
        assert_eq!(retry_after(&h, now), Some(Duration::ZERO));
        h.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h, now), None);
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_jitter() {
        let r = RetryOptions {
            max_attempts: 100,
            initial_backoff_ms: 100,
            max_backoff_ms: 1_000,
            max_retry_after_secs: 1,
        };
        for attempt in [1u32, 2, 3, 4, 5, 50, 100, u32::MAX] {
            let cap = (100u64 << (attempt - 1).min(40)).min(1_000);
            for _ in 0..50 {
                assert!(backoff(&r, attempt) <= Duration::from_millis(cap));
            }
        }
        // Jitter: not always the same wait.
        let waits: std::collections::BTreeSet<_> = (0..50).map(|_| backoff(&r, 5)).collect();
        assert!(waits.len() > 1);
    }
}
