//! `S3FilesConfig`: where the objects are, how they are encoded, what their rows look
//! like and what happens to rows that do not fit. Validated without I/O.

use connector_sdk::columns::ColumnSpec;
use connector_sdk::{ConnectorError, WriteDisposition};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Configuration of the S3 file connector.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct S3FilesConfig {
    /// The bucket the objects are in (credentials and endpoint: the runner's, as for the
    /// output).
    pub bucket: String,
    /// How the bucket is reached when it is not through the runner's own S3 settings: an
    /// S3-compatible server, or keys of another account. Default: the runner's endpoint
    /// and credential chain (its role).
    #[serde(default)]
    pub connection: Option<SourceConnection>,
    /// The streams: one per prefix (and glob).
    pub streams: Vec<StreamConfig>,
    /// Where rejected rows go (`s3://bucket/prefix`), as JSON Lines: one object per row
    /// with the source object, line, byte offset, reason and the row's text. Needed when a
    /// stream's `bad_rows` is `reject`.
    #[serde(default)]
    pub rejects: Option<String>,
    /// Ingest only these objects (keys; every stream whose prefix and glob match them), in
    /// addition to the "once per version" rule. The Lambda runner sets it from the S3,
    /// SQS or EventBridge event it is invoked with. A key that no longer exists is skipped.
    #[serde(default)]
    pub objects: Option<Vec<String>>,
}

/// The source bucket's endpoint and keys, when not the runner's.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceConnection {
    /// An S3-compatible endpoint (`http(s)://host:port`); path-style addressing.
    #[serde(default)]
    pub endpoint_url: Option<String>,
    /// Region (default: the SDK chain, then us-east-1).
    #[serde(default)]
    pub region: Option<String>,
    /// Access key id (with `secret_access_key`); default: the credential chain.
    #[serde(default)]
    pub access_key_id: Option<String>,
    /// Where the secret access key comes from (`{"env": ...}`, `{"file": ...}`,
    /// `{"credential": ...}`), never the key itself.
    #[serde(default)]
    pub secret_access_key: Option<connector_sdk::SecretSource>,
}

/// One stream: the objects under a prefix.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name (`[a-z][a-z0-9_]*`, the table's folder).
    pub name: String,
    /// Key prefix of the objects (e.g. `landing/orders/`).
    #[serde(default)]
    pub prefix: String,
    /// Glob on the key after the prefix (`*` within a path segment, `**` across them,
    /// `?`, `[abc]`), e.g. `**/*.csv.gz`. Default: every object.
    #[serde(default)]
    pub glob: Option<String>,
    /// How objects are encoded.
    pub format: Format,
    /// `auto` (the default: `.gz` → gzip, `.zst`/`.zstd` → zstd, else none), `none`,
    /// `gzip` or `zstd`.
    #[serde(default)]
    pub compression: Compression,
    /// The columns (CSV: in file order; JSON Lines and Parquet: by name; no `path`).
    /// Unset: inferred from the first object (CSV and JSON Lines: its first
    /// 1 000 rows, every column nullable; Parquet: its schema), then fixed for the run.
    #[serde(default)]
    pub schema: Option<Vec<ColumnSpec>>,
    /// A row that does not fit the schema: `fail` (the default: the run fails naming the
    /// object and line, nothing of it is committed) or `reject` (the row goes to the
    /// `rejects` location with its line and reason; the others are ingested).
    #[serde(default)]
    pub bad_rows: BadRows,
    /// Uncompressed CSV and JSON Lines objects larger than this are read as byte ranges
    /// of this size, aligned to record boundaries, each its own partition (so Glue
    /// executors share one huge object); the last stretch (one to two ranges' worth) is
    /// cut into four halving pieces, so the workers finish together. At least 1024.
    /// Default 128 MiB.
    #[serde(default = "default_split_bytes")]
    pub split_bytes: u64,
    /// Rows per Arrow batch; a resume checkpoint follows every batch.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// How long after its last-modified time an object may still first appear in a
    /// listing, in seconds (default 7 days). The cursor remembers each ingested object
    /// modified within this window by key and ETag, and only a watermark for older ones
    /// (objects last modified before it count as ingested), so its size follows a window
    /// of arrivals instead of every object ever ingested. An object that first appears
    /// later than this after its last-modified time is not ingested — S3 dates a
    /// multipart upload from when it began, so set this above your slowest upload.
    /// The watermark follows the newest last-modified of a full listing (the store's
    /// clock). An object rewritten with the same bytes after the window is read again.
    /// At least 1.
    #[serde(default = "default_settle_secs")]
    pub settle_secs: u64,
    /// Primary key columns (for `merge`).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// How runs land in the table: `append` (the default: each object version is
    /// ingested once), `replace` or `merge`.
    #[serde(default)]
    pub write_disposition: Option<WriteDisposition>,
}

fn default_split_bytes() -> u64 {
    128 << 20
}

fn default_settle_secs() -> u64 {
    7 * 24 * 3600
}

fn default_batch_rows() -> usize {
    8192
}

/// An object encoding.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Format {
    /// Delimited text (RFC 4180 quoting).
    Csv {
        /// The first row names the columns (it is skipped).
        #[serde(default = "yes")]
        header: bool,
        /// Field delimiter (one ASCII character).
        #[serde(default = "comma")]
        delimiter: String,
        /// Quote character (one ASCII character).
        #[serde(default = "double_quote")]
        quote: String,
        /// Field texts read as null (default: the empty field).
        #[serde(default = "empty_null")]
        null_values: Vec<String>,
        /// Quoted fields may hold line breaks. Such objects are never split into byte
        /// ranges (a range boundary cannot be placed without reading from the start).
        #[serde(default)]
        quoted_newlines: bool,
    },
    /// One JSON object per line (blank lines skipped).
    Jsonl,
    /// Apache Parquet, read row group by row group.
    Parquet,
}

