//! The Fargate runner's one error enum.

/// Every error the Fargate runner returns.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The SDK refused something (manifest, runner not declared, config, options, extract).
    #[error(transparent)]
    Sdk(#[from] connector_sdk::Error),
    /// No connector config in the environment, or both sources set.
    #[error("{0}")]
    ConfigSource(String),
    /// The ECS task metadata endpoint could not be read.
    #[error("ECS task metadata {url}: {reason}")]
    Metadata {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// `deploy fargate` cannot render a valid task definition from these inputs.
    #[error("{0}")]
    TaskDefinition(String),
}

impl Error {
    /// The process exit code (see `connector_sdk::exit`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Error::Sdk(e) => e.exit_code(),
            Error::ConfigSource(_) | Error::TaskDefinition(_) => connector_sdk::exit::INPUT,
            Error::Metadata { .. } => connector_sdk::exit::INTERNAL,
        }
    }
}

/// The Fargate runner's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
