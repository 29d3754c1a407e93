//! The `Connector` trait: what a connector author implements.

use std::time::Instant;

use arrow::record_batch::RecordBatch;
use arrow_schema::SchemaRef;
use futures::stream::BoxStream;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;

use crate::error::ConnectorError;

/// Incremental state: a connector-defined JSON value (e.g. the last `updated_at` seen).
/// The core stores it only inside committed dataset manifests.
pub type Cursor = serde_json::Value;

/// One stream a connector can extract, as `discover` reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamDescriptor {
    /// Stream name, as in the manifest (`[a-z0-9_]+`); the output folder is named after it.
    pub name: String,
    /// The Arrow schema every batch of this stream has.
    pub schema: SchemaRef,
    /// The column the incremental cursor follows, if the stream is incremental.
    #[serde(default)]
    pub cursor_field: Option<String>,
    /// Primary key columns, if known.
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// How runs land in the stream's table when the run's options do not say, if the
    /// connector's config chooses (e.g. per stream); otherwise the manifest's declaration
    /// and then the cursor decide.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_disposition: Option<crate::options::WriteDisposition>,
}

/// A unit of work within one stream: what one `read` call extracts and what Glue fans out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Partition {
    /// Identifier, unique within a plan and stable for the same work: it is part of the
    /// output file names (characters `[A-Za-z0-9._=-]`, at most 100).
    pub id: String,
    /// Hive-style path segments for this partition's files, e.g. `[["dt", "2024-01-01"]]`.
    #[serde(default)]
    pub hive: Vec<(String, String)>,
    /// Connector-defined description of the work (key range, file list...).
    #[serde(default)]
    pub spec: serde_json::Value,
}

/// The result of `plan`: the partitions to read and the stream cursor once all are read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The partitions, in order.
    pub partitions: Vec<Partition>,
    /// The stream cursor to commit once every partition is complete (e.g. the source's
    /// maximum cursor value at planning time). `None` keeps the previous cursor.
    pub cursor: Option<Cursor>,
}

/// One item of a partition's read stream.
#[derive(Debug, Clone)]
pub enum ReadItem {
    /// Rows. Every batch must have the stream's discovered schema.
    Batch(RecordBatch),
    /// A resume point: every row the partition yields *after* this point comes after
    /// the cursor, and re-reading the partition from this checkpoint yields exactly
    /// the rows not yet yielded. Emit one after every batch to allow stopping at any
    /// batch boundary; the core stops only at a checkpoint.
    Checkpoint(Cursor),
}

/// What a `read` call receives besides the partition.
#[derive(Debug, Clone)]
pub struct ReadContext {
    /// Resume point inside the partition (the last committed checkpoint), if any.
    pub checkpoint: Option<Cursor>,
    /// Fires when the run is asked to stop (SIGTERM, deadline...). The core stops pulling
    /// at the next checkpoint; connectors may watch it to end a long wait early.
    pub cancel: CancellationToken,
    /// When the run must have stopped reading (already includes the commit margin).
    pub deadline: Option<Instant>,
}

impl ReadContext {
    /// Whether the run was asked to stop or the deadline passed.
    pub fn should_stop(&self) -> bool {
        self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// A partition's read stream.
pub type ReadStream<'a> = BoxStream<'a, Result<ReadItem, ConnectorError>>;

/// What a connector author implements. Four capabilities, one typed config.
///
/// The connector value itself is usually a unit struct; everything run-specific comes in
/// through `Config`.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The connector's configuration: `#[serde(deny_unknown_fields)]`, a doc comment on
    /// every field (they become the JSON Schema descriptions).
    type Config: DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The connector manifest (`connector.toml`), usually `include_str!("../connector.toml")`.
    const MANIFEST: &'static str;

    /// Can the source be reached with this config? Runs a trivial request.
    async fn check(&self, config: &Self::Config) -> Result<(), ConnectorError>;

    /// The streams and their Arrow schemas.
    async fn discover(
        &self,
        config: &Self::Config,
    ) -> Result<Vec<StreamDescriptor>, ConnectorError>;

    /// Split `stream` into partitions covering everything after `cursor` (the last
    /// committed stream cursor; `None` on the first run).
    async fn plan(
        &self,
        config: &Self::Config,
        stream: &StreamDescriptor,
        cursor: Option<&Cursor>,
    ) -> Result<Plan, ConnectorError>;

    /// Read one partition: batches interleaved with checkpoints, starting after
    /// `ctx.checkpoint` when it is set.
    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        stream: &'a StreamDescriptor,
        partition: &'a Partition,
        ctx: ReadContext,
    ) -> ReadStream<'a>;
}
