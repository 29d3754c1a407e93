//! The PostgreSQL connector against a real PostgreSQL (Debian packages), writing through the
//! SDK core to the local S3 server. Expected data always comes from the database itself
//! (a plain `SELECT` decoded by tokio-postgres), never from constants.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use arrow::record_batch::RecordBatch;
use arrow::row::{RowConverter, SortField};
use connector_sdk::{
    Connector, ConnectorErrorKind, ExtractCore, ExtractOptions, RunReport, RunStatus, StopSignal,
};
use integration_tests::{TestEnv, binary, read_committed};
use postgres_connector::{PostgresConfig, PostgresConnector};
use serde_json::{Value, json};
use support::{PASSWORD, PgServer, assert_batches_equal, expected_batch};

fn parse(config: Value) -> PostgresConfig {
    serde_json::from_value(config).expect("valid config")
}

async fn core(
    env: &TestEnv,
    config: Value,
    prefix: &str,
    concurrency: usize,
) -> ExtractCore<PostgresConnector> {
    let mut options = ExtractOptions::new(env.output(prefix));
    options.max_concurrent_partitions = concurrency;
    ExtractCore::new(
        PostgresConnector,
        parse(config),
        env.store().await,
        options,
        "test",
    )
    .expect("core")
}

async fn extract(env: &TestEnv, config: Value, stream: &str, prefix: &str) -> RunReport {
    core(env, config, prefix, 2)
        .await
        .run(stream, &StopSignal::new())
        .await
        .expect("extract")
}

async fn committed(env: &TestEnv, prefix: &str, stream: &str) -> Option<RecordBatch> {
    read_committed(&env.store().await, &env.output(prefix), stream, "id").await
}

/// FNV-1a of every row (Arrow row format: type-exact, stable), in row order.
fn row_hashes(batch: &RecordBatch) -> Vec<u64> {
    let fields = batch
        .schema()
        .fields()
        .iter()
        .map(|f| SortField::new(f.data_type().clone()))
        .collect();
    let conv = RowConverter::new(fields).expect("row converter");
    let rows = conv.convert_columns(batch.columns()).expect("rows");
    rows.iter()
        .map(|r| {
            r.as_ref().iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ *b as u64).wrapping_mul(0x0100_0000_01b3)
            })
        })
        .collect()
}

/// Assert the per-row hashes of two id-sorted batches are equal, naming the first bad row.
fn assert_same_rows(got: &RecordBatch, expected: &RecordBatch) {
    assert_eq!(
        got.schema().fields(),
        expected.schema().fields(),
        "schemas differ"
    );
    let (g, e) = (row_hashes(got), row_hashes(expected));
    assert_eq!(g.len(), e.len(), "row counts differ");
    if let Some(i) = (0..g.len()).find(|&i| g[i] != e[i]) {
        panic!(
            "row {i} differs: got {:?}, expected {:?}",
            got.slice(i, 1),
            expected.slice(i, 1)
        );
    }
}

/// interval: every component kept, nothing normalised.
fn interval_type() -> DataType {
    DataType::Struct(
        vec![
            Field::new("months", DataType::Int32, false),
            Field::new("days", DataType::Int32, false),
            Field::new("microseconds", DataType::Int64, false),
        ]
        .into(),
    )
}

