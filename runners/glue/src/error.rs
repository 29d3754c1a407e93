//! The Glue runner's one error enum.

use std::path::PathBuf;

/// Every error the Glue runner returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SDK refused something (manifest, undeclared runner, config, request) or failed
    /// (source, sink, commit conflict).
    #[error(transparent)]
    Sdk(#[from] connector_sdk::Error),
    /// Extracting one partition failed; names the partition so the job log says which.
    #[error("partition `{partition}` of stream `{stream}` (run {run_id}) failed: {source}")]
    Partition {
        /// The partition id.
        partition: String,
        /// The stream.
        stream: String,
        /// The run.
        run_id: String,
        /// What failed.
        #[source]
        source: Box<connector_sdk::Error>,
    },
    /// A JSON input (plan, partition results) could not be read.
    #[error("cannot read {what} from {}: {message}", display_path(path))]
    InputRead {
        /// What was being read (`plan`, `partition results`).
        what: &'static str,
        /// The file (`-`: stdin).
        path: PathBuf,
        /// Why, one line.
        message: String,
    },
    /// A JSON input parsed but is not what the command needs.
    #[error("invalid {what} in {}: {message}", display_path(path))]
    InvalidInput {
        /// What was being read (`plan`, `partition results`).
        what: &'static str,
        /// The file (`-`: stdin).
        path: PathBuf,
        /// What is wrong and what would be right, one line.
        message: String,
    },
    /// A `deploy glue` argument is invalid.
    #[error("invalid job definition argument {arg}: {message}")]
    JobDefinition {
        /// The argument, e.g. `--role-arn`.
        arg: &'static str,
        /// What is wrong and what would be right.
        message: String,
    },
    /// Writing output (stdout, the job script file) failed.
    #[error("cannot write {what}: {source}")]
    Output {
        /// What was being written.
        what: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

fn display_path(path: &std::path::Path) -> String {
    if path.as_os_str() == "-" {
        "stdin".into()
    } else {
        path.display().to_string()
    }
}

impl Error {
    /// The process exit code, the same as the connector CLI's: 2 bad input, 3 source,
    /// 4 sink (S3, Parquet, commit conflict), 1 internal.
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Sdk(e) => sdk_exit_code(e),
            Error::Partition { source, .. } => sdk_exit_code(source),
            Error::InputRead { .. } | Error::InvalidInput { .. } | Error::JobDefinition { .. } => 2,
            Error::Output { .. } => 1,
        }
    }

    /// The error as one line (no newlines from nested messages).
    pub fn one_line(&self) -> String {
        connector_sdk::one_line(&self.to_string())
    }
}

/// The exit code of an SDK error (the connector CLI's table).
pub fn sdk_exit_code(e: &connector_sdk::Error) -> u8 {
    use connector_sdk::Error as E;
    if e.is_input_error() {
        2
    } else if e.is_sink_error() {
        4
    } else if matches!(e, E::Connector(_) | E::SchemaMismatch { .. }) {
        3
    } else {
        1
    }
}

/// The runner's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of an SDK request/config error without its "invalid ...:" prefix.
pub(crate) fn sdk_message(e: &connector_sdk::Error) -> String {
    match e {
        connector_sdk::Error::Config { message: m, .. }
        | connector_sdk::Error::Request { message: m, .. } => m.clone(),
        other => connector_sdk::one_line(&other.to_string()),
    }
}
