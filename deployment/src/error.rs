//! Errors of rendering, governing and advising: each names the field or input at fault
//! and what would be right.

/// A deployment error.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A deploy config, workload profile or policy field is wrong.
    #[error("{field}: {message}")]
    Config {
        /// The field (or file) at fault.
        field: String,
        /// What is wrong and what would be right.
        message: String,
    },
    /// The manifest or the SDK refused.
    #[error(transparent)]
    Sdk(#[from] connector_sdk::Error),
    /// A template cannot be read.
    #[error("{0}")]
    Template(String),
}

impl Error {
    /// [`Error::Config`].
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        Error::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// A deployment result.
pub type Result<T, E = Error> = std::result::Result<T, E>;