/// Every mapped type, with nulls, extremes, NaN/Infinity, empty strings and arrays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_type_round_trips_exactly() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    let utc = Some("UTC".into());
    let ts = |tz: Option<std::sync::Arc<str>>| DataType::Timestamp(TimeUnit::Microsecond, tz);
    let list = |dt: DataType| DataType::List(Field::new("item", dt, true).into());
    // (column, SQL type, expected Arrow type, SQL literals; missing rows are NULL)
    let cases: Vec<(&str, &str, DataType, Vec<&str>)> = vec![
        (
            "c_int2",
            "int2",
            DataType::Int16,
            vec!["-32768", "32767", "0"],
        ),
        (
            "c_int4",
            "int4",
            DataType::Int32,
            vec!["-2147483648", "2147483647", "0"],
        ),
        (
            "c_int8",
            "int8",
            DataType::Int64,
            vec!["-9223372036854775808", "9223372036854775807"],
        ),
        (
            "c_float4",
            "float4",
            DataType::Float32,
            vec![
                "'NaN'",
                "'Infinity'",
                "'-Infinity'",
                "3.4028235e38",
                "1e-45",
                "-0",
            ],
        ),
        (
            "c_float8",
            "float8",
            DataType::Float64,
            vec![
                "'NaN'",
                "'Infinity'",
                "'-Infinity'",
                "1.7976931348623157e308",
                "5e-324",
                "0.1",
            ],
        ),
        (
            "c_num",
            "numeric(15,2)",
            DataType::Decimal128(15, 2),
            vec!["9999999999999.99", "-9999999999999.99", "0", "0.01", "-0.5"],
        ),
        (
            "c_num38",
            "numeric(38,0)",
            DataType::Decimal128(38, 0),
            vec![
                "99999999999999999999999999999999999999",
                "-99999999999999999999999999999999999999",
                "10000",
            ],
        ),
        (
            // 38 digits at a scale that is not a multiple of 4: the base-10000 groups
            // span 44 digits (refused as too big before the decoder's 256-bit fix).
            "c_num38_9",
            "numeric(38,9)",
            DataType::Decimal128(38, 9),
            vec![
                "99999999999999999999999999999.999999999",
                "-99999999999999999999999999999.999999999",
                "0.000000001",
                "-12345678901234567890123456789.123456789",
            ],
        ),
        (
            "c_num_free",
            "numeric",
            DataType::Decimal128(38, 10),
            vec!["1.5", "-123456789.0123456789", "0", "1e20", "0.0000000001"],
        ),
        (
            "c_num_wide",
            "numeric(60,20)",
            DataType::Utf8,
            vec![
                "1234567890123456789012345678901234567890.12345678901234567890",
                "-0.00000000000000000001",
            ],
        ),
        ("c_bool", "bool", DataType::Boolean, vec!["true", "false"]),
        (
            "c_text",
            "text",
            DataType::Utf8,
            vec![
                "''",
                "'żółć – ✓'",
                "'a''b'",
                "E'line\\nbreak\\ttab'",
                // A huge value: 15 MB of multi-byte text in one cell.
                "repeat('żx✓', 2500000)",
            ],
        ),
        (
            "c_varchar",
            "varchar(10)",
            DataType::Utf8,
            vec!["''", "'abc'"],
        ),
        (
            "c_char",
            "char(5)",
            DataType::Utf8,
            vec!["'ab'", "''", "'abcde'"],
        ),
        (
            "c_bytea",
            "bytea",
            DataType::Binary,
            vec!["'\\x'", "'\\x00ff10'"],
        ),
        (
            "c_date",
            "date",
            DataType::Date32,
            vec![
                "'4713-01-01 BC'",
                "'5874897-12-31'",
                "'2000-01-01'",
                "'1970-01-01'",
                "'1999-12-31'",
            ],
        ),
        (
            "c_time",
            "time",
            DataType::Utf8,
            vec![
                "'00:00:00'",
                "'23:59:59.999999'",
                "'24:00:00'",
                "'12:34:56.000001'",
            ],
        ),
        (
            "c_ts",
            "timestamp",
            ts(None),
            vec![
                "'4713-01-01 00:00:00 BC'",
                "'294200-01-01 00:00:00'",
                "'2000-01-01 00:00:00'",
                "'1999-12-31 23:59:59.999999'",
                "'1900-02-28 01:02:03.5'",
            ],
        ),
        (
            "c_tstz",
            "timestamptz",
            ts(utc.clone()),
            vec![
                "'4713-01-01 00:00:00+00 BC'",
                "'2024-02-29 12:34:56.789012+05:30'",
                "'294200-01-01 00:00:00+00'",
                "'1969-12-31 23:59:59.999999+00'",
            ],
        ),
        (
            "c_interval",
            "interval",
            interval_type(),
            vec![
                "'1 year 2 mons 3 days 04:05:06.789'",
                "'-1 year -2 mons +3 days -04:05:06'",
                "'0'",
                "'-178000000 years'",
                "'1000000 hours'",
            ],
        ),
        (
            "c_uuid",
            "uuid",
            DataType::Utf8,
            vec![
                "'00000000-0000-0000-0000-000000000000'",
                "'ffffffff-ffff-ffff-ffff-ffffffffffff'",
                "'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'",
            ],
        ),
        (
            "c_json",
            "json",
            DataType::Utf8,
            vec![r#"'{"a": [1, 2.50, "x"]}'"#, "'\"\"'", "'null'"],
        ),
        (
            "c_jsonb",
            "jsonb",
            DataType::Utf8,
            vec![
                r#"'{"b": 1, "a": [true, null, 1.50]}'"#,
                "'[]'",
                "'\"ünï\"'",
            ],
        ),
        ("c_enum", "mood", DataType::Utf8, vec!["'sad'", "'happy'"]),
        (
            "c_domain",
            "posint",
            DataType::Int32,
            vec!["1", "2147483647"],
        ),
        (
            "c_int4_arr",
            "int4[]",
            list(DataType::Int32),
            vec!["'{}'", "'{1,NULL,-3}'", "'{2147483647}'"],
        ),
        (
            "c_int8_arr",
            "int8[]",
            list(DataType::Int64),
            vec!["'{9223372036854775807,NULL}'"],
        ),
        (
            "c_text_arr",
            "text[]",
            list(DataType::Utf8),
            vec![r#"'{"", "a,b", NULL, "ż"}'"#, "'{}'"],
        ),
        (
            "c_num_arr",
            "numeric(10,2)[]",
            list(DataType::Decimal128(10, 2)),
            vec!["'{1.50,-2.25,NULL}'"],
        ),
        (
            "c_float8_arr",
            "float8[]",
            list(DataType::Float64),
            vec!["'{NaN,Infinity,-0.5}'"],
        ),
        (
            "c_bool_arr",
            "bool[]",
            list(DataType::Boolean),
            vec!["'{t,f,NULL}'"],
        ),
        (
            "c_date_arr",
            "date[]",
            list(DataType::Date32),
            vec!["'{2000-01-01,1970-01-01,NULL}'"],
        ),
        (
            "c_tstz_arr",
            "timestamptz[]",
            list(ts(utc.clone())),
            vec!["'{\"2024-01-01 00:00:00+00\",NULL}'"],
        ),
        (
            "c_uuid_arr",
            "uuid[]",
            list(DataType::Utf8),
            vec!["'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'"],
        ),
        (
            "c_enum_arr",
            "mood[]",
            list(DataType::Utf8),
            vec!["'{happy,sad}'"],
        ),
    ];
    let rows = cases.iter().map(|c| c.3.len()).max().unwrap() + 1; // last row: all NULL
    let mut ddl = String::from(
        "CREATE TYPE mood AS ENUM ('sad', 'happy'); CREATE DOMAIN posint AS int4 CHECK (VALUE > 0);\
         CREATE TABLE empty_t (id int8 PRIMARY KEY, v text);\
         CREATE TABLE alltypes (id int8 PRIMARY KEY",
    );
    for (name, ty, _, _) in &cases {
        ddl.push_str(&format!(", {name} {ty}"));
    }
    ddl.push_str(");");
    for r in 0..rows {
        let mut values = vec![r.to_string()];
        for (_, ty, _, lits) in &cases {
            values.push(match lits.get(r) {
                Some(l) => format!("({l})::{ty}"),
                None => "NULL".into(),
            });
        }
        ddl.push_str(&format!(
            "INSERT INTO alltypes VALUES ({});",
            values.join(", ")
        ));
    }
    client
        .batch_execute(&ddl)
        .await
        .expect("create and fill alltypes");

    let config = pg.config(json!([
        {"table": "public.alltypes"},
        {"table": "empty_t"},
    ]));
    // discover: the schema the connector reports is exactly the documented mapping.
    let streams = PostgresConnector
        .discover(&parse(config.clone()))
        .await
        .expect("discover");
    let all = streams
        .iter()
        .find(|s| s.name == "alltypes")
        .expect("alltypes stream");
    let mut fields = vec![Field::new("id", DataType::Int64, false)];
    for (name, _, dt, _) in &cases {
        fields.push(Field::new(*name, dt.clone(), true));
    }
    let expected_schema: SchemaRef = Schema::new(fields).into();
    assert_eq!(all.schema.fields(), expected_schema.fields());
    assert_eq!(all.primary_key, vec!["id".to_string()]);

    let report = extract(&env, config.clone(), "alltypes", "types").await;
    assert_eq!(report.status, RunStatus::Complete);
    assert_eq!(report.rows, rows as u64);
    let got = committed(&env, "types", "alltypes")
        .await
        .expect("alltypes data");
    let expected = expected_batch(&client, "alltypes", "id", &expected_schema).await;
    assert_batches_equal(&got, &expected);

    // The empty table: a committed, empty dataset.
    let report = extract(&env, config.clone(), "empty_t", "types").await;
    assert_eq!(report.status, RunStatus::Complete);
    assert_eq!(report.rows, 0);
    assert!(committed(&env, "types", "empty_t").await.is_none());

    // unconstrained numeric as exact text, including NaN and ±Infinity.
    client
        .batch_execute(
            "CREATE TABLE numtext (id int8 PRIMARY KEY, n numeric);\
             INSERT INTO numtext VALUES (1, 'NaN'), (2, 'Infinity'), (3, '-Infinity'), (4, '-1.000'),\
             (5, 1e-20), (6, 123456789012345678901234567890123456789012345), (7, NULL), (8, 0.5);",
        )
        .await
        .unwrap();
    let mut config = pg.config(json!([{"table": "numtext"}]));
    config["unconstrained_numeric"] = json!("string");
    extract(&env, config, "numtext", "types").await;
    let got = committed(&env, "types", "numtext")
        .await
        .expect("numtext data");
    let schema: SchemaRef = Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("n", DataType::Utf8, true),
    ])
    .into();
    assert_batches_equal(
        &got,
        &expected_batch(&client, "numtext", "id", &schema).await,
    );
}

