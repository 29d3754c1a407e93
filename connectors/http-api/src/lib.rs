//! The declarative REST API connector: every stream is an endpoint described in the config
//! (path, fixed query, pagination style, where the records are, their columns, and
//! optionally a cursor), read with the `connector-http` toolkit. A simple JSON API needs
//! no Rust.
//!
//! Incremental streams read a window: the plan fixes the upper bound (the latest cursor
//! value the API reports through `cursor.latest`, or the time of the plan for a
//! `timestamp` cursor), the read asks the API for records after the committed cursor
//! (`lower_param`, `upper_param`) and also drops every record outside `(cursor, upper]`
//! itself, so whether the API's bounds are inclusive or not, each record is committed
//! once; the upper bound becomes the cursor when the run commits.
//!
//! One partition per stream (a paginated read is sequential); its checkpoint is the
//! pagination state, so a stopped run resumes at the next page.
//!
//! The README follows (its hand-written connector is compiled as a doctest).
#![doc = include_str!("../README.md")]

use std::cmp::Ordering;
use std::collections::BTreeMap;

use arrow::datatypes::DataType;
use connector_http::{
    ColumnSpec, HttpClient, HttpOptions, JsonToArrow, PageState, PagedRead, Pagination,
    endpoint_of, read_pages, records_at, value_at,
};
use connector_sdk::{
    Connector, ConnectorError, Partition, Plan, ReadContext, ReadStream, StreamDescriptor,
    WriteDisposition, async_trait,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use url::Url;

/// Configuration of the REST API connector.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpApiConfig {
    /// The API's base URL (`http` or `https`); each stream's `path` is resolved against
    /// it, so end it with `/` when paths add segments (`https://api.example.com/v1/`).
    /// Its host and port are the endpoint the manifest's `{base_url}` stands for.
    pub base_url: String,
    /// The HTTP client: auth (secrets by env/file/credential), retries, rate limit,
    /// timeouts, fixed headers.
    #[serde(default)]
    pub http: HttpOptions,
    /// The streams, one per endpoint.
    pub streams: Vec<StreamConfig>,
}

/// One stream: an endpoint returning records.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name (`[a-z][a-z0-9_]*`, the table's folder).
    pub name: String,
    /// The endpoint's path, relative to `base_url` (e.g. `items`, `orders/open`).
    pub path: String,
    /// Query parameters sent with every page (filters, sort order).
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Dotted path of the records array in a page (`""`, the default: the page is the
    /// array), e.g. `data` or `result.items`.
    #[serde(default)]
    pub records_path: String,
    /// How the endpoint pages: `{"style": "none"}` (the default), `next_link`, `cursor`,
    /// `offset` or `page_number` (see the toolkit's `Pagination`).
    #[serde(default = "no_pagination")]
    pub pagination: Pagination,
    /// The columns: name, type, nullable and optionally the dotted path in the record.
    /// Fields of a record not listed are not extracted.
    pub schema: Vec<ColumnSpec>,
    /// Columns identifying a record (for `merge`; must be declared, not nullable).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// Incremental extraction by a column that grows with each new or changed record.
    #[serde(default)]
    pub cursor: Option<CursorConfig>,
    /// How runs land in the table: `append` (default with a cursor), `replace` (default
    /// without) or `merge` (upsert by `primary_key`).
    #[serde(default)]
    pub write_disposition: Option<WriteDisposition>,
}

fn no_pagination() -> Pagination {
    Pagination::None
}

/// An incremental stream's cursor.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CursorConfig {
    /// The column (declared in `schema`, of type int16/int32/int64, string or timestamp,
    /// not nullable) whose value grows with each new or changed record.
    pub field: String,
    /// Query parameter carrying the committed cursor (e.g. `updated_since`, `id_gte`);
    /// unset: the API is asked for everything and the window is applied to what it
    /// returns. Inclusive or exclusive: records at or below the cursor are dropped.
    #[serde(default)]
    pub lower_param: Option<String>,
    /// Query parameter carrying the plan's upper bound (e.g. `updated_before`, `id_lte`);
    /// records above it are dropped either way.
    #[serde(default)]
    pub upper_param: Option<String>,
    /// A request whose first record holds the latest cursor value (e.g. `items` with
    /// `{"_sort": "id", "_order": "desc", "_limit": "1"}`): the plan's upper bound.
    /// Required unless the cursor is a `timestamp` (whose upper bound is then the time of
    /// the plan, less `lag_secs`).
    #[serde(default)]
    pub latest: Option<LatestRequest>,
    /// For a `timestamp` cursor without `latest`: the window ends this many seconds
    /// before the plan, so a record stamped just before the plan but visible in the API
    /// only later (replica lag, a long transaction, clock skew between the runner and the
    /// API) still falls in the next window instead of behind the cursor. Default 60.
    #[serde(default = "default_lag_secs")]
    pub lag_secs: u64,
}

