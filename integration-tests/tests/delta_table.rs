//! The Delta table layer on its own, against the real local S3 server: file statistics at
//! the limits of each type, read back from the log and by delta-rs; a retried commit of
//! the same run recognised; a commit on a stale version refused.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int8Array,
    Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use bytes::Bytes;
use connector_sdk::table::{
    CommitOutcome, DeltaTable, FileToAdd, Removal, StatsCollector, TableCommit,
};
use integration_tests::{BUCKET, TestEnv, read_with_deltalake};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;
use serde_json::{Value, json};

const RUN: &str = "20261202T000000Z00000001";

/// Three rows per column: both limits of the type and a null (where nullable).
fn extremes() -> RecordBatch {
    let max_dec = 10i128.pow(38) - 1;
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("i8", DataType::Int8, true),
        Field::new("i16", DataType::Int16, true),
        Field::new("i32", DataType::Int32, true),
        Field::new("i64", DataType::Int64, true),
        Field::new("f64", DataType::Float64, true),
        Field::new("dec", DataType::Decimal128(38, 0), true),
        Field::new("ts", utc.clone(), true),
        Field::new("day", DataType::Date32, true),
        Field::new("text", DataType::Utf8, true),
        Field::new("flag", DataType::Boolean, true),
        Field::new("blob", DataType::Binary, true),
    ]));
    // 0001-01-01T00:00:00Z and 9999-12-31T23:59:59.999999Z, Delta's timestamp range.
    let (ts_min, ts_max) = (-62_135_596_800_000_000i64, 253_402_300_799_999_999i64);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(Int64Array::from(vec![1, 2, 3])),
        Arc::new(Int8Array::from(vec![Some(i8::MIN), Some(i8::MAX), None])),
        Arc::new(Int16Array::from(vec![Some(i16::MIN), Some(i16::MAX), None])),
        Arc::new(Int32Array::from(vec![Some(i32::MIN), Some(i32::MAX), None])),
        Arc::new(Int64Array::from(vec![Some(i64::MIN), Some(i64::MAX), None])),
        Arc::new(Float64Array::from(vec![
            Some(f64::MIN),
            Some(f64::MAX),
            None,
        ])),
        Arc::new(
            Decimal128Array::from(vec![Some(-max_dec), Some(max_dec), None])
                .with_precision_and_scale(38, 0)
                .unwrap(),
        ),
        Arc::new(
            TimestampMicrosecondArray::from(vec![Some(ts_min), Some(ts_max), None])
                .with_timezone("UTC"),
        ),
        Arc::new(Date32Array::from(vec![
            Some(-719_162),
            Some(2_932_896),
            None,
        ])),
        Arc::new(StringArray::from(vec![Some(""), Some("zß水🦀"), None])),
        Arc::new(BooleanArray::from(vec![Some(false), Some(true), None])),
        Arc::new(BinaryArray::from(vec![
            Some(&b""[..]),
            Some(&[0u8, 255][..]),
            None,
        ])),
    ];
    RecordBatch::try_new(schema, columns).unwrap()
}

/// Write `batch` as one Parquet file at `key`; its statistics.
async fn put_file(store: &connector_sdk::S3Store, key: &str, batch: &RecordBatch) -> FileToAdd {
    let mut buf = Vec::new();
    let props = WriterProperties::default();
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(props.clone())).unwrap();
    writer.write(batch).unwrap();
    let footer = writer.close().unwrap();
    let bytes = buf.len() as u64;
    store
        .put(BUCKET, key, Bytes::from(buf), false)
        .await
        .unwrap();
    let mut stats = StatsCollector::new(&batch.schema(), &props).unwrap();
    stats.add(batch).unwrap();
    FileToAdd {
        key: key.to_string(),
        bytes,
        stats: stats.finish(footer.row_groups()).unwrap(),
    }
}

