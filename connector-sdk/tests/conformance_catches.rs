//! The conformance kit catches broken connectors: one honest connector passes every check
//! (through the macro), and each deliberately broken variant fails the check meant to catch
//! it, with the specific failure.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use connector_sdk::arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use connector_sdk::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use connector_sdk::conformance as kit;
use connector_sdk::conformance::{Check, ConformanceFailure, ConformanceReport, LocalS3Target};
use connector_sdk::futures::StreamExt;
use connector_sdk::{
    Connector, ConnectorError, Partition, Plan, ReadContext, ReadItem, ReadStream,
    StreamDescriptor, async_trait,
};
use serde_json::{Value, json};

const MANIFEST: &str = r#"
name = "numbers"
version = "0.1.0"
description = "Numbers 1..=rows per partition, for the conformance kit's own tests"
data_classification = "public"

[[streams]]
name = "numbers"
incremental = true

[runners.lambda]
memory_mb = 256
vcpu = 1
max_runtime_secs = 900

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

/// What is wrong with the connector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// Nothing: passes every check.
    None,
    /// `read` yields `value` as Int64; `discover` says Utf8.
    WrongType,
    /// Resuming from checkpoint `id = n` starts at `n` again: one row is duplicated.
    ResumeRepeatsRow,
    /// Resuming from checkpoint `id = n` starts at `n + 2`: one row is lost.
    ResumeSkipsRow,
    /// Checkpoints only at the end of a partition, and each batch takes 300 ms: after
    /// cancellation the core cannot stop until the partition ends.
    CheckpointsOnlyAtEnd,
    /// Ends the stream as soon as it sees the cancellation (rows would be lost).
    EndsOnCancel,
    /// `check` panics on a config with `rows = 0`.
    PanicsOnBadConfig,
    /// `value` includes how many reads happened before: a retry writes other bytes.
    CountsReads,
    /// Once the run is asked to stop, yields no checkpoint until the partition's end, so
    /// the run cannot stop and reads everything.
    WithholdsCheckpointsOnCancel,
    /// Resumes from a checkpoint field that is `#[serde(skip)]`: right in memory, lost
    /// when the core stores the checkpoint, so a resumed partition starts over.
    ResumeFieldNotStored,
}

#[derive(Debug, Clone)]
struct Numbers {
    flaw: Flaw,
    reads: Arc<AtomicU64>,
}

impl Numbers {
    fn new(flaw: Flaw) -> Self {
        Self {
            flaw,
            reads: Arc::default(),
        }
    }
}

/// Config of the numbers source.
#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct NumbersConfig {
    /// Partitions.
    partitions: u64,
    /// Rows per partition.
    rows: u64,
    /// Rows per batch.
    batch: u64,
}

fn schema(value_type: DataType) -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("partition", DataType::Int64, false),
        Field::new("id", DataType::Int64, false),
        Field::new("value", value_type, false),
    ]))
}

fn batch(flaw: Flaw, reads: u64, partition: u64, first: u64, last: u64) -> RecordBatch {
    let ids: Vec<i64> = (first as i64..=last as i64).collect();
    let value: ArrayRef = match flaw {
        Flaw::WrongType => Arc::new(Int64Array::from(ids.clone())),
        Flaw::CountsReads => Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("v{i}-read{reads}")),
        )),
        _ => Arc::new(StringArray::from_iter_values(
            ids.iter().map(|i| format!("v{i}")),
        )),
    };
    let value_type = value.data_type().clone();
    RecordBatch::try_new(
        schema(value_type),
        vec![
            Arc::new(Int64Array::from(vec![partition as i64; ids.len()])),
            Arc::new(Int64Array::from(ids)),
            value,
        ],
    )
    .expect("valid batch")
}

/// The cursor and checkpoint: the last id read.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Id {
    id: u64,
    /// Where to resume, kept only in memory (`Flaw::ResumeFieldNotStored`).
    #[serde(skip)]
    resume_at: Option<u64>,
}

impl Id {
    fn new(id: u64) -> Self {
        Self {
            id,
            resume_at: None,
        }
    }
}

