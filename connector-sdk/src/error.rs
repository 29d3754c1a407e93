//! The SDK's one error enum, and the error type connectors return.

use std::fmt;

/// What kind of failure a connector reports. The kind decides whether a retry can help
/// and which exit code / error type a runner reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ConnectorErrorKind {
    /// The configuration is wrong (a value the source rejects, a missing table...). Not retryable.
    Config,
    /// The source refused the credentials. Not retryable.
    Auth,
    /// The source could not be reached (DNS, connection refused, timeout). Retryable.
    Unreachable,
    /// The source does not support something the stream needs (a column type...). Not retryable.
    Unsupported,
    /// The source failed while answering (I/O, protocol, server error). Retryable.
    Source,
    /// The connector itself produced something invalid (a bug in the connector). Not retryable.
    Internal,
}

impl ConnectorErrorKind {
    fn label(self) -> &'static str {
        match self {
            Self::Config => "configuration error",
            Self::Auth => "authentication failed",
            Self::Unreachable => "source unreachable",
            Self::Unsupported => "unsupported",
            Self::Source => "source error",
            Self::Internal => "connector bug",
        }
    }
}

/// The error a [`Connector`](crate::Connector) returns. The message must say what is wrong
/// and, where it can, what would be right. It must never contain a secret.
#[derive(Debug)]
pub struct ConnectorError {
    kind: ConnectorErrorKind,
    message: String,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConnectorError {
    /// A new error of `kind` with a one-line `message`.
    pub fn new(kind: ConnectorErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }
    /// Shorthand for [`ConnectorErrorKind::Config`].
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::Config, message)
    }
    /// Shorthand for [`ConnectorErrorKind::Source`].
    pub fn source_error(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::Source, message)
    }
    /// Shorthand for [`ConnectorErrorKind::Internal`].
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ConnectorErrorKind::Internal, message)
    }
    /// Attach the underlying error.
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }
    /// The kind of failure.
    pub fn kind(&self) -> ConnectorErrorKind {
        self.kind
    }
    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self.kind,
            ConnectorErrorKind::Unreachable | ConnectorErrorKind::Source
        )
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.label(), self.message)
    }
}