/// The `add` actions of the log entry of `version`.
async fn adds(store: &connector_sdk::S3Store, table: &DeltaTable, version: u64) -> Vec<Value> {
    let log = store
        .get(BUCKET, &table.log_key(version))
        .await
        .unwrap()
        .expect("log entry");
    String::from_utf8(log.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter_map(|a| a.get("add").cloned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statistics_at_type_limits_reach_the_log_exactly_and_delta_rs_reads_the_values() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let output = env.output("limits");
    let root = output.key("t/");
    let table = DeltaTable::new(store.clone(), BUCKET, &root).unwrap();
    let batch = extremes();
    let file = put_file(&store, &format!("{root}part-{RUN}-p-00000.parquet"), &batch).await;
    let outcome = table
        .commit(TableCommit {
            base_version: None,
            schema: &batch.schema(),
            remove: Removal::Nothing,
            hive_keys: &[],
            files: std::slice::from_ref(&file),
            run_id: RUN,
            record: "{}".into(),
            engine_info: "test".into(),
        })
        .await
        .unwrap();
    assert_eq!(outcome, CommitOutcome::Committed(0));

    let adds = adds(&store, &table, 0).await;
    assert_eq!(adds.len(), 1);
    assert_eq!(
        adds[0]["path"],
        json!(format!("part-{RUN}-p-00000.parquet"))
    );
    assert_eq!(adds[0]["size"], json!(file.bytes));
    let stats: Value = serde_json::from_str(adds[0]["stats"].as_str().unwrap()).unwrap();
    assert_eq!(stats["numRecords"], json!(3));
    let (min, max, nulls) = (
        &stats["minValues"],
        &stats["maxValues"],
        &stats["nullCount"],
    );
    assert_eq!(
        (min["i8"].clone(), max["i8"].clone()),
        (json!(-128), json!(127))
    );
    assert_eq!(
        (min["i16"].clone(), max["i16"].clone()),
        (json!(-32768), json!(32767))
    );
    assert_eq!(
        (min["i32"].clone(), max["i32"].clone()),
        (json!(i32::MIN), json!(i32::MAX))
    );
    assert_eq!(
        (min["i64"].clone(), max["i64"].clone()),
        (json!(i64::MIN), json!(i64::MAX))
    );
    assert_eq!(
        (min["f64"].as_f64(), max["f64"].as_f64()),
        (Some(f64::MIN), Some(f64::MAX))
    );
    assert_eq!(min["text"], json!(""));
    assert_eq!(min["day"], json!("0001-01-01"));
    assert_eq!(max["day"], json!("9999-12-31"));
    let raw = adds[0]["stats"].as_str().unwrap();
    assert!(
        raw.contains("-99999999999999999999999999999999999999")
            && raw.contains(":99999999999999999999999999999999999999"),
        "decimal limits kept exactly: {raw}"
    );
    for c in [
        "i8", "i16", "i32", "i64", "f64", "dec", "ts", "day", "text", "flag", "blob",
    ] {
        assert_eq!(nulls[c], json!(1), "null count of {c}: {stats}");
    }
    assert_eq!(nulls["id"], json!(0));

    // delta-rs reads the table: three rows, each limit exactly.
    let read = read_with_deltalake(&env, &output, "t");
    assert_eq!(read["rows"], json!(3));
    let order = integration_tests::pyarrow_order_by(&read, "id");
    let col = |name: &str| -> Vec<Value> {
        order
            .iter()
            .map(|&i| read["columns"][name][i].clone())
            .collect()
    };
    assert_eq!(
        col("i64"),
        vec![json!(i64::MIN), json!(i64::MAX), Value::Null]
    );
    assert_eq!(col("i8"), vec![json!(-128), json!(127), Value::Null]);
    assert_eq!(
        col("f64"),
        vec![
            json!(f64::MIN.to_bits() as i64),
            json!(f64::MAX.to_bits() as i64),
            Value::Null
        ]
    );
    assert_eq!(
        col("dec"),
        vec![
            json!("-99999999999999999999999999999999999999"),
            json!("99999999999999999999999999999999999999"),
            Value::Null
        ]
    );
    assert_eq!(
        col("ts"),
        vec![
            json!(-62_135_596_800_000_000i64),
            json!(253_402_300_799_999_999i64),
            Value::Null
        ]
    );
    assert_eq!(col("text"), vec![json!(""), json!("zß水🦀"), Value::Null]);
    assert_eq!(col("blob"), vec![json!(""), json!("00ff"), Value::Null]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_on_a_taken_version_is_a_conflict_and_the_run_id_names_the_winner() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let root = env.output("conflict").key("t/");
    let table = DeltaTable::new(store.clone(), BUCKET, &root).unwrap();
    let batch = extremes();
    let schema = batch.schema();
    let commit = |run_id: &'static str, base: Option<u64>, files: Vec<FileToAdd>| {
        let table = table.clone();
        let schema = schema.clone();
        async move {
            table
                .commit(TableCommit {
                    base_version: base,
                    schema: &schema,
                    remove: Removal::Nothing,
                    hive_keys: &[],
                    files: &files,
                    run_id,
                    record: format!("{{\"run\":\"{run_id}\"}}"),
                    engine_info: "test".into(),
                })
                .await
                .unwrap()
        }
    };
    let a = put_file(&store, &format!("{root}part-{RUN}-a-00000.parquet"), &batch).await;
    assert_eq!(
        commit(RUN, None, vec![a]).await,
        CommitOutcome::Committed(0)
    );
    // Two runs planned from version 0: the first takes version 1, the second conflicts.
    const B: &str = "20261202T000000Z0000000b";
    const C: &str = "20261202T000000Z0000000c";
    let b = put_file(&store, &format!("{root}part-{B}-b-00000.parquet"), &batch).await;
    let c = put_file(&store, &format!("{root}part-{C}-c-00000.parquet"), &batch).await;
    assert_eq!(
        commit(B, Some(0), vec![b]).await,
        CommitOutcome::Committed(1)
    );
    assert_eq!(
        commit(C, Some(0), vec![c]).await,
        CommitOutcome::Conflict { version: 1 }
    );
    // Creating the table again is a conflict too, never a second version 0.
    assert_eq!(
        commit(C, None, vec![]).await,
        CommitOutcome::Conflict { version: 0 }
    );
    let latest = table.snapshot(None).await.unwrap().unwrap();
    assert_eq!(latest.version(), 1);
    // The run ids are the transaction ids: version 1 is B's, C committed nothing.
    assert_eq!(table.committed_by(&latest, B).await.unwrap(), Some(1));
    assert_eq!(table.committed_by(&latest, RUN).await.unwrap(), Some(0));
    assert_eq!(table.committed_by(&latest, C).await.unwrap(), None);
    assert_eq!(
        table.record(&latest).await.unwrap().as_deref(),
        Some(format!("{{\"run\":\"{B}\"}}").as_str())
    );
    let files: Vec<String> = table
        .files(&latest)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.key)
        .collect();
    assert_eq!(
        files,
        vec![
            format!("{root}part-{RUN}-a-00000.parquet"),
            format!("{root}part-{B}-b-00000.parquet"),
        ]
    );
}

/// A source whose columns come from its config, so a test can change them between runs:
/// `id` (Int64, the cursor) plus `columns` (name, `int32` | `int64` | `utf8`), each value
/// derived from the id. One partition per run: ids `first..first + rows`.
mod shape {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
    use connector_sdk::{
        Connector, ConnectorError, Partition, Plan, ReadContext, ReadItem, ReadStream,
        StreamDescriptor, async_trait,
    };
    use serde::Deserialize;

    pub const MANIFEST: &str = r#"
name = "shape"
version = "0.1.0"
description = "A source whose columns change between runs"
data_classification = "public"

[[streams]]
name = "items"
incremental = true

[runners.lambda]
memory_mb = 256
vcpu = 1
max_runtime_secs = 900

[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

    #[derive(Debug, Clone, Default, Deserialize, schemars::JsonSchema)]
    #[serde(deny_unknown_fields)]
    pub struct ShapeConfig {
        /// Columns after `id`: (name, type).
        pub columns: Vec<(String, String)>,
        /// First id.
        pub first: i64,
        /// Rows per partition.
        pub rows: i64,
        /// Partitions: partition `k` holds ids `first + k * rows ..`.
        #[serde(default = "one")]
        pub partitions: i64,
        /// Sleep before each partition's batch (to stop a run part way).
        #[serde(default)]
        pub delay_ms: u64,
        /// Whether the stream has a cursor field (`id`).
        #[serde(default = "yes")]
        pub incremental: bool,
        /// Added to every integer value and to every string (`v<id>.<revision>`): the
        /// same key with other values, as a source row updated in place.
        #[serde(default)]
        pub revision: i64,
        /// Each batch repeats its first row (a key that is not unique at the source).
        #[serde(default)]
        pub duplicate: bool,
        /// `id` is declared nullable.
        #[serde(default)]
        pub nullable_id: bool,
        /// Partition `k`'s files go under the hive folder `part=p<k>`.
        #[serde(default)]
        pub hive: bool,
        /// The columns after `id` are declared non-null.
        #[serde(default)]
        pub required: bool,
        /// Partitions emit the checkpoint JSON `null` (a connector bug the core refuses).
        #[serde(default)]
        pub null_checkpoint: bool,
        /// The plan's cursor is JSON `null` (likewise).
        #[serde(default)]
        pub null_cursor: bool,
    }

    fn one() -> i64 {
        1
    }

    fn yes() -> bool {
        true
    }

    impl ShapeConfig {
        /// Every id of the source.
        pub fn ids(&self) -> Vec<i64> {
            (self.first..self.first + self.rows * self.partitions).collect()
        }
    }

    pub struct Shape;

    pub fn schema(config: &ShapeConfig) -> SchemaRef {
        let mut fields = vec![Field::new("id", DataType::Int64, config.nullable_id)];
        for (name, ty) in &config.columns {
            let dt = match ty.as_str() {
                "int32" => DataType::Int32,
                "int64" => DataType::Int64,
                _ => DataType::Utf8,
            };
            fields.push(Field::new(name, dt, !config.required));
        }
        Arc::new(Schema::new(fields))
    }

    pub fn batch(config: &ShapeConfig, k: i64) -> RecordBatch {
        let start = config.first + k * config.rows;
        let mut ids: Vec<i64> = (start..start + config.rows).collect();
        if config.duplicate {
            ids.push(start);
        }
        let r = config.revision;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids.clone()))];
        for (_, ty) in &config.columns {
            columns.push(match ty.as_str() {
                "int32" => Arc::new(Int32Array::from_iter_values(
                    ids.iter().map(|i| (*i as i32).wrapping_mul(10) + r as i32),
                )),
                "int64" => Arc::new(Int64Array::from_iter_values(
                    ids.iter().map(|i| i.wrapping_mul(100) + r),
                )),
                _ => Arc::new(StringArray::from_iter_values(ids.iter().map(|i| {
                    if r == 0 {
                        format!("v{i}")
                    } else {
                        format!("v{i}.{r}")
                    }
                }))),
            });
        }
        RecordBatch::try_new(schema(config), columns).unwrap()
    }

    #[async_trait]
    impl Connector for Shape {
        type Config = ShapeConfig;
        // JSON values, so a test can make the plan's cursor and a checkpoint `null`.
        type Cursor = serde_json::Value;
        type PartitionSpec = i64;
        type Checkpoint = serde_json::Value;
        type Run = ();
        const MANIFEST: &'static str = MANIFEST;

        async fn check(&self, _: &ShapeConfig) -> Result<(), ConnectorError> {
            Ok(())
        }

        async fn discover(&self, c: &ShapeConfig) -> Result<Vec<StreamDescriptor>, ConnectorError> {
            Ok(vec![StreamDescriptor {
                name: "items".into(),
                schema: schema(c),
                cursor_field: c.incremental.then(|| "id".into()),
                primary_key: vec!["id".into()],
                write_disposition: None,
            }])
        }

        async fn plan(
            &self,
            c: &ShapeConfig,
            _: &StreamDescriptor,
            _: Option<&serde_json::Value>,
        ) -> Result<Plan<i64, serde_json::Value>, ConnectorError> {
            Ok(Plan {
                partitions: (0..c.partitions)
                    .map(|k| Partition {
                        id: format!("from-{}-{k}", c.first),
                        hive: if c.hive {
                            vec![("part".into(), format!("p{k}"))]
                        } else {
                            vec![]
                        },
                        spec: k,
                    })
                    .collect(),
                cursor: c.incremental.then(|| {
                    if c.null_cursor {
                        serde_json::Value::Null
                    } else {
                        serde_json::json!(c.first + c.rows * c.partitions - 1)
                    }
                }),
            })
        }

        async fn open_run(
            &self,
            _: &ShapeConfig,
            _: &StreamDescriptor,
        ) -> Result<(), ConnectorError> {
            Ok(())
        }

        fn read<'a>(
            &'a self,
            c: &'a ShapeConfig,
            _: &'a (),
            _: &'a StreamDescriptor,
            p: &'a Partition<i64>,
            _: ReadContext<serde_json::Value>,
        ) -> ReadStream<'a, serde_json::Value> {
            use connector_sdk::futures::StreamExt;
            let k = p.spec;
            let delay = std::time::Duration::from_millis(c.delay_ms);
            let batch = connector_sdk::futures::stream::once(async move {
                tokio::time::sleep(delay).await;
                Ok(ReadItem::Batch(batch(c, k)))
            });
            let checkpoint = if c.null_checkpoint {
                serde_json::Value::Null
            } else {
                serde_json::json!("done")
            };
            let done = connector_sdk::futures::stream::iter([Ok(ReadItem::Checkpoint(checkpoint))]);
            Box::pin(batch.chain(done))
        }
    }
}