/// A partition: ids from `first` on.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
struct Span {
    partition: u64,
    first: u64,
}

#[async_trait]
impl Connector for Numbers {
    type Config = NumbersConfig;
    type Cursor = Id;
    type PartitionSpec = Span;
    type Checkpoint = Id;
    type Run = ();
    const MANIFEST: &'static str = MANIFEST;

    async fn check(&self, config: &NumbersConfig) -> Result<(), ConnectorError> {
        if config.rows == 0 {
            if self.flaw == Flaw::PanicsOnBadConfig {
                panic!("rows must not be zero");
            }
            return Err(ConnectorError::config("rows must be at least 1"));
        }
        if config.batch == 0 {
            return Err(ConnectorError::config("batch must be at least 1"));
        }
        Ok(())
    }

    async fn discover(&self, _: &NumbersConfig) -> Result<Vec<StreamDescriptor>, ConnectorError> {
        Ok(vec![StreamDescriptor {
            name: "numbers".into(),
            schema: schema(DataType::Utf8),
            cursor_field: Some("id".into()),
            primary_key: vec!["partition".into(), "id".into()],
            write_disposition: None,
        }])
    }

    async fn plan(
        &self,
        config: &NumbersConfig,
        _: &StreamDescriptor,
        cursor: Option<&Id>,
    ) -> Result<Plan<Span, Id>, ConnectorError> {
        let first = cursor.map_or(0, |c| c.id) + 1;
        let partitions = if first > config.rows {
            vec![]
        } else {
            (1..=config.partitions)
                .map(|p| Partition {
                    id: format!("p{p}-{first}"),
                    hive: vec![],
                    spec: Span {
                        partition: p,
                        first,
                    },
                })
                .collect()
        };
        Ok(Plan {
            partitions,
            cursor: Some(Id::new(config.rows)),
        })
    }

    async fn open_run(
        &self,
        _: &NumbersConfig,
        _: &StreamDescriptor,
    ) -> Result<(), ConnectorError> {
        Ok(())
    }

    fn read<'a>(
        &'a self,
        config: &'a NumbersConfig,
        _: &'a (),
        _: &'a StreamDescriptor,
        partition: &'a Partition<Span>,
        ctx: ReadContext<Id>,
    ) -> ReadStream<'a, Id> {
        let reads = self.reads.fetch_add(1, Ordering::SeqCst);
        let p = partition.spec.partition;
        let mut next = match &ctx.checkpoint {
            None => partition.spec.first,
            Some(c) => {
                let id = c.id;
                match self.flaw {
                    Flaw::ResumeFieldNotStored => c.resume_at.unwrap_or(partition.spec.first),
                    Flaw::ResumeRepeatsRow => id,
                    Flaw::ResumeSkipsRow => id + 2,
                    _ => id + 1,
                }
            }
        };
        let (flaw, rows, size) = (self.flaw, config.rows, config.batch);
        let mut items: Vec<(Duration, ReadItem<Id>)> = Vec::new();
        while next <= rows {
            let end = rows.min(next + size - 1);
            let delay = match flaw {
                Flaw::CheckpointsOnlyAtEnd => Duration::from_millis(300),
                _ => Duration::ZERO,
            };
            items.push((delay, ReadItem::Batch(batch(flaw, reads, p, next, end))));
            if flaw != Flaw::CheckpointsOnlyAtEnd || end == rows {
                items.push((
                    Duration::ZERO,
                    ReadItem::Checkpoint(Id {
                        id: end,
                        resume_at: (flaw == Flaw::ResumeFieldNotStored).then_some(end + 1),
                    }),
                ));
            }
            next = end + 1;
        }
        let cancel = ctx.cancel.clone();
        let withhold = ctx.cancel.clone();
        connector_sdk::futures::stream::iter(items)
            .filter(move |(_, item)| {
                let skip = flaw == Flaw::WithholdsCheckpointsOnCancel
                    && withhold.is_cancelled()
                    && matches!(item, ReadItem::Checkpoint(c) if c.id != rows);
                async move { !skip }
            })
            .take_while(move |_| {
                let stop = flaw == Flaw::EndsOnCancel && cancel.is_cancelled();
                async move { !stop }
            })
            .then(|(delay, item)| async move {
                if !delay.is_zero() {
                    tokio::time::sleep(delay).await;
                }
                Ok(item)
            })
            .boxed()
    }
}

