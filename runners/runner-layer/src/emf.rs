//! Run metrics as CloudWatch Embedded Metric Format (EMF): one JSON log line per run
//! report, which CloudWatch Logs turns into metrics with no agent (Lambda and Fargate log
//! to CloudWatch Logs). The same metrics on every runner that emits them.

use connector_sdk::RunReport;
use serde_json::{Value, json};

/// The CloudWatch namespace of the metrics.
pub const NAMESPACE: &str = "ConnectorRuntime";

/// (metric name, unit, value) of a run report.
pub fn metrics(report: &RunReport) -> Vec<(&'static str, &'static str, u64)> {
    vec![
        ("Rows", "Count", report.rows),
        ("Bytes", "Bytes", report.bytes),
        ("Files", "Count", report.files),
        ("Partitions", "Count", report.partitions),
        ("PartitionsDone", "Count", report.partitions_done),
        ("S3Requests", "Count", report.s3_requests),
        ("S3Retries", "Count", report.s3_retries),
        ("DurationMs", "Milliseconds", report.duration_ms),
        ("PlanMs", "Milliseconds", report.timings.plan_ms),
        ("ExtractMs", "Milliseconds", report.timings.extract_ms),
        ("CommitMs", "Milliseconds", report.timings.commit_ms),
    ]
}

/// The EMF line of `report`: metrics with the dimensions connector, stream and runner,
/// and the run id and status as properties (searchable in Logs Insights, not metrics).
pub fn emf_line(report: &RunReport) -> Value {
    let metrics = metrics(report);
    let mut definitions: Vec<Value> = metrics
        .iter()
        .map(|(name, unit, _)| json!({"Name": name, "Unit": unit}))
        .collect();
    if report.cursor_lag_secs.is_some() {
        definitions.push(json!({"Name": "CursorLagSeconds", "Unit": "Seconds"}));
    }
    let mut line = json!({
        "_aws": {
            "Timestamp": report.finished_at.timestamp_millis(),
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Connector", "Stream", "Runner"]],
                "Metrics": definitions,
            }],
        },
        "Connector": report.connector,
        "Stream": report.stream,
        "Runner": report.runner,
        "RunId": report.run_id,
        "Status": report.status,
    });
    if let Some(obj) = line.as_object_mut() {
        for (name, _, value) in metrics {
            obj.insert(name.to_string(), json!(value));
        }
        if let Some(lag) = report.cursor_lag_secs {
            obj.insert("CursorLagSeconds".into(), json!(lag));
        }
    }
    line
}

/// Print the EMF line of `report` on stderr (the log stream; stdout carries run reports).
pub fn emit(report: &RunReport) {
    eprintln!("{}", emf_line(report));
}