async fn create_big(client: &tokio_postgres::Client, table: &str, rows: i64) {
    client
        .batch_execute(&format!(
            "CREATE TABLE {table} AS SELECT g::int8 AS id,\
               CASE WHEN g % 11 = 0 THEN NULL ELSE (g % 1000)::int4 END AS bucket,\
               (g * 1.25)::numeric(15,2) AS amount, md5(g::text) AS s,\
               DATE '2000-01-01' + (g % 5000)::int4 AS d,\
               TIMESTAMPTZ '2020-01-01 00:00:00+00' + g * INTERVAL '1 second' AS ts,\
               CASE WHEN g % 7 = 0 THEN NULL ELSE g % 3 = 0 END AS flag,\
               (g / 3.0)::float8 AS f,\
               CASE WHEN g % 5 = 0 THEN NULL ELSE ARRAY[g::int4, (g % 10)::int4] END AS arr \
             FROM generate_series(1, {rows}) AS g;\
             ALTER TABLE {table} ADD PRIMARY KEY (id); ANALYZE {table};"
        ))
        .await
        .expect("create big table");
}

/// 1 M rows: the extract equals `SELECT` row for row; 4 partitions equal the single read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn million_rows_and_four_partitions_equal_select() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    create_big(&client, "big", 1_000_000).await;
    let started = Instant::now();
    let config = pg.config(json!([{"table": "big"}]));
    let report = extract(&env, config, "big", "single").await;
    assert_eq!(report.partitions, 1);
    eprintln!("1M rows extracted in {:?}", started.elapsed());
    let single = committed(&env, "single", "big").await.expect("data");
    let expected = expected_batch(&client, "big", "id", &single.schema()).await;
    assert_same_rows(&single, &expected);

    // Partitioned on a nullable column (NULLs land in the first range), read 2 at a time.
    let config = pg.config(json!([
        {"table": "big", "partition_column": "bucket", "partitions": 4}
    ]));
    let report = extract(&env, config, "big", "parts").await;
    assert_eq!(report.partitions, 4);
    assert_eq!(report.partitions_done, 4);
    let parts = committed(&env, "parts", "big").await.expect("data");
    assert_same_rows(&parts, &single);
}

