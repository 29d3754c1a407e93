//! The conformance kit: free async functions a connector author calls from their own
//! tests, with their connector and a config, to show the connector keeps the contract the
//! core and every runner rely on.
//!
//! Enabled by the `conformance` feature (add `connector-sdk = { ..., features =
//! ["conformance"] }` to your `[dev-dependencies]`).
//!
//! | check | needs S3 | what it proves |
//! |---|---|---|
//! | [`schema_matches`] | no | `check` accepts the config; `discover` agrees with the manifest; every batch `read` yields has the discovered schema |
//! | [`parquet_round_trip`] | yes | a run through the real core commits Parquet files holding exactly the rows `read` yields, with the discovered schema |
//! | [`resume_from_checkpoints`] | no | re-reading a partition from any checkpoint yields exactly the rows after it; re-planning from the final cursor yields nothing |
//! | [`stop_and_resume`] | yes | runs stopped after every batch and resumed until complete commit every row exactly once |
//! | [`incremental_cursor`] | yes | after the source grows, the next run commits exactly the new rows |
//! | [`cancellation`] | no | after cancellation, `read` reaches a checkpoint (where the core can stop) within a bound, and never ends a partition early |
//! | [`retried_partition`] | yes | extracting the same partition of the same plan twice writes the same keys with the same bytes (Glue retries tasks) |
//! | [`bad_config_rejected`] | no | a bad config gives a one-line error, not a panic and not success |
//!
//! "Rows" are compared as multisets of [`RowHash`]es, a stable hash of every column of a
//! row; a failure names how many rows were lost and how many were extra or duplicated,
//! and shows the first few.
//!
//! Configs are given as JSON ([`serde_json::Value`]), exactly as a runner receives them,
//! and parsed with [`config_from_value`](crate::config_from_value) for each use. Keep them
//! small (a few thousand rows, several partitions, several batches per partition): the
//! kit reads the whole plan several times. Connectors must be `Clone` (they usually are
//! unit structs; a connector that is not can be shared as an `Arc`, which every core
//! takes).
//!
//! Checks that need S3 take an [`S3Target`]; [`LocalS3Target::start`] gives one backed by a
//! real local S3-compatible server. Each call writes under its own fresh prefix.
//!
//! The [`conformance_tests!`](crate::conformance_tests) macro expands into one `#[test]`
//! per check, so one failure does not hide the others:
//!
//! ```ignore
//! connector_sdk::conformance_tests! {
//!     connector: my_connector::MyConnector,
//!     config: serde_json::json!({"rows": 2000, "batch_size": 100}),
//!     bad_config: serde_json::json!({"rows": "many"}),
//!     // optional: the same source after it grew, for `incremental_cursor`
//!     grown_config: serde_json::json!({"rows": 2600, "batch_size": 100}),
//! }
//! ```
//!
//! Or call a check directly:
//!
//! ```
//! # use connector_sdk::conformance;
//! # async fn demo<C: connector_sdk::Connector + Clone>(connector: C) {
//! let config = serde_json::json!({"rows": 2000});
//! match conformance::schema_matches(&connector, &config).await {
//!     Ok(report) => println!("{report}"),
//!     Err(failure) => panic!("{failure}"),
//! }
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use arrow_schema::Schema;
use futures::StreamExt;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::{
    Connector, ConnectorError, ConnectorManifest, Dataset, ExtractCore, ExtractOptions,
    OutputLocation, Partition, PlanOf, ReadContext, ReadItem, ReadStream, RunStatus, S3Store,
    StopSignal, Stored, StreamDescriptor, config_from_value, schema_difference,
};

mod local;
mod rows;

pub use local::{LOCAL_BUCKET, LocalS3Target};
pub use rows::{RowDiff, RowHash, RowSet, row_hashes};

/// The runner label the kit's runs record in manifests.
pub const RUNNER_LABEL: &str = "conformance";

/// How long [`cancellation`] allows by default between cancelling and the next checkpoint.
pub const DEFAULT_CANCEL_BOUND: Duration = Duration::from_secs(5);

/// The checks of the kit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Check {
    /// [`schema_matches`]
    SchemaMatches,
    /// [`parquet_round_trip`]
    ParquetRoundTrip,
    /// [`resume_from_checkpoints`]
    ResumeFromCheckpoints,
    /// [`stop_and_resume`]
    StopAndResume,
    /// [`incremental_cursor`]
    IncrementalCursor,
    /// [`cancellation`]
    Cancellation,
    /// [`retried_partition`]
    RetriedPartition,
    /// [`bad_config_rejected`]
    BadConfigRejected,
}

impl Check {
    /// The check's name (the function's name).
    pub fn name(self) -> &'static str {
        match self {
            Check::SchemaMatches => "schema_matches",
            Check::ParquetRoundTrip => "parquet_round_trip",
            Check::ResumeFromCheckpoints => "resume_from_checkpoints",
            Check::StopAndResume => "stop_and_resume",
            Check::IncrementalCursor => "incremental_cursor",
            Check::Cancellation => "cancellation",
            Check::RetriedPartition => "retried_partition",
            Check::BadConfigRejected => "bad_config_rejected",
        }
    }
}

impl fmt::Display for Check {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a passing check looked at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConformanceReport {
    /// The check.
    pub check: Check,
    /// The streams checked.
    pub streams: Vec<String>,
    /// Partitions read.
    pub partitions: usize,
    /// Rows compared.
    pub rows: u64,
    /// What else is worth knowing (e.g. the measured stop latency).
    pub notes: Vec<String>,
}

impl ConformanceReport {
    fn new(check: Check) -> Self {
        Self {
            check,
            streams: vec![],
            partitions: 0,
            rows: 0,
            notes: vec![],
        }
    }
}

impl fmt::Display for ConformanceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: ok (streams {}, {} partitions, {} rows)",
            self.check,
            self.streams.join(", "),
            self.partitions,
            self.rows
        )?;
        for n in &self.notes {
            write!(f, "; {n}")?;
        }
        Ok(())
    }
}

