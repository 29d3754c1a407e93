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
use connector_sdk::table::{CommitOutcome, DeltaTable, FileToAdd, StatsCollector, TableCommit};
use integration_tests::{BUCKET, TestEnv, read_with_deltalake};
use parquet::arrow::ArrowWriter;
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
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), None).unwrap();
    writer.write(batch).unwrap();
    writer.close().unwrap();
    let bytes = buf.len() as u64;
    store
        .put(BUCKET, key, Bytes::from(buf), false)
        .await
        .unwrap();
    let mut stats = StatsCollector::new(&batch.schema()).unwrap();
    stats.add(batch).unwrap();
    FileToAdd {
        key: key.to_string(),
        bytes,
        stats: stats.finish().unwrap(),
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
            remove_all: false,
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
                    remove_all: false,
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
        Connector, ConnectorError, Cursor, Partition, Plan, ReadContext, ReadItem, ReadStream,
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

    #[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
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
        let mut fields = vec![Field::new("id", DataType::Int64, false)];
        for (name, ty) in &config.columns {
            let dt = match ty.as_str() {
                "int32" => DataType::Int32,
                "int64" => DataType::Int64,
                _ => DataType::Utf8,
            };
            fields.push(Field::new(name, dt, true));
        }
        Arc::new(Schema::new(fields))
    }

    pub fn batch(config: &ShapeConfig, k: i64) -> RecordBatch {
        let start = config.first + k * config.rows;
        let ids: Vec<i64> = (start..start + config.rows).collect();
        let mut columns: Vec<ArrayRef> = vec![Arc::new(Int64Array::from(ids.clone()))];
        for (_, ty) in &config.columns {
            columns.push(match ty.as_str() {
                "int32" => Arc::new(Int32Array::from_iter_values(
                    ids.iter().map(|i| *i as i32 * 10),
                )),
                "int64" => Arc::new(Int64Array::from_iter_values(ids.iter().map(|i| i * 100))),
                _ => Arc::new(StringArray::from_iter_values(
                    ids.iter().map(|i| format!("v{i}")),
                )),
            });
        }
        RecordBatch::try_new(schema(config), columns).unwrap()
    }

    #[async_trait]
    impl Connector for Shape {
        type Config = ShapeConfig;
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
            }])
        }

        async fn plan(
            &self,
            c: &ShapeConfig,
            _: &StreamDescriptor,
            _: Option<&Cursor>,
        ) -> Result<Plan, ConnectorError> {
            Ok(Plan {
                partitions: (0..c.partitions)
                    .map(|k| Partition {
                        id: format!("from-{}-{k}", c.first),
                        hive: vec![],
                        spec: serde_json::json!(k),
                    })
                    .collect(),
                cursor: c
                    .incremental
                    .then(|| serde_json::json!(c.first + c.rows * c.partitions - 1)),
            })
        }

        fn read<'a>(
            &'a self,
            c: &'a ShapeConfig,
            _: &'a StreamDescriptor,
            p: &'a Partition,
            _: ReadContext,
        ) -> ReadStream<'a> {
            use connector_sdk::futures::StreamExt;
            let k = p.spec.as_i64().unwrap_or(0);
            let delay = std::time::Duration::from_millis(c.delay_ms);
            let batch = connector_sdk::futures::stream::once(async move {
                tokio::time::sleep(delay).await;
                Ok(ReadItem::Batch(batch(c, k)))
            });
            let done = connector_sdk::futures::stream::iter([Ok(ReadItem::Checkpoint(
                serde_json::json!("done"),
            ))]);
            Box::pin(batch.chain(done))
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
    };
    let v2 = |first| shape::ShapeConfig {
        columns: cols(&[("a", "int32"), ("b", "utf8")]),
        first,
        rows: 3,
        partitions: 1,
        delay_ms: 0,
        incremental: true,
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
/// entries are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_tenth_version_is_checkpointed_and_planning_reads_from_the_checkpoint() {
    let env = TestEnv::start().await;
    let out = env.output("checkpoints");
    let step = |k: i64| shape::ShapeConfig {
        columns: cols(&[("a", "int32")]),
        first: 1 + 3 * k,
        rows: 3,
        partitions: 1,
        delay_ms: 0,
        incremental: true,
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
    let next = run_shape(&env, &out, step(12), connector_sdk::SchemaEvolution::Evolve)
        .await
        .unwrap();
    assert_eq!((next.rows, next.sequence), (3, Some(13)));
    assert_eq!(table_ids(&env, &out), (1..=39).collect::<Vec<i64>>());
}