/// Every `v` the partition's read yields, through the typed connector API.
async fn read_v(
    config: &PostgresConfig,
    run: &postgres_connector::PostgresRun,
    stream: &connector_sdk::StreamDescriptor,
    partition: &connector_sdk::Partition<postgres_connector::PartitionSpec>,
) -> Vec<i32> {
    use arrow::array::AsArray;
    use connector_sdk::futures::StreamExt;
    let ctx = connector_sdk::ReadContext {
        checkpoint: None,
        cancel: connector_sdk::CancellationToken::new(),
        deadline: None,
    };
    let mut items = PostgresConnector.read(config, run, stream, partition, ctx);
    let mut v = Vec::new();
    while let Some(item) = items.next().await {
        if let connector_sdk::ReadItem::Batch(b) = item.expect("read") {
            let col = b.column_by_name("v").expect("column v");
            v.extend(col.as_primitive::<arrow::datatypes::Int32Type>().values());
        }
    }
    v
}

/// The partitions of one run read one exported snapshot (a change at the source between
/// two of its partitions is not seen), and that snapshot belongs to the run's own value
/// (`open_run`), not to the process: another run of the same plan in the same process,
/// while the first still holds its snapshot, takes its own and sees the change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_shares_one_snapshot_among_its_partitions_and_another_run_has_its_own() {
    let pg = PgServer::start();
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE snap (id int8 PRIMARY KEY, v int4 NOT NULL);\
             INSERT INTO snap SELECT g, 0 FROM generate_series(1, 1000) g;",
        )
        .await
        .unwrap();
    let config = parse(pg.config(json!([
        {"table": "snap", "partition_column": "id", "partitions": 2}
    ])));
    let stream = PostgresConnector
        .discover(&config)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.name == "snap")
        .unwrap();
    let plan = PostgresConnector
        .plan(&config, &stream, None)
        .await
        .unwrap();
    assert_eq!(plan.partitions.len(), 2);
    let (p0, p1) = (&plan.partitions[0], &plan.partitions[1]);

    let run_a = PostgresConnector.open_run(&config, &stream).await.unwrap();
    let a0 = read_v(&config, &run_a, &stream, p0).await;
    client.batch_execute("UPDATE snap SET v = 1").await.unwrap();
    let run_b = PostgresConnector.open_run(&config, &stream).await.unwrap();
    let b1 = read_v(&config, &run_b, &stream, p1).await;
    let a1 = read_v(&config, &run_a, &stream, p1).await;

    assert_eq!(
        a0.len() + a1.len(),
        1000,
        "the two partitions cover the table"
    );
    assert!(!a0.is_empty() && !a1.is_empty());
    assert!(
        a0.iter().chain(&a1).all(|&v| v == 0),
        "run A saw the update: {a1:?}"
    );
    assert_eq!(b1.len(), a1.len());
    assert!(b1.iter().all(|&v| v == 1), "run B read run A's snapshot");
}

