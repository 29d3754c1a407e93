//! A reader that is not ours (pyarrow) reads the committed Parquet of the demo connector
//! and finds the source's values and logical types: a symmetric writer/reader bug in
//! arrow-rs/parquet-rs (which write the files and which our other tests read them with)
//! cannot hide here.

use arrow::array::{
    Array, AsArray, BooleanArray, Decimal128Array, Float64Array, Int32Array, Int64Array,
    StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::DataType;
use std::time::{Duration, Instant};

use connector_sdk::{Dataset, ExtractCore, ExtractOptions, RunStatus, StopSignal};
use integration_tests::{TestEnv, read_with_deltalake, read_with_duckdb, read_with_pyarrow};
use orders_demo::{ORDERS, OrdersDemo, OrdersDemoConfig, orders_batch};
use serde_json::{Value, json};

/// A decimal's exact text at its scale, as Python's `str(Decimal)` prints it.
fn decimal_text(v: i128, scale: u32) -> String {
    let sign = if v < 0 { "-" } else { "" };
    let digits = format!("{:0>width$}", v.unsigned_abs(), width = scale as usize + 1);
    let (int, frac) = digits.split_at(digits.len() - scale as usize);
    if scale == 0 {
        format!("{sign}{int}")
    } else {
        format!("{sign}{int}.{frac}")
    }
}

/// The source column's values in read_parquet.py's canonical form.
fn canonical(col: &dyn Array) -> Vec<Value> {
    let n = col.len();
    let at = |i: usize, v: Value| if col.is_null(i) { Value::Null } else { v };
    match col.data_type() {
        DataType::Int64 => {
            let a = col.as_any().downcast_ref::<Int64Array>().unwrap();
            (0..n).map(|i| at(i, json!(a.value(i)))).collect()
        }
        DataType::Int32 => {
            let a = col.as_any().downcast_ref::<Int32Array>().unwrap();
            (0..n).map(|i| at(i, json!(a.value(i)))).collect()
        }
        DataType::Float64 => {
            let a = col.as_any().downcast_ref::<Float64Array>().unwrap();
            // The IEEE 754 bits, as read_parquet.py prints them (exact).
            (0..n)
                .map(|i| at(i, json!(a.value(i).to_bits() as i64)))
                .collect()
        }
        DataType::Boolean => {
            let a = col.as_any().downcast_ref::<BooleanArray>().unwrap();
            (0..n).map(|i| at(i, json!(a.value(i)))).collect()
        }
        DataType::Utf8 => {
            let a = col.as_any().downcast_ref::<StringArray>().unwrap();
            (0..n).map(|i| at(i, json!(a.value(i)))).collect()
        }
        DataType::Decimal128(_, scale) => {
            let a = col.as_any().downcast_ref::<Decimal128Array>().unwrap();
            let scale = *scale as u32;
            (0..n)
                .map(|i| at(i, json!(decimal_text(a.value(i), scale))))
                .collect()
        }
        DataType::Timestamp(_, _) => {
            let a = col
                .as_any()
                .downcast_ref::<TimestampMicrosecondArray>()
                .unwrap();
            (0..n).map(|i| at(i, json!(a.value(i)))).collect()
        }
        other => panic!("no canonical form for {other}"),
    }
}

/// `read` (from read_parquet.py) holds exactly `source`'s rows, in any order: each column's
/// values in canonical form, matched by `order_id`; `source` must hold nulls.
fn assert_read_equals(read: &Value, source: &arrow::record_batch::RecordBatch, reader: &str) {
    assert_eq!(
        read["rows"],
        json!(source.num_rows()),
        "{reader}: row count"
    );
    let order = integration_tests::pyarrow_order_by(read, "order_id");
    let mut nulls_seen = 0;
    for (field, col) in source.schema().fields().iter().zip(source.columns()) {
        let expected = canonical(col.as_ref());
        let got_column = read["columns"][field.name()]
            .as_array()
            .unwrap_or_else(|| panic!("{reader} read no column `{}`", field.name()));
        let got: Vec<Value> = order.iter().map(|&i| got_column[i].clone()).collect();
        nulls_seen += expected.iter().filter(|v| v.is_null()).count();
        if let Some(i) = (0..expected.len()).find(|&i| got[i] != expected[i]) {
            panic!(
                "column `{}`, order {}: {reader} read {}, the source has {}",
                field.name(),
                i + 1,
                got[i],
                expected[i]
            );
        }
    }
    assert!(
        nulls_seen > 0,
        "the source must hold nulls for this test to mean much"
    );
}

/// The demo's logical types as pyarrow names them, written out rather than derived from
/// our schema.
fn demo_schema_as_read() -> Value {
    json!([
        ["order_id", "int64", false],
        ["customer_id", "int32", false],
        ["amount", "decimal128(12, 2)", true],
        ["currency", "string", false],
        ["created_at", "timestamp[us, tz=UTC]", false],
        ["is_gift", "bool", true],
        ["discount", "double", true],
        ["note", "string", true],
    ])
}

/// [`demo_schema_as_read`] as a Delta reader reads the table: with the `dt=` hive folder
/// as the table's partition column.
fn demo_table_schema_as_read() -> Value {
    let mut schema = demo_schema_as_read();
    schema
        .as_array_mut()
        .unwrap()
        .push(json!(["dt", "string", true]));
    schema
}

#[test]
fn decimal_text_matches_python() {
    assert_eq!(decimal_text(12345, 2), "123.45");
    assert_eq!(decimal_text(-5, 2), "-0.05");
    assert_eq!(decimal_text(50, 2), "0.50");
    assert_eq!(decimal_text(0, 2), "0.00");
    assert_eq!(decimal_text(-7, 0), "-7");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_the_demo_dataset_as_the_source() {
    let env = TestEnv::start().await;
    let config = OrdersDemoConfig {
        rows: 20_000,
        rows_per_day: 6_000,
        batch_size: 3_000,
        ..Default::default()
    };
    let output = env.output("pyarrow");
    let mut options = ExtractOptions::new(output.clone());
    options.parquet.row_group_rows = 4_000;
    ExtractCore::new(
        OrdersDemo,
        config.clone(),
        env.store().await,
        options,
        "test",
    )
    .unwrap()
    .run(ORDERS, &StopSignal::new())
    .await
    .unwrap();
    let read = read_with_pyarrow(&env, &output, ORDERS).await;
    // Logical types as pyarrow names them: written, not derived from our schema.
    assert_eq!(read["schema"], demo_schema_as_read());
    let source = orders_batch(&config, 1, 20_000);
    assert_read_equals(&read, &source, "pyarrow");
    // The columns with extremes of their types in the source are there too.
    let amounts = source
        .column(2)
        .as_primitive::<arrow::datatypes::Decimal128Type>();
    assert!(
        amounts.iter().flatten().any(|v| v < 100),
        "small amounts present"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_the_example_dataset_as_the_source() {
    use sensor_readings::{READINGS, SensorReadings, SensorReadingsConfig, readings_batch};
    let env = TestEnv::start().await;
    let config: SensorReadingsConfig = serde_json::from_value(
        json!({"sensors": 3, "minutes": 1_500, "batch_minutes": 200, "seed": 11}),
    )
    .unwrap();
    let output = env.output("pyarrow-readings");
    ExtractCore::new(
        SensorReadings,
        config,
        env.store().await,
        ExtractOptions::new(output.clone()),
        "test",
    )
    .unwrap()
    .run(READINGS, &StopSignal::new())
    .await
    .unwrap();
    let read = read_with_pyarrow(&env, &output, READINGS).await;
    assert_eq!(
        read["schema"],
        json!([
            ["sensor", "string", false],
            ["minute", "int64", false],
            ["read_at", "timestamp[us, tz=UTC]", false],
            ["temperature_c", "double", false],
            ["humidity_pct", "double", true],
        ])
    );
    // Rows as (sensor, minute, ...) tuples, sorted, on both sides.
    let names = [
        "sensor",
        "minute",
        "read_at",
        "temperature_c",
        "humidity_pct",
    ];
    let n = read["rows"].as_u64().unwrap() as usize;
    let mut got: Vec<Vec<Value>> = (0..n)
        .map(|i| {
            names
                .iter()
                .map(|c| read["columns"][c][i].clone())
                .collect()
        })
        .collect();
    let mut expected: Vec<Vec<Value>> = Vec::new();
    let mut nulls = 0;
    for sensor in 1..=3 {
        let b = readings_batch(11, sensor, 1, 1_500);
        let cols: Vec<Vec<Value>> = b.columns().iter().map(|c| canonical(c.as_ref())).collect();
        nulls += cols[4].iter().filter(|v| v.is_null()).count();
        expected.extend((0..b.num_rows()).map(|i| cols.iter().map(|c| c[i].clone()).collect()));
    }
    let key = |r: &Vec<Value>| (r[0].as_str().unwrap().to_string(), r[1].as_i64().unwrap());
    got.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(got.len(), 4_500);
    assert!(
        nulls > 0,
        "the source must hold nulls for this test to mean much"
    );
    if let Some(i) = (0..expected.len()).find(|&i| got[i] != expected[i]) {
        panic!(
            "row {i}: pyarrow read {:?}, the source has {:?}",
            got[i], expected[i]
        );
    }
}

/// The Delta table, read by delta-rs (Python `deltalake`): after a stopped run, its resumed
/// completion, the leftovers of a run that never committed and an incremental run, the table
/// holds exactly the source's rows each time — no lost row, no duplicate, no file of an
/// uncommitted run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deltalake_reads_the_table_as_the_source_through_stop_resume_crash_and_increments() {
    let env = TestEnv::start().await;
    let store = env.store().await;
    let output = env.output("delta");
    let mut config = OrdersDemoConfig {
        rows: 30_000,
        rows_per_day: 10_000,
        batch_size: 2_000,
        batch_delay_ms: 60,
        ..Default::default()
    };
    let mut options = ExtractOptions::new(output.clone());
    options.max_concurrent_partitions = 1;
    let run = |config: OrdersDemoConfig, stop: StopSignal| {
        let (store, options) = (store.clone(), options.clone());
        async move {
            ExtractCore::new(OrdersDemo, config, store, options, "test")
                .unwrap()
                .run(ORDERS, &stop)
                .await
                .unwrap()
        }
    };

    // 1. A stopped run commits a prefix of the work: the table shows exactly those rows.
    let stop = StopSignal::new().with_deadline(Some(Instant::now() + Duration::from_millis(300)));
    let partial = run(config.clone(), stop).await;
    assert_eq!(partial.status, RunStatus::Partial);
    assert!(
        partial.rows > 0 && partial.rows < 30_000,
        "rows {}",
        partial.rows
    );
    let read = read_with_deltalake(&env, &output, ORDERS);
    assert_eq!(read["rows"], json!(partial.rows));
    // Logical types as delta-rs reports them, from the table's schema.
    assert_eq!(read["schema"], demo_table_schema_as_read());

    // 2. The next run finishes the plan.
    config.batch_delay_ms = 0;
    let rest = run(config.clone(), StopSignal::new()).await;
    assert_eq!(rest.status, RunStatus::Complete);
    assert_eq!(partial.rows + rest.rows, 30_000);
    assert_read_equals(
        &read_with_deltalake(&env, &output, ORDERS),
        &orders_batch(&config, 1, 30_000),
        "deltalake",
    );

    // 3. A run that crashed after writing a file, before its commit: its file sits beside
    //    the table's, under a data-file name, and must not be part of the table.
    let dataset = Dataset::new(store.clone(), output.clone(), ORDERS);
    let committed = dataset.committed_files().await.unwrap();
    let first = &committed[0];
    let body = store
        .get(&output.bucket, &first.key)
        .await
        .unwrap()
        .unwrap();
    let stray = output.key(&format!(
        "{ORDERS}/part-20261202T000000Z0badf00d-{}-00000.parquet",
        first.partition
    ));
    store
        .put(&output.bucket, &stray, body, false)
        .await
        .unwrap();

    // 4. New source rows: the next run appends exactly them.
    config.rows = 36_000;
    let third = run(config.clone(), StopSignal::new()).await;
    assert_eq!(third.rows, 6_000);
    assert_read_equals(
        &read_with_deltalake(&env, &output, ORDERS),
        &orders_batch(&config, 1, 36_000),
        "deltalake",
    );
    // DuckDB's delta_scan reads the same table the same way.
    let duck = read_with_duckdb(&env, &output, ORDERS);
    assert_read_equals(&duck, &orders_batch(&config, 1, 36_000), "duckdb");
    // Each row's `dt` partition value is the UTC day of its order.
    for read in [&duck, &read_with_deltalake(&env, &output, ORDERS)] {
        let created = read["columns"]["created_at"].as_array().unwrap();
        let dt = read["columns"]["dt"].as_array().unwrap();
        assert_eq!(created.len(), 36_000);
        for (c, d) in created.iter().zip(dt) {
            let day = chrono::DateTime::from_timestamp_micros(c.as_i64().unwrap())
                .unwrap()
                .format("%Y-%m-%d")
                .to_string();
            assert_eq!(d.as_str(), Some(day.as_str()), "created_at {c}");
        }
    }
    assert_eq!(dataset.sequences().await.unwrap(), vec![1, 2, 3]);
}
