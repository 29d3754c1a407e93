//! A reader that is not ours (pyarrow) reads the Postgres connector's committed Parquet
//! and finds what PostgreSQL holds: logical types (written literally here) and values,
//! computed by PostgreSQL itself and decoded by tokio-postgres — decimals at their limits,
//! timestamps with zone far from the epoch, intervals as structs, arrays with NULLs.

use connector_sdk::{ExtractCore, ExtractOptions, StopSignal};
use integration_tests::postgres_server::PgServer;
use integration_tests::{TestEnv, read_with_pyarrow};
use postgres_connector::{PostgresConfig, PostgresConnector};
use serde_json::{Value, json};

const SEED: &str = r#"
CREATE TABLE typed (
    id         bigint PRIMARY KEY,
    c_num      numeric(15, 2),
    c_num38    numeric(38, 0),
    c_tstz     timestamptz,
    c_date     date,
    c_interval interval,
    c_text_arr text[],
    c_int4_arr int4[],
    c_num_arr  numeric(10, 2)[],
    c_bytea    bytea
);
INSERT INTO typed VALUES
 (1, 9999999999999.99, 99999999999999999999999999999999999999, '4713-01-01 00:00:00+00 BC',
  '4713-01-01 BC', '1 year 2 mons 3 days 04:05:06.789', '{"", "a,b", NULL, "ż"}', '{1,NULL,-3}',
  '{1.50,-2.25,NULL}', '\x00ff10'),
 (2, -9999999999999.99, -99999999999999999999999999999999999999, '294200-01-01 00:00:00+00',
  '5874897-12-31', '-1 year -2 mons +3 days -04:05:06', '{}', '{2147483647}', '{}', '\x'),
 (3, 0.01, 0, '2024-02-29 12:34:56.789012+05:30', '1970-01-01', '-178000000 years', NULL,
  NULL, NULL, NULL),
 (4, -0.5, 10000, '1969-12-31 23:59:59.999999+00', '1999-12-31', '1000000 hours',
  '{"quote\"d", "back\\slash"}', '{-2147483648}', '{-99999999.99}', '\xdeadbeef'),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"#;

/// Each column's values as PostgreSQL computes them, in read_parquet.py's canonical form.
const EXPECTED_SQL: &str = "
SELECT id,
       c_num::text,
       c_num38::text,
       (EXTRACT(EPOCH FROM c_tstz) * 1000000)::int8,
       (c_date - DATE '1970-01-01')::int4,
       CASE WHEN c_interval IS NULL THEN NULL ELSE json_build_object(
           'months', (EXTRACT(YEAR FROM c_interval) * 12 + EXTRACT(MONTH FROM c_interval))::int4,
           'days', EXTRACT(DAY FROM c_interval)::int4,
           'microseconds', (EXTRACT(HOUR FROM c_interval) * 3600000000
                            + EXTRACT(MINUTE FROM c_interval) * 60000000
                            + EXTRACT(MICROSECONDS FROM c_interval))::int8)::text END,
       to_json(c_text_arr)::text,
       to_json(c_int4_arr)::text,
       to_json(c_num_arr::text[])::text,
       encode(c_bytea, 'hex')
FROM typed ORDER BY id";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pyarrow_reads_what_postgres_holds() {
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    let env = TestEnv::start().await;
    let client = pg.client().await;
    client.batch_execute(SEED).await.expect("seed");
    let config: PostgresConfig = serde_json::from_value(pg.config(json!([
        {"table": "typed", "partition_column": "id", "partitions": 2}
    ])))
    .unwrap();
    let output = env.output("pyarrow");
    ExtractCore::new(
        PostgresConnector,
        config,
        env.store().await,
        ExtractOptions::new(output.clone()),
        "test",
    )
    .unwrap()
    .run("typed", &StopSignal::new())
    .await
    .expect("extract");
    let read = read_with_pyarrow(&env, &output, "typed").await;
    assert_eq!(
        read["schema"],
        json!([
            ["id", "int64", false],
            ["c_num", "decimal128(15, 2)", true],
            ["c_num38", "decimal128(38, 0)", true],
            ["c_tstz", "timestamp[us, tz=UTC]", true],
            ["c_date", "date32[day]", true],
            [
                "c_interval",
                "struct<months: int32 not null, days: int32 not null, microseconds: int64 not null>",
                true
            ],
            ["c_text_arr", "list<item: string>", true],
            ["c_int4_arr", "list<item: int32>", true],
            ["c_num_arr", "list<item: decimal128(10, 2)>", true],
            ["c_bytea", "binary", true],
        ])
    );
    // pyarrow's rows in id order.
    let order = integration_tests::pyarrow_order_by(&read, "id");
    let rows = client.query(EXPECTED_SQL, &[]).await.expect("expected");
    assert_eq!(rows.len(), order.len());
    let json_text =
        |s: Option<String>| s.map_or(Value::Null, |t| serde_json::from_str(&t).unwrap());
    for (r, &i) in rows.iter().zip(&order) {
        let got = |name: &str| read["columns"][name][i].clone();
        let id: i64 = r.get(0);
        let expected: Vec<(&str, Value)> = vec![
            ("id", json!(id)),
            ("c_num", json!(r.get::<_, Option<String>>(1))),
            ("c_num38", json!(r.get::<_, Option<String>>(2))),
            ("c_tstz", json!(r.get::<_, Option<i64>>(3))),
            ("c_date", json!(r.get::<_, Option<i32>>(4))),
            ("c_interval", json_text(r.get(5))),
            ("c_text_arr", json_text(r.get(6))),
            ("c_int4_arr", json_text(r.get(7))),
            ("c_num_arr", json_text(r.get(8))),
            ("c_bytea", json!(r.get::<_, Option<String>>(9))),
        ];
        for (name, want) in expected {
            assert_eq!(got(name), want, "row id {id}, column `{name}`");
        }
    }
}