/// Incremental: a second run reads only the rows after the committed cursor.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incremental_reads_only_new_rows() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE events (id bigserial PRIMARY KEY, at timestamptz NOT NULL, body text);\
             INSERT INTO events (at, body) SELECT TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 minute', 'e' || g FROM generate_series(1, 5000) g;",
        )
        .await
        .unwrap();
    let config = pg.config(json!([{
        "table": "events", "cursor_column": "at", "partition_column": "id", "partitions": 3
    }]));
    let r1 = extract(&env, config.clone(), "events", "inc").await;
    assert_eq!(r1.rows, 5000);
    assert_eq!(r1.cursor, Some(json!({"value": "2024-01-04 11:20:00+00"})));
    client
        .batch_execute(
            "INSERT INTO events (at, body) SELECT TIMESTAMPTZ '2024-02-01 00:00:00+00' + g * INTERVAL '1 second', 'new' || g FROM generate_series(1, 1234) g;",
        )
        .await
        .unwrap();
    let r2 = extract(&env, config.clone(), "events", "inc").await;
    assert_eq!(r2.rows, 1234, "only the new rows land");
    // The new run's files hold exactly the new rows.
    let store = env.store().await;
    let manifest = connector_sdk::Dataset::new(store.clone(), env.output("inc"), "events")
        .latest()
        .await
        .unwrap()
        .unwrap();
    assert!(manifest.files.iter().all(|f| f.key.contains(&r2.run_id)));
    let union = committed(&env, "inc", "events").await.expect("data");
    let expected = expected_batch(&client, "events", "id", &union.schema()).await;
    assert_same_rows(&union, &expected);
    // Nothing new: nothing lands.
    let r3 = extract(&env, config, "events", "inc").await;
    assert_eq!(r3.rows, 0);
}

