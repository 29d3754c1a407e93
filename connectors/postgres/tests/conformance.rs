//! The Postgres connector passes every check of the conformance kit (schema, Parquet round
//! trip, resume from every checkpoint, stop and resume through the core, incremental
//! cursor, cancellation, retried partition, bad config) against a real PostgreSQL, like
//! the synthetic connectors (`conformance_tests!`). One server for all checks: the kit's
//! `run_all` runs them one after the other.

use std::time::Duration;

use connector_sdk::conformance::{self as kit, Check, Inputs, LocalS3Target};
use integration_tests::postgres_server::PgServer;
use postgres_connector::PostgresConnector;
use serde_json::json;

/// `items_v1` (3 000 rows of several mapped types, NULLs included) and `items_v2`, the
/// same rows plus 700 newer ones: the same source after it grew, for the incremental
/// check (both are read as stream `items`).
const SEED: &str = "
CREATE TABLE items_v1 (
    id         bigint PRIMARY KEY,
    customer   text NOT NULL,
    amount     numeric(12, 2),
    placed_at  timestamptz NOT NULL,
    shipped    boolean,
    tags       text[]
);
INSERT INTO items_v1
SELECT g,
       'customer-' || (g % 97) || E' \\\\ \" '' ' || g,
       CASE WHEN g % 11 = 0 THEN NULL ELSE round((g * 7.31)::numeric % 10000, 2) END,
       timestamptz '2024-01-01 00:00:00+00' + g * interval '37 seconds',
       CASE WHEN g % 5 = 0 THEN NULL ELSE g % 2 = 0 END,
       CASE WHEN g % 13 = 0 THEN NULL ELSE ARRAY['t' || (g % 3), NULL, 'u' || (g % 7)] END
FROM generate_series(1, 3000) AS g;
CREATE TABLE items_v2 (LIKE items_v1 INCLUDING ALL);
INSERT INTO items_v2 SELECT * FROM items_v1;
INSERT INTO items_v2
SELECT g, 'late-' || g, 1.5, timestamptz '2024-06-01 00:00:00+00' + g * interval '1 second',
       true, ARRAY['late']
FROM generate_series(3001, 3700) AS g;
";

fn stream(table: &str) -> serde_json::Value {
    json!([{
        "name": "items", "table": table, "partition_column": "id", "partitions": 3,
        "cursor_column": "id"
    }])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_kit() {
    let pg = tokio::task::spawn_blocking(PgServer::start).await.unwrap();
    pg.client().await.batch_execute(SEED).await.expect("seed");
    // Batches of 250 rows: four per partition, a checkpoint after each.
    let mut config = pg.config(stream("items_v1"));
    config["batch_rows"] = json!(250);
    let mut grown = pg.config(stream("items_v2"));
    grown["batch_rows"] = json!(250);
    let mut bad = config.clone();
    bad["streams"][0]["partitions"] = json!("three");
    let inputs = Inputs {
        config,
        bad_config: bad,
        grown_config: Some(grown),
        cancel_bound: Duration::from_secs(5),
    };
    let s3 = LocalS3Target::start().await.expect("local S3");
    let outcomes = kit::run_all_passing(&PostgresConnector, &inputs, &s3.target).await;
    let checks: Vec<Check> = outcomes.iter().map(|(c, _)| *c).collect();
    assert_eq!(checks.len(), 8, "every check ran: {checks:?}");
    for (check, report) in &outcomes {
        if matches!(check, Check::ParquetRoundTrip | Check::StopAndResume) {
            assert_eq!(report.rows, 3000, "{check}: {report}");
        }
    }
}