/// Why a check failed. The message says precisely what differed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConformanceFailure {
    /// The kit could not set itself up (local S3, manifest...).
    #[error("setup failed: {message}")]
    Setup {
        /// What failed.
        message: String,
    },
    /// The (good) config given to the kit was refused or is unsuitable.
    #[error("the config given to the kit is unusable: {message}")]
    Config {
        /// Why.
        message: String,
    },
    /// A connector method failed where it should have succeeded.
    #[error("{step}: the connector failed: {message}")]
    Connector {
        /// What the kit was doing, e.g. ``plan of stream `orders` ``.
        step: String,
        /// The connector's error.
        message: String,
    },
    /// The SDK core failed (S3, Parquet, commit) in a check that runs it.
    #[error("{step}: the extract core failed: {message}")]
    Core {
        /// What the kit was doing.
        step: String,
        /// The core's error.
        message: String,
    },
    /// The config yields no rows, so the checks would prove nothing.
    #[error(
        "the config yields no rows in any stream; give the kit a config with data (a few thousand rows, several partitions and batches)"
    )]
    NoRows,
    /// `discover` disagrees with the manifest, or a descriptor is inconsistent.
    #[error("discover does not match the manifest: {detail}")]
    StreamsDiffer {
        /// What differs.
        detail: String,
    },
    /// A batch `read` yielded does not have the discovered schema.
    #[error(
        "stream `{stream}`, partition `{partition}`, batch {batch}: the batch schema differs from the discovered schema: {detail}"
    )]
    SchemaMismatch {
        /// The stream.
        stream: String,
        /// The partition.
        partition: String,
        /// Index of the batch within the partition (0-based).
        batch: usize,
        /// What differs.
        detail: String,
    },
    /// The committed Parquet files do not have the discovered schema.
    #[error(
        "stream `{stream}`: the committed Parquet schema differs from the discovered schema: {detail}"
    )]
    ParquetSchemaDiffers {
        /// The stream.
        stream: String,
        /// What differs.
        detail: String,
    },
    /// Rows differ from what was expected: lost, extra or duplicated.
    #[error("{check}: stream `{stream}`: {context}: {diff}")]
    RowsDiffer {
        /// The check that compared them.
        check: Check,
        /// The stream.
        stream: String,
        /// Which comparison (e.g. the checkpoint resumed from).
        context: String,
        /// The difference.
        diff: Box<RowDiff>,
    },
    /// A run asked to stop after the first batch of each partition read a partition to its
    /// end, although it could have stopped (a checkpoint with batches after it).
    #[error(
        "stream `{stream}`: a run asked to stop after the first batch of each partition read partition `{partition}` to its end, although it has a checkpoint after its first batch with more batches after it: the stop was ignored"
    )]
    StopIgnored {
        /// The stream.
        stream: String,
        /// A partition that could have stopped.
        partition: String,
    },
    /// After cancellation, `read` did not reach a checkpoint within the bound.
    #[error(
        "stream `{stream}`, partition `{partition}`: cancellation ignored: no checkpoint and no end of stream {waited:?} after the cancel token fired (bound {bound:?}, {rows_after_cancel} more rows yielded meanwhile); the core can only stop at a checkpoint: emit one after every batch and watch ReadContext::cancel while waiting on the source"
    )]
    CancellationIgnored {
        /// The stream.
        stream: String,
        /// The partition.
        partition: String,
        /// The bound.
        bound: Duration,
        /// How long the kit waited.
        waited: Duration,
        /// Rows yielded after cancellation.
        rows_after_cancel: u64,
    },
    /// After cancellation, `read` ended the partition before all of its rows: the core
    /// would mark the partition done and those rows would be lost.
    #[error(
        "stream `{stream}`, partition `{partition}`: read ended the stream after cancellation having yielded {yielded} of the partition's {expected} rows; the core treats the end of the stream as the end of the partition, so the rest would be lost: stop by yielding a checkpoint, not by ending the stream"
    )]
    EndedEarlyOnCancel {
        /// The stream.
        stream: String,
        /// The partition.
        partition: String,
        /// Rows yielded.
        yielded: usize,
        /// Rows the partition has.
        expected: usize,
    },
    /// After cancellation, `read` returned an error (the core would fail the run).
    #[error(
        "stream `{stream}`, partition `{partition}`: read returned an error after cancellation ({message}); a stop is not a failure: yield a checkpoint instead"
    )]
    ErrorOnCancel {
        /// The stream.
        stream: String,
        /// The partition.
        partition: String,
        /// The error.
        message: String,
    },
    /// The runs of [`stop_and_resume`] did not finish the plan.
    #[error(
        "stream `{stream}`: {runs} runs, each stopped after its first batch, did not complete the plan; a resumed run must make progress"
    )]
    NoProgress {
        /// The stream.
        stream: String,
        /// Runs made.
        runs: usize,
    },
    /// A retried partition wrote different files.
    #[error(
        "stream `{stream}`, partition `{partition}`: a retry of the partition wrote different files: {detail}"
    )]
    RetryDiffers {
        /// The stream.
        stream: String,
        /// The partition.
        partition: String,
        /// What differs.
        detail: String,
    },
    /// The bad config was accepted by `check`.
    #[error(
        "the bad config was accepted: it parsed and `check` returned Ok; validate it in `check` (without I/O where possible)"
    )]
    BadConfigAccepted,
    /// The connector panicked on a bad config.
    #[error(
        "the connector panicked in {step} on the bad config instead of returning an error: {message}"
    )]
    BadConfigPanicked {
        /// `parse`, `check` or `discover`.
        step: &'static str,
        /// The panic message.
        message: String,
    },
    /// An error message spans several lines.
    #[error("the error for the bad config spans several lines; make it one line: {message:?}")]
    MultiLineError {
        /// The message.
        message: String,
    },
}

/// Where checks that run the real core write: a store and a location in it. Every check
/// writes under its own new prefix below `output`.
#[derive(Debug, Clone)]
pub struct S3Target {
    /// The S3 client.
    pub store: S3Store,
    /// The root location (the bucket must exist).
    pub output: OutputLocation,
}

impl S3Target {
    fn scoped(&self, check: Check) -> OutputLocation {
        OutputLocation {
            bucket: self.output.bucket.clone(),
            prefix: self.output.key(&format!(
                "{}-{}-{:08x}",
                check.name().replace('_', "-"),
                chrono::Utc::now().format("%H%M%S"),
                rand::random::<u32>()
            )),
        }
    }
}

type Failure = ConformanceFailure;

fn parse<C: Connector>(config: &Value) -> Result<C::Config, Failure> {
    config_from_value::<C>(config.clone()).map_err(|e| Failure::Config {
        message: e.to_string(),
    })
}

fn connector_failed(step: impl Into<String>) -> impl FnOnce(ConnectorError) -> Failure {
    let step = step.into();
    move |e| Failure::Connector {
        step,
        message: e.to_string(),
    }
}

fn core_failed(step: impl Into<String>) -> impl FnOnce(crate::Error) -> Failure {
    let step = step.into();
    move |e| Failure::Core {
        step,
        message: e.to_string(),
    }
}

fn arrow_failed(step: &str, e: impl fmt::Display) -> Failure {
    Failure::Setup {
        message: format!("{step}: hashing rows failed: {e}"),
    }
}

/// The streams to check: every discovered stream.
async fn streams<C: Connector>(
    connector: &C,
    config: &C::Config,
) -> Result<Vec<StreamDescriptor>, Failure> {
    connector
        .discover(config)
        .await
        .map_err(connector_failed("discover"))
}

/// The connector's value for a run of `stream`.
async fn open_run<C: Connector>(
    connector: &C,
    config: &C::Config,
    stream: &StreamDescriptor,
) -> Result<C::Run, Failure> {
    connector
        .open_run(config, stream)
        .await
        .map_err(connector_failed(format!(
            "open_run of stream `{}`",
            stream.name
        )))
}