/// A connector whose cursor, partition spec and checkpoint are of other types than
/// `Shape`'s, on the same stream: a table `Shape` wrote is not its table.
mod other_state {
    use connector_sdk::{
        Connector, ConnectorError, Partition, Plan, ReadContext, ReadStream, StreamDescriptor,
        async_trait,
    };
    use serde::{Deserialize, Serialize};

    use super::shape::{MANIFEST, Shape, ShapeConfig};

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    pub struct Named {
        pub n: i64,
    }

    pub struct OtherState;

    #[async_trait]
    impl Connector for OtherState {
        type Config = ShapeConfig;
        type Cursor = Named;
        type PartitionSpec = Named;
        type Checkpoint = Named;
        type Run = ();
        const MANIFEST: &'static str = MANIFEST;

        async fn check(&self, _: &ShapeConfig) -> Result<(), ConnectorError> {
            Ok(())
        }
        async fn discover(&self, c: &ShapeConfig) -> Result<Vec<StreamDescriptor>, ConnectorError> {
            Shape.discover(c).await
        }
        async fn plan(
            &self,
            _: &ShapeConfig,
            _: &StreamDescriptor,
            _: Option<&Named>,
        ) -> Result<Plan<Named, Named>, ConnectorError> {
            Ok(Plan {
                partitions: vec![Partition {
                    id: "named".into(),
                    hive: vec![],
                    spec: Named { n: 0 },
                }],
                cursor: Some(Named { n: 0 }),
            })
        }
        async fn open_run(
            &self,
            _: &ShapeConfig,
            _: &StreamDescriptor,
        ) -> Result<(), ConnectorError> {
            Ok(())
        }
        fn read<'a>(
            &'a self,
            _: &'a ShapeConfig,
            _: &'a (),
            _: &'a StreamDescriptor,
            _: &'a Partition<Named>,
            _: ReadContext<Named>,
        ) -> ReadStream<'a, Named> {
            Box::pin(connector_sdk::futures::stream::empty())
        }
    }
}

/// Runs `config` through the core with `policy`.
async fn run_shape(
    env: &TestEnv,
    output: &connector_sdk::OutputLocation,
    config: shape::ShapeConfig,
    policy: connector_sdk::SchemaEvolution,
) -> Result<connector_sdk::RunReport, connector_sdk::Error> {
    let mut options = connector_sdk::ExtractOptions::new(output.clone());
    options.schema_evolution = policy;
    run_with(env, config, options, connector_sdk::StopSignal::new()).await
}

