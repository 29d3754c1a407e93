//! Command-line arguments every command that reads a connector config or writes a dataset
//! shares (the CLI's `extract` and `gc`, the Glue steps).

use std::path::{Path, PathBuf};

use clap::Args;
use connector_sdk::{Connector, Error, S3Options};

/// The connector config file.
#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Connector config file (JSON, or TOML when the name ends in .toml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
}

impl ConfigArg {
    /// Read the config file into the connector's config type.
    pub fn load<C: Connector>(&self) -> Result<C::Config, Error> {
        load_config::<C>(&self.config)
    }
}

/// Read a connector config file (JSON, or TOML for `.toml`) into the connector's type.
pub fn load_config<C: Connector>(path: &Path) -> Result<C::Config, Error> {
    connector_sdk::config_from_file::<C>(path)
}

/// Where and how to write; shared by every command that writes.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output location, s3://bucket/prefix.
    #[arg(long, value_name = "S3_URL")]
    pub output: String,
    /// S3 endpoint URL for S3-compatible servers (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (default: the SDK chain, then us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Maximum attempts per S3 request (SDK standard retry mode), 1..=100.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub max_attempts: u32,
    /// Seconds one S3 request attempt may take before it is abandoned and retried (a
    /// server that hangs), 1..=3600 [default: 120]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub s3_attempt_timeout_secs: Option<u64>,
    /// Seconds one S3 operation may take in all, retries and backoff included, 1..=86400
    /// [default: 600]
    #[arg(long, value_name = "SECS", value_parser = clap::value_parser!(u64).range(1..=86400))]
    pub s3_operation_timeout_secs: Option<u64>,
}

impl OutputArgs {
    /// The S3 options these arguments give.
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            max_attempts: Some(self.max_attempts),
            attempt_timeout_secs: self.s3_attempt_timeout_secs,
            operation_timeout_secs: self.s3_operation_timeout_secs,
            static_credentials: None,
        }
    }
}