fn yes() -> bool {
    true
}
fn comma() -> String {
    ",".into()
}
fn double_quote() -> String {
    "\"".into()
}
fn empty_null() -> Vec<String> {
    vec![String::new()]
}

/// Object compression.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Compression {
    /// By the key's extension.
    #[default]
    Auto,
    /// Not compressed.
    None,
    /// gzip (multi-member files too).
    Gzip,
    /// Zstandard.
    Zstd,
}

/// What happens to a row that does not fit the schema.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BadRows {
    /// Fail the run, naming the object and line.
    #[default]
    Fail,
    /// Write it to the rejects location and go on.
    Reject,
}

impl Compression {
    /// The compression of `key` under this setting.
    pub fn of(self, key: &str) -> Compression {
        match self {
            Compression::Auto => {
                let k = key.to_ascii_lowercase();
                if k.ends_with(".gz") || k.ends_with(".gzip") {
                    Compression::Gzip
                } else if k.ends_with(".zst") || k.ends_with(".zstd") {
                    Compression::Zstd
                } else {
                    Compression::None
                }
            }
            other => other,
        }
    }
}

/// `s3://bucket/prefix` → (bucket, prefix without a trailing slash).
pub fn parse_s3_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket.to_string(), prefix.trim_end_matches('/').to_string()))
}

/// Check `config` without I/O; the error names the stream and field.
pub fn validate(config: &S3FilesConfig) -> Result<(), ConnectorError> {
    if config.bucket.is_empty() || config.bucket.contains('/') {
        return Err(ConnectorError::config(format!(
            "bucket {:?} is not a bucket name (no s3:// and no prefix; prefixes go in the streams)",
            config.bucket
        )));
    }
    if config.streams.is_empty() {
        return Err(ConnectorError::config(
            "streams is empty; declare at least one ({name, prefix, format})",
        ));
    }
    if let Some(c) = &config.connection {
        if c.access_key_id.is_some() != c.secret_access_key.is_some() {
            return Err(ConnectorError::config(
                "connection: set both access_key_id and secret_access_key, or neither (the credential chain)",
            ));
        }
        if let Some(u) = &c.endpoint_url
            && url_endpoint(u).is_none()
        {
            return Err(ConnectorError::config(format!(
                "connection.endpoint_url {u:?} is not an http(s)://host[:port] URL"
            )));
        }
    }
    if let Some(r) = &config.rejects
        && parse_s3_url(r).is_none()
    {
        return Err(ConnectorError::config(format!(
            "rejects {r:?} is not an s3://bucket/prefix URL"
        )));
    }
    connector_sdk::check_config_stream_names(config.streams.iter().map(|s| s.name.as_str()))?;
    for s in &config.streams {
        let named = |m: String| ConnectorError::config(format!("stream `{}`: {m}", s.name));
        if let Some(g) = &s.glob {
            glob::Pattern::new(g).map_err(|e| named(format!("glob {g:?}: {e}")))?;
        }
        if let Format::Csv {
            delimiter, quote, ..
        } = &s.format
        {
            for (what, v) in [("delimiter", delimiter), ("quote", quote)] {
                if v.len() != 1 || !v.is_ascii() || v == "\n" || v == "\r" {
                    return Err(named(format!(
                        "format.{what} {v:?} must be one ASCII character (not a line break)"
                    )));
                }
            }
            if delimiter == quote {
                return Err(named(
                    "format.delimiter and format.quote are the same".into(),
                ));
            }
        }
        if s.split_bytes < 1024 {
            return Err(named(format!(
                "split_bytes is {}; use at least 1024",
                s.split_bytes
            )));
        }
        if s.settle_secs == 0 || s.settle_secs > 100 * 365 * 24 * 3600 {
            return Err(named(format!(
                "settle_secs is {}; use 1 to 3153600000 (100 years)",
                s.settle_secs
            )));
        }
        if s.batch_rows == 0 || s.batch_rows > 1_000_000 {
            return Err(named(format!(
                "batch_rows is {}; use 1 to 1000000",
                s.batch_rows
            )));
        }
        if let Some(cols) = &s.schema {
            let schema = connector_sdk::columns::schema_of(cols)
                .map_err(|e| named(e.message().to_string()))?;
            if let Some(c) = cols.iter().find(|c| c.path.is_some()) {
                return Err(named(format!(
                    "column `{}` has a `path`: file columns are read by name (CSV: by position), not by path",
                    c.name
                )));
            }
            if cols
                .iter()
                .any(|c| c.data_type.eq_ignore_ascii_case("json"))
            {
                return Err(named(
                    "type `json` is for API records; declare file columns with a scalar type"
                        .into(),
                ));
            }
            for k in &s.primary_key {
                match schema.field_with_name(k) {
                    Ok(f) if !f.is_nullable() => {}
                    _ => {
                        return Err(named(format!(
                            "primary key column `{k}` must be declared with nullable = false"
                        )));
                    }
                }
            }
        }
        if s.bad_rows == BadRows::Reject && config.rejects.is_none() {
            return Err(named(
                "bad_rows is `reject` but no `rejects` location (s3://bucket/prefix) is set".into(),
            ));
        }
    }
    Ok(())
}

/// `host:port` of an http(s) endpoint URL (default ports filled in).
pub fn url_endpoint(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let default = match scheme {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    let authority = rest.split('/').next()?;
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some(match authority.rsplit_once(':') {
        Some((_, port)) if port.parse::<u16>().is_ok() && !authority.ends_with(']') => {
            authority.to_string()
        }
        _ => format!("{authority}:{default}"),
    })
}
