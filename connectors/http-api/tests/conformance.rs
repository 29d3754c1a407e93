//! The REST API connector passes every check of the conformance kit (schema, Parquet round
//! trip, resume from every checkpoint — every page —, stop and resume through the core,
//! incremental cursor, cancellation, retried partition, bad config) against a real
//! json-server. `items_v1` and `items_v2` (the same records plus 100 newer ones) are the
//! source before and after it grew, both read as stream `items`.

use std::time::Duration;

use connector_sdk::conformance::{self as kit, Check, Inputs, LocalS3Target};
use http_api::HttpApi;
use integration_tests::json_server::JsonServer;
use serde_json::{Value, json};

fn record(i: i64) -> Value {
    json!({
        "id": i,
        "name": format!("record {i} \"ü\""),
        "amount": if i % 9 == 0 { Value::Null } else { json!(format!("{}.{:02}", i * 3, i % 100)) },
        "at": format!("2024-03-01T00:00:{:02}Z", i % 60),
    })
}

fn config(server: &JsonServer, collection: &str) -> Value {
    json!({
        "base_url": server.url(),
        "streams": [{
            "name": "items",
            "path": collection,
            "query": {"_sort": "id"},
            "pagination": {"style": "offset", "offset_param": "_start", "limit_param": "_limit", "limit": 50},
            "schema": [
                {"name": "id", "type": "int64", "nullable": false},
                {"name": "name", "type": "string"},
                {"name": "amount", "type": "decimal(12,2)"},
                {"name": "at", "type": "timestamp"}
            ],
            "primary_key": ["id"],
            "cursor": {
                "field": "id", "lower_param": "id_gte",
                "latest": {"path": collection, "query": {"_sort": "id", "_order": "desc", "_limit": "1"}}
            }
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_kit() {
    let server = tokio::task::spawn_blocking(|| {
        JsonServer::start(&json!({
            "items_v1": (1..=600).map(record).collect::<Vec<_>>(),
            "items_v2": (1..=700).map(record).collect::<Vec<_>>(),
        }))
    })
    .await
    .unwrap();
    let config = config(&server, "items_v1");
    let mut bad = config.clone();
    bad["streams"][0]["pagination"]["limit"] = json!("fifty");
    let inputs = Inputs {
        config,
        bad_config: bad,
        grown_config: Some(self::config(&server, "items_v2")),
        cancel_bound: Duration::from_secs(5),
    };
    let s3 = LocalS3Target::start().await.expect("local S3");
    let outcomes = kit::run_all_passing(&HttpApi, &inputs, &s3.target).await;
    let checks: Vec<Check> = outcomes.iter().map(|(c, _)| *c).collect();
    assert_eq!(checks.len(), 8, "every check ran: {checks:?}");
    for (check, report) in &outcomes {
        if matches!(check, Check::ParquetRoundTrip | Check::StopAndResume) {
            assert_eq!(report.rows, 600, "{check}: {report}");
        }
    }
}