async fn run_with(
    env: &TestEnv,
    config: shape::ShapeConfig,
    options: connector_sdk::ExtractOptions,
    stop: connector_sdk::StopSignal,
) -> Result<connector_sdk::RunReport, connector_sdk::Error> {
    connector_sdk::ExtractCore::new(shape::Shape, config, env.store().await, options, "test")?
        .run("items", &stop)
        .await
}

/// The ids delta-rs reads from the table, sorted.
fn table_ids(env: &TestEnv, output: &connector_sdk::OutputLocation) -> Vec<i64> {
    let read = read_with_deltalake(env, output, "items");
    let mut ids: Vec<i64> = read["columns"]["id"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids
}

/// `replace`: the table becomes exactly the latest source, in one commit; a run stopped
/// part way stages its files and leaves the old table as it was; the resumed run swaps the
/// whole table at once. A stream without a cursor field replaces by default; one with a
/// cursor appends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replace_swaps_the_whole_table_at_once_even_across_a_stopped_run() {
    use connector_sdk::{RunStatus, StopSignal, WriteDisposition};
    let env = TestEnv::start().await;
    let out = env.output("replace");
    let source = |first: i64, partitions: i64, delay_ms: u64| shape::ShapeConfig {
        columns: cols(&[("a", "int64")]),
        first,
        rows: 4,
        partitions,
        delay_ms,
        incremental: false,
        ..Default::default()
    };
    let options = || {
        let mut o = connector_sdk::ExtractOptions::new(out.clone());
        o.max_concurrent_partitions = 1;
        o
    };
    // No cursor field: `replace` by default. Twice: exactly the latest source.
    run_with(&env, source(1, 2, 0), options(), StopSignal::new())
        .await
        .unwrap();
    assert_eq!(table_ids(&env, &out), source(1, 2, 0).ids());
    let second = run_with(&env, source(100, 3, 0), options(), StopSignal::new())
        .await
        .unwrap();
    assert_eq!(second.rows, 12);
    assert_eq!(table_ids(&env, &out), source(100, 3, 0).ids());

    // A stopped replace: one partition of three read, then the deadline. Its files are
    // staged, not visible: readers still see the previous table, whole.
    let slow = source(500, 3, 400);
    let stop = StopSignal::new().with_deadline(Some(
        std::time::Instant::now() + std::time::Duration::from_millis(600),
    ));
    let partial = run_with(&env, slow.clone(), options(), stop).await.unwrap();
    assert_eq!(partial.status, RunStatus::Partial);
    assert!(
        partial.rows > 0 && partial.rows < 12,
        "rows {}",
        partial.rows
    );
    assert_eq!(table_ids(&env, &out), source(100, 3, 0).ids());
    // Even if the next run asks for `append`, the staged plan finishes as a replace.
    let mut append = options();
    append.write_disposition = Some(WriteDisposition::Append);
    let rest = run_with(&env, slow.clone(), append, StopSignal::new())
        .await
        .unwrap();
    assert_eq!(rest.status, RunStatus::Complete);
    assert_eq!(partial.rows + rest.rows, 12);
    assert_eq!(table_ids(&env, &out), slow.ids());
    // The replaced files are out of the table but still in the bucket (time travel; a
    // vacuum removes them).
    let live = connector_sdk::Dataset::new(env.store().await, out.clone(), "items")
        .committed_files()
        .await
        .unwrap();
    assert_eq!(live.iter().map(|f| f.rows).sum::<u64>(), 12);
    // gc with vacuum semantics: the replaced files go once their removal is older than
    // the grace (0 here, through the dataset API; `gc` itself never allows less than the
    // longest declared runtime); the table's own files stay and it still reads whole.
    let dataset = connector_sdk::Dataset::new(env.store().await, out.clone(), "items");
    let parquet = |keys: Vec<String>| keys.into_iter().filter(|k| k.ends_with(".parquet")).count();
    let before = parquet(env.keys("replace/items/").await);
    assert_eq!(
        before,
        2 + 3 + 3,
        "every run's files are still in the bucket"
    );
    let kept = dataset.collect_garbage(3600, false).await.unwrap();
    assert!(kept.deleted_objects.is_empty(), "{kept:?}");
    let dry = dataset.collect_garbage(0, true).await.unwrap();
    assert_eq!(dry.deleted_objects.len(), 5, "{dry:?}");
    assert_eq!(parquet(env.keys("replace/items/").await), before);
    let vacuumed = dataset.collect_garbage(0, false).await.unwrap();
    assert_eq!(vacuumed.deleted_objects, dry.deleted_objects);
    assert_eq!(parquet(env.keys("replace/items/").await), 3);
    assert_eq!(table_ids(&env, &out), slow.ids());

    // A stream with a cursor appends by default; `replace` on it is honoured.
    let out = env.output("append");
    let incremental = |first: i64| shape::ShapeConfig {
        incremental: true,
        ..source(first, 1, 0)
    };
    let o = || connector_sdk::ExtractOptions::new(out.clone());
    run_with(&env, incremental(1), o(), StopSignal::new())
        .await
        .unwrap();
    run_with(&env, incremental(5), o(), StopSignal::new())
        .await
        .unwrap();
    assert_eq!(table_ids(&env, &out), (1..=8).collect::<Vec<i64>>());
    let mut replace = o();
    replace.write_disposition = Some(WriteDisposition::Replace);
    run_with(&env, incremental(9), replace, StopSignal::new())
        .await
        .unwrap();
    assert_eq!(table_ids(&env, &out), (9..=12).collect::<Vec<i64>>());
}

fn cols(spec: &[(&str, &str)]) -> Vec<(String, String)> {
    spec.iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect()
}

/// `[10, 20, ..., 10 * n]`: column `a` (int32, ten times the id) of ids `1..=n`.
fn tens(n: i64) -> Vec<Value> {
    (1..=n).map(|i| json!(i * 10)).collect()
}

/// Column `name` of delta-rs's read, in `id` order.
fn column_by_id(read: &Value, name: &str) -> Vec<Value> {
    let order = integration_tests::pyarrow_order_by(read, "id");
    let col = read["columns"][name]
        .as_array()
        .unwrap_or_else(|| panic!("no column `{name}` in {}", read["schema"]));
    order.iter().map(|&i| col[i].clone()).collect()
}