/// A connector's cursor, checkpoint or partition spec after the trip through its stored
/// JSON form that the core makes (committed state, plans shipped to other processes): the
/// value must serialize, must not be JSON `null`, and must read back to the same JSON.
fn through_storage<T: Stored>(what: &str, value: &T) -> Result<T, Failure> {
    let broken = |why: String| Failure::Connector {
        step: format!("storing a {what}"),
        message: format!("the {what} {value:?} {why}"),
    };
    let json = serde_json::to_value(value)
        .map_err(|e| broken(format!("does not serialize to JSON: {e}")))?;
    if json.is_null() && what != "partition spec" {
        return Err(broken(
            "serializes to JSON null, which reads back as none".into(),
        ));
    }
    let back: T = serde_json::from_value(json.clone())
        .map_err(|e| broken(format!("does not read back from its JSON {json}: {e}")))?;
    let again = serde_json::to_value(&back)
        .map_err(|e| broken(format!("does not serialize after reading back: {e}")))?;
    if again != json {
        return Err(broken(format!("reads back from {json} as {again}")));
    }
    Ok(back)
}

/// A stored value, for messages.
fn json_of<T: Stored>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| format!("{value:?}"))
}

/// Every item of one partition's read, reading to the end.
async fn read_partition<C: Connector>(
    connector: &C,
    config: &C::Config,
    run: &C::Run,
    stream: &StreamDescriptor,
    partition: &Partition<C::PartitionSpec>,
    checkpoint: Option<C::Checkpoint>,
) -> Result<Vec<ReadItem<C::Checkpoint>>, Failure> {
    let ctx = ReadContext {
        checkpoint: checkpoint.clone(),
        cancel: CancellationToken::new(),
        deadline: None,
    };
    let mut s = connector.read(config, run, stream, partition, ctx);
    let mut items = Vec::new();
    while let Some(item) = s.next().await {
        items.push(item.map_err(connector_failed(format!(
            "read of stream `{}`, partition `{}`{}",
            stream.name,
            partition.id,
            checkpoint
                .as_ref()
                .map(|c| format!(" from checkpoint {}", json_of(c)))
                .unwrap_or_default()
        )))?);
    }
    Ok(items)
}

fn rows_of<'a, K: 'a>(
    items: impl IntoIterator<Item = &'a ReadItem<K>>,
    step: &str,
) -> Result<RowSet, Failure> {
    let mut set = RowSet::new();
    for item in items {
        if let ReadItem::Batch(b) = item {
            set.push(b).map_err(|e| arrow_failed(step, e))?;
        }
    }
    Ok(set)
}

/// A fresh plan, its partition specs and cursor taken through their stored form as the
/// core does.
async fn plan_of<C: Connector>(
    connector: &C,
    config: &C::Config,
    stream: &StreamDescriptor,
    cursor: Option<&C::Cursor>,
) -> Result<PlanOf<C>, Failure> {
    let plan = connector
        .plan(config, stream, cursor)
        .await
        .map_err(connector_failed(format!(
            "plan of stream `{}`",
            stream.name
        )))?;
    Ok(PlanOf::<C> {
        partitions: plan
            .partitions
            .iter()
            .map(|p| p.try_map_spec(|spec| through_storage("partition spec", spec)))
            .collect::<Result<_, _>>()?,
        cursor: plan
            .cursor
            .as_ref()
            .map(|c| through_storage("cursor", c))
            .transpose()?,
    })
}

/// Every row of a fresh plan of `stream` after `cursor`, read directly from the connector.
async fn reference_rows<C: Connector>(
    connector: &C,
    config: &C::Config,
    stream: &StreamDescriptor,
    cursor: Option<&C::Cursor>,
) -> Result<(PlanOf<C>, RowSet), Failure> {
    let plan = plan_of(connector, config, stream, cursor).await?;
    let run = open_run(connector, config, stream).await?;
    let mut items = Vec::new();
    for p in &plan.partitions {
        items.extend(read_partition(connector, config, &run, stream, p, None).await?);
    }
    let rows = rows_of(&items, &stream.name)?;
    Ok((plan, rows))
}

fn fields_difference(expected: &Schema, actual: &Schema) -> Option<String> {
    let (e, a) = (expected.fields(), actual.fields());
    if e.len() != a.len() {
        return Some(format!("expected {} columns, got {}", e.len(), a.len()));
    }
    for (e, a) in e.iter().zip(a.iter()) {
        if e.name() != a.name() || e.data_type() != a.data_type() {
            return Some(format!(
                "expected column `{}` {}, got `{}` {}",
                e.name(),
                e.data_type(),
                a.name(),
                a.data_type()
            ));
        }
        if e.is_nullable() != a.is_nullable() {
            return Some(format!(
                "column `{}`: expected nullable={}, got nullable={}",
                e.name(),
                e.is_nullable(),
                a.is_nullable()
            ));
        }
    }
    None
}

/// The rows of the files listed by the committed manifests of `stream` with sequence
/// greater than `after_sequence`, and the schema the files carry.
async fn committed_rows(
    store: &S3Store,
    output: &OutputLocation,
    stream: &str,
    after_sequence: u64,
) -> Result<(Option<Arc<Schema>>, RowSet), Failure> {
    let step = format!("reading back the committed dataset of `{stream}`");
    let dataset = Dataset::new(store.clone(), output.clone(), stream);
    let manifests = dataset.manifests().await.map_err(core_failed(&step))?;
    let mut rows = RowSet::new();
    let mut schema = None;
    for m in manifests
        .into_iter()
        .filter(|m| m.sequence > after_sequence)
    {
        for f in m.files {
            let body = store
                .get(&output.bucket, &f.key)
                .await
                .map_err(core_failed(&step))?
                .ok_or_else(|| Failure::Core {
                    step: step.clone(),
                    message: format!("committed file {} is missing", f.key),
                })?;
            let reader = ParquetRecordBatchReaderBuilder::try_new(body)
                .and_then(|b| b.build())
                .map_err(|e| Failure::Core {
                    step: step.clone(),
                    message: format!("{} is not readable Parquet: {e}", f.key),
                })?;
            let mut n = 0u64;
            for b in reader {
                let b: RecordBatch = b.map_err(|e| Failure::Core {
                    step: step.clone(),
                    message: format!("decoding {}: {e}", f.key),
                })?;
                n += b.num_rows() as u64;
                schema.get_or_insert_with(|| b.schema());
                rows.push(&b).map_err(|e| arrow_failed(&step, e))?;
            }
            if n != f.rows {
                return Err(Failure::Core {
                    step,
                    message: format!(
                        "the manifest lists {} rows for {}, it holds {n}",
                        f.rows, f.key
                    ),
                });
            }
        }
    }
    Ok((schema, rows))
}

fn core_for<C: Connector + Clone>(
    connector: &C,
    config: &Value,
    target: &S3Target,
    output: OutputLocation,
) -> Result<ExtractCore<C>, Failure> {
    ExtractCore::new(
        connector.clone(),
        parse::<C>(config)?,
        target.store.clone(),
        ExtractOptions::new(output),
        RUNNER_LABEL,
    )
    .map_err(core_failed("creating the extract core"))
}