fn default_lag_secs() -> u64 {
    60
}

/// The request that reports the latest cursor value.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatestRequest {
    /// Path relative to `base_url`.
    pub path: String,
    /// Query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Where the records are in the answer (as the stream's `records_path`).
    #[serde(default)]
    pub records_path: String,
}

/// A cursor value: an integer or a text (timestamps as RFC 3339 in UTC).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CursorValue {
    /// An integer cursor.
    Int(i64),
    /// A string or timestamp cursor.
    Text(String),
}

impl std::fmt::Display for CursorValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CursorValue::Int(i) => write!(f, "{i}"),
            CursorValue::Text(s) => f.write_str(s),
        }
    }
}

/// The committed cursor of an incremental stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// The highest cursor value committed (the upper bound of the last window).
    pub value: CursorValue,
}

/// The one partition's work: the cursor window, exclusive below, inclusive above.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// Records above this (none: from the start).
    pub after: Option<CursorValue>,
    /// Records up to this (none: a stream without cursor, everything).
    pub up_to: Option<CursorValue>,
}

/// The connector.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpApi;

/// How cursor values compare: as integers, as instants, or as text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CursorKind {
    Int,
    Time,
    Text,
}

fn base_url(config: &HttpApiConfig) -> Result<Url, ConnectorError> {
    match Url::parse(&config.base_url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => Ok(u),
        _ => Err(ConnectorError::config(format!(
            "base_url {:?} is not an http(s) URL with a host, e.g. https://api.example.com/v1/",
            config.base_url
        ))),
    }
}

/// `path` (relative) with `query`, under `base`; refused if it leaves the base's origin.
fn endpoint_url(
    base: &Url,
    path: &str,
    query: &BTreeMap<String, String>,
) -> Result<Url, ConnectorError> {
    let mut url = base
        .join(path)
        .map_err(|e| ConnectorError::config(format!("path {path:?} is not a URL path: {e}")))?;
    if url.origin() != base.origin() {
        return Err(ConnectorError::config(format!(
            "path {path:?} leaves base_url's origin ({}); give a path relative to base_url",
            base.origin().ascii_serialization()
        )));
    }
    for (k, v) in query {
        connector_http::pagination::set_param(&mut url, k, v);
    }
    Ok(url)
}

fn validate(config: &HttpApiConfig) -> Result<(), ConnectorError> {
    base_url(config)?;
    config.http.validate()?;
    if config.streams.is_empty() {
        return Err(ConnectorError::config(
            "streams is empty; declare at least one endpoint ({name, path, schema})",
        ));
    }
    connector_sdk::check_config_stream_names(config.streams.iter().map(|s| s.name.as_str()))?;
    for s in &config.streams {
        let named = |m: String| ConnectorError::config(format!("stream `{}`: {m}", s.name));
        s.pagination
            .validate()
            .map_err(|e| named(e.message().to_string()))?;
        let decoder = JsonToArrow::new(&s.schema).map_err(|e| named(e.message().to_string()))?;
        endpoint_url(&base_url(config)?, &s.path, &s.query)
            .map_err(|e| named(e.message().to_string()))?;
        let schema = decoder.schema();
        for k in &s.primary_key {
            match schema.field_with_name(k) {
                Ok(f) if !f.is_nullable() => {}
                Ok(_) => {
                    return Err(named(format!(
                        "primary key column `{k}` is nullable; declare it with nullable = false"
                    )));
                }
                Err(_) => {
                    return Err(named(format!(
                        "primary key column `{k}` is not in the schema"
                    )));
                }
            }
        }
        if let Some(c) = &s.cursor {
            let kind = cursor_kind(s, c)?;
            if kind != CursorKind::Time && c.latest.is_none() {
                return Err(named(format!(
                    "cursor `{}` is not a timestamp, so the plan cannot take the time of the run as its upper bound: set cursor.latest to a request whose first record holds the latest value (e.g. sorted descending, limit 1)",
                    c.field
                )));
            }
            if let Some(l) = &c.latest {
                endpoint_url(&base_url(config)?, &l.path, &l.query)
                    .map_err(|e| named(format!("cursor.latest: {}", e.message())))?;
            }
        }
    }
    Ok(())
}

fn cursor_kind(s: &StreamConfig, c: &CursorConfig) -> Result<CursorKind, ConnectorError> {
    let named = |m: String| ConnectorError::config(format!("stream `{}`: {m}", s.name));
    let column = s
        .schema
        .iter()
        .find(|col| col.name == c.field)
        .ok_or_else(|| named(format!("cursor field `{}` is not in the schema", c.field)))?;
    if column.nullable {
        return Err(named(format!(
            "cursor field `{}` is nullable; a record without a cursor value cannot be placed in a window (declare it nullable = false)",
            c.field
        )));
    }
    match connector_http::records::data_type(&column.data_type)? {
        DataType::Int16 | DataType::Int32 | DataType::Int64 => Ok(CursorKind::Int),
        DataType::Timestamp(..) => Ok(CursorKind::Time),
        DataType::Utf8 if !column.data_type.eq_ignore_ascii_case("json") => Ok(CursorKind::Text),
        other => Err(named(format!(
            "cursor field `{}` has type {other}; use int16, int32, int64, string or timestamp",
            c.field
        ))),
    }
}