/// 3 partitions x 100 rows, batches of 10.
fn config() -> Value {
    json!({"partitions": 3, "rows": 100, "batch": 10})
}

// The honest connector passes every check of the kit.
connector_sdk::conformance_tests! {
    connector: Numbers::new(Flaw::None),
    config: config(),
    bad_config: json!({"partitions": 3, "rows": 0, "batch": 10}),
    grown_config: json!({"partitions": 3, "rows": 130, "batch": 10}),
    cancel_bound: Duration::from_millis(500),
}

fn failure(r: Result<ConformanceReport, ConformanceFailure>) -> ConformanceFailure {
    match r {
        Ok(report) => panic!("the kit passed a broken connector: {report}"),
        Err(f) => {
            // Every failure is one line that says what differed.
            let msg = f.to_string();
            assert!(!msg.contains('\n'), "{msg}");
            f
        }
    }
}

#[tokio::test]
async fn schema_mismatch_is_caught() {
    let f = failure(kit::schema_matches(&Numbers::new(Flaw::WrongType), &config()).await);
    match &f {
        ConformanceFailure::SchemaMismatch {
            stream,
            partition,
            batch,
            detail,
        } => {
            assert_eq!(stream, "numbers");
            assert_eq!(partition, "p1-1");
            assert_eq!(*batch, 0);
            assert_eq!(detail, "column `value`: expected Utf8, got Int64");
        }
        other => panic!("expected SchemaMismatch, got {other}"),
    }
}

#[tokio::test]
async fn duplicated_row_after_a_checkpoint_is_caught() {
    let f = failure(
        kit::resume_from_checkpoints(&Numbers::new(Flaw::ResumeRepeatsRow), &config()).await,
    );
    match &f {
        ConformanceFailure::RowsDiffer {
            check,
            stream,
            context,
            diff,
        } => {
            assert_eq!(*check, Check::ResumeFromCheckpoints);
            assert_eq!(stream, "numbers");
            // The first checkpoint of the first partition is after row 10.
            assert!(
                context.starts_with("partition `p1-1` re-read from checkpoint {\"id\":10}"),
                "{context}"
            );
            assert_eq!((diff.expected, diff.actual), (90, 91));
            assert_eq!((diff.lost_count, diff.extra_count), (0, 1));
            assert_eq!(
                diff.extra,
                vec!["{partition=1, id=10, value=v10} (present 1x)".to_string()]
            );
        }
        other => panic!("expected RowsDiffer, got {other}"),
    }
}

#[tokio::test]
async fn lost_row_after_a_checkpoint_is_caught() {
    let f =
        failure(kit::resume_from_checkpoints(&Numbers::new(Flaw::ResumeSkipsRow), &config()).await);
    match &f {
        ConformanceFailure::RowsDiffer {
            check: Check::ResumeFromCheckpoints,
            diff,
            ..
        } => {
            assert_eq!((diff.expected, diff.actual), (90, 89));
            assert_eq!((diff.lost_count, diff.extra_count), (1, 0));
            assert_eq!(
                diff.lost,
                vec!["{partition=1, id=11, value=v11}".to_string()]
            );
        }
        other => panic!("expected RowsDiffer from resume_from_checkpoints, got {other}"),
    }
}

/// The kit resumes from checkpoints as the core stores them (through JSON), so a field
/// that is not stored is caught even though resuming from the value in memory works.
#[tokio::test]
async fn a_checkpoint_field_lost_in_storage_is_caught() {
    let f = failure(
        kit::resume_from_checkpoints(&Numbers::new(Flaw::ResumeFieldNotStored), &config()).await,
    );
    match &f {
        ConformanceFailure::RowsDiffer {
            check: Check::ResumeFromCheckpoints,
            context,
            diff,
            ..
        } => {
            assert!(
                context.starts_with("partition `p1-1` re-read from checkpoint {\"id\":10}"),
                "{context}"
            );
            // Started over: the 10 rows before the checkpoint come again.
            assert_eq!((diff.expected, diff.actual), (90, 100));
            assert_eq!((diff.lost_count, diff.extra_count), (0, 10));
        }
        other => panic!("expected RowsDiffer from resume_from_checkpoints, got {other}"),
    }
}

