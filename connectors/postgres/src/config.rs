//! `PostgresConfig`: what a run of the connector reads, and how it connects.
//!
//! Validation here never touches the network (the SDK's "validate without I/O" rule).

use std::path::PathBuf;

use connector_sdk::{ConnectorError, WriteDisposition};
use schemars::JsonSchema;
use serde::Deserialize;

/// Configuration of the PostgreSQL connector.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostgresConfig {
    /// Server host name or IP address (also the manifest's `{host}` endpoint placeholder).
    pub host: String,
    /// Server port (the manifest's `{port}` endpoint placeholder).
    #[serde(default = "default_port")]
    pub port: u16,
    /// Database to connect to.
    pub database: String,
    /// Role to connect as. It needs `SELECT` on the streams' tables.
    pub user: String,
    /// Where the password comes from: `{"env": "VAR"}` (an environment variable, e.g. one
    /// ECS injects from Secrets Manager), `{"file": "/run/secrets/pg"}` (a mounted secret)
    /// or `{"credential": "pg"}` (a systemd credential, `LoadCredential=pg:<file>` in the
    /// EC2 unit). Never the password itself; it is held as a secret, never logged nor put
    /// in an error.
    #[serde(default)]
    pub password: Option<PasswordSource>,
    /// TLS: `verify-full` (the default: TLS, chain and host name verified against
    /// `sslrootcert` or the system roots), `require` (TLS, certificate not verified, like
    /// libpq), `prefer` (TLS if the server offers it, unverified) or `disable` (plain TCP,
    /// for a local source on a trusted network).
    #[serde(default)]
    pub sslmode: SslMode,
    /// PEM file of CA certificates trusted for `verify-full` (default: the system roots).
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    /// Seconds to wait for a connection before failing as unreachable.
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_secs: u64,
    /// The streams to extract. When empty, every table of `schemas` is a stream named after
    /// the table (`<schema>_<table>` outside `public`), keyed by its primary key.
    #[serde(default)]
    pub streams: Vec<StreamConfig>,
    /// Schemas whose tables become streams when `streams` is empty.
    #[serde(default = "default_schemas")]
    pub schemas: Vec<String>,
    /// Rows per Arrow batch; a resume checkpoint follows every batch.
    #[serde(default = "default_batch_rows")]
    pub batch_rows: usize,
    /// Columns of a type the connector cannot map: `error` (fail naming table, column and
    /// type) or `skip` (leave the column out of the stream, with a warning).
    #[serde(default)]
    pub unsupported_columns: UnsupportedColumns,
    /// `numeric` without a declared precision: `decimal` (Decimal128(38, 10); a value with
    /// more than 10 fractional digits or 28 integer digits is an error) or `string` (the
    /// exact decimal text). `numeric(p, s)` with p > 38 is always mapped to the text.
    #[serde(default)]
    pub unconstrained_numeric: UnconstrainedNumeric,
    /// Partitions of one plan read in this process share one exported snapshot
    /// (`pg_export_snapshot`), so together they are one consistent read.
    #[serde(default = "default_true")]
    pub shared_snapshot: bool,
    /// How long the exported snapshot is held open for partitions still waiting for a
    /// concurrency slot, in seconds; later partitions read their own snapshot.
    #[serde(default = "default_snapshot_hold")]
    pub snapshot_hold_secs: u64,
}

/// One stream: a table or a named query.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StreamConfig {
    /// Stream name (`[a-z][a-z0-9_]*`, the output folder). Default: the table name.
    #[serde(default)]
    pub name: Option<String>,
    /// The table, as `table` (found through the search path) or `schema.table`. Exactly one
    /// of `table` and `query` is set.
    #[serde(default)]
    pub table: Option<String>,
    /// A custom `SELECT` whose result is the stream (requires `name`). Column names of the
    /// result must be unique.
    #[serde(default)]
    pub query: Option<String>,
    /// Columns that are unique and non-null together, the order of every read and the resume
    /// point of its checkpoints. Default: the table's primary key. Without a key, an
    /// interrupted partition restarts from its beginning.
    #[serde(default)]
    pub key: Vec<String>,
    /// Column of an incremental extract: each run reads the rows with
    /// `previous cursor < cursor_column <= max(cursor_column) at planning time`.
    #[serde(default)]
    pub cursor_column: Option<String>,
    /// Integer, date or timestamp column whose `[min, max]` is split into `partitions`
    /// ranges, read concurrently (and fanned out by Glue).
    #[serde(default)]
    pub partition_column: Option<String>,
    /// Number of ranges `partition_column` is split into.
    #[serde(default = "default_partitions")]
    pub partitions: u32,
    /// How runs land in the stream's table (`append`, `replace` or `merge` by `key`) unless
    /// the run says otherwise (`--write-disposition`). Default: `append` with a
    /// `cursor_column`, `replace` without.
    #[serde(default)]
    pub write_disposition: Option<WriteDisposition>,
}

/// Where the password comes from: `{"env": "VAR"}`, `{"file": "/run/secrets/pg"}` or
/// `{"credential": "pg"}` (a systemd credential; the EC2 unit's `LoadCredential=`).
pub type PasswordSource = connector_sdk::SecretSource;

/// TLS mode, as libpq's `sslmode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum SslMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server supports it, without certificate verification.
    Prefer,
    /// TLS, without certificate verification.
    Require,
    /// TLS; the certificate chain and host name are verified (the default: a password
    /// sent to a server whose identity is not checked can be taken by whoever answers).
    #[default]
    VerifyFull,
}