/// `merge` (per stream, in the connector config): an incremental run after updates and
/// inserts at the source upserts them by the primary key, and the table equals
/// `SELECT * ORDER BY id` exactly; delta-rs sees every key once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn merge_after_updates_and_inserts_equals_the_source_by_key() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE accounts (id bigint PRIMARY KEY, updated_at timestamptz NOT NULL, balance numeric(12,2), name text);\
             INSERT INTO accounts SELECT g, TIMESTAMPTZ '2024-01-01 00:00:00+00' + g * INTERVAL '1 minute', g * 1.25, 'a' || g FROM generate_series(1, 3000) g;",
        )
        .await
        .unwrap();
    let config = pg.config(json!([{
        "table": "accounts", "cursor_column": "updated_at", "partition_column": "id",
        "partitions": 3, "write_disposition": "merge"
    }]));
    let check = |prefix: &'static str| {
        let (env, client) = (&env, &client);
        async move {
            let table = committed(env, prefix, "accounts").await.expect("data");
            let expected = expected_batch(client, "accounts", "id", &table.schema()).await;
            assert_same_rows(&table, &expected);
            let rows = table.num_rows() as u64;
            let (n, distinct, min, max) = integration_tests::deltalake_key_summary(
                env,
                &env.output(prefix),
                "accounts",
                "id",
            );
            assert_eq!((n, distinct), (rows, rows), "delta-rs: every key once");
            assert_eq!((min, max), (Some(1), Some(rows as i64)));
        }
    };
    let r1 = extract(&env, config.clone(), "accounts", "merge").await;
    assert_eq!(r1.rows, 3000);
    check("merge").await;
    // Updates to every 7th account (a later updated_at) and 500 new accounts.
    client
        .batch_execute(
            "UPDATE accounts SET balance = -balance, name = NULL, updated_at = TIMESTAMPTZ '2024-06-01 00:00:00+00' + id * INTERVAL '1 second' WHERE id % 7 = 0;\
             INSERT INTO accounts SELECT g, TIMESTAMPTZ '2024-07-01 00:00:00+00' + g * INTERVAL '1 second', 9999999999.99, 'new' || g FROM generate_series(3001, 3500) g;",
        )
        .await
        .unwrap();
    let r2 = extract(&env, config.clone(), "accounts", "merge").await;
    assert_eq!(
        r2.rows,
        3000 / 7 + 500,
        "only the changed and new rows are read"
    );
    check("merge").await;
    // Nothing changed: nothing lands, the table is the same.
    let r3 = extract(&env, config, "accounts", "merge").await;
    assert_eq!(r3.rows, 0);
    check("merge").await;
}

/// A run stopped between batches commits checkpoints; the next run resumes exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_run_resumes_exactly_from_checkpoints() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    create_big(&client, "big", 200_000).await;
    let mut config = pg.config(json!([
        {"table": "big", "partition_column": "id", "partitions": 4}
    ]));
    config["batch_rows"] = json!(2000);
    let first = core(&env, config.clone(), "resume", 2).await;
    let stop = StopSignal::new();
    let progress = first.progress();
    let cancel = stop.cancel.clone();
    let watcher = tokio::spawn(async move {
        while progress.rows() < 30_000 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        cancel.cancel();
    });
    let r1 = first.run("big", &stop).await.expect("first run");
    watcher.abort();
    assert_eq!(r1.status, RunStatus::Partial, "the run stopped early");
    assert!(r1.rows > 0 && r1.rows < 200_000, "{} rows", r1.rows);
    // Rows inserted between the runs land in the open-ended last range of the pending plan.
    client
        .batch_execute(
            "INSERT INTO big (id, s) SELECT g, 'late' FROM generate_series(200001, 200100) g",
        )
        .await
        .unwrap();
    let r2 = core(&env, config, "resume", 2)
        .await
        .run("big", &StopSignal::new())
        .await
        .expect("second run");
    assert_eq!(r2.status, RunStatus::Complete);
    assert_eq!(r1.rows + r2.rows, 200_100);
    let got = committed(&env, "resume", "big").await.expect("data");
    let expected = expected_batch(&client, "big", "id", &got.schema()).await;
    assert_same_rows(&got, &expected);
}

