//! The S3 file connector passes every check of the conformance kit against the local S3
//! server: three CSV objects (one gzip, one split into byte ranges) in batches of 100
//! rows; the grown source adds a JSON-free fourth object.

mod support;

use std::time::Duration;

use bytes::Bytes;
use connector_sdk::conformance::{self as kit, Check, Inputs, LocalS3Target};
use s3_files::S3Files;
use serde_json::{Value, json};
use support::*;

fn config(endpoint: &str, bucket: &str, secret: &std::path::Path, objects: &[&str]) -> Value {
    json!({
        "bucket": bucket,
        "connection": {
            "endpoint_url": endpoint,
            "region": local_s3::REGION,
            "access_key_id": local_s3::ACCESS_KEY,
            "secret_access_key": {"file": secret}
        },
        "objects": objects,
        "streams": [{
            "name": "rows", "prefix": "src/", "format": {"type": "csv"},
            "schema": columns(), "batch_rows": 100, "split_bytes": 32768
        }]
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_kit() {
    let s3 = LocalS3Target::start().await.expect("local S3");
    let store = &s3.target.store;
    let bucket = s3.target.output.bucket.clone();
    for (key, body) in [
        ("src/a.csv", csv(1..=700)),
        ("src/b.csv.gz", gzip(&[&csv(701..=1000)])),
        ("src/c.csv", csv(1001..=1200)),
        ("src/d.csv", csv(1201..=1450)),
    ] {
        store
            .put(&bucket, key, Bytes::from(body), false)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, local_s3::SECRET_KEY).unwrap();
    let endpoint = store.endpoint().to_string();
    let config = config(
        &endpoint,
        &bucket,
        &secret,
        &["src/a.csv", "src/b.csv.gz", "src/c.csv"],
    );
    let mut bad = config.clone();
    bad["streams"][0]["split_bytes"] = json!("large");
    let inputs = Inputs {
        config,
        bad_config: bad,
        grown_config: Some(self::config(
            &endpoint,
            &bucket,
            &secret,
            &["src/a.csv", "src/b.csv.gz", "src/c.csv", "src/d.csv"],
        )),
        cancel_bound: Duration::from_secs(5),
    };
    let outcomes = kit::run_all_passing(&S3Files, &inputs, &s3.target).await;
    let checks: Vec<Check> = outcomes.iter().map(|(c, _)| *c).collect();
    assert_eq!(checks.len(), 8, "every check ran: {checks:?}");
    for (check, report) in &outcomes {
        if matches!(check, Check::ParquetRoundTrip | Check::StopAndResume) {
            assert_eq!(report.rows, 1200, "{check}: {report}");
        }
    }
}