/// **Schema**: `check` accepts `config`; `discover` returns every stream the manifest
/// declares (and, unless the manifest has `dynamic_streams`, no other), with valid names
/// and a cursor field and primary key that are columns of the schema; every batch `read`
/// yields for every partition of a fresh plan has exactly the discovered schema (column
/// names, types, and no nulls in non-nullable columns). Fails with
/// [`ConformanceFailure::SchemaMismatch`] naming the stream, partition, batch and column,
/// or [`ConformanceFailure::NoRows`] when the config yields nothing to check.
pub async fn schema_matches<C: Connector + Clone>(
    connector: &C,
    config: &Value,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::SchemaMatches);
    let cfg = parse::<C>(config)?;
    connector
        .check(&cfg)
        .await
        .map_err(connector_failed("check with the good config"))?;
    let manifest = ConnectorManifest::of::<C>().map_err(|e| Failure::Setup {
        message: e.to_string(),
    })?;
    let streams = streams(connector, &cfg).await?;
    let names: Vec<&str> = streams.iter().map(|s| s.name.as_str()).collect();
    for declared in manifest.stream_names() {
        if !names.contains(&declared.as_str()) {
            return Err(Failure::StreamsDiffer {
                detail: format!(
                    "the manifest declares stream `{declared}`, discover returned [{}]",
                    names.join(", ")
                ),
            });
        }
    }
    for s in &streams {
        if !manifest.dynamic_streams && !manifest.stream_names().contains(&s.name) {
            return Err(Failure::StreamsDiffer {
                detail: format!(
                    "discover returned stream `{}`, which the manifest does not declare (declare it or set dynamic_streams = true)",
                    s.name
                ),
            });
        }
        if !crate::manifest::is_stream_name(&s.name) {
            return Err(Failure::StreamsDiffer {
                detail: format!("stream name {:?} does not match [a-z][a-z0-9_]*", s.name),
            });
        }
        for col in s.cursor_field.iter().chain(&s.primary_key) {
            if s.schema.field_with_name(col).is_err() {
                return Err(Failure::StreamsDiffer {
                    detail: format!(
                        "stream `{}` names column `{col}` as cursor field or primary key, but its schema has no such column",
                        s.name
                    ),
                });
            }
        }
    }
    for stream in &streams {
        report.streams.push(stream.name.clone());
        let plan = plan_of(connector, &cfg, stream, None).await?;
        let run = open_run(connector, &cfg, stream).await?;
        for p in &plan.partitions {
            report.partitions += 1;
            let items = read_partition(connector, &cfg, &run, stream, p, None).await?;
            let batches = items.iter().filter_map(|i| match i {
                ReadItem::Batch(b) => Some(b),
                ReadItem::Checkpoint(_) => None,
            });
            for (i, b) in batches.enumerate() {
                if let Some(detail) = schema_difference(&stream.schema, b) {
                    return Err(Failure::SchemaMismatch {
                        stream: stream.name.clone(),
                        partition: p.id.clone(),
                        batch: i,
                        detail,
                    });
                }
                report.rows += b.num_rows() as u64;
            }
        }
    }
    if report.rows == 0 {
        return Err(Failure::NoRows);
    }
    Ok(report)
}

/// **Parquet round trip**: runs every stream through the real core ([`ExtractCore::run`])
/// into `target`, reads the committed Parquet files back, and compares them with the rows
/// `read` yields for the same plan: the file schema must equal the discovered one (names,
/// types, nullability) and the rows must be the same multiset.
pub async fn parquet_round_trip<C: Connector + Clone>(
    connector: &C,
    config: &Value,
    target: &S3Target,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::ParquetRoundTrip);
    let cfg = parse::<C>(config)?;
    let output = target.scoped(Check::ParquetRoundTrip);
    let core = core_for(connector, config, target, output.clone())?;
    for stream in streams(connector, &cfg).await? {
        let (plan, expected) = reference_rows(connector, &cfg, &stream, None).await?;
        let run = core
            .run(&stream.name, &StopSignal::new())
            .await
            .map_err(core_failed(format!("extract of stream `{}`", stream.name)))?;
        if run.status != RunStatus::Complete {
            return Err(Failure::Core {
                step: format!("extract of stream `{}`", stream.name),
                message: format!("the run ended {:?} without a stop signal", run.status),
            });
        }
        let (schema, actual) = committed_rows(&target.store, &output, &stream.name, 0).await?;
        if let Some(schema) = schema
            && let Some(detail) = fields_difference(&stream.schema, &schema)
        {
            return Err(Failure::ParquetSchemaDiffers {
                stream: stream.name.clone(),
                detail,
            });
        }
        let diff = expected.diff(&actual);
        if !diff.is_empty() {
            return Err(Failure::RowsDiffer {
                check: Check::ParquetRoundTrip,
                stream: stream.name.clone(),
                context: "committed Parquet rows vs the rows read yields".into(),
                diff: Box::new(diff),
            });
        }
        report.streams.push(stream.name.clone());
        report.partitions += plan.partitions.len();
        report.rows += actual.len() as u64;
    }
    if report.rows == 0 {
        return Err(Failure::NoRows);
    }
    Ok(report)
}

/// **Resume from checkpoints** (no S3): for every partition of a fresh plan, re-reads the
/// partition from its first, middle and last checkpoint and requires exactly the rows the
/// full read yielded after that checkpoint — none lost, none repeated. Then plans again
/// from the plan's final cursor and requires that it yields no rows (the source did not
/// change). Fails with [`ConformanceFailure::RowsDiffer`] naming the checkpoint.
pub async fn resume_from_checkpoints<C: Connector + Clone>(
    connector: &C,
    config: &Value,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::ResumeFromCheckpoints);
    let cfg = parse::<C>(config)?;
    let mut checkpoints = 0usize;
    for stream in streams(connector, &cfg).await? {
        report.streams.push(stream.name.clone());
        let plan = plan_of(connector, &cfg, &stream, None).await?;
        let run = open_run(connector, &cfg, &stream).await?;
        for p in &plan.partitions {
            report.partitions += 1;
            let items = read_partition(connector, &cfg, &run, &stream, p, None).await?;
            let full = rows_of(&items, &stream.name)?;
            report.rows += full.len() as u64;
            // (checkpoint as the core stores it, rows yielded before it)
            let mut points = Vec::new();
            let mut rows_before = 0usize;
            for item in &items {
                match item {
                    ReadItem::Batch(b) => rows_before += b.num_rows(),
                    ReadItem::Checkpoint(c) => {
                        points.push((through_storage("checkpoint", c)?, rows_before))
                    }
                }
            }
            if points.is_empty() {
                if !full.is_empty() {
                    report.notes.push(format!(
                        "partition `{}` yields no checkpoint: a stop waits for its end",
                        p.id
                    ));
                }
                continue;
            }
            let mut chosen = vec![0, points.len() / 2, points.len() - 1];
            chosen.dedup();
            for i in chosen {
                let (cursor, before) = &points[i];
                let resumed =
                    read_partition(connector, &cfg, &run, &stream, p, Some(cursor.clone())).await?;
                let actual = rows_of(&resumed, &stream.name)?;
                let expected = full.tail(*before);
                let diff = expected.diff(&actual);
                if !diff.is_empty() {
                    return Err(Failure::RowsDiffer {
                        check: Check::ResumeFromCheckpoints,
                        stream: stream.name.clone(),
                        context: format!(
                            "partition `{}` re-read from checkpoint {} (checkpoint {} of {}, after {before} of {} rows)",
                            p.id,
                            json_of(cursor),
                            i + 1,
                            points.len(),
                            full.len()
                        ),
                        diff: Box::new(diff),
                    });
                }
                checkpoints += 1;
            }
        }
        if let Some(cursor) = &plan.cursor {
            let (_, again) = reference_rows(connector, &cfg, &stream, Some(cursor)).await?;
            if !again.is_empty() {
                return Err(Failure::RowsDiffer {
                    check: Check::ResumeFromCheckpoints,
                    stream: stream.name.clone(),
                    context: format!(
                        "a new plan from the final cursor {} of a complete plan (same source) must yield no rows",
                        json_of(cursor)
                    ),
                    diff: Box::new(RowSet::new().diff(&again)),
                });
            }
        }
    }
    if report.rows == 0 {
        return Err(Failure::NoRows);
    }
    report
        .notes
        .push(format!("{checkpoints} checkpoints resumed from"));
    Ok(report)
}