/// Under each policy: a column added at the source, a column dropped at the source, a
/// column whose type changed. delta-rs reads the result each time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schema_evolution_adds_refuses_or_discards_new_columns_and_refuses_type_changes() {
    use connector_sdk::SchemaEvolution::{DiscardColumns, Evolve, Freeze};
    let env = TestEnv::start().await;
    let v1 = |first| shape::ShapeConfig {
        columns: cols(&[("a", "int32")]),
        first,
        rows: 3,
        partitions: 1,
        delay_ms: 0,
        incremental: true,
        ..Default::default()
    };
    let v2 = |first| shape::ShapeConfig {
        columns: cols(&[("a", "int32"), ("b", "utf8")]),
        first,
        rows: 3,
        partitions: 1,
        delay_ms: 0,
        incremental: true,
        ..Default::default()
    };

    // evolve: the new column is added; earlier rows read it as null.
    let out = env.output("evolve");
    run_shape(&env, &out, v1(1), Evolve).await.unwrap();
    run_shape(&env, &out, v2(4), Evolve).await.unwrap();
    let read = read_with_deltalake(&env, &out, "items");
    assert_eq!(read["rows"], json!(6));
    assert_eq!(
        column_by_id(&read, "b"),
        vec![
            Value::Null,
            Value::Null,
            Value::Null,
            json!("v4"),
            json!("v5"),
            json!("v6")
        ]
    );
    assert_eq!(column_by_id(&read, "a"), tens(6));
    // A column the source drops reads as null from then on; the table keeps it.
    let v3 = shape::ShapeConfig {
        columns: cols(&[("b", "utf8")]),
        first: 7,
        rows: 2,
        partitions: 1,
        delay_ms: 0,
        incremental: true,
        ..Default::default()
    };
    run_shape(&env, &out, v3, Evolve).await.unwrap();
    let read = read_with_deltalake(&env, &out, "items");
    assert_eq!(read["rows"], json!(8));
    let a = column_by_id(&read, "a");
    assert_eq!(&a[6..], &[Value::Null, Value::Null]);
    assert_eq!(column_by_id(&read, "b")[7], json!("v8"));

    // freeze: the new column is refused before anything is read; the table is unchanged.
    let out = env.output("freeze");
    run_shape(&env, &out, v1(1), Freeze).await.unwrap();
    let err = run_shape(&env, &out, v2(4), Freeze).await.unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`b`") && msg.contains("freeze") && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(err.exit_code(), connector_sdk::exit::INPUT);
    let keys = env.keys("freeze/items/").await;
    assert_eq!(
        keys.iter().filter(|k| k.ends_with(".parquet")).count(),
        1,
        "no file written by the refused run: {keys:?}"
    );
    assert_eq!(read_with_deltalake(&env, &out, "items")["rows"], json!(3));

    // discard_columns: the run lands, without the new column.
    let out = env.output("discard");
    run_shape(&env, &out, v1(1), DiscardColumns).await.unwrap();
    run_shape(&env, &out, v2(4), DiscardColumns).await.unwrap();
    let read = read_with_deltalake(&env, &out, "items");
    assert_eq!(read["rows"], json!(6));
    assert_eq!(
        read["schema"],
        json!([["id", "int64", false], ["a", "int32", true]])
    );
    assert_eq!(column_by_id(&read, "a"), tens(6));

    // A changed type is refused under every policy, naming the column and both types.
    for policy in [Evolve, Freeze, DiscardColumns] {
        let changed = shape::ShapeConfig {
            columns: cols(&[("a", "utf8")]),
            first: 100,
            rows: 1,
            partitions: 1,
            delay_ms: 0,
            incremental: true,
            ..Default::default()
        };
        let msg = run_shape(&env, &env.output("discard"), changed, policy)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            msg.contains("`a`") && msg.contains("integer") && msg.contains("string"),
            "{policy:?}: {msg}"
        );
    }
    assert_eq!(
        read_with_deltalake(&env, &env.output("discard"), "items")["rows"],
        json!(6)
    );
}

/// Every tenth version gets a checkpoint (Parquet, through our S3 client): after it, a
/// snapshot needs neither the older commits nor a long log walk. delta-rs reads the table
/// from the checkpoint too, and so does the next run's planning after the older log
/// entries are gone. Every version gets a checksum (`.crc`), from which planning reads the
/// run record without replaying the log; one that does not parse is passed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenth_version_is_checkpointed_every_version_checksummed_and_planning_reads_them() {
    let env = TestEnv::start().await;
    let out = env.output("checkpoints");
    let step = |k: i64| shape::ShapeConfig {
        columns: cols(&[("a", "int32")]),
        first: 1 + 3 * k,
        rows: 3,
        partitions: 1,
        delay_ms: 0,
        incremental: true,
        ..Default::default()
    };
    for k in 0..12 {
        run_shape(&env, &out, step(k), connector_sdk::SchemaEvolution::Evolve)
            .await
            .unwrap();
    }
    let log = env.keys("checkpoints/items/_delta_log/").await;
    assert!(
        log.contains(
            &"checkpoints/items/_delta_log/00000000000000000010.checkpoint.parquet".to_string()
        ),
        "{log:?}"
    );
    assert!(log.contains(&"checkpoints/items/_delta_log/_last_checkpoint".to_string()));
    assert_eq!(
        log.iter()
            .filter(|k| k.ends_with(".checkpoint.parquet"))
            .count(),
        1,
        "{log:?}"
    );
    // The commits before the checkpoint are no longer needed: remove them (as a log
    // cleanup would); readers and the next run work from the checkpoint.
    let store = env.store().await;
    for v in 0..10 {
        store
            .delete(
                BUCKET,
                &format!("checkpoints/items/_delta_log/{v:020}.json"),
            )
            .await
            .unwrap();
    }
    assert_eq!(table_ids(&env, &out), (1..=36).collect::<Vec<i64>>());
    // Every version has its checksum (what planning reads instead of replaying the log).
    for v in 0..12 {
        let crc = format!("checkpoints/items/_delta_log/{v:020}.crc");
        assert!(log.contains(&crc), "{crc} missing: {log:?}");
    }
    // A checksum that does not parse is passed over: the state comes from the checkpoint
    // and the log after it, and the next commit still gets its checksum.
    store
        .put(
            BUCKET,
            "checkpoints/items/_delta_log/00000000000000000011.crc",
            Bytes::from_static(b"{\"tableSizeBytes\": "),
            false,
        )
        .await
        .unwrap();
    let next = run_shape(&env, &out, step(12), connector_sdk::SchemaEvolution::Evolve)
        .await
        .unwrap();
    assert_eq!((next.rows, next.sequence), (3, Some(13)));
    assert_eq!(table_ids(&env, &out), (1..=39).collect::<Vec<i64>>());
    assert!(
        env.keys("checkpoints/items/_delta_log/")
            .await
            .contains(&"checkpoints/items/_delta_log/00000000000000000012.crc".to_string())
    );
    // The checksum's state is the log's: a run after it continues from the cursor.
    let after = run_shape(&env, &out, step(13), connector_sdk::SchemaEvolution::Evolve)
        .await
        .unwrap();
    assert_eq!((after.rows, after.sequence), (3, Some(14)));
    assert_eq!(table_ids(&env, &out), (1..=42).collect::<Vec<i64>>());
}