fn stream_config<'a>(
    config: &'a HttpApiConfig,
    name: &str,
) -> Result<&'a StreamConfig, ConnectorError> {
    connector_sdk::config_stream(&config.streams, name, |s| s.name.as_str())
}

/// The cursor value of a record, read from the JSON (the cursor column's path).
fn record_cursor(record: &serde_json::Value, path: &str, kind: CursorKind) -> Option<CursorValue> {
    match (value_at(record, path)?, kind) {
        (serde_json::Value::Number(n), CursorKind::Int) => n.as_i64().map(CursorValue::Int),
        (serde_json::Value::String(s), CursorKind::Int) => s.parse().ok().map(CursorValue::Int),
        (serde_json::Value::String(s), CursorKind::Time) => {
            normalize_time(s).map(CursorValue::Text)
        }
        (serde_json::Value::String(s), CursorKind::Text) => Some(CursorValue::Text(s.clone())),
        _ => None,
    }
}

/// An RFC 3339 timestamp in UTC with microseconds (`2024-01-01T00:00:00.000000Z`): the
/// form cursors are stored and compared in.
fn normalize_time(s: &str) -> Option<String> {
    let t = chrono::DateTime::parse_from_rfc3339(s).ok()?;
    Some(
        t.with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
    )
}

fn compare(a: &CursorValue, b: &CursorValue) -> Ordering {
    match (a, b) {
        (CursorValue::Int(a), CursorValue::Int(b)) => a.cmp(b),
        (CursorValue::Text(a), CursorValue::Text(b)) => a.cmp(b),
        (CursorValue::Int(_), CursorValue::Text(_)) => Ordering::Less,
        (CursorValue::Text(_), CursorValue::Int(_)) => Ordering::Greater,
    }
}

#[async_trait]
impl Connector for HttpApi {
    type Config = HttpApiConfig;
    type Cursor = Cursor;
    type PartitionSpec = Window;
    type Checkpoint = PageState;
    type Run = HttpClient;

    const MANIFEST: &'static str = include_str!("../connector.toml");

    fn source_endpoints(&self, config: &HttpApiConfig) -> Vec<String> {
        let mut out: Vec<String> = base_url(config)
            .ok()
            .and_then(|u| endpoint_of(&u))
            .into_iter()
            .collect();
        out.extend(config.http.extra_endpoints());
        out
    }

    async fn check(&self, config: &HttpApiConfig) -> Result<(), ConnectorError> {
        validate(config)?;
        let client = HttpClient::new(&config.http)?;
        let base = base_url(config)?;
        // The first stream's first page: reachable, credentials accepted, records found.
        let s = &config.streams[0];
        let first = endpoint_url(&base, &s.path, &s.query)?;
        let url = s
            .pagination
            .url(&first, &PageState::First)?
            .unwrap_or(first);
        let page = client.get(&url).await?;
        records_at(&page.json()?, &s.records_path, &url)?;
        Ok(())
    }