/// Wraps a connector so that each read cancels the run's token right after yielding its
/// first non-empty batch: the core then stops at the next checkpoint, deterministically.
#[derive(Debug)]
struct StopAfterFirstBatch<C>(C);

#[async_trait::async_trait]
impl<C: Connector> Connector for StopAfterFirstBatch<C> {
    type Config = C::Config;
    type Cursor = C::Cursor;
    type PartitionSpec = C::PartitionSpec;
    type Checkpoint = C::Checkpoint;
    type Run = C::Run;
    const MANIFEST: &'static str = C::MANIFEST;

    async fn check(&self, config: &Self::Config) -> Result<(), ConnectorError> {
        self.0.check(config).await
    }
    async fn discover(
        &self,
        config: &Self::Config,
    ) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        self.0.discover(config).await
    }
    async fn plan(
        &self,
        config: &Self::Config,
        stream: &StreamDescriptor,
        cursor: Option<&Self::Cursor>,
    ) -> Result<PlanOf<Self>, ConnectorError> {
        self.0.plan(config, stream, cursor).await
    }
    async fn open_run(
        &self,
        config: &Self::Config,
        stream: &StreamDescriptor,
    ) -> Result<Self::Run, ConnectorError> {
        self.0.open_run(config, stream).await
    }
    fn read<'a>(
        &'a self,
        config: &'a Self::Config,
        run: &'a Self::Run,
        stream: &'a StreamDescriptor,
        partition: &'a Partition<Self::PartitionSpec>,
        ctx: ReadContext<Self::Checkpoint>,
    ) -> ReadStream<'a, Self::Checkpoint> {
        let cancel = ctx.cancel.clone();
        Box::pin(
            self.0
                .read(config, run, stream, partition, ctx)
                .map(move |item| {
                    if let Ok(ReadItem::Batch(b)) = &item
                        && b.num_rows() > 0
                    {
                        cancel.cancel();
                    }
                    item
                }),
        )
    }
}

/// **Stop and resume through the core**: runs every stream through the real core with a
/// stop after the first batch of each partition read, again and again until a run
/// completes the plan (each run resumes from the checkpoints the previous one committed),
/// then requires that the committed dataset holds exactly the rows of one uninterrupted
/// read: nothing lost at a stop, nothing read twice after a resume.
pub async fn stop_and_resume<C: Connector + Clone>(
    connector: &C,
    config: &Value,
    target: &S3Target,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::StopAndResume);
    let cfg = parse::<C>(config)?;
    let output = target.scoped(Check::StopAndResume);
    let core = ExtractCore::new(
        StopAfterFirstBatch(connector.clone()),
        parse::<C>(config)?,
        target.store.clone(),
        ExtractOptions::new(output.clone()),
        RUNNER_LABEL,
    )
    .map_err(core_failed("creating the extract core"))?;
    let mut total_runs = 0;
    for stream in streams(connector, &cfg).await? {
        let (plan, expected) = reference_rows(connector, &cfg, &stream, None).await?;
        let mut batches = 0usize;
        // A partition where a stop after its first batch must leave rows unread: a
        // checkpoint after the first batch, with a batch after that checkpoint.
        let mut stoppable: Vec<(String, u64)> = Vec::new();
        let run = open_run(connector, &cfg, &stream).await?;
        for p in &plan.partitions {
            let items = read_partition(connector, &cfg, &run, &stream, p, None).await?;
            batches += items
                .iter()
                .filter(|i| matches!(i, ReadItem::Batch(_)))
                .count();
            let is_batch = |i: &ReadItem<_>| matches!(i, ReadItem::Batch(b) if b.num_rows() > 0);
            if let Some(first) = items.iter().position(is_batch)
                && let Some(cp) = items[first..]
                    .iter()
                    .position(|i| matches!(i, ReadItem::Checkpoint(_)))
                && items[first + cp..].iter().any(is_batch)
            {
                let rows = items
                    .iter()
                    .map(|i| match i {
                        ReadItem::Batch(b) => b.num_rows() as u64,
                        ReadItem::Checkpoint(_) => 0,
                    })
                    .sum();
                stoppable.push((p.id.clone(), rows));
            }
        }
        let max_runs = batches + plan.partitions.len() + 2;
        let mut runs = 0;
        loop {
            if runs == max_runs {
                // Duplicates already committed say more than "no progress".
                let (_, actual) = committed_rows(&target.store, &output, &stream.name, 0).await?;
                let diff = expected.diff(&actual);
                if diff.extra_count > 0 {
                    return Err(Failure::RowsDiffer {
                        check: Check::StopAndResume,
                        stream: stream.name.clone(),
                        context: format!(
                            "dataset committed by {runs} runs that did not complete the plan, each stopped after one batch per partition, vs one uninterrupted read"
                        ),
                        diff: Box::new(diff),
                    });
                }
                return Err(Failure::NoProgress {
                    stream: stream.name.clone(),
                    runs,
                });
            }
            runs += 1;
            let run = core
                .run(&stream.name, &StopSignal::new())
                .await
                .map_err(core_failed(format!(
                    "run {runs} of stream `{}` (stopped after its first batch)",
                    stream.name
                )))?;
            if runs == 1 {
                // No partition that could stop after its first batch may be read whole.
                let first = Dataset::new(target.store.clone(), output.clone(), &stream.name)
                    .latest()
                    .await
                    .map_err(core_failed("reading the first run's commit"))?;
                let files = first.map(|m| m.files).unwrap_or_default();
                let read_whole = stoppable.iter().find(|(id, rows)| {
                    files
                        .iter()
                        .filter(|f| &f.partition == id)
                        .map(|f| f.rows)
                        .sum::<u64>()
                        >= *rows
                });
                if let Some((partition, _)) = read_whole {
                    return Err(Failure::StopIgnored {
                        stream: stream.name.clone(),
                        partition: partition.clone(),
                    });
                }
            }
            if run.status == RunStatus::Complete {
                break;
            }
        }
        let (_, actual) = committed_rows(&target.store, &output, &stream.name, 0).await?;
        let diff = expected.diff(&actual);
        if !diff.is_empty() {
            return Err(Failure::RowsDiffer {
                check: Check::StopAndResume,
                stream: stream.name.clone(),
                context: format!(
                    "dataset committed by {runs} runs, each stopped after one batch per partition, vs one uninterrupted read"
                ),
                diff: Box::new(diff),
            });
        }
        total_runs += runs;
        report.streams.push(stream.name.clone());
        report.partitions += plan.partitions.len();
        report.rows += actual.len() as u64;
    }
    if report.rows == 0 {
        return Err(Failure::NoRows);
    }
    report.notes.push(format!("{total_runs} runs"));
    Ok(report)
}

