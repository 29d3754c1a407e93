//! The options every HTTP connector shares, as one struct a connector's config embeds
//! (`http: HttpOptions`, like Vector's shared option structs): authentication, retries,
//! the client-side rate limit, timeouts and fixed headers. Validated without I/O.

use std::collections::BTreeMap;

use connector_sdk::{ConnectorError, SecretSource};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How an HTTP connector talks to its API. Embed as a field (`#[serde(default)] http:
/// HttpOptions`): every field has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpOptions {
    /// How requests authenticate. None: no `Authorization` header.
    #[serde(default)]
    pub auth: Option<AuthConfig>,
    /// Retries of throttled (429), failed (500, 502, 503, 504) and unanswered requests.
    #[serde(default)]
    pub retry: RetryOptions,
    /// A client-side limit on the request rate (a token bucket), so the API's quota is
    /// never hit in the first place. None: no limit (the server's 429s still slow it).
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    /// Seconds one request may take, from sending to the end of the body.
    #[serde(default = "default_timeout_secs")]
    pub timeout_secs: u64,
    /// Seconds to wait for a TCP and TLS connection.
    #[serde(default = "default_connect_timeout_secs")]
    pub connect_timeout_secs: u64,
    /// Headers sent with every request (not secrets: those go in `auth`).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

impl Default for HttpOptions {
    fn default() -> Self {
        Self {
            auth: None,
            retry: RetryOptions::default(),
            rate_limit: None,
            timeout_secs: default_timeout_secs(),
            connect_timeout_secs: default_connect_timeout_secs(),
            headers: BTreeMap::new(),
        }
    }
}

fn default_timeout_secs() -> u64 {
    30
}

fn default_connect_timeout_secs() -> u64 {
    10
}

/// How requests authenticate. Secrets are named by their source (`{"env": "VAR"}`,
/// `{"file": "/run/secrets/x"}`, `{"credential": "x"}`), never written in the config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthConfig {
    /// `Authorization: Bearer <token>`.
    Bearer {
        /// Where the token comes from.
        token: SecretSource,
    },
    /// An API key in a request header.
    ApiKey {
        /// The header name, e.g. `X-API-Key`.
        header: String,
        /// Where the key comes from.
        value: SecretSource,
    },
    /// OAuth 2.0 client credentials (RFC 6749 §4.4): a token from `token_url`, sent as a
    /// bearer token, fetched again before it expires and once when the API answers 401.
    Oauth2ClientCredentials {
        /// The token endpoint.
        token_url: String,
        /// The client id (not a secret).
        client_id: String,
        /// Where the client secret comes from.
        client_secret: SecretSource,
        /// Scopes to request (none: the server's default).
        #[serde(default)]
        scopes: Vec<String>,
    },
}

/// Retries with exponential backoff and full jitter; a `Retry-After` header (seconds or an
/// HTTP date) replaces the backoff of that attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryOptions {
    /// Attempts of one request, the first included (1: no retry). 1 to 100.
    #[serde(default = "default_max_attempts")]
    pub max_attempts: u32,
    /// The backoff before the first retry, in milliseconds; it doubles per attempt (each
    /// wait drawn uniformly below it).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// The largest backoff, in milliseconds.
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// The longest `Retry-After` honoured, in seconds; a server asking for more fails the
    /// request (it would outlast most runs) with a message saying how long it asked.
    #[serde(default = "default_max_retry_after_secs")]
    pub max_retry_after_secs: u64,
}

impl Default for RetryOptions {
    fn default() -> Self {
        Self {
            max_attempts: default_max_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            max_retry_after_secs: default_max_retry_after_secs(),
        }
    }
}

fn default_max_attempts() -> u32 {
    8
}

fn default_initial_backoff_ms() -> u64 {
    200
}

fn default_max_backoff_ms() -> u64 {
    30_000
}

fn default_max_retry_after_secs() -> u64 {
    300
}

/// A token bucket: `requests_per_second` on average, up to `burst` at once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    /// Average requests per second (fractions allowed: 0.5 is one request every two
    /// seconds). Above 0, at most 100 000.
    pub requests_per_second: f64,
    /// Requests that may go at once after a quiet period (the bucket size), at least 1.
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_burst() -> u32 {
    1
}