#[tokio::test]
async fn lost_rows_through_the_core_are_caught() {
    let s3 = LocalS3Target::start().await.expect("local S3");
    let f = failure(
        kit::stop_and_resume(&Numbers::new(Flaw::ResumeSkipsRow), &config(), &s3.target).await,
    );
    match &f {
        ConformanceFailure::RowsDiffer {
            check: Check::StopAndResume,
            diff,
            ..
        } => {
            // Each run reads one batch per partition; every resume skips the row after
            // its checkpoint: 11, 22, ..., 99 in each of the 3 partitions.
            assert_eq!((diff.expected, diff.actual), (300, 273));
            assert_eq!((diff.lost_count, diff.extra_count), (27, 0));
            assert_eq!(diff.lost[0], "{partition=1, id=11, value=v11}");
        }
        other => panic!("expected RowsDiffer from stop_and_resume, got {other}"),
    }
}

#[tokio::test]
async fn duplicated_rows_through_the_core_are_caught() {
    let s3 = LocalS3Target::start().await.expect("local S3");
    let f = failure(
        kit::stop_and_resume(&Numbers::new(Flaw::ResumeRepeatsRow), &config(), &s3.target).await,
    );
    match &f {
        ConformanceFailure::RowsDiffer {
            check: Check::StopAndResume,
            context,
            diff,
            ..
        } => {
            // Resuming from the last checkpoint re-reads row 100 forever: the plan never
            // completes, and what was committed holds duplicates.
            assert!(context.contains("did not complete"), "{context}");
            assert!(diff.extra_count > 0, "{diff}");
            assert!(
                diff.extra[0].starts_with("{partition=1, id=10, value=v10}"),
                "{diff}"
            );
        }
        other => panic!("expected RowsDiffer from stop_and_resume, got {other}"),
    }
}

/// A run stopped after one batch per partition must be partial when a partition had a
/// checkpoint to stop at; one that completes the plan ignored the stop (before this
/// check, a core or connector that never stopped passed `stop_and_resume`).
#[tokio::test]
async fn an_ignored_stop_is_caught() {
    let s3 = LocalS3Target::start().await.expect("local S3");
    let f = failure(
        kit::stop_and_resume(
            &Numbers::new(Flaw::WithholdsCheckpointsOnCancel),
            &config(),
            &s3.target,
        )
        .await,
    );
    match &f {
        ConformanceFailure::StopIgnored { stream, partition } => {
            assert_eq!(stream, "numbers");
            assert_eq!(partition, "p1-1");
        }
        other => panic!("expected StopIgnored, got {other}"),
    }
}

#[tokio::test]
async fn ignored_cancellation_is_caught() {
    let one_partition = json!({"partitions": 1, "rows": 100, "batch": 10});
    let bound = Duration::from_millis(500);
    let f = failure(
        kit::cancellation(
            &Numbers::new(Flaw::CheckpointsOnlyAtEnd),
            &one_partition,
            bound,
        )
        .await,
    );
    match &f {
        ConformanceFailure::CancellationIgnored {
            stream,
            partition,
            bound: b,
            waited,
            rows_after_cancel,
        } => {
            assert_eq!((stream.as_str(), partition.as_str()), ("numbers", "p1-1"));
            assert_eq!(*b, bound);
            assert!(*waited >= bound, "{waited:?}");
            // 300 ms per batch: one more batch arrives within the 500 ms bound.
            assert_eq!(*rows_after_cancel, 10);
        }
        other => panic!("expected CancellationIgnored, got {other}"),
    }
}

