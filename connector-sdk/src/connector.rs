//! The `Connector` trait: what a connector author implements.

use std::fmt::Debug;
use std::time::Instant;

use arrow::record_batch::RecordBatch;
use arrow_schema::SchemaRef;
use futures::stream::BoxStream;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use tokio_util::sync::CancellationToken;

use crate::error::ConnectorError;

/// A cursor, checkpoint or partition spec in its stored form: the JSON the core keeps in
/// the table's committed state and ships to other processes (Glue executors, Lambda
/// continuations). Connectors never see it: they declare their own types
/// ([`Connector::Cursor`], [`Connector::Checkpoint`], [`Connector::PartitionSpec`]) and the
/// core converts at the boundary.
pub type StoredValue = serde_json::Value;

/// What a connector's cursor, checkpoint and partition spec types must be: values the core
/// stores as JSON and reads back. Implemented for every type with these bounds; derive
/// `Serialize`, `Deserialize`, `Clone` and `Debug`.
///
/// A value must read back equal to what was written, and must not serialize to JSON `null`
/// (stored, `null` reads back as "none": the core refuses it).
pub trait Stored: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static {}

impl<T: Serialize + DeserializeOwned + Clone + Debug + Send + Sync + 'static> Stored for T {}

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
///
/// `S` is the connector's [`Connector::PartitionSpec`]; the core keeps partitions in their
/// stored form, `Partition<StoredValue>` (the default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(bound(
    serialize = "S: Serialize",
    deserialize = "S: DeserializeOwned + Default"
))]
pub struct Partition<S = StoredValue> {
    /// Identifier, unique within a plan and stable for the same work: it is part of the
    /// output file names (characters `[A-Za-z0-9._=-]`, at most 100).
    pub id: String,
    /// Hive-style path segments for this partition's files, e.g. `[["dt", "2024-01-01"]]`.
    #[serde(default)]
    pub hive: Vec<(String, String)>,
    /// Connector-defined description of the work (key range, file list...).
    #[serde(default)]
    pub spec: S,
}

impl<S> Partition<S> {
    /// The same partition with its spec converted by `f`.
    pub fn try_map_spec<T, E>(
        &self,
        f: impl FnOnce(&S) -> Result<T, E>,
    ) -> Result<Partition<T>, E> {
        Ok(Partition {
            id: self.id.clone(),
            hive: self.hive.clone(),
            spec: f(&self.spec)?,
        })
    }
}

/// The result of `plan`: the partitions to read and the stream cursor once all are read.
/// `S` is the connector's partition spec type, `K` its cursor type.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan<S, K> {
    /// The partitions, in order.
    pub partitions: Vec<Partition<S>>,
    /// The stream cursor to commit once every partition is complete (e.g. the source's
    /// maximum cursor value at planning time). `None` keeps the previous cursor.
    pub cursor: Option<K>,
}

/// One item of a partition's read stream. `K` is the connector's checkpoint type.
#[derive(Debug, Clone)]
pub enum ReadItem<K> {
    /// Rows. Every batch must have the stream's discovered schema.
    Batch(RecordBatch),
    /// A resume point: every row the partition yields *after* this point comes after
    /// the cursor, and re-reading the partition from this checkpoint yields exactly
    /// the rows not yet yielded. Emit one after every batch to allow stopping at any
    /// batch boundary; the core stops only at a checkpoint.
    Checkpoint(K),
}

/// What a `read` call receives besides the partition. `K` is the connector's checkpoint
/// type.
#[derive(Debug, Clone)]
pub struct ReadContext<K> {
    /// Resume point inside the partition (the last committed checkpoint), if any.
    pub checkpoint: Option<K>,
    /// Fires when the run is asked to stop (SIGTERM, another partition failed...) and when a
    /// commit interval's volume of files is reached (its time limit is in `deadline`). The
    /// core stops pulling at the next checkpoint; connectors may watch it to end a long wait
    /// early, by yielding a checkpoint (or an error) — never by ending the stream: a stream
    /// that ends says the partition is read to its end, and the rows after that point would
    /// never be read.
    pub cancel: CancellationToken,
    /// When the run must have stopped reading (already includes the commit margin), or the
    /// current commit interval ends, whichever is first.
    pub deadline: Option<Instant>,
}

