//! Connector SDK: the [`Connector`] trait a connector author implements, the connector
//! manifest, and the extract core that streams Arrow batches into Parquet on S3 with an
//! atomic, conditional commit and resumable state.
//!
//! The core knows no runner: runners build an [`ExtractOptions`], hand the core a
//! [`StopSignal`], and report the [`RunReport`] in their platform's terms.

pub mod catalog;
pub mod columns;
#[cfg(feature = "conformance")]
pub mod conformance;
pub mod connector;
pub mod dataset;
pub mod error;
pub mod extract;
pub mod governance;
pub mod json_decoders;
pub mod json_flat_lines;
pub mod json_temporal;
pub mod manifest;
pub mod options;
pub mod report;
pub mod s3;
pub mod secret;
mod sink;
pub mod table;

pub use connector::{
    Connector, Partition, Plan, PlanOf, ReadContext, ReadItem, ReadStream, Stored, StoredValue,
    StreamDescriptor, check_config_stream_names, config_stream,
};
pub use dataset::{DataFile, Dataset, DatasetManifest, RunStatus, StreamState};
pub use error::{ConnectorError, ConnectorErrorKind, Error, Result, exit, one_line};
pub use extract::{
    ExtractCore, PartitionResult, RunPlan, StopSignal, config_from_file, config_from_value,
    parse_config, require_governed, schema_difference,
};
pub use governance::{Endpoint, GovernancePolicy, Violation};
pub use manifest::{ConnectorManifest, DataClassification, NetworkPattern, Runner};
pub use options::{
    COMMIT_INTERVAL_BYTES_RANGE, COMMIT_INTERVAL_SECS_RANGE, Codec, CommitInterval, Dictionary,
    ExtractOptions, OutputLocation, ParquetOptions, SchemaEvolution, UploadOptions,
    WriteDisposition,
};
pub use report::{Progress, RunReport};
pub use s3::{BucketSettings, ListedObject, S3Options, S3Store, StaticCredentials};
pub use secret::{ExposeSecret, SecretSource, SecretString};
pub use sink::OpenUploads;

/// Re-exports connector authors need, so their versions match the SDK's.
pub use arrow;
pub use async_trait::async_trait;
pub use futures;
pub use schemars;
pub use serde_json;
pub use tokio_util::sync::CancellationToken;

/// The JSON Schema of a connector's config type.
pub fn config_schema<C: Connector>() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(C::Config)).unwrap_or_default()
}