#[tokio::test]
async fn ending_the_stream_on_cancellation_is_caught() {
    let f = failure(
        kit::cancellation(
            &Numbers::new(Flaw::EndsOnCancel),
            &config(),
            Duration::from_secs(1),
        )
        .await,
    );
    match &f {
        ConformanceFailure::EndedEarlyOnCancel {
            partition,
            yielded,
            expected,
            ..
        } => {
            assert_eq!(partition, "p1-1");
            assert_eq!((*yielded, *expected), (10, 100));
        }
        other => panic!("expected EndedEarlyOnCancel, got {other}"),
    }
}

#[tokio::test]
async fn panic_on_bad_config_is_caught() {
    let bad = json!({"partitions": 1, "rows": 0, "batch": 10});
    let f = failure(kit::bad_config_rejected(&Numbers::new(Flaw::PanicsOnBadConfig), &bad).await);
    match &f {
        ConformanceFailure::BadConfigPanicked { step, message } => {
            assert_eq!(*step, "check");
            assert_eq!(message, "rows must not be zero");
        }
        other => panic!("expected BadConfigPanicked, got {other}"),
    }
    // A config the connector accepts is reported as accepted.
    let f = failure(kit::bad_config_rejected(&Numbers::new(Flaw::None), &config()).await);
    assert!(matches!(f, ConformanceFailure::BadConfigAccepted), "{f}");
    // A config that does not parse passes, with serde's message.
    let report = kit::bad_config_rejected(
        &Numbers::new(Flaw::None),
        &json!({"partitions": 1, "rows": 5, "batch": 1, "colour": "red"}),
    )
    .await
    .expect("an unknown field is refused");
    assert_eq!(report.notes.len(), 1);
    assert!(
        report.notes[0].contains("unknown field `colour`"),
        "{report}"
    );
}

#[tokio::test]
async fn nondeterministic_retry_is_caught() {
    let s3 = LocalS3Target::start().await.expect("local S3");
    let f = failure(
        kit::retried_partition(&Numbers::new(Flaw::CountsReads), &config(), &s3.target).await,
    );
    match &f {
        ConformanceFailure::RetryDiffers {
            stream,
            partition,
            detail,
        } => {
            assert_eq!((stream.as_str(), partition.as_str()), ("numbers", "p1-1"));
            assert!(detail.contains("first difference at byte"), "{detail}");
        }
        other => panic!("expected RetryDiffers, got {other}"),
    }
}

#[tokio::test]
async fn empty_config_proves_nothing() {
    let f = failure(
        kit::schema_matches(
            &Numbers::new(Flaw::None),
            &json!({"partitions": 0, "rows": 5, "batch": 1}),
        )
        .await,
    );
    assert!(matches!(f, ConformanceFailure::NoRows), "{f}");
}

#[tokio::test]
async fn run_all_reports_every_check_and_datasets_compare_by_row_hash() {
    let s3 = LocalS3Target::start().await.expect("local S3");
    let inputs = kit::Inputs {
        config: config(),
        bad_config: json!({"partitions": 3, "rows": 0, "batch": 10}),
        grown_config: None,
        cancel_bound: Duration::from_secs(1),
    };
    let outcomes = kit::run_all(&Numbers::new(Flaw::ResumeSkipsRow), &inputs, &s3.target).await;
    let failed: Vec<Check> = outcomes
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(c, _)| *c)
        .collect();
    assert_eq!(outcomes.len(), 7);
    assert_eq!(
        failed,
        vec![Check::ResumeFromCheckpoints, Check::StopAndResume]
    );
    // The round trip wrote a complete dataset: its rows equal a direct read, by hash.
    let source = kit::source_rows(&Numbers::new(Flaw::None), &config(), "numbers")
        .await
        .expect("source rows");
    assert_eq!(source.len(), 300);
    let keys = s3
        .target
        .store
        .list(&s3.target.output.bucket, "datasets/parquet-round-trip-")
        .await
        .expect("list");
    let prefix = keys[0]
        .key
        .split("/numbers/")
        .next()
        .expect("a dataset key");
    let output = format!("s3://{}/{prefix}", s3.target.output.bucket)
        .parse()
        .expect("output");
    let written = kit::dataset_rows(&s3.target.store, &output, "numbers")
        .await
        .expect("dataset rows");
    assert_eq!(written.sorted_hashes(), source.sorted_hashes());
}