impl std::error::Error for ConnectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// Every error the SDK returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The connector manifest (`connector.toml`) is invalid.
    #[error("invalid connector manifest: {message}")]
    Manifest {
        /// What is wrong and what would be right, one line.
        message: String,
        /// The parser's error, if one was the cause.
        #[source]
        source: Option<BoxError>,
    },
    /// The connector configuration is invalid.
    #[error("invalid connector config: {message}")]
    Config {
        /// What is wrong and what would be right, one line (never a config value).
        message: String,
        /// The parser's or the file system's error, if one was the cause.
        #[source]
        source: Option<BoxError>,
    },
    /// The extract request (output, stream, options) is invalid.
    #[error("invalid request: {message}")]
    Request {
        /// What is wrong and what would be right, one line.
        message: String,
        /// The underlying error, if one was the cause.
        #[source]
        source: Option<BoxError>,
    },
    /// The runner is not among those the connector's manifest declares.
    #[error(
        "connector `{connector}` does not declare the `{runner}` runner in its manifest (declared: {declared}); add [runners.{runner}] to connector.toml or use a declared runner"
    )]
    RunnerNotDeclared {
        /// The connector's name.
        connector: String,
        /// The runner that was asked for.
        runner: String,
        /// The runners the manifest declares.
        declared: String,
    },
    /// The config reaches a source endpoint the manifest (or the deployment) does not
    /// declare. Refused before any connection attempt.
    #[error(
        "source endpoint {endpoint} is not declared: {declared}; point the config at a declared endpoint, or declare it in connector.toml [[networking]] (and the deployment's allowed_endpoints)"
    )]
    EndpointNotDeclared {
        /// The endpoint the config resolves to.
        endpoint: String,
        /// What is declared, one line.
        declared: String,
    },
    /// The governance policy does not allow this (a runner for the connector's data
    /// classification). Refused before any I/O.
    #[error("governance policy violation: {message}")]
    PolicyViolation {
        /// The rule, what is wrong and what would be right, one line.
        message: String,
    },
    /// The connector failed.
    #[error("{0}")]
    Connector(#[from] ConnectorError),
    /// A batch did not match the schema the connector discovered for its stream.
    #[error(
        "stream `{stream}`, partition `{partition}`: batch schema does not match the discovered schema: {detail}"
    )]
    SchemaMismatch {
        /// The stream.
        stream: String,
        /// The partition.
        partition: String,
        /// What differs.
        detail: String,
    },
    /// An S3 request failed (after the SDK's retries).
    #[error("S3 {operation} s3://{bucket}/{key} failed: {message}")]
    S3 {
        /// The S3 operation, e.g. `PutObject`.
        operation: &'static str,
        /// The bucket.
        bucket: String,
        /// The key (or prefix).
        key: String,
        /// What went wrong, one line.
        message: String,
        /// Whether a later retry may succeed (throttling, 5xx, network).
        retryable: bool,
        /// The SDK's error (request id, HTTP response, dispatch failure), if there was one.
        #[source]
        source: Option<BoxError>,
    },
    /// Another run committed this stream first; this run's output is not visible.
    #[error(
        "commit conflict on stream `{stream}`: another run committed sequence {sequence} first (run {winner}); this run ({run_id}) committed nothing and its files were removed — re-run to continue from the new state"
    )]
    CommitConflict {
        /// The stream.
        stream: String,
        /// The sequence number both runs tried to commit.
        sequence: u64,
        /// This run.
        run_id: String,
        /// The run that won, if known.
        winner: String,
    },
    /// A multipart upload of this run was aborted by someone else while the run was
    /// writing it (`gc` with a grace shorter than the run, a bucket lifecycle rule...).
    #[error(
        "the multipart upload of s3://{bucket}/{key} was aborted while this run was writing it (by `gc` with a grace period shorter than the run, a bucket lifecycle rule or another process); this run committed nothing — re-run it, and run `gc` only with its default grace period"
    )]
    UploadAborted {
        /// The bucket.
        bucket: String,
        /// The file being written.
        key: String,
        /// The S3 error the aborted upload caused.
        #[source]
        source: Box<Error>,
    },
    /// A data file this run wrote is gone before its commit: committing would record rows
    /// that no longer exist, so nothing is committed.
    #[error(
        "data file s3://{bucket}/{key} written by run {run_id} is {problem} before the commit (deleted by `gc` with a grace period shorter than the run, a bucket lifecycle rule or another process); nothing was committed and the stream's state is unchanged — re-run to extract these rows again"
    )]
    DataFileMissing {
        /// The bucket.
        bucket: String,
        /// The file.
        key: String,
        /// The run that wrote it.
        run_id: String,
        /// `missing`, or what differs.
        problem: String,
    },
    /// A `merge` run read the same key twice: it cannot tell which row is the source's.
    #[error(
        "stream `{stream}`: merge key ({key}) = ({value}) appears more than once in this run's rows; merge needs a key that is unique at the source — fix the primary_key, or use append; nothing was committed"
    )]
    DuplicateMergeKey {
        /// The stream.
        stream: String,
        /// The key columns, comma-separated.
        key: String,
        /// The repeated key's values, comma-separated.
        value: String,
    },
    /// A cursor, checkpoint or partition spec in the stream's committed state (or in a plan
    /// shipped to this process) does not read as the connector's type: the table was
    /// written by another connector, or by a version whose state types differ.
    #[error(
        "stream `{stream}`: the committed {what} {value} does not read as this connector's {what} type ({source}); the table was written by another connector or by an incompatible version of this one: point the output at this connector's own table, or finish the pending run with the version that started it"
    )]
    StoredStateMismatch {
        /// The stream.
        stream: String,
        /// `cursor`, `checkpoint` or `partition spec`.
        what: &'static str,
        /// The stored JSON, shortened to 200 characters.
        value: String,
        /// Why it does not read.
        #[source]
        source: serde_json::Error,
    },
    /// Encoding Parquet or handling Arrow data failed.
    #[error("parquet encoding failed for {what}: {source}")]
    Parquet {
        /// The file or stream concerned.
        what: String,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A committed manifest in the bucket could not be read.
    #[error("committed manifest s3://{bucket}/{key} is unreadable: {message}")]
    CorruptManifest {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// Why.
        message: String,
    },
    /// The stream's Delta table could not be read or committed to (a log entry, a
    /// checkpoint or the run record is unreadable or of an unsupported protocol).
    #[error("Delta table {table}: {message}")]
    Table {
        /// The table root, `s3://bucket/prefix/stream/`.
        table: String,
        /// What failed, one line.
        message: String,
        /// The kernel's error.
        #[source]
        source: Option<BoxError>,
    },
    /// An invariant broke or a background task failed: a bug, never retryable.
    #[error("internal error: {message}")]
    Internal {
        /// What broke.
        message: String,
        /// The underlying error, if one was the cause.
        #[source]
        source: Option<BoxError>,
    },
}