    async fn discover(
        &self,
        config: &HttpApiConfig,
    ) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        validate(config)?;
        config
            .streams
            .iter()
            .map(|s| {
                Ok(StreamDescriptor {
                    name: s.name.clone(),
                    schema: JsonToArrow::new(&s.schema)?.schema(),
                    cursor_field: s.cursor.as_ref().map(|c| c.field.clone()),
                    primary_key: s.primary_key.clone(),
                    write_disposition: s.write_disposition,
                })
            })
            .collect()
    }

    async fn plan(
        &self,
        config: &HttpApiConfig,
        stream: &StreamDescriptor,
        cursor: Option<&Cursor>,
    ) -> Result<Plan<Window, Cursor>, ConnectorError> {
        validate(config)?;
        let s = stream_config(config, &stream.name)?;
        let partition = |window: Window| Partition {
            id: "all".to_string(),
            hive: Vec::new(),
            spec: window,
        };
        let Some(c) = &s.cursor else {
            return Ok(Plan {
                partitions: vec![partition(Window::default())],
                cursor: None,
            });
        };
        let kind = cursor_kind(s, c)?;
        let after = cursor.map(|c| c.value.clone());
        let upper = match &c.latest {
            Some(latest) => {
                let client = HttpClient::new(&config.http)?;
                let url = endpoint_url(&base_url(config)?, &latest.path, &latest.query)?;
                let page = client.get(&url).await?;
                let body = page.json()?;
                let records = records_at(&body, &latest.records_path, &url)?;
                match records.first() {
                    None => None,
                    Some(r) => Some(record_cursor(r, cursor_path(s, c), kind).ok_or_else(|| {
                        ConnectorError::source_error(format!(
                            "stream `{}`: the first record of GET {url} (cursor.latest) has no {} value at `{}`",
                            s.name,
                            match kind {
                                CursorKind::Int => "integer",
                                CursorKind::Time => "RFC 3339 timestamp",
                                CursorKind::Text => "string",
                            },
                            cursor_path(s, c)
                        ))
                    })?),
                }
            }
            None => Some(CursorValue::Text(
                (chrono::Utc::now()
                    - chrono::Duration::seconds(c.lag_secs.min(i64::MAX as u64) as i64))
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            )),
        };
        // Nothing after the committed cursor (or an empty source): no work, cursor kept.
        let Some(upper) = upper else {
            return Ok(Plan {
                partitions: Vec::new(),
                cursor: None,
            });
        };
        if after
            .as_ref()
            .is_some_and(|a| compare(&upper, a) != Ordering::Greater)
        {
            return Ok(Plan {
                partitions: Vec::new(),
                cursor: None,
            });
        }
        Ok(Plan {
            partitions: vec![partition(Window {
                after,
                up_to: Some(upper.clone()),
            })],
            cursor: Some(Cursor { value: upper }),
        })
    }

    async fn open_run(
        &self,
        config: &HttpApiConfig,
        _stream: &StreamDescriptor,
    ) -> Result<HttpClient, ConnectorError> {
        HttpClient::new(&config.http)
    }

    fn cursor_time(&self, cursor: &Cursor) -> Option<chrono::DateTime<chrono::Utc>> {
        match &cursor.value {
            CursorValue::Text(t) => chrono::DateTime::parse_from_rfc3339(t)
                .ok()
                .map(|t| t.with_timezone(&chrono::Utc)),
            CursorValue::Int(_) => None,
        }
    }

    fn read<'a>(
        &'a self,
        config: &'a HttpApiConfig,
        client: &'a HttpClient,
        stream: &'a StreamDescriptor,
        partition: &'a Partition<Window>,
        ctx: ReadContext<PageState>,
    ) -> ReadStream<'a, PageState> {
        let setup = || -> Result<_, ConnectorError> {
            validate(config)?;
            let s = stream_config(config, &stream.name)?;
            let mut first = endpoint_url(&base_url(config)?, &s.path, &s.query)?;
            let window = &partition.spec;
            let cursor = match &s.cursor {
                Some(c) => {
                    if let (Some(p), Some(v)) = (&c.lower_param, &window.after) {
                        connector_http::pagination::set_param(&mut first, p, &v.to_string());
                    }
                    if let (Some(p), Some(v)) = (&c.upper_param, &window.up_to) {
                        connector_http::pagination::set_param(&mut first, p, &v.to_string());
                    }
                    Some((cursor_path(s, c).to_string(), cursor_kind(s, c)?))
                }
                None => None,
            };
            Ok((s, first, JsonToArrow::new(&s.schema)?, cursor))
        };
        let (s, first, decoder, cursor) = match setup() {
            Ok(v) => v,
            Err(e) => return Box::pin(futures::stream::once(async { Err(e) })),
        };
        let window = partition.spec.clone();
        let name = s.name.clone();
        let keep = move |record: &serde_json::Value| -> Result<bool, ConnectorError> {
            let Some((path, kind)) = &cursor else {
                return Ok(true);
            };
            let value = record_cursor(record, path, *kind).ok_or_else(|| {
                ConnectorError::source_error(format!(
                    "stream `{name}`: a record has no usable cursor value at `{path}`: {}",
                    excerpt(record)
                ))
            })?;
            let above = window
                .after
                .as_ref()
                .is_none_or(|a| compare(&value, a) == Ordering::Greater);
            let within = window
                .up_to
                .as_ref()
                .is_none_or(|u| compare(&value, u) != Ordering::Greater);
            Ok(above && within)
        };
        read_pages(
            PagedRead {
                client,
                pagination: &s.pagination,
                first,
                records_path: &s.records_path,
                decoder,
            },
            ctx.checkpoint,
            keep,
        )
    }
}

fn cursor_path<'a>(s: &'a StreamConfig, c: &'a CursorConfig) -> &'a str {
    s.schema
        .iter()
        .find(|col| col.name == c.field)
        .and_then(|col| col.path.as_deref())
        .unwrap_or(&c.field)
}

/// The start of a record, for error messages.
fn excerpt(record: &serde_json::Value) -> String {
    let text = record.to_string();
    match text.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &text[..i]),
        None => text,
    }
}