fn minus(all: &RowSet, old: &RowSet) -> RowSet {
    // Rows of `all` beyond those in `old`, by multiplicity.
    let mut counts: HashMap<RowHash, usize> = HashMap::new();
    for h in old.sorted_hashes() {
        *counts.entry(h).or_default() += 1;
    }
    all.filter(|h| match counts.get_mut(&h) {
        Some(c) if *c > 0 => {
            *c -= 1;
            false
        }
        _ => true,
    })
}

/// **Incremental cursor**: commits a complete run with `config`, then a run with
/// `grown_config` (the same source after new rows arrived, e.g. a higher row count) on
/// the same dataset; the second run must commit exactly the rows a full read with
/// `grown_config` has beyond those of a full read with `config`.
pub async fn incremental_cursor<C: Connector + Clone>(
    connector: &C,
    config: &Value,
    grown_config: &Value,
    target: &S3Target,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::IncrementalCursor);
    let (cfg, grown) = (parse::<C>(config)?, parse::<C>(grown_config)?);
    let output = target.scoped(Check::IncrementalCursor);
    let first = core_for(connector, config, target, output.clone())?;
    let second = core_for(connector, grown_config, target, output.clone())?;
    for stream in streams(connector, &cfg).await? {
        let (_, before) = reference_rows(connector, &cfg, &stream, None).await?;
        let (plan, after) = reference_rows(connector, &grown, &stream, None).await?;
        let expected = minus(&after, &before);
        if expected.is_empty() {
            return Err(Failure::Config {
                message: format!(
                    "stream `{}`: grown_config yields no rows beyond config; it must describe the same source with new rows",
                    stream.name
                ),
            });
        }
        let step = |n: &str| format!("{n} run of stream `{}`", stream.name);
        let r1 = first
            .run(&stream.name, &StopSignal::new())
            .await
            .map_err(core_failed(step("first")))?;
        let r2 = second
            .run(&stream.name, &StopSignal::new())
            .await
            .map_err(core_failed(step("second (grown source)")))?;
        if r1.status != RunStatus::Complete || r2.status != RunStatus::Complete {
            return Err(Failure::Core {
                step: step("first and second"),
                message: "a run ended partial without a stop signal".into(),
            });
        }
        let seq = r1.sequence.unwrap_or(0);
        let (_, actual) = committed_rows(&target.store, &output, &stream.name, seq).await?;
        let diff = expected.diff(&actual);
        if !diff.is_empty() {
            return Err(Failure::RowsDiffer {
                check: Check::IncrementalCursor,
                stream: stream.name.clone(),
                context: format!(
                    "rows committed by the run after cursor {} vs the rows the source gained",
                    r1.cursor
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "none".into())
                ),
                diff: Box::new(diff),
            });
        }
        report.streams.push(stream.name.clone());
        report.partitions += plan.partitions.len();
        report.rows += actual.len() as u64;
    }
    Ok(report)
}

/// **Cancellation**: for the first partition with data of every stream, cancels
/// [`ReadContext::cancel`] right after the first batch and requires that `read` then
/// reaches a checkpoint (where the core stops) or the real end of the partition within
/// `bound`. Fails with [`ConformanceFailure::CancellationIgnored`] when it does not,
/// [`ConformanceFailure::EndedEarlyOnCancel`] when it ends the stream before the
/// partition's last row (the core would lose the rest), or
/// [`ConformanceFailure::ErrorOnCancel`] when it returns an error.
pub async fn cancellation<C: Connector + Clone>(
    connector: &C,
    config: &Value,
    bound: Duration,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::Cancellation);
    let cfg = parse::<C>(config)?;
    for stream in streams(connector, &cfg).await? {
        let plan = plan_of(connector, &cfg, &stream, None).await?;
        let Some(partition) = plan.partitions.first() else {
            continue;
        };
        let run = open_run(connector, &cfg, &stream).await?;
        let full_rows: usize = read_partition(connector, &cfg, &run, &stream, partition, None)
            .await?
            .iter()
            .map(|i| match i {
                ReadItem::Batch(b) => b.num_rows(),
                ReadItem::Checkpoint(_) => 0,
            })
            .sum();
        let cancel = CancellationToken::new();
        let ctx = ReadContext {
            checkpoint: None,
            cancel: cancel.clone(),
            deadline: None,
        };
        let mut s = connector.read(&cfg, &run, &stream, partition, ctx);
        let (mut yielded, mut after_cancel) = (0usize, 0u64);
        let mut cancelled_at: Option<Instant> = None;
        let ignored = |waited, rows_after_cancel| Failure::CancellationIgnored {
            stream: stream.name.clone(),
            partition: partition.id.clone(),
            bound,
            waited,
            rows_after_cancel,
        };
        let latency = loop {
            let next = match cancelled_at {
                None => s.next().await,
                Some(t) => {
                    let left = bound.saturating_sub(t.elapsed());
                    match tokio::time::timeout(left, s.next()).await {
                        Ok(n) => n,
                        Err(_) => return Err(ignored(t.elapsed(), after_cancel)),
                    }
                }
            };
            if let Some(t) = cancelled_at
                && t.elapsed() > bound
            {
                // The source blocked the thread past the bound.
                return Err(ignored(t.elapsed(), after_cancel));
            }
            match next {
                Some(Ok(ReadItem::Batch(b))) => {
                    yielded += b.num_rows();
                    match cancelled_at {
                        Some(_) => after_cancel += b.num_rows() as u64,
                        None if b.num_rows() > 0 => {
                            cancel.cancel();
                            cancelled_at = Some(Instant::now());
                        }
                        None => {}
                    }
                }
                Some(Ok(ReadItem::Checkpoint(_))) => {
                    if let Some(t) = cancelled_at {
                        break Some(t.elapsed());
                    }
                }
                Some(Err(e)) => {
                    return Err(match cancelled_at {
                        Some(_) => Failure::ErrorOnCancel {
                            stream: stream.name.clone(),
                            partition: partition.id.clone(),
                            message: e.to_string(),
                        },
                        None => connector_failed(format!(
                            "read of stream `{}`, partition `{}`",
                            stream.name, partition.id
                        ))(e),
                    });
                }
                None => {
                    if cancelled_at.is_some() && yielded < full_rows {
                        return Err(Failure::EndedEarlyOnCancel {
                            stream: stream.name.clone(),
                            partition: partition.id.clone(),
                            yielded,
                            expected: full_rows,
                        });
                    }
                    break cancelled_at.map(|t| t.elapsed());
                }
            }
        };
        report.streams.push(stream.name.clone());
        report.partitions += 1;
        report.rows += yielded as u64;
        if let Some(l) = latency {
            report.notes.push(format!(
                "stream `{}`: stop point {l:?} after cancel (bound {bound:?})",
                stream.name
            ));
        }
    }
    if report.rows == 0 {
        return Err(Failure::NoRows);
    }
    Ok(report)
}