impl Error {
    /// [`Error::Manifest`] with no underlying error.
    pub fn manifest(message: impl Into<String>) -> Self {
        Error::Manifest {
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Config`] with no underlying error.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Config`] caused by `source` (a parser's or the file system's error).
    pub fn config_caused(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Config {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// [`Error::Request`] with no underlying error.
    pub fn request(message: impl Into<String>) -> Self {
        Error::Request {
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Request`] caused by `source`.
    pub fn request_caused(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Request {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// [`Error::Internal`] with no underlying error.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::Internal {
            message: message.into(),
            source: None,
        }
    }

    /// [`Error::Internal`] caused by `source`.
    pub fn internal_caused(message: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Error::Internal {
            message: message.into(),
            source: Some(source.into()),
        }
    }

    /// The one-line message of an input error ([`Error::Manifest`], [`Error::Config`],
    /// [`Error::Request`]) without its prefix; `None` for the other variants.
    pub fn input_message(&self) -> Option<&str> {
        match self {
            Error::Manifest { message, .. }
            | Error::Config { message, .. }
            | Error::Request { message, .. } => Some(message),
            _ => None,
        }
    }

    /// Whether retrying the same request may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Connector(e) => e.is_retryable(),
            Error::S3 { retryable, .. } => *retryable,
            // The state moved on: a re-run picks up from the winner's state.
            Error::CommitConflict { .. } => true,
            // A re-run extracts the rows again.
            Error::UploadAborted { .. } | Error::DataFileMissing { .. } => true,
            // A bug or an invariant broken: retrying the same request would fail the same way.
            Error::Internal { .. } => false,
            _ => false,
        }
    }

    /// A short, stable name for the class of error (used as Lambda `errorType`, in reports).
    pub fn class(&self) -> &'static str {
        match self {
            Error::Manifest { .. } => "ManifestError",
            Error::Config { .. } => "ConfigError",
            Error::Request { .. } => "RequestError",
            Error::RunnerNotDeclared { .. } => "RunnerNotDeclared",
            Error::EndpointNotDeclared { .. } => "EndpointNotDeclared",
            Error::PolicyViolation { .. } => "PolicyViolation",
            Error::Connector(e) => match e.kind() {
                ConnectorErrorKind::Config => "ConfigError",
                ConnectorErrorKind::Auth => "SourceAuthError",
                ConnectorErrorKind::Unreachable => "SourceUnreachable",
                ConnectorErrorKind::Unsupported => "SourceUnsupported",
                ConnectorErrorKind::Source => "SourceError",
                ConnectorErrorKind::Internal => "ConnectorBug",
            },
            Error::SchemaMismatch { .. } => "SchemaMismatch",
            Error::S3 { .. } => "SinkError",
            Error::CommitConflict { .. } => "CommitConflict",
            Error::Parquet { .. } => "SinkError",
            Error::UploadAborted { .. } => "UploadAborted",
            Error::DataFileMissing { .. } => "DataFileMissing",
            Error::DuplicateMergeKey { .. } => "DuplicateMergeKey",
            Error::StoredStateMismatch { .. } => "StoredStateMismatch",
            Error::CorruptManifest { .. } => "CorruptManifest",
            Error::Table { .. } => "TableError",
            Error::Internal { .. } => "InternalError",
        }
    }

    /// Whether the error is about the input (config, manifest, request) rather than the
    /// source or the sink. Runners map this to their "bad input" exit code.
    pub fn is_input_error(&self) -> bool {
        matches!(
            self,
            Error::Manifest { .. }
                | Error::Config { .. }
                | Error::Request { .. }
                | Error::RunnerNotDeclared { .. }
                | Error::EndpointNotDeclared { .. }
                | Error::PolicyViolation { .. }
                | Error::StoredStateMismatch { .. }
        ) || matches!(self, Error::Connector(e) if e.kind() == ConnectorErrorKind::Config)
    }

    /// The process exit code for this error (see [`exit`]).
    pub fn exit_code(&self) -> u8 {
        if self.is_input_error() {
            exit::INPUT
        } else if self.is_sink_error() {
            exit::SINK
        } else if matches!(self, Error::Connector(_) | Error::SchemaMismatch { .. }) {
            exit::SOURCE
        } else {
            exit::INTERNAL
        }
    }

    /// Whether the error comes from the output side (S3, Parquet, commit).
    pub fn is_sink_error(&self) -> bool {
        matches!(
            self,
            Error::S3 { .. }
                | Error::Parquet { .. }
                | Error::CommitConflict { .. }
                | Error::CorruptManifest { .. }
                | Error::Table { .. }
                | Error::UploadAborted { .. }
                | Error::DataFileMissing { .. }
        )
    }
}

/// Process exit codes, the same in every runner mode of a connector binary.
pub mod exit {
    /// Everything done.
    pub const OK: u8 = 0;
    /// Internal error.
    pub const INTERNAL: u8 = 1;
    /// Bad input: usage, config, manifest, request, undeclared runner.
    pub const INPUT: u8 = 2;
    /// The source (the connector) failed.
    pub const SOURCE: u8 = 3;
    /// The sink failed: S3, Parquet, commit conflict.
    pub const SINK: u8 = 4;
    /// Stopped early with progress committed (`EX_TEMPFAIL`); run again to continue.
    pub const PARTIAL: u8 = 75;
    /// Aborted (second stop signal, or a stop budget exceeded); the current run
    /// committed nothing and its open uploads were aborted.
    pub const ABORTED: u8 = 130;
}

/// A boxed error kept as the source of one of ours.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// The SDK's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `s` on one line: every run of white space (newlines of nested messages included)
/// becomes one space. Every error the binaries print goes through this.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