/// `merge`: an upsert by the stream's key, in one commit. Rows whose key the table has
/// are replaced (the file holding them is rewritten without them, or removed when every
/// row of it is replaced), new keys are appended; a repeated run changes nothing; a run
/// stopped part way merges what it read and the resumed run the rest. Keys at the bottom
/// of the `i64` range. A key that repeats within a run, or a nullable key, is refused and
/// leaves the table as it was. delta-rs and DuckDB read the same table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_upserts_by_key_in_one_commit_and_refuses_keys_it_cannot_trust() {
    use connector_sdk::{Error, RunStatus, StopSignal, WriteDisposition};
    use std::collections::BTreeMap;
    let env = TestEnv::start().await;
    let out = env.output("merge");
    let base = i64::MIN;
    let source = |first: i64, partitions: i64, revision: i64| shape::ShapeConfig {
        columns: cols(&[("b", "utf8"), ("a", "int64")]),
        first,
        rows: 4,
        partitions,
        incremental: false,
        revision,
        ..Default::default()
    };
    let merge = || {
        let mut o = connector_sdk::ExtractOptions::new(out.clone());
        o.write_disposition = Some(WriteDisposition::Merge);
        o.max_concurrent_partitions = 1;
        o
    };
    // What the table must hold: id -> (b, a), as the source rows last merged.
    let mut model: BTreeMap<i64, (Value, Value)> = BTreeMap::new();
    let apply = |model: &mut BTreeMap<i64, (Value, Value)>, c: &shape::ShapeConfig| {
        for id in c.ids() {
            let b = if c.revision == 0 {
                format!("v{id}")
            } else {
                format!("v{id}.{}", c.revision)
            };
            model.insert(id, (json!(b), json!(id.wrapping_mul(100) + c.revision)));
        }
    };
    let table = |env: &TestEnv| -> BTreeMap<i64, (Value, Value)> {
        let read = read_with_deltalake(env, &out, "items");
        let ids = read["columns"]["id"].as_array().unwrap();
        let (b, a) = (&read["columns"]["b"], &read["columns"]["a"]);
        let mut t = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            let previous = t.insert(id.as_i64().unwrap(), (b[i].clone(), a[i].clone()));
            assert!(previous.is_none(), "key {id} twice in the table");
        }
        t
    };

    // The first merge creates the table.
    let first = source(base, 2, 0);
    run_with(&env, first.clone(), merge(), StopSignal::new())
        .await
        .unwrap();
    apply(&mut model, &first);
    assert_eq!(table(&env), model);

    // Overlapping keys with new values: the first file keeps two rows (rewritten), the
    // second loses all four (removed), four new keys are appended.
    let second = source(base + 2, 2, 1);
    let report = run_with(&env, second.clone(), merge(), StopSignal::new())
        .await
        .unwrap();
    assert_eq!(report.rows, 8);
    apply(&mut model, &second);
    assert_eq!(table(&env), model);
    assert_eq!(model.len(), 10);
    let ds = connector_sdk::Dataset::new(env.store().await, out.clone(), "items");
    let record = ds.latest().await.unwrap().unwrap();
    assert_eq!(record.removed_files.len(), 2, "{:?}", record.removed_files);
    let rewritten: Vec<_> = record
        .files
        .iter()
        .filter(|f| f.key.contains("-~merge-"))
        .collect();
    assert_eq!(rewritten.len(), 1, "{:?}", record.files);
    assert_eq!(rewritten[0].rows, 2);
    let live = ds.committed_files().await.unwrap();
    assert_eq!(live.iter().map(|f| f.rows).sum::<u64>(), 10);
    assert!(
        live.iter().all(|f| !record.removed_files.contains(&f.key)),
        "a removed file is still in the table"
    );
    // Another engine agrees.
    let duck = integration_tests::read_with_duckdb(&env, &out, "items");
    assert_eq!(duck["rows"], json!(10));

    // The same source again: the table is unchanged.
    run_with(&env, second.clone(), merge(), StopSignal::new())
        .await
        .unwrap();
    assert_eq!(table(&env), model);

    // A key twice in one run: refused, nothing committed, the run's files deleted.
    let parquet_before = env
        .keys("merge/items/")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .count();
    let version_before = ds.sequences().await.unwrap().len();
    let duplicated = shape::ShapeConfig {
        duplicate: true,
        ..source(base + 20, 1, 7)
    };
    let err = run_with(&env, duplicated, merge(), StopSignal::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::DuplicateMergeKey { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("({})", base + 20)) && msg.contains("(id)") && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(table(&env), model);
    assert_eq!(ds.sequences().await.unwrap().len(), version_before);
    let parquet_after = env
        .keys("merge/items/")
        .await
        .into_iter()
        .filter(|k| k.ends_with(".parquet"))
        .count();
    assert_eq!(
        parquet_after, parquet_before,
        "the refused run's files are gone"
    );

    // A nullable key: refused before anything is read.
    let nullable = shape::ShapeConfig {
        nullable_id: true,
        ..source(base + 30, 1, 8)
    };
    let err = run_with(&env, nullable, merge(), StopSignal::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`id`") && msg.contains("nullable") && msg.contains("merge"),
        "{msg}"
    );
    assert_eq!(err.exit_code(), connector_sdk::exit::INPUT);
    assert_eq!(
        env.keys("merge/items/")
            .await
            .into_iter()
            .filter(|k| k.ends_with(".parquet"))
            .count(),
        parquet_before
    );

    // A merge stopped part way commits what it read (merged); the resumed run merges the
    // rest. Keys base+8 and base+9 exist; the rest are new.
    let slow = shape::ShapeConfig {
        delay_ms: 400,
        ..source(base + 8, 3, 2)
    };
    let stop = StopSignal::new().with_deadline(Some(
        std::time::Instant::now() + std::time::Duration::from_millis(600),
    ));
    let partial = run_with(&env, slow.clone(), merge(), stop).await.unwrap();
    assert_eq!(partial.status, RunStatus::Partial);
    assert!(partial.rows > 0 && partial.rows < 12, "{}", partial.rows);
    let mut after_partial = model.clone();
    let done_partitions = partial.rows / 4;
    apply(
        &mut after_partial,
        &shape::ShapeConfig {
            partitions: done_partitions as i64,
            ..slow.clone()
        },
    );
    assert_eq!(table(&env), after_partial);
    let rest = run_with(&env, slow.clone(), merge(), StopSignal::new())
        .await
        .unwrap();
    assert_eq!(rest.status, RunStatus::Complete);
    assert_eq!(partial.rows + rest.rows, 12);
    apply(&mut model, &slow);
    assert_eq!(table(&env), model);
    assert_eq!(model.len(), 20);
}

