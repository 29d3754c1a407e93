//! The credentials a request carries, resolved from their secret sources once per client:
//! a fixed header (bearer token, API key) or an OAuth2 client-credentials token that is
//! fetched with the `oauth2` crate (over the client's own reqwest), cached until shortly
//! before it expires, and fetched again when the API answers 401.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use connector_sdk::{ConnectorError, ConnectorErrorKind, ExposeSecret, SecretString};
use http::{HeaderName, HeaderValue};
use oauth2::basic::BasicClient;
use oauth2::{
    ClientId, ClientSecret, EndpointNotSet, EndpointSet, RequestTokenError, Scope, TokenResponse,
    TokenUrl,
};

use crate::options::AuthConfig;

/// A token is fetched again when less than this is left of its lifetime (or less than
/// half of it, for tokens that live less than a minute).
const EXPIRY_MARGIN: Duration = Duration::from_secs(30);

type TokenClient =
    BasicClient<EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointSet>;

/// Resolved credentials.
pub(crate) enum Auth {
    None,
    /// A header whose value is a secret (`Authorization: Bearer …`, an API key).
    Header(HeaderName, SecretString),
    OAuth2(Box<OAuth2Tokens>),
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::None => f.write_str("None"),
            Self::Header(name, _) => write!(f, "Header({name}: [REDACTED])"),
            Self::OAuth2(t) => write!(f, "OAuth2({})", t.token_url),
        }
    }
}

/// The token cache of one client.
pub(crate) struct OAuth2Tokens {
    client: TokenClient,
    token_url: String,
    scopes: Vec<String>,
    http: reqwest::Client,
    /// The current token and when it stops being used (None: no expiry given).
    current: tokio::sync::Mutex<Option<(Arc<SecretString>, Option<Instant>)>>,
    pub(crate) fetches: AtomicU64,
}

impl Auth {
    /// Read the secrets `config` names. No I/O besides reading them (the OAuth2 token is
    /// fetched on the first request).
    pub(crate) fn resolve(
        config: Option<&AuthConfig>,
        http: &reqwest::Client,
    ) -> Result<Auth, ConnectorError> {
        let header_value = |value: String, what: &str| {
            let valid = HeaderValue::try_from(value.as_str()).is_ok();
            if valid {
                Ok(SecretString::from(value))
            } else {
                Err(ConnectorError::config(format!(
                    "the {what} is not a valid header value (printable ASCII, no line breaks)"
                )))
            }
        };
        Ok(match config {
            None => Auth::None,
            Some(AuthConfig::Bearer { token }) => {
                let token = token.resolve("bearer token")?;
                Auth::Header(
                    http::header::AUTHORIZATION,
                    header_value(format!("Bearer {}", token.expose_secret()), "bearer token")?,
                )
            }
            Some(AuthConfig::ApiKey { header, value }) => {
                let name = HeaderName::try_from(header.as_str()).map_err(|_| {
                    ConnectorError::config(format!(
                        "http.auth.api_key.header: {header:?} is not a valid header name"
                    ))
                })?;
                let key = value.resolve("API key")?;
                Auth::Header(
                    name,
                    header_value(key.expose_secret().to_string(), "API key")?,
                )
            }
            Some(AuthConfig::Oauth2ClientCredentials {
                token_url,
                client_id,
                client_secret,
                scopes,
            }) => {
                let secret = client_secret.resolve("OAuth2 client secret")?;
                let url = TokenUrl::new(token_url.clone()).map_err(|_| {
                    ConnectorError::config(format!(
                        "http.auth.oauth2_client_credentials.token_url {token_url:?} is not a URL"
                    ))
                })?;
                let client = BasicClient::new(ClientId::new(client_id.clone()))
                    .set_client_secret(ClientSecret::new(secret.expose_secret().to_string()))
                    .set_token_uri(url);
                Auth::OAuth2(Box::new(OAuth2Tokens {
                    client,
                    token_url: token_url.clone(),
                    scopes: scopes.clone(),
                    http: http.clone(),
                    current: tokio::sync::Mutex::new(None),
                    fetches: AtomicU64::new(0),
                }))
            }
        })
    }