/// What to do with a column of an unsupported type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnsupportedColumns {
    /// Fail, naming the table, column and type.
    #[default]
    Error,
    /// Leave the column out, with a warning.
    Skip,
}

/// How an unconstrained `numeric` is mapped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UnconstrainedNumeric {
    /// Decimal128(38, 10); values that do not fit are an error.
    #[default]
    Decimal,
    /// Utf8, the exact decimal text (`NaN`, `Infinity`, `-Infinity` included).
    String,
}

fn default_port() -> u16 {
    5432
}
fn default_connect_timeout() -> u64 {
    10
}
fn default_schemas() -> Vec<String> {
    vec!["public".into()]
}
fn default_batch_rows() -> usize {
    65_536
}
fn default_true() -> bool {
    true
}
fn default_snapshot_hold() -> u64 {
    120
}
fn default_partitions() -> u32 {
    1
}

/// A table reference: optional schema and name, both exactly as in the catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TableName {
    pub schema: Option<String>,
    pub name: String,
}

impl TableName {
    pub(crate) fn parse(s: &str) -> Result<Self, ConnectorError> {
        let parts: Vec<&str> = s.split('.').collect();
        let bad = || {
            ConnectorError::config(format!(
                "table {s:?} is invalid: use `table` or `schema.table`"
            ))
        };
        match parts.as_slice() {
            [t] if !t.is_empty() => Ok(Self {
                schema: None,
                name: t.to_string(),
            }),
            [s, t] if !s.is_empty() && !t.is_empty() => Ok(Self {
                schema: Some(s.to_string()),
                name: t.to_string(),
            }),
            _ => Err(bad()),
        }
    }

    /// Quoted SQL identifier.
    pub(crate) fn sql(&self) -> String {
        match &self.schema {
            Some(s) => format!("{}.{}", quote_ident(s), quote_ident(&self.name)),
            None => quote_ident(&self.name),
        }
    }

    /// For messages: `schema.table` or `table`.
    pub(crate) fn display(&self) -> String {
        match &self.schema {
            Some(s) => format!("{s}.{}", self.name),
            None => self.name.clone(),
        }
    }
}

/// `"ident"` with embedded quotes doubled.
pub(crate) fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// `'literal'` with embedded quotes doubled (standard_conforming_strings is on since 9.1).
pub(crate) fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Whether `s` is a valid stream name.
pub(crate) fn is_stream_name(s: &str) -> bool {
    let mut chars = s.chars();
    s.len() <= 64
        && matches!(chars.next(), Some('a'..='z'))
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl PostgresConfig {
    /// Checks that need no I/O.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if self.host.trim().is_empty() {
            return Err(ConnectorError::config("`host` is empty"));
        }
        if self.database.is_empty() || self.user.is_empty() {
            return Err(ConnectorError::config(
                "`database` and `user` must be non-empty",
            ));
        }
        if self.batch_rows == 0 {
            return Err(ConnectorError::config("`batch_rows` must be at least 1"));
        }
        if self.sslmode != SslMode::VerifyFull && self.sslrootcert.is_some() {
            return Err(ConnectorError::config(
                "`sslrootcert` is only used with sslmode = \"verify-full\"",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, s) in self.streams.iter().enumerate() {
            let name = s.stream_name(i)?;
            if !names.insert(name.clone()) {
                return Err(ConnectorError::config(format!(
                    "streams[{i}]: stream name `{name}` is used twice"
                )));
            }
            if s.partitions == 0 {
                return Err(ConnectorError::config(format!(
                    "stream `{name}`: `partitions` must be at least 1"
                )));
            }
            if s.partitions > 1 && s.partition_column.is_none() {
                return Err(ConnectorError::config(format!(
                    "stream `{name}`: `partitions` = {} needs a `partition_column`",
                    s.partitions
                )));
            }
            if s.partitions > 999 {
                return Err(ConnectorError::config(format!(
                    "stream `{name}`: `partitions` = {} is more than 999",
                    s.partitions
                )));
            }
        }
        Ok(())
    }
}

impl StreamConfig {
    /// The stream name (explicit, or derived from the table).
    pub(crate) fn stream_name(&self, index: usize) -> Result<String, ConnectorError> {
        match (&self.table, &self.query) {
            (Some(_), Some(_)) | (None, None) => {
                return Err(ConnectorError::config(format!(
                    "streams[{index}]: set exactly one of `table` and `query`"
                )));
            }
            (None, Some(_)) if self.name.is_none() => {
                return Err(ConnectorError::config(format!(
                    "streams[{index}]: a `query` stream needs a `name`"
                )));
            }
            _ => {}
        }
        let name = match (&self.name, &self.table) {
            (Some(n), _) => n.clone(),
            (None, Some(t)) => TableName::parse(t)?.name,
            (None, None) => unreachable_name(),
        };
        if !is_stream_name(&name) {
            return Err(ConnectorError::config(format!(
                "streams[{index}]: stream name {name:?} is invalid: use [a-z][a-z0-9_]*, at most 64 characters (set `name`)"
            )));
        }
        Ok(name)
    }
}

fn unreachable_name() -> String {
    // Excluded by the match above; an empty name fails the stream-name check.
    String::new()
}