/// Hive folders that are not columns (`part=p<k>/`) become the table's Delta partition
/// columns: the log declares them, each add carries its file's value, and delta-rs and
/// DuckDB read the column with each row's partition. A `merge` rewrite keeps a file's
/// partition value; a `replace` keeps the partitioning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hive_folders_become_partition_columns_that_other_readers_see() {
    use connector_sdk::{StopSignal, WriteDisposition};
    let env = TestEnv::start().await;
    let out = env.output("partitioned");
    let source = |first: i64, revision: i64| shape::ShapeConfig {
        columns: cols(&[("b", "utf8")]),
        first,
        rows: 3,
        partitions: 3,
        incremental: false,
        revision,
        hive: true,
        ..Default::default()
    };
    let options = |disposition| {
        let mut o = connector_sdk::ExtractOptions::new(out.clone());
        o.write_disposition = Some(disposition);
        o
    };
    // The partition of each id: ids first + 3k .. first + 3k + 2 are in part=p<k>.
    let part_of = |c: &shape::ShapeConfig, id: i64| format!("p{}", (id - c.first) / c.rows);
    let check = |expected: &BTreeMap<i64, (String, String)>, reader: &str| {
        let read = match reader {
            "deltalake" => read_with_deltalake(&env, &out, "items"),
            _ => integration_tests::read_with_duckdb(&env, &out, "items"),
        };
        let part = read["schema"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f[0] == "part")
            .unwrap_or_else(|| panic!("{reader}: no `part` column in {}", read["schema"]));
        assert!(part[1].as_str().unwrap().contains("string"), "{part}");
        let ids = read["columns"]["id"].as_array().unwrap();
        let mut got = BTreeMap::new();
        for (i, id) in ids.iter().enumerate() {
            got.insert(
                id.as_i64().unwrap(),
                (
                    read["columns"]["b"][i].as_str().unwrap().to_string(),
                    read["columns"]["part"][i].as_str().unwrap().to_string(),
                ),
            );
        }
        assert_eq!(read["rows"], json!(expected.len()), "{reader}");
        assert_eq!(&got, expected, "{reader}");
    };
    use std::collections::BTreeMap;
    let mut expected = BTreeMap::new();
    let first = source(1, 0);
    run_with(
        &env,
        first.clone(),
        options(WriteDisposition::Merge),
        StopSignal::new(),
    )
    .await
    .unwrap();
    for id in first.ids() {
        expected.insert(id, (format!("v{id}"), part_of(&first, id)));
    }
    check(&expected, "deltalake");
    check(&expected, "duckdb");

    // The log: `part` is the partition column; each add has its folder's value.
    let store = env.store().await;
    let table = DeltaTable::new(store.clone(), BUCKET, &out.key("items/")).unwrap();
    let log = store.get(BUCKET, &table.log_key(0)).await.unwrap().unwrap();
    let metadata = String::from_utf8(log.to_vec())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find_map(|a| a.get("metaData").cloned())
        .expect("metaData");
    assert_eq!(metadata["partitionColumns"], json!(["part"]));
    for add in adds(&store, &table, 0).await {
        let path = add["path"].as_str().unwrap();
        let folder = path.split('/').next().unwrap();
        assert_eq!(
            json!(format!(
                "part={}",
                add["partitionValues"]["part"].as_str().unwrap()
            )),
            json!(folder),
            "{add}"
        );
    }

    // A merge that replaces ids 2..=4 (partitions p0 and p1 of the table): the rewritten
    // files keep their partition values.
    let update = shape::ShapeConfig {
        rows: 3,
        partitions: 1,
        ..source(2, 5)
    };
    run_with(
        &env,
        update.clone(),
        options(WriteDisposition::Merge),
        StopSignal::new(),
    )
    .await
    .unwrap();
    for id in update.ids() {
        expected.insert(id, (format!("v{id}.5"), "p0".to_string()));
    }
    check(&expected, "deltalake");
    check(&expected, "duckdb");

    // A replace keeps the table partitioned: exactly the new source.
    let replaced = source(100, 0);
    run_with(
        &env,
        replaced.clone(),
        options(WriteDisposition::Replace),
        StopSignal::new(),
    )
    .await
    .unwrap();
    let expected: BTreeMap<_, _> = replaced
        .ids()
        .into_iter()
        .map(|id| (id, (format!("v{id}"), part_of(&replaced, id))))
        .collect();
    check(&expected, "deltalake");
    check(&expected, "duckdb");
}

/// A source column the table holds as NOT NULL disappears: the commit makes the column
/// nullable, and the new rows read null in it (a reader must never fail on a file that
/// lacks a non-null column).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_non_null_column_becomes_nullable_and_reads_null() {
    let env = TestEnv::start().await;
    let out = env.output("dropped");
    let with_a = shape::ShapeConfig {
        columns: cols(&[("a", "int32"), ("b", "utf8")]),
        first: 1,
        rows: 2,
        partitions: 1,
        required: true,
        incremental: true,
        ..Default::default()
    };
    let without_a = shape::ShapeConfig {
        columns: cols(&[("b", "utf8")]),
        first: 3,
        ..with_a.clone()
    };
    for c in [with_a, without_a] {
        run_shape(&env, &out, c, connector_sdk::SchemaEvolution::Evolve)
            .await
            .unwrap();
    }
    let read = read_with_deltalake(&env, &out, "items");
    assert_eq!(
        read["schema"],
        json!([
            ["id", "int64", false],
            ["a", "int32", true],
            ["b", "string", false]
        ])
    );
    assert_eq!(
        column_by_id(&read, "a"),
        vec![json!(10), json!(20), Value::Null, Value::Null]
    );
    assert_eq!(
        column_by_id(&read, "b"),
        vec![json!("v1"), json!("v2"), json!("v3"), json!("v4")]
    );
    let duck = integration_tests::read_with_duckdb(&env, &out, "items");
    assert_eq!(duck["rows"], json!(4));
}

