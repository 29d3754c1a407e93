//! Logs, traces and metrics of a runner process, set up once by every runner.
//!
//! - **Logs**: `tracing` events on stderr, compact on a terminal, JSON lines otherwise
//!   (Lambda, Fargate and journald keep them); the level comes from the runner's filter.
//! - **OpenTelemetry**, when `OTEL_EXPORTER_OTLP_ENDPOINT` (or the signal-specific
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`) is set:
//!   - traces: the core's spans `run` → `plan`, `partition` → `upload`, and `commit`, each
//!     carrying the run id, over OTLP/HTTP (protobuf);
//!   - metrics: every run report's figures ([`record`]), with the same names on every
//!     runner, over OTLP/HTTP.
//!
//!   The exporters read the standard variables (`OTEL_EXPORTER_OTLP_HEADERS`,
//!   `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_METRIC_EXPORT_INTERVAL`...).
//!   [`flush`] exports what is pending (a Lambda function is frozen between
//!   invocations); [`Telemetry::shutdown`] flushes and stops at the end of the process.

use std::sync::OnceLock;
use std::time::Duration;

use connector_sdk::RunReport;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, MeterProvider as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// The environment variables that turn OTLP export on.
pub const OTLP_ENDPOINT_VARIABLES: [&str; 3] = [
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
];

/// The instrumentation scope of the spans and metrics.
pub const SCOPE: &str = "connector-runtime";

/// How log lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One compact line per event (a terminal).
    Compact,
    /// One JSON object per line (log collectors).
    Json,
}

/// The OTLP pipeline of this process, when one is configured.
#[derive(Debug)]
struct Otlp {
    tracer: SdkTracerProvider,
    meter: SdkMeterProvider,
    instruments: Instruments,
}

static OTLP: OnceLock<Otlp> = OnceLock::new();

/// The run metrics (OpenTelemetry instruments), one recording per run report.
#[derive(Debug)]
struct Instruments {
    runs: Counter<u64>,
    rows: Counter<u64>,
    bytes: Counter<u64>,
    files: Counter<u64>,
    partitions: Counter<u64>,
    partitions_done: Counter<u64>,
    s3_requests: Counter<u64>,
    s3_retries: Counter<u64>,
    /// Wall time per phase (`total`, `plan`, `extract`, `commit`), seconds.
    duration: Histogram<f64>,
    /// How far the committed cursor is behind the end of the run, seconds.
    cursor_lag: Gauge<f64>,
}

impl Instruments {
    fn new(meter: &opentelemetry::metrics::Meter) -> Self {
        let counter = |name: &'static str, unit: &'static str, description: &'static str| {
            meter
                .u64_counter(name)
                .with_unit(unit)
                .with_description(description)
                .build()
        };
        Self {
            runs: counter("connector.runs", "{run}", "Runs that ended with a report"),
            rows: counter("connector.rows", "{row}", "Rows committed"),
            bytes: counter("connector.bytes", "By", "Bytes of Parquet committed"),
            files: counter("connector.files", "{file}", "Data files committed"),
            partitions: counter(
                "connector.partitions",
                "{partition}",
                "Partitions in the runs' plans",
            ),
            partitions_done: counter(
                "connector.partitions.done",
                "{partition}",
                "Partitions finished, over each whole plan",
            ),
            s3_requests: counter("connector.s3.requests", "{request}", "S3 requests made"),
            s3_retries: counter(
                "connector.s3.retries",
                "{request}",
                "S3 request attempts that were retries",
            ),
            duration: meter
                .f64_histogram("connector.run.duration")
                .with_unit("s")
                .with_description("Wall time of a run, by phase (total, plan, extract, commit)")
                .build(),
            cursor_lag: meter
                .f64_gauge("connector.cursor.lag")
                .with_unit("s")
                .with_description("How far the committed cursor is behind the end of the run")
                .build(),
        }
    }
}

/// This process's telemetry: keep it until the end of `main`, then [`Telemetry::shutdown`].
#[derive(Debug)]
#[must_use = "shut the telemetry down at the end of the process, or pending spans and metrics are lost"]
pub struct Telemetry {
    /// Whether OTLP export is on.
    pub otlp: bool,
}

/// Whether an OTLP endpoint is configured.
pub fn otlp_configured() -> bool {
    OTLP_ENDPOINT_VARIABLES
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|e| !e.trim().is_empty()))
}

/// Set up logs on stderr with `filter`, and OTLP export of spans and metrics when an
/// endpoint is configured (service name `service` unless `OTEL_SERVICE_NAME` says
/// otherwise). Call once, first thing; a second call changes nothing. An OTLP exporter
/// that cannot be built is one warning line on stderr, and the run goes on without it.
pub fn init(format: LogFormat, filter: EnvFilter, service: &str) -> Telemetry {
    let pipeline = if otlp_configured() {
        match otlp_pipeline(service) {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("warning: OTLP export is off: {e}");
                None
            }
        }
    } else {
        None
    };
    // Only our own spans are exported: the SDKs' request spans would be noise and cost.
    let ours = Targets::new()
        .with_target("connector_sdk", tracing::Level::INFO)
        .with_target("runner_layer", tracing::Level::INFO);
    let otel_layer = pipeline.as_ref().map(|p| {
        tracing_opentelemetry::layer()
            .with_tracer(p.tracer.tracer(SCOPE))
            .with_filter(ours)
    });
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match format {
        LogFormat::Compact => fmt.compact().boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).boxed(),
    };
    let installed = tracing_subscriber::registry()
        .with(fmt.with_filter(filter))
        .with(otel_layer)
        .try_init()
        .is_ok();
    let otlp = match pipeline {
        Some(p) if installed => OTLP.set(p).is_ok(),
        _ => false,
    };
    Telemetry { otlp }
}

fn otlp_pipeline(service: &str) -> Result<Otlp, String> {
    // The builder reads OTEL_RESOURCE_ATTRIBUTES; a service name set here would override
    // OTEL_SERVICE_NAME, so that one wins over the connector's name.
    let name = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| service.to_string());
    let resource = Resource::builder().with_service_name(name).build();
    let spans = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("the OTLP span exporter: {e}"))?;
    let metrics = opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .build()
        .map_err(|e| format!("the OTLP metric exporter: {e}"))?;
    let tracer = SdkTracerProvider::builder()
        .with_resource(resource.clone())
        .with_batch_exporter(spans)
        .build();
    let meter = SdkMeterProvider::builder()
        .with_resource(resource)
        .with_periodic_exporter(metrics)
        .build();
    let instruments = Instruments::new(&meter.meter(SCOPE));
    Ok(Otlp {
        tracer,
        meter,
        instruments,
    })
}

impl Telemetry {
    /// Flush and stop the exporters (blocking; call it after the async runtime ended).
    pub fn shutdown(self) {
        if let Some(p) = OTLP.get() {
            let timeout = Duration::from_secs(10);
            if let Err(e) = p.tracer.shutdown_with_timeout(timeout) {
                eprintln!("warning: exporting the last spans failed: {e}");
            }
            if let Err(e) = p.meter.shutdown_with_timeout(timeout) {
                eprintln!("warning: exporting the last metrics failed: {e}");
            }
        }
    }
}

/// Export the pending spans and metrics now, from async code (a Lambda invocation's
/// end). The exporters block, so this runs on the blocking pool.
pub async fn flush() {
    let Some(p) = OTLP.get() else {
        return;
    };
    let _ = tokio::task::spawn_blocking(move || {
        if let Err(e) = p.tracer.force_flush() {
            tracing::warn!(error = %e, "exporting spans failed");
        }
        if let Err(e) = p.meter.force_flush() {
            tracing::warn!(error = %e, "exporting metrics failed");
        }
    })
    .await;
}

/// Record `report`'s figures as the run metrics (when OTLP export is on), with the
/// attributes connector, stream, runner and status.
pub fn record(report: &RunReport) {
    let Some(p) = OTLP.get() else {
        return;
    };
    let status = serde_json::to_value(report.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let attrs = [
        KeyValue::new("connector", report.connector.clone()),
        KeyValue::new("stream", report.stream.clone()),
        KeyValue::new("runner", report.runner.clone()),
        KeyValue::new("status", status),
    ];
    let i = &p.instruments;
    i.runs.add(1, &attrs);
    i.rows.add(report.rows, &attrs);
    i.bytes.add(report.bytes, &attrs);
    i.files.add(report.files, &attrs);
    i.partitions.add(report.partitions, &attrs);
    i.partitions_done.add(report.partitions_done, &attrs);
    i.s3_requests.add(report.s3_requests, &attrs);
    i.s3_retries.add(report.s3_retries, &attrs);
    for (phase, ms) in [
        ("total", report.duration_ms),
        ("plan", report.timings.plan_ms),
        ("extract", report.timings.extract_ms),
        ("commit", report.timings.commit_ms),
    ] {
        let mut with_phase = attrs.to_vec();
        with_phase.push(KeyValue::new("phase", phase));
        i.duration.record(ms as f64 / 1000.0, &with_phase);
    }
    if let Some(lag) = report.cursor_lag_secs {
        i.cursor_lag.record(lag, &attrs);
    }
}