impl<K> ReadContext<K> {
    /// Whether the run was asked to stop, a commit interval is due or the deadline passed.
    /// Answer it with a checkpoint, not by ending the stream (see [`Self::cancel`]).
    pub fn should_stop(&self) -> bool {
        self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// A partition's read stream; `K` is the connector's checkpoint type.
pub type ReadStream<'a, K> = BoxStream<'a, Result<ReadItem<K>, ConnectorError>>;

/// The [`Plan`] type of connector `C`.
pub type PlanOf<C> = Plan<<C as Connector>::PartitionSpec, <C as Connector>::Cursor>;

/// What a connector author implements: a typed config, typed state (cursor, partition spec,
/// checkpoint, per-run value) and five capabilities.
///
/// The connector value itself is usually a unit struct; everything run-specific comes in
/// through `Config`, and what a run's partitions share in one process through
/// [`Connector::Run`]. The core stores cursors, specs and checkpoints as JSON in the
/// table's committed state and hands them back typed: a connector never parses JSON.
#[async_trait::async_trait]
pub trait Connector: Send + Sync + 'static {
    /// The connector's configuration: `#[serde(deny_unknown_fields)]`, a doc comment on
    /// every field (they become the JSON Schema descriptions).
    type Config: DeserializeOwned + JsonSchema + Send + Sync + 'static;

    /// The stream cursor: where the last complete plan ended (e.g. the last `updated_at`
    /// seen). Committed with the data; the next `plan` receives it.
    type Cursor: Stored;

    /// A partition's description of its work (a key range, a file list...), in
    /// [`Partition::spec`]. Kept in pending plans and shipped to Glue executors.
    type PartitionSpec: Stored;

    /// A resume point inside a partition (e.g. the key of the last row read), emitted as
    /// [`ReadItem::Checkpoint`] and handed back in [`ReadContext::checkpoint`].
    type Checkpoint: Stored;

    /// What the partitions of one run share in one process (an exported snapshot, a
    /// connection pool, a token), made by [`Connector::open_run`] and dropped when the
    /// run's reads end. `()` for none. Never a process-wide static: two runs in one
    /// process (a daemon's jobs, warm Lambda invocations) each get their own.
    type Run: Send + Sync + 'static;

    /// The connector manifest (`connector.toml`), usually `include_str!("../connector.toml")`.
    const MANIFEST: &'static str;

    /// The source endpoints (`host:port`) this config makes the connector reach, for the
    /// check before any I/O that they are declared in the manifest's `[[networking]]` (and
    /// allowed by the deployment). No I/O, no name resolution. The default, none, is for
    /// connectors without a remote source (synthetic data); a connector that connects
    /// somewhere must list every endpoint it may connect to.
    fn source_endpoints(&self, _config: &Self::Config) -> Vec<String> {
        Vec::new()
    }

    /// The config restricted to the S3 objects an event names (`(bucket, key)` pairs, keys
    /// decoded), for connectors that ingest S3 objects: the Lambda runner calls it when it
    /// is invoked by an S3 notification (directly, through SQS or through EventBridge).
    /// The default, `None`, means the connector takes no S3 events (the invocation fails
    /// with a clear message).
    fn for_objects(
        &self,
        config: &Self::Config,
        objects: &[(String, String)],
    ) -> Option<Result<Self::Config, ConnectorError>> {
        let _ = (config, objects);
        None
    }

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
        cursor: Option<&Self::Cursor>,
    ) -> Result<PlanOf<Self>, ConnectorError>;

    /// Open a run of `stream` in this process: called once before its first `read` (by
    /// every process that reads partitions of the run), and the value is dropped when the
    /// reads end. Return `Ok(())` when `Run = ()`. Open lazily what only some reads need.
    async fn open_run(
        &self,
        config: &Self::Config,
        stream: &StreamDescriptor,
    ) -> Result<Self::Run, ConnectorError>;

    /// The point in time `cursor` stands for, when the cursor follows time (e.g. the
    /// maximum `updated_at` read). The run report's `cursor_lag_secs`, and the metric every
    /// runner exports from it, is how far it is behind the end of the run. Default: not
    /// known (no lag is reported).
    fn cursor_time(&self, cursor: &Self::Cursor) -> Option<chrono::DateTime<chrono::Utc>> {
        let _ = cursor;
        None
    }

    /// Read one partition: batches interleaved with checkpoints, starting after
    /// `ctx.checkpoint` when it is set. `run` is this run's value from `open_run`.
    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        run: &'a Self::Run,
        stream: &'a StreamDescriptor,
        partition: &'a Partition<Self::PartitionSpec>,
        ctx: ReadContext<Self::Checkpoint>,
    ) -> ReadStream<'a, Self::Checkpoint>;
}

/// Check the stream names a connector's config declares (connectors whose streams come
/// from the config): each `[a-z][a-z0-9_]*` (a table folder name) and none twice.
pub fn check_config_stream_names<'a>(
    names: impl IntoIterator<Item = &'a str>,
) -> Result<(), ConnectorError> {
    let mut seen = std::collections::BTreeSet::new();
    for name in names {
        let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(ConnectorError::config(format!(
                "stream name {name:?} must match [a-z][a-z0-9_]*"
            )));
        }
        if !seen.insert(name) {
            return Err(ConnectorError::config(format!(
                "stream `{name}` is declared twice; stream names must be unique"
            )));
        }
    }
    Ok(())
}

/// The config entry of stream `name` among `streams` (named by `name_of`), or an error
/// listing the streams the config declares.
pub fn config_stream<'a, T>(
    streams: &'a [T],
    name: &str,
    name_of: impl Fn(&T) -> &str,
) -> Result<&'a T, ConnectorError> {
    streams.iter().find(|s| name_of(s) == name).ok_or_else(|| {
        let known: Vec<&str> = streams.iter().map(&name_of).collect();
        ConnectorError::config(format!(
            "unknown stream `{name}`; the config declares {}",
            known.join(", ")
        ))
    })
}
