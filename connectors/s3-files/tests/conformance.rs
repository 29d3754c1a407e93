//! The S3 file connector passes every check of the conformance kit against the local S3
//! server: three CSV objects (one gzip, one split into byte ranges) in batches of 100
//! rows, the grown source adding a fourth; and the same rows as JSON Lines (one zstd, one
//! split into byte ranges), so stops and resumes land inside both text readers.

mod support;

use std::time::Duration;

use bytes::Bytes;
use connector_sdk::conformance::{self as kit, Check, Inputs, LocalS3Target};
use s3_files::S3Files;
use serde_json::{Value, json};
use support::*;

fn config(
    endpoint: &str,
    bucket: &str,
    secret: &std::path::Path,
    format: &str,
    objects: &[&str],
) -> Value {
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
            "name": "rows", "prefix": "src/", "format": {"type": format},
            "schema": columns(), "batch_rows": 100, "split_bytes": 32768
        }]
    })
}

/// The kit on objects `[a (700 rows, split), b (300, compressed), c (200)]`, grown by `d`.
async fn passes_with(format: &str, objects: [(&str, Vec<u8>); 4]) {
    let s3 = LocalS3Target::start().await.expect("local S3");
    let store = &s3.target.store;
    let bucket = s3.target.output.bucket.clone();
    let keys: Vec<String> = objects.iter().map(|(k, _)| format!("src/{k}")).collect();
    for ((_, body), key) in objects.into_iter().zip(&keys) {
        store
            .put(&bucket, key, Bytes::from(body), false)
            .await
            .unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("secret");
    std::fs::write(&secret, local_s3::SECRET_KEY).unwrap();
    let endpoint = store.endpoint().to_string();
    let keys: Vec<&str> = keys.iter().map(String::as_str).collect();
    let config = config(&endpoint, &bucket, &secret, format, &keys[..3]);
    let mut bad = config.clone();
    bad["streams"][0]["split_bytes"] = json!("large");
    let inputs = Inputs {
        config,
        bad_config: bad,
        grown_config: Some(self::config(&endpoint, &bucket, &secret, format, &keys)),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_kit() {
    passes_with(
        "csv",
        [
            ("a.csv", csv(1..=700)),
            ("b.csv.gz", gzip(&[&csv(701..=1000)])),
            ("c.csv", csv(1001..=1200)),
            ("d.csv", csv(1201..=1450)),
        ],
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passes_the_conformance_kit_with_json_lines() {
    passes_with(
        "jsonl",
        [
            ("a.jsonl", jsonl(1..=700)),
            ("b.jsonl.zst", zstd(&[&jsonl(701..=1000)])),
            ("c.jsonl", jsonl(1001..=1200)),
            ("d.jsonl", jsonl(1201..=1450)),
        ],
    )
    .await;
}