/// **Retried partition**: prepares a plan with the real core, extracts each partition
/// twice with the same plan (as Glue does when it retries a task), and requires both
/// attempts to write the same object keys with byte-identical content; then commits the
/// retried results. A connector whose rows depend on when they are read (a `fetched_at`
/// column, random ids) or on their order fails here.
pub async fn retried_partition<C: Connector + Clone>(
    connector: &C,
    config: &Value,
    target: &S3Target,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::RetriedPartition);
    let cfg = parse::<C>(config)?;
    let core = core_for(
        connector,
        config,
        target,
        target.scoped(Check::RetriedPartition),
    )?;
    let bucket = &target.output.bucket;
    for stream in streams(connector, &cfg).await? {
        let plan = core
            .prepare(&stream.name)
            .await
            .map_err(core_failed(format!("prepare of stream `{}`", stream.name)))?;
        let ids: Vec<String> = plan.remaining().map(|w| w.partition.id.clone()).collect();
        let mut results = Vec::new();
        for id in &ids {
            let step = |n: &str| format!("{n} extract of partition `{id}`");
            let retry_differs = |detail: String| Failure::RetryDiffers {
                stream: stream.name.clone(),
                partition: id.clone(),
                detail,
            };
            let first = core
                .extract_partition(&plan, id, &StopSignal::new())
                .await
                .map_err(core_failed(step("first")))?;
            let mut bodies = Vec::new();
            for f in &first.files {
                let body = target
                    .store
                    .get(bucket, &f.key)
                    .await
                    .map_err(core_failed(step("first")))?
                    .ok_or_else(|| retry_differs(format!("{} vanished", f.key)))?;
                bodies.push(body);
            }
            let second = core
                .extract_partition(&plan, id, &StopSignal::new())
                .await
                .map_err(core_failed(step("retried")))?;
            let keys = |r: &crate::PartitionResult| -> Vec<String> {
                r.files.iter().map(|f| f.key.clone()).collect()
            };
            if keys(&first) != keys(&second) {
                return Err(retry_differs(format!(
                    "first attempt wrote {:?}, the retry wrote {:?}",
                    keys(&first),
                    keys(&second)
                )));
            }
            for (f, before) in second.files.iter().zip(&bodies) {
                let after = target
                    .store
                    .get(bucket, &f.key)
                    .await
                    .map_err(core_failed(step("retried")))?
                    .ok_or_else(|| retry_differs(format!("{} vanished", f.key)))?;
                if after != *before {
                    let at = before
                        .iter()
                        .zip(after.iter())
                        .position(|(a, b)| a != b)
                        .unwrap_or(before.len().min(after.len()));
                    return Err(retry_differs(format!(
                        "{}: {} bytes on the first attempt, {} on the retry, first difference at byte {at} (are values computed from the clock, randomness or read order?)",
                        f.key,
                        before.len(),
                        after.len()
                    )));
                }
            }
            report.rows += second.rows;
            results.push(second);
        }
        core.commit(&plan, results)
            .await
            .map_err(core_failed(format!(
                "commit of the retried partitions of `{}`",
                stream.name
            )))?;
        report.streams.push(stream.name.clone());
        report.partitions += ids.len();
    }
    if report.rows == 0 {
        return Err(Failure::NoRows);
    }
    Ok(report)
}

/// Every committed row of `stream` under `output` (the files every committed manifest
/// lists). Compare two datasets — e.g. the same connector run on two runners — with
/// [`RowSet::sorted_hashes`] or, for a readable difference, [`RowSet::diff`].
pub async fn dataset_rows(
    store: &S3Store,
    output: &OutputLocation,
    stream: &str,
) -> Result<RowSet, ConformanceFailure> {
    Ok(committed_rows(store, output, stream, 0).await?.1)
}

/// The rows of one uninterrupted read of a fresh plan of `stream` (no cursor), straight
/// from the connector: what a complete first extract must commit.
pub async fn source_rows<C: Connector>(
    connector: &C,
    config: &Value,
    stream: &str,
) -> Result<RowSet, ConformanceFailure> {
    let cfg = parse::<C>(config)?;
    let descriptor = streams(connector, &cfg)
        .await?
        .into_iter()
        .find(|s| s.name == stream)
        .ok_or_else(|| Failure::Config {
            message: format!("discover does not return stream `{stream}`"),
        })?;
    Ok(reference_rows(connector, &cfg, &descriptor, None).await?.1)
}

/// The inputs of [`run_all`].
#[derive(Debug, Clone)]
pub struct Inputs {
    /// A config with data (several partitions, several batches each).
    pub config: Value,
    /// A config that must be refused.
    pub bad_config: Value,
    /// `config`'s source after it gained rows; `None` skips [`incremental_cursor`].
    pub grown_config: Option<Value>,
    /// The bound for [`cancellation`].
    pub cancel_bound: Duration,
}

/// Runs every check, one after the other, and returns each check's outcome (for a runner
/// matrix or a JUnit report). Checks that write use fresh prefixes under `target`.
pub async fn run_all<C: Connector + Clone>(
    connector: &C,
    inputs: &Inputs,
    target: &S3Target,
) -> Vec<(Check, Result<ConformanceReport, ConformanceFailure>)> {
    let (c, cfg) = (connector, &inputs.config);
    let mut out = vec![
        (Check::SchemaMatches, schema_matches(c, cfg).await),
        (
            Check::ParquetRoundTrip,
            parquet_round_trip(c, cfg, target).await,
        ),
        (
            Check::ResumeFromCheckpoints,
            resume_from_checkpoints(c, cfg).await,
        ),
        (Check::StopAndResume, stop_and_resume(c, cfg, target).await),
    ];
    if let Some(grown) = &inputs.grown_config {
        out.push((
            Check::IncrementalCursor,
            incremental_cursor(c, cfg, grown, target).await,
        ));
    }
    out.push((
        Check::Cancellation,
        cancellation(c, cfg, inputs.cancel_bound).await,
    ));
    out.push((
        Check::RetriedPartition,
        retried_partition(c, cfg, target).await,
    ));
    out.push((
        Check::BadConfigRejected,
        bad_config_rejected(c, &inputs.bad_config).await,
    ));
    out
}

