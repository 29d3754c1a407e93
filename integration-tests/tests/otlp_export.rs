//! OpenTelemetry export from a real run: the example connector's binary extracts into the
//! local S3 server with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at an OTLP receiver the test
//! starts; the spans form the run's tree and carry its run id, and the metrics equal the
//! run report, figure by figure.

use std::collections::BTreeSet;
use std::process::Stdio;

use connector_sdk::{Dataset, RunReport};
use integration_tests::otlp_receiver::{OtlpReceiver, ReceivedPoint, ReceivedSpan};
use integration_tests::{BUCKET, TestEnv, binary};
use serde_json::json;
use tokio::process::Command;

async fn extract(env: &TestEnv, otlp_endpoint: &str, prefix: &str) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.json");
    std::fs::write(
        &config,
        json!({"sensors": 3, "minutes": 600, "batch_minutes": 50}).to_string(),
    )
    .unwrap();
    Command::new(binary("sensor-readings", "sensor-readings"))
        .arg("extract")
        .arg("--config")
        .arg(&config)
        .arg("--output")
        .arg(format!("s3://{BUCKET}/{prefix}"))
        .envs(TestEnv::process_env(&env.endpoint()))
        .env("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_endpoint)
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run the connector binary")
}

fn one<'a>(spans: &'a [ReceivedSpan], name: &str) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == name).collect();
    assert_eq!(found.len(), 1, "one `{name}` span: {spans:#?}");
    found[0]
}

fn point<'a>(points: &'a [ReceivedPoint], metric: &str, phase: Option<&str>) -> &'a ReceivedPoint {
    let found: Vec<&ReceivedPoint> = points
        .iter()
        .filter(|p| p.metric == metric && p.attribute("phase") == phase)
        .collect();
    assert_eq!(
        found.len(),
        1,
        "one `{metric}` point ({phase:?}): {points:#?}"
    );
    found[0]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_exports_its_span_tree_and_metrics_equal_to_its_report() {
    let env = TestEnv::start().await;
    let receiver = OtlpReceiver::start().await;
    let out = extract(&env, &receiver.endpoint(), "otlp").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("OTLP export is off"), "{stderr}");
    let report: RunReport =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one report");
    assert_eq!(report.rows, 1800);
    assert_eq!(receiver.errors(), Vec::<String>::new());

    // The process flushed before it exited: everything is here.
    let spans = receiver.spans();
    let run = one(&spans, "run");
    assert_eq!(run.parent_span_id, "", "the run span is the root");
    assert_eq!(run.service, "sensor-readings");
    for (key, value) in [
        ("run_id", report.run_id.as_str()),
        ("stream", "readings"),
        ("connector", "sensor-readings"),
        ("runner", "cli"),
    ] {
        assert_eq!(run.attribute(key), Some(value), "run span {key}: {run:?}");
    }
    for s in &spans {
        assert_eq!(s.trace_id, run.trace_id, "one trace: {s:?}");
        assert_eq!(s.attribute("run_id"), Some(report.run_id.as_str()), "{s:?}");
    }
    let plan = one(&spans, "plan");
    let commit = one(&spans, "commit");
    assert_eq!(plan.parent_span_id, run.span_id);
    assert_eq!(commit.parent_span_id, run.span_id);

    let partitions: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "partition").collect();
    let ids: BTreeSet<&str> = partitions
        .iter()
        .map(|p| p.attribute("partition").expect("partition id"))
        .collect();
    assert_eq!(ids, BTreeSet::from(["s001-1", "s002-1", "s003-1"]));
    assert!(partitions.iter().all(|p| p.parent_span_id == run.span_id));

    // One upload span per committed file, under its partition, with its rows.
    let uploads: Vec<&ReceivedSpan> = spans.iter().filter(|s| s.name == "upload").collect();
    let partition_ids: BTreeSet<&str> = partitions.iter().map(|p| p.span_id.as_str()).collect();
    assert!(
        uploads
            .iter()
            .all(|u| partition_ids.contains(u.parent_span_id.as_str()))
    );
    let committed = Dataset::new(env.store().await, env.output("otlp"), "readings")
        .latest()
        .await
        .unwrap()
        .expect("committed");
    let upload_keys: BTreeSet<&str> = uploads
        .iter()
        .map(|u| u.attribute("key").unwrap())
        .collect();
    let file_keys: BTreeSet<&str> = committed.files.iter().map(|f| f.key.as_str()).collect();
    assert_eq!(upload_keys, file_keys);
    let upload_rows: u64 = uploads
        .iter()
        .map(|u| u.attribute("rows").unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(upload_rows, report.rows);
    assert_eq!(
        spans.len(),
        3 + partitions.len() + uploads.len(),
        "{spans:#?}"
    );

    // Metrics: the report's figures, with the same attributes on every runner.
    let points = receiver.points();
    for p in &points {
        assert_eq!(p.attribute("connector"), Some("sensor-readings"), "{p:?}");
        assert_eq!(p.attribute("stream"), Some("readings"), "{p:?}");
        assert_eq!(p.attribute("runner"), Some("cli"), "{p:?}");
        assert_eq!(p.attribute("status"), Some("complete"), "{p:?}");
    }
    for (metric, value) in [
        ("connector.runs", 1),
        ("connector.rows", report.rows),
        ("connector.bytes", report.bytes),
        ("connector.files", report.files),
        ("connector.partitions", report.partitions),
        ("connector.partitions.done", report.partitions_done),
        ("connector.s3.requests", report.s3_requests),
        ("connector.s3.retries", report.s3_retries),
    ] {
        assert_eq!(point(&points, metric, None).value, value as f64, "{metric}");
    }
    assert_eq!(report.files, uploads.len() as u64);
    for (phase, ms) in [
        ("total", report.duration_ms),
        ("plan", report.timings.plan_ms),
        ("extract", report.timings.extract_ms),
        ("commit", report.timings.commit_ms),
    ] {
        let p = point(&points, "connector.run.duration", Some(phase));
        assert_eq!(
            (p.count, p.value, p.unit.as_str()),
            (1, ms as f64 / 1000.0, "s"),
            "{phase}"
        );
    }
    // The cursor is minute 600 of 2024-01-01: 10:00 UTC that day.
    let cursor_at = chrono::DateTime::parse_from_rfc3339("2024-01-01T10:00:00Z").unwrap();
    let lag = (report.finished_at - cursor_at.to_utc()).num_milliseconds() as f64 / 1000.0;
    assert_eq!(report.cursor_lag_secs, Some(lag));
    assert_eq!(point(&points, "connector.cursor.lag", None).value, lag);
    // The CloudWatch EMF line carries the same figures (the CLI does not print one; the
    // runner layer's line for this report does).
    let emf = runner_layer::emf::emf_line(&report);
    integration_tests::assert_emf_matches_report(&emf, &serde_json::to_value(&report).unwrap());
    assert_eq!(emf["CursorLagSeconds"], json!(lag));
}

/// An OTLP endpoint that is not a URL turns export off with one warning line; the run
/// itself is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_otlp_endpoint_is_one_warning_and_the_run_goes_on() {
    let env = TestEnv::start().await;
    let out = extract(&env, "not a url", "bad-otlp").await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: OTLP export is off:"))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(warnings[0].contains("not a url"), "{}", warnings[0]);
    let report: RunReport =
        serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("one report");
    assert_eq!(report.rows, 1800);
}