    /// The header to send, and the token it carries (to invalidate it on a 401).
    pub(crate) async fn header(
        &self,
    ) -> Result<Option<(HeaderName, HeaderValue, Option<Arc<SecretString>>)>, ConnectorError> {
        match self {
            Auth::None => Ok(None),
            Auth::Header(name, value) => Ok(Some((
                name.clone(),
                sensitive(value.expose_secret())?,
                None,
            ))),
            Auth::OAuth2(tokens) => {
                let token = tokens.token().await?;
                let value = sensitive(&format!("Bearer {}", token.expose_secret()))?;
                Ok(Some((http::header::AUTHORIZATION, value, Some(token))))
            }
        }
    }

    /// Whether a 401 may be cured by fetching a new token.
    pub(crate) fn refreshable(&self) -> bool {
        matches!(self, Auth::OAuth2(_))
    }

    /// Forget `used` (the API refused it), so the next request fetches a new token.
    pub(crate) async fn invalidate(&self, used: Option<&Arc<SecretString>>) {
        if let (Auth::OAuth2(tokens), Some(used)) = (self, used) {
            let mut current = tokens.current.lock().await;
            if current.as_ref().is_some_and(|(t, _)| Arc::ptr_eq(t, used)) {
                *current = None;
            }
        }
    }

    /// Tokens fetched so far (OAuth2), for the client's stats.
    pub(crate) fn token_fetches(&self) -> u64 {
        match self {
            Auth::OAuth2(t) => t.fetches.load(Ordering::Relaxed),
            _ => 0,
        }
    }
}

/// A header value marked sensitive (hyper and reqwest never print it).
fn sensitive(value: &str) -> Result<HeaderValue, ConnectorError> {
    let mut v = HeaderValue::try_from(value).map_err(|_| {
        ConnectorError::config("a credential is not a valid header value (printable ASCII)")
    })?;
    v.set_sensitive(true);
    Ok(v)
}

impl OAuth2Tokens {
    /// The cached token, or a new one when there is none or it is about to expire.
    async fn token(&self) -> Result<Arc<SecretString>, ConnectorError> {
        let mut current = self.current.lock().await;
        if let Some((token, expires)) = current.as_ref()
            && expires.is_none_or(|e| Instant::now() < e)
        {
            return Ok(token.clone());
        }
        let http = self.http.clone();
        // oauth2's own reqwest integration is for another reqwest major version: this
        // closure is its documented custom-client hook, over the client's reqwest.
        let send = move |request: oauth2::HttpRequest| {
            let http = http.clone();
            async move {
                let request = reqwest::Request::try_from(request)?;
                let response = http.execute(request).await?;
                let mut out = http::Response::builder().status(response.status());
                for (name, value) in response.headers() {
                    out = out.header(name, value);
                }
                let body = response.bytes().await?.to_vec();
                Ok::<_, reqwest::Error>(out.body(body).unwrap_or_default())
            }
        };
        let started = Instant::now();
        let response = self
            .client
            .exchange_client_credentials()
            .add_scopes(self.scopes.iter().cloned().map(Scope::new))
            .request_async(&send)
            .await
            .map_err(|e| self.token_error(e))?;
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let token = Arc::new(SecretString::from(
            response.access_token().secret().to_string(),
        ));
        // Used until shortly before it expires, so no request carries a token that
        // expires on the way.
        let expires = response
            .expires_in()
            // A lifetime too long to add to the clock is no expiry.
            .and_then(|d| started.checked_add(d - EXPIRY_MARGIN.min(d / 2)));
        *current = Some((token.clone(), expires));
        Ok(token)
    }

    fn token_error<RE: std::error::Error + 'static>(
        &self,
        e: RequestTokenError<RE, oauth2::basic::BasicErrorResponse>,
    ) -> ConnectorError {
        let url = &self.token_url;
        match e {
            RequestTokenError::ServerResponse(r) => ConnectorError::new(
                ConnectorErrorKind::Auth,
                format!(
                    "the token endpoint {url} refused the client credentials: {} (check http.auth.oauth2_client_credentials client_id, client_secret and scopes)",
                    r.error()
                ),
            ),
            RequestTokenError::Request(e) => ConnectorError::new(
                ConnectorErrorKind::Unreachable,
                format!(
                    "cannot get a token from {url}: {} (check the token_url and the network path)",
                    crate::client::cause_chain(&e)
                ),
            ),
            RequestTokenError::Parse(e, _) => ConnectorError::source_error(format!(
                "the token endpoint {url} answered something that is not an OAuth2 token response: {e}"
            )),
            RequestTokenError::Other(e) => {
                ConnectorError::source_error(format!("the token endpoint {url} failed: {e}"))
            }
        }
    }
}
