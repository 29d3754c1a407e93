//! HTTP toolkit for connector authors: what an API connector needs besides its own logic.
//!
//! - [`HttpClient`]: reqwest over rustls with the connector's credentials
//!   ([`AuthConfig`]: bearer token, API key header, OAuth2 client credentials with token
//!   refresh), a client-side token bucket ([`RateLimit`], `governor`) and retries with
//!   exponential backoff and full jitter on 408/429/5xx and unanswered requests, honouring
//!   `Retry-After` ([`RetryOptions`]). Redirects are not followed (a redirect could leave
//!   the declared endpoints).
//! - [`Pagination`]: next link (`Link` header or body), cursor token, offset/limit and
//!   page number, with [`PageState`] as the resume point (the connector's checkpoint).
//! - [`JsonToArrow`]: JSON records to Arrow batches through the stream's declared
//!   columns ([`ColumnSpec`], `arrow-json`), naming the record that does not fit.
//! - [`read_pages`]: the three together as a connector's read stream.
//!
//! Embed [`HttpOptions`] in a connector's config as `http` (every field has a default) and
//! return [`HttpOptions::extra_endpoints`] with the API's own endpoint from
//! `Connector::source_endpoints`. `connectors/http-api` is the declarative connector built
//! on this; its README shows a hand-written one.

mod auth;
pub mod client;
pub mod options;
pub mod pages;
pub mod pagination;
pub mod records;

pub use client::{HttpClient, HttpResponse, RequestStats};
pub use options::{AuthConfig, HttpOptions, RateLimit, RetryOptions, endpoint_of};
pub use pages::{PagedRead, read_pages};
pub use pagination::{PageState, Pagination};
pub use records::{ColumnSpec, JsonToArrow, records_at, value_at};
