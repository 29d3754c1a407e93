//! Logs and the progress bar of the connector binary.

use std::sync::Arc;
use std::time::Duration;

use connector_sdk::Progress;
use indicatif::{HumanBytes, ProgressBar, ProgressStyle};
use runner_layer::telemetry::{LogFormat, Telemetry};
use tracing_subscriber::EnvFilter;

/// Human-readable logs on a terminal, JSON lines otherwise; level from `RUST_LOG`
/// (default `info`). Logs go to stderr; stdout carries only command output. Spans and run
/// metrics also go to OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (see
/// [`runner_layer::telemetry`]); shut the returned value down at the end of the process.
pub fn init_tracing(interactive: bool, service: &str) -> Telemetry {
    init_tracing_with_default(interactive, "info", service)
}

/// [`init_tracing`] with another default level when `RUST_LOG` is unset.
pub fn init_tracing_with_default(interactive: bool, default: &str, service: &str) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let format = if interactive {
        LogFormat::Compact
    } else {
        LogFormat::Json
    };
    runner_layer::telemetry::init(format, filter, service)
}

/// A spinner with rows, bytes and rate, refreshed from the core's counters until it is
/// finished.
pub fn progress_bar(progress: Arc<Progress>, stream: &str) -> ProgressBar {
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} {prefix} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_prefix(stream.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    let handle = bar.clone();
    let start = std::time::Instant::now();
    tokio::spawn(async move {
        while !handle.is_finished() {
            let rows = progress.rows();
            let secs = start.elapsed().as_secs_f64().max(0.001);
            handle.set_message(format!(
                "{rows} rows, {} in {} files, {:.0} rows/s, {}/s",
                HumanBytes(progress.bytes()),
                progress.files(),
                rows as f64 / secs,
                HumanBytes((progress.bytes() as f64 / secs) as u64),
            ));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    bar
}
