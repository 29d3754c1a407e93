//! The EC2 runner's one error enum.

use std::path::PathBuf;

/// Every error the EC2 runner returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The daemon config file could not be read.
    #[error("cannot read daemon config {path}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The daemon config is invalid; `line`/`column` (1-based) point at the offending key
    /// or value.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Line, 1-based.
        line: usize,
        /// Column, 1-based.
        column: usize,
        /// What is wrong (never a config value that may be secret).
        message: String,
    },
    /// The SDK refused something (manifest, runner not declared, options, extract).
    #[error(transparent)]
    Sdk(#[from] connector_sdk::Error),
    /// The state directory could not be used.
    #[error("state directory {path}: {source}")]
    State {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] std::io::Error),
}

impl Error {
    /// Whether the error is about the input (config, manifest, undeclared runner).
    pub fn is_input_error(&self) -> bool {
        match self {
            Error::ConfigRead { .. } | Error::Config { .. } => true,
            Error::Sdk(e) => e.is_input_error(),
            Error::State { .. } | Error::Signals(_) => false,
        }
    }
}

/// The runner's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