/// The binary is SIGKILLed mid-extract; a re-run yields exactly the table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_binary_rerun_yields_the_table_exactly() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    create_big(&client, "big", 300_000).await;
    let mut config = pg.config(json!([
        {"table": "big", "partition_column": "id", "partitions": 6}
    ]));
    config["password"] = json!({"env": "PG_TEST_PASSWORD"});
    config["batch_rows"] = json!(4096);
    let cfg = env.write_json("kill.json", &config);
    let bin = binary("postgres-connector", "postgres-connector");
    let run = |stderr: Stdio| {
        Command::new(&bin)
            .args(["extract", "--config"])
            .arg(&cfg)
            .args(["--output", "s3://test-bucket/kill", "--concurrency", "2"])
            .envs(TestEnv::process_env(&env.endpoint()))
            .env("PG_TEST_PASSWORD", PASSWORD)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn the connector")
    };
    let mut child = run(Stdio::piped());
    let stderr = child.stderr.take().unwrap();
    let saw = tokio::task::spawn_blocking(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            let hit = line.contains("\"partition read\"");
            lines.push(line);
            if hit {
                return (true, lines);
            }
        }
        (false, lines)
    })
    .await
    .unwrap();
    assert!(saw.0, "no partition finished; stderr: {:?}", saw.1);
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    let status = child.wait().unwrap();
    assert!(!status.success(), "the process was killed mid-extract");
    assert!(
        !saw.1.iter().any(|l| l.contains(PASSWORD)),
        "the password appeared in the logs"
    );

    let mut child = run(Stdio::inherit());
    let status = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(status.success(), "re-run failed: {status}");
    let got = committed(&env, "kill", "big").await.expect("data");
    let expected = expected_batch(&client, "big", "id", &got.schema()).await;
    assert_same_rows(&got, &expected);
}