impl HttpOptions {
    /// Check every value without I/O; the error names the field and the allowed range.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        let r = &self.retry;
        if !(1..=100).contains(&r.max_attempts) {
            return Err(ConnectorError::config(format!(
                "http.retry.max_attempts is {}; use 1 (no retry) to 100",
                r.max_attempts
            )));
        }
        if r.initial_backoff_ms == 0 || r.initial_backoff_ms > r.max_backoff_ms {
            return Err(ConnectorError::config(format!(
                "http.retry.initial_backoff_ms ({}) must be above 0 and at most http.retry.max_backoff_ms ({})",
                r.initial_backoff_ms, r.max_backoff_ms
            )));
        }
        if r.max_backoff_ms > 3_600_000 {
            return Err(ConnectorError::config(format!(
                "http.retry.max_backoff_ms is {}; use at most 3600000 (one hour)",
                r.max_backoff_ms
            )));
        }
        if let Some(limit) = &self.rate_limit {
            let rps = limit.requests_per_second;
            if !(rps.is_finite() && rps > 0.0 && rps <= 100_000.0) {
                return Err(ConnectorError::config(format!(
                    "http.rate_limit.requests_per_second is {rps}; use a number above 0 and at most 100000"
                )));
            }
            if limit.burst == 0 {
                return Err(ConnectorError::config(
                    "http.rate_limit.burst is 0; use at least 1",
                ));
            }
        }
        if self.timeout_secs == 0 || self.connect_timeout_secs == 0 {
            return Err(ConnectorError::config(
                "http.timeout_secs and http.connect_timeout_secs must be above 0",
            ));
        }
        for (name, value) in &self.headers {
            if http::HeaderName::try_from(name.as_str()).is_err() {
                return Err(ConnectorError::config(format!(
                    "http.headers: {name:?} is not a valid header name"
                )));
            }
            if http::HeaderValue::try_from(value.as_str()).is_err() {
                return Err(ConnectorError::config(format!(
                    "http.headers.{name}: the value is not a valid header value (printable ASCII)"
                )));
            }
            if name.eq_ignore_ascii_case("authorization") {
                return Err(ConnectorError::config(
                    "http.headers must not set Authorization (a secret in the config); use http.auth with a secret source",
                ));
            }
        }
        match &self.auth {
            Some(AuthConfig::ApiKey { header, .. })
                if http::HeaderName::try_from(header.as_str()).is_err() =>
            {
                Err(ConnectorError::config(format!(
                    "http.auth.api_key.header: {header:?} is not a valid header name"
                )))
            }
            Some(AuthConfig::Oauth2ClientCredentials { token_url, .. }) => {
                match url::Url::parse(token_url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(()),
                    _ => Err(ConnectorError::config(format!(
                        "http.auth.oauth2_client_credentials.token_url {token_url:?} is not an http(s) URL"
                    ))),
                }
            }
            _ => Ok(()),
        }
    }

    /// The endpoints (`host:port`) these options reach besides the API itself: the OAuth2
    /// token endpoint. For [`connector_sdk::Connector::source_endpoints`].
    pub fn extra_endpoints(&self) -> Vec<String> {
        match &self.auth {
            Some(AuthConfig::Oauth2ClientCredentials { token_url, .. }) => {
                url::Url::parse(token_url)
                    .ok()
                    .and_then(|u| endpoint_of(&u))
                    .into_iter()
                    .collect()
            }
            _ => Vec::new(),
        }
    }
}

/// `host:port` of `url` (the scheme's default port when none is written; IPv6 bracketed),
/// as the governance check matches endpoints.
pub fn endpoint_of(url: &url::Url) -> Option<String> {
    let port = url.port_or_known_default()?;
    match url.host()? {
        url::Host::Ipv6(ip) => Some(format!("[{ip}]:{port}")),
        host => Some(format!("{host}:{port}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_of_every_option_are_checked() {
        let ok = HttpOptions::default();
        ok.validate().unwrap();
        let with = |f: &dyn Fn(&mut HttpOptions)| {
            let mut o = HttpOptions::default();
            f(&mut o);
            o.validate().map_err(|e| e.to_string())
        };
        assert!(
            with(&|o| o.retry.max_attempts = 0)
                .unwrap_err()
                .contains("max_attempts")
        );
        with(&|o| o.retry.max_attempts = 1).unwrap();
        with(&|o| o.retry.max_attempts = 100).unwrap();
        assert!(with(&|o| o.retry.max_attempts = 101).is_err());
        assert!(with(&|o| o.retry.initial_backoff_ms = 0).is_err());
        assert!(with(&|o| o.retry.initial_backoff_ms = 30_001).is_err());
        for bad in [0.0, -1.0, f64::NAN, f64::INFINITY, 100_000.5] {
            let e = with(&|o| {
                o.rate_limit = Some(RateLimit {
                    requests_per_second: bad,
                    burst: 1,
                })
            })
            .unwrap_err();
            assert!(e.contains("requests_per_second"), "{bad}: {e}");
        }
        with(&|o| {
            o.rate_limit = Some(RateLimit {
                requests_per_second: 100_000.0,
                burst: u32::MAX,
            })
        })
        .unwrap();
        assert!(
            with(&|o| {
                o.headers.insert("Authorization".into(), "Bearer x".into());
            })
            .unwrap_err()
            .contains("http.auth")
        );
        assert!(
            with(&|o| {
                o.headers.insert("bad header".into(), "x".into());
            })
            .is_err()
        );
    }

    #[test]
    fn endpoints_spell_default_ports_and_ipv6() {
        let u = |s: &str| endpoint_of(&url::Url::parse(s).unwrap()).unwrap();
        assert_eq!(u("https://api.example.com/v1"), "api.example.com:443");
        assert_eq!(u("http://127.0.0.1:3000/x"), "127.0.0.1:3000");
        assert_eq!(u("https://[::1]:8443/"), "[::1]:8443");
    }
}