/// [`run_all`] for a connector's own test: panics naming every check that failed (one per
/// line), else returns each check's report.
pub async fn run_all_passing<C: Connector + Clone>(
    connector: &C,
    inputs: &Inputs,
    target: &S3Target,
) -> Vec<(Check, ConformanceReport)> {
    let outcomes = run_all(connector, inputs, target).await;
    let failed: Vec<String> = outcomes
        .iter()
        .filter_map(|(check, r)| r.as_ref().err().map(|e| format!("{check}: {e}")))
        .collect();
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    outcomes
        .into_iter()
        .filter_map(|(check, r)| r.ok().map(|report| (check, report)))
        .collect()
}

fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(non-string panic payload)".into())
}

/// **Bad config**: `bad_config` must be refused with a one-line error, by parsing (serde)
/// or by `check`, and neither parsing, `check` nor `discover` may panic. Fails with
/// [`ConformanceFailure::BadConfigAccepted`], [`ConformanceFailure::BadConfigPanicked`] or
/// [`ConformanceFailure::MultiLineError`]. The report's note holds the error message.
pub async fn bad_config_rejected<C: Connector + Clone>(
    connector: &C,
    bad_config: &Value,
) -> Result<ConformanceReport, ConformanceFailure> {
    let mut report = ConformanceReport::new(Check::BadConfigRejected);
    let one_line = |message: String| {
        if message.contains('\n') {
            Err(Failure::MultiLineError { message })
        } else {
            Ok(message)
        }
    };
    let value = bad_config.clone();
    let parsed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        config_from_value::<C>(value)
    }))
    .map_err(|p| Failure::BadConfigPanicked {
        step: "parse",
        message: panic_message(p),
    })?;
    let cfg = match parsed {
        Err(e) => {
            report
                .notes
                .push(format!("refused when parsed: {}", one_line(e.to_string())?));
            return Ok(report);
        }
        Ok(cfg) => Arc::new(cfg),
    };
    let spawn_step = |step: &'static str| {
        let (c, cfg) = (connector.clone(), cfg.clone());
        async move {
            let joined = tokio::spawn(async move {
                match step {
                    "check" => c.check(&cfg).await.map(|_| ()),
                    _ => c.discover(&cfg).await.map(|_| ()),
                }
            })
            .await;
            match joined {
                Ok(r) => Ok(r),
                Err(e) if e.is_panic() => Err(Failure::BadConfigPanicked {
                    step,
                    message: panic_message(e.into_panic()),
                }),
                Err(e) => Err(Failure::Setup {
                    message: format!("{step} task failed: {e}"),
                }),
            }
        }
    };
    let checked = spawn_step("check").await?;
    // discover may succeed or fail, but must not panic.
    let _discover_may_fail = spawn_step("discover").await?;
    match checked {
        Ok(()) => Err(Failure::BadConfigAccepted),
        Err(e) => {
            report
                .notes
                .push(format!("refused by check: {}", one_line(e.to_string())?));
            Ok(report)
        }
    }
}

/// Runs one check on a new multi-threaded runtime and panics with the failure's message;
/// what the tests [`conformance_tests!`](crate::conformance_tests) generates call.
#[doc(hidden)]
pub fn __run_check<F>(check: F)
where
    F: Future<Output = Result<ConformanceReport, ConformanceFailure>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => panic!("conformance: cannot start a tokio runtime: {e}"),
    };
    match runtime.block_on(check) {
        Ok(report) => println!("{report}"),
        Err(failure) => panic!("conformance check failed: {failure}"),
    }
}

/// Expands into a module `conformance` with one `#[test]` per check of the kit, so one
/// failure does not hide the others. The checks that need S3 each start a local
/// S3-compatible server ([`LocalS3Target`]).
///
/// - `connector`: an expression giving the connector (evaluated in each test; must be `Clone`)
/// - `config`: a [`serde_json::Value`] config with data: several partitions, several batches each
/// - `bad_config`: a config that must be refused
/// - `grown_config` (optional): `config`'s source after it gained rows; adds `incremental_cursor`
/// - `cancel_bound` (optional): a [`Duration`] for `cancellation` (default [`DEFAULT_CANCEL_BOUND`])
///
/// ```ignore
/// connector_sdk::conformance_tests! {
///     connector: my_connector::MyConnector,
///     config: serde_json::json!({"rows": 2000}),
///     bad_config: serde_json::json!({"rows": -1}),
///     grown_config: serde_json::json!({"rows": 2500}),
/// }
/// ```
#[macro_export]
macro_rules! conformance_tests {
    (
        connector: $connector:expr,
        config: $config:expr,
        bad_config: $bad:expr
        $(, grown_config: $grown:expr)?
        $(, cancel_bound: $bound:expr)?
        $(,)?
    ) => {
        mod conformance {
            #[allow(unused_imports)]
            use super::*;
            use $crate::conformance as kit;

            #[test]
            fn schema_matches() {
                kit::__run_check(async { kit::schema_matches(&$connector, &$config).await });
            }

            #[test]
            fn parquet_round_trip() {
                kit::__run_check(async {
                    let s3 = kit::LocalS3Target::start().await?;
                    kit::parquet_round_trip(&$connector, &$config, &s3.target).await
                });
            }

            #[test]
            fn resume_from_checkpoints() {
                kit::__run_check(async {
                    kit::resume_from_checkpoints(&$connector, &$config).await
                });
            }

            #[test]
            fn stop_and_resume() {
                kit::__run_check(async {
                    let s3 = kit::LocalS3Target::start().await?;
                    kit::stop_and_resume(&$connector, &$config, &s3.target).await
                });
            }

            $(
            #[test]
            fn incremental_cursor() {
                kit::__run_check(async {
                    let s3 = kit::LocalS3Target::start().await?;
                    kit::incremental_cursor(&$connector, &$config, &$grown, &s3.target).await
                });
            }
            )?

            #[test]
            fn cancellation() {
                #[allow(unused_mut, unused_assignments)]
                let mut bound = kit::DEFAULT_CANCEL_BOUND;
                $( bound = $bound; )?
                kit::__run_check(async { kit::cancellation(&$connector, &$config, bound).await });
            }

            #[test]
            fn retried_partition() {
                kit::__run_check(async {
                    let s3 = kit::LocalS3Target::start().await?;
                    kit::retried_partition(&$connector, &$config, &s3.target).await
                });
            }

            #[test]
            fn bad_config_rejected() {
                kit::__run_check(async { kit::bad_config_rejected(&$connector, &$bad).await });
            }
        }
    };
}