/// Wrong password, unknown host, closed port, missing table, unsupported type, NaN into a
/// decimal: clear one-line errors of the right kind, no panic, no password in messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_clear() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE TABLE shapes (id int8 PRIMARY KEY, p point, label text);\
             INSERT INTO shapes VALUES (1, '(1,2)', 'a'), (2, NULL, 'b');\
             CREATE TABLE nums (id int8 PRIMARY KEY, n numeric);\
             INSERT INTO nums VALUES (1, 1.5), (2, 'NaN');",
        )
        .await
        .unwrap();
    let wrong_pw = pg.dir().join("wrong");
    std::fs::write(&wrong_pw, "not-the-password").unwrap();
    let check_err = |c: Value| async move {
        PostgresConnector
            .check(&parse(c))
            .await
            .expect_err("check fails")
    };
    let one_line = |m: &str| assert!(!m.contains('\n') && !m.contains(PASSWORD), "{m}");

    let mut c = pg.config(json!([]));
    c["password"] = json!({"file": wrong_pw});
    let e = check_err(c).await;
    assert_eq!(e.kind(), ConnectorErrorKind::Auth, "{e}");
    assert!(
        e.to_string().contains("password authentication failed"),
        "{e}"
    );
    assert!(!e.to_string().contains("not-the-password"), "{e}");
    one_line(&e.to_string());

    let mut c = pg.config(json!([]));
    c["host"] = json!("no-such-host.invalid");
    let e = check_err(c).await;
    assert_eq!(e.kind(), ConnectorErrorKind::Unreachable, "{e}");
    assert!(e.to_string().contains("no-such-host.invalid"), "{e}");
    one_line(&e.to_string());

    let mut c = pg.config(json!([]));
    c["port"] = json!(
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    );
    let e = check_err(c).await;
    assert_eq!(e.kind(), ConnectorErrorKind::Unreachable, "{e}");

    let mut c = pg.config(json!([]));
    c["password"] = json!({"env": "PG_TEST_UNSET_VARIABLE"});
    let e = check_err(c).await;
    assert_eq!(e.kind(), ConnectorErrorKind::Config, "{e}");
    assert!(e.to_string().contains("PG_TEST_UNSET_VARIABLE"), "{e}");

    assert!(
        PostgresConnector
            .check(&parse(pg.config(json!([]))))
            .await
            .is_ok()
    );

    let e = PostgresConnector
        .discover(&parse(
            pg.config(json!([{"table": "public.missing_table"}])),
        ))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ConnectorErrorKind::Config, "{e}");
    assert!(e.to_string().contains("public.missing_table"), "{e}");

    let e = PostgresConnector
        .discover(&parse(pg.config(json!([{"table": "shapes"}]))))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ConnectorErrorKind::Unsupported, "{e}");
    let m = e.to_string();
    assert!(
        m.contains("shapes") && m.contains("`p`") && m.contains("point"),
        "{m}"
    );
    one_line(&m);

    // skip: the stream has the other columns, and extracts them exactly.
    let mut c = pg.config(json!([{"table": "shapes"}]));
    c["unsupported_columns"] = json!("skip");
    let s = PostgresConnector.discover(&parse(c.clone())).await.unwrap();
    let names: Vec<&str> = s[0]
        .schema
        .fields()
        .iter()
        .map(|f| f.name().as_str())
        .collect();
    assert_eq!(names, ["id", "label"]);
    extract(&env, c, "shapes", "errors").await;
    let got = committed(&env, "errors", "shapes").await.unwrap();
    assert_same_rows(
        &got,
        &expected_batch(&client, "shapes", "id", &got.schema()).await,
    );

    // NaN into Decimal128: an error naming the stream, column and value.
    let e = core(&env, pg.config(json!([{"table": "nums"}])), "errors", 1)
        .await
        .run("nums", &StopSignal::new())
        .await
        .unwrap_err();
    let m = e.to_string();
    assert!(
        m.contains("nums") && m.contains("`n`") && m.contains("NaN"),
        "{m}"
    );
    one_line(&m);

    // The binary: wrong password → exit 3, one line on stderr, no secret.
    let mut c = pg.config(json!([]));
    c["password"] = json!({"env": "PG_TEST_PASSWORD"});
    let cfg = env.write_json("check.json", &c);
    let out = Command::new(binary("postgres-connector", "postgres-connector"))
        .args(["check", "--config"])
        .arg(&cfg)
        .env("PG_TEST_PASSWORD", "wrong-secret-value")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("authentication failed"), "{err}");
    assert!(!err.contains("wrong-secret-value"), "{err}");
}

/// A custom query stream with a configured key, and every table auto-discovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn query_streams_and_discovered_tables() {
    let pg = PgServer::start();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client
        .batch_execute(
            "CREATE SCHEMA sales; CREATE TABLE sales.\"Orders\" (id int4 PRIMARY KEY, amount numeric(8,2), region text);\
             INSERT INTO sales.\"Orders\" SELECT g, g * 0.5, CASE WHEN g % 2 = 0 THEN 'eu' ELSE 'us' END FROM generate_series(1, 3000) g;\
             CREATE TABLE plain (id int8 PRIMARY KEY);",
        )
        .await
        .unwrap();
    let mut config = pg.config(json!([]));
    config["schemas"] = json!(["public", "sales"]);
    let names: Vec<String> = PostgresConnector
        .discover(&parse(config))
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert_eq!(names, ["plain", "sales_orders"]);

    let mut config = pg.config(json!([{
        "name": "eu_orders",
        "query": "SELECT id::int8 AS id, amount, upper(region) AS region FROM sales.\"Orders\" WHERE region = 'eu'",
        "key": ["id"],
        "partition_column": "id", "partitions": 3
    }]));
    config["batch_rows"] = json!(100);
    let report = extract(&env, config, "eu_orders", "query").await;
    assert_eq!(report.partitions, 3);
    let got = committed(&env, "query", "eu_orders").await.expect("data");
    let expected = expected_batch(
        &client,
        "(SELECT id::int8 AS id, amount, upper(region) AS region FROM sales.\"Orders\" WHERE region = 'eu') AS q",
        "id",
        &got.schema(),
    )
    .await;
    assert_same_rows(&got, &expected);
}