/// A cursor or checkpoint of JSON `null` would be stored as "none" and read back as
/// "start over" (the rows extracted again): the core refuses both, and commits nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_null_cursor_or_checkpoint_is_refused_and_nothing_commits() {
    let env = TestEnv::start().await;
    let out = env.output("nulls");
    let base = shape::ShapeConfig {
        columns: cols(&[("a", "int32")]),
        first: 1,
        rows: 2,
        partitions: 1,
        incremental: true,
        ..Default::default()
    };
    for (config, expected) in [
        (
            shape::ShapeConfig {
                null_checkpoint: true,
                ..base.clone()
            },
            "a checkpoint that is JSON null",
        ),
        (
            shape::ShapeConfig {
                null_cursor: true,
                ..base.clone()
            },
            "a cursor that is JSON null",
        ),
    ] {
        let err = run_shape(&env, &out, config, connector_sdk::SchemaEvolution::Evolve)
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(expected) && !msg.contains('\n'), "{msg}");
        let ds = connector_sdk::Dataset::new(env.store().await, out.clone(), "items");
        assert!(ds.latest().await.unwrap().is_none(), "nothing committed");
    }
}

/// The core stores a connector's typed cursor, partition specs and checkpoints as JSON
/// and hands them back typed. A table whose stored state does not read as the connector's
/// types (another connector's table, an incompatible version) is refused with one line
/// naming the stream, what did not read and the value, before anything is read or
/// written; the table and its pending plan stay as they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stored_state_of_another_type_is_refused_and_the_table_is_unchanged() {
    let env = TestEnv::start().await;
    let core_of = |out: &connector_sdk::OutputLocation, store| {
        connector_sdk::ExtractCore::new(
            other_state::OtherState,
            shape::ShapeConfig::default(),
            store,
            connector_sdk::ExtractOptions::new(out.clone()),
            "test",
        )
        .unwrap()
    };
    let config = shape::ShapeConfig {
        columns: cols(&[("a", "int32")]),
        first: 1,
        rows: 2,
        partitions: 2,
        incremental: true,
        ..Default::default()
    };

    // A committed cursor (`Shape`'s is the last id, 4) that is not `{"n": ...}`.
    let out = env.output("other-cursor");
    let done = run_shape(
        &env,
        &out,
        config.clone(),
        connector_sdk::SchemaEvolution::Evolve,
    )
    .await
    .unwrap();
    assert_eq!(done.cursor, Some(json!(4)));
    let ds = connector_sdk::Dataset::new(env.store().await, out.clone(), "items");
    let before = ds.latest().await.unwrap().unwrap();
    let err = core_of(&out, env.store().await)
        .run("items", &connector_sdk::StopSignal::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(
            "stream `items`: the committed cursor 4 does not read as this connector's cursor type"
        ) && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!((err.class(), err.exit_code()), ("StoredStateMismatch", 2));
    assert_eq!(
        ds.latest().await.unwrap().unwrap(),
        before,
        "nothing committed"
    );

    // A pending plan (a run stopped before reading) whose partition specs are `Shape`'s.
    let out = env.output("other-spec");
    let stop = connector_sdk::StopSignal::new();
    stop.cancel.cancel();
    let partial = run_with(
        &env,
        config,
        connector_sdk::ExtractOptions::new(out.clone()),
        stop,
    )
    .await
    .unwrap();
    assert_eq!(partial.status, connector_sdk::RunStatus::Partial);
    let ds = connector_sdk::Dataset::new(env.store().await, out.clone(), "items");
    let before = ds.latest().await.unwrap().unwrap();
    assert!(
        before.state.pending.is_some(),
        "the stopped run left its plan pending"
    );
    let err = core_of(&out, env.store().await)
        .run("items", &connector_sdk::StopSignal::new())
        .await
        .unwrap_err();
    let msg = err.to_string();
    // The two partitions are read at once: either may be refused first.
    assert!(
        ["0", "1"].iter().any(|k| msg.contains(&format!(
            "stream `items`: the committed partition spec {k} does not read as this connector's partition spec type"
        ))) && !msg.contains('\n'),
        "{msg}"
    );
    assert_eq!(err.class(), "StoredStateMismatch");
    assert_eq!(
        ds.latest().await.unwrap().unwrap(),
        before,
        "nothing committed"
    );
    let files = env
        .store()
        .await
        .list(&out.bucket, &out.key("items/"))
        .await
        .unwrap();
    assert!(
        files.iter().all(|f| !f.key.ends_with(".parquet")),
        "no data file written: {files:?}"
    );
}

/// The statistics an extract commits (from each file's footer, in rows groups of 100
/// rows) are the file's own values, read back by the Parquet reader: its rows, each
/// column's nulls, least and greatest value — negative and positive integers, and strings
/// whose byte order is not their numeric order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_extracts_file_statistics_are_the_values_of_its_files() {
    use arrow::array::{Array, AsArray};
    use arrow::compute::{max, max_string, min, min_string};
    use arrow::datatypes::{Int32Type, Int64Type};
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let env = TestEnv::start().await;
    let output = env.output("file-stats");
    let config = shape::ShapeConfig {
        columns: cols(&[("n32", "int32"), ("n64", "int64"), ("s", "string")]),
        first: -1000,
        rows: 700,
        partitions: 3,
        incremental: true,
        ..Default::default()
    };
    let mut options = connector_sdk::ExtractOptions::new(output.clone());
    options.parquet.row_group_rows = 100;
    run_with(&env, config, options, connector_sdk::StopSignal::new())
        .await
        .unwrap();
    let store = env.store().await;
    let root = output.key("items/");
    let table = DeltaTable::new(store.clone(), BUCKET, &root).unwrap();
    let adds = adds(&store, &table, 0).await;
    assert_eq!(adds.len(), 3, "a file per partition");
    for add in adds {
        let key = format!("{root}{}", add["path"].as_str().unwrap());
        let body = store.get(BUCKET, &key).await.unwrap().expect("data file");
        let reader = ParquetRecordBatchReaderBuilder::try_new(body).unwrap();
        assert_eq!(reader.metadata().num_row_groups(), 7, "{key}");
        let batches: Vec<RecordBatch> = reader.build().unwrap().map(Result::unwrap).collect();
        let batch = arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
        let stats: Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
        assert_eq!(stats["numRecords"], json!(batch.num_rows()), "{key}");
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name().as_str();
            let (least, greatest) = match column.data_type() {
                DataType::Int32 => {
                    let c = column.as_primitive::<Int32Type>();
                    (json!(min(c)), json!(max(c)))
                }
                DataType::Int64 => {
                    let c = column.as_primitive::<Int64Type>();
                    (json!(min(c)), json!(max(c)))
                }
                _ => {
                    let c = column.as_string::<i32>();
                    (json!(min_string(c)), json!(max_string(c)))
                }
            };
            assert_eq!(
                stats["nullCount"][name],
                json!(column.null_count()),
                "{key} {name}"
            );
            assert_eq!(stats["minValues"][name], least, "{key} {name}: {stats}");
            assert_eq!(stats["maxValues"][name], greatest, "{key} {name}: {stats}");
        }
    }
}
