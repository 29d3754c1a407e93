//! Fargate runner: the container mode of every connector binary (`<binary> container`,
//! the image's default command).
//!
//! - Config from the environment as ECS passes it: `CONNECTOR_CONFIG` (JSON; a plain
//!   variable or a `secrets` entry) or `CONNECTOR_CONFIG_FILE`; `CONNECTOR_OUTPUT`;
//!   `CONNECTOR_STREAMS`. Secrets ECS injects from Secrets Manager are environment
//!   variables the connector reads itself; no value is ever logged.
//! - `ECS_CONTAINER_METADATA_URI_V4`, when set, gives the task ARN, cluster and
//!   availability zone (in every log line and in the run report's `runtime`) and the
//!   task's vCPUs (how many partitions are read at once).
//! - Safe as PID 1: SIGTERM (ECS stop, Spot interruption) stops reading at the next
//!   checkpoint and commits, within `CONNECTOR_STOP_BUDGET_SECS` (default 25 s, under
//!   ECS's default 30 s `stopTimeout`); the process exits 0 and the next start resumes
//!   from the committed cursor. A second signal, or the budget running out, aborts: open
//!   multipart uploads are aborted and the current run commits nothing.
//!
//! Exit codes (`connector_sdk::exit`):
//!
//! | code | meaning |
//! |------|---------|
//! | 0    | complete, or stopped by SIGTERM with progress committed (report `status: partial`) |
//! | 1    | internal error |
//! | 2    | config error: missing/malformed config, bad output, manifest does not declare `fargate` |
//! | 3    | source error (the connector failed) |
//! | 4    | sink error (S3, Parquet, commit conflict) |
//! | 130  | aborted: second signal, or the stop budget ran out before the commit |

pub mod error;
pub mod metadata;
pub mod task_definition;

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use connector_sdk::{
    CancellationToken, Codec, Connector, ConnectorManifest, ExtractCore, ExtractOptions,
    OutputLocation, RunStatus, Runner, S3Options, S3Store, StopSignal, config_from_file,
    config_from_value, exit,
};
use tracing::Instrument;

pub use error::{Error, Result};
pub use metadata::TaskMetadata;
pub use task_definition::{TaskDefinitionArgs, render as render_task_definition};

/// Arguments of the container mode. Every one can come from the environment, which is how
/// ECS passes them; flags win over the environment.
#[derive(Debug, Clone, Args)]
pub struct ContainerArgs {
    /// The connector config, JSON. Never logged.
    #[arg(
        long = "config-json",
        env = "CONNECTOR_CONFIG",
        hide_env_values = true,
        value_name = "JSON"
    )]
    pub config_json: Option<String>,
    /// The connector config as a file (JSON, or TOML when it ends in .toml).
    #[arg(long = "config", env = "CONNECTOR_CONFIG_FILE", value_name = "FILE")]
    pub config_file: Option<PathBuf>,
    /// Output location, s3://bucket/prefix.
    #[arg(long, env = "CONNECTOR_OUTPUT", value_name = "S3_URL")]
    pub output: Option<String>,
    /// Streams to extract, comma-separated (default: every stream).
    #[arg(
        long = "stream",
        env = "CONNECTOR_STREAMS",
        value_delimiter = ',',
        value_name = "NAME"
    )]
    pub streams: Vec<String>,
    /// Seconds after SIGTERM to stop reading and commit; past it the run is aborted.
    #[arg(long, env = "CONNECTOR_STOP_BUDGET_SECS", default_value_t = 25.0)]
    pub stop_budget_secs: f64,
    /// Partitions read at once [default: the task's vCPUs from the metadata endpoint,
    /// else the manifest's fargate vCPU, else the CPUs the process sees].
    #[arg(long, env = "CONNECTOR_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// ECS task metadata endpoint v4 (set by ECS).
    #[arg(long, env = "ECS_CONTAINER_METADATA_URI_V4", value_name = "URL")]
    pub metadata_uri: Option<String>,
    /// Parquet codec: zstd, snappy, lz4, none.
    #[arg(long, env = "CONNECTOR_CODEC", default_value = "zstd")]
    pub codec: String,
    /// Maximum rows per row group.
    #[arg(long, env = "CONNECTOR_ROW_GROUP_ROWS", default_value_t = 64 * 1024)]
    pub row_group_rows: usize,
    /// Roll to a new file at this size, MiB.
    #[arg(long, env = "CONNECTOR_TARGET_FILE_MIB", default_value_t = 128)]
    pub target_file_mib: u64,
}

/// What the container was asked to do, resolved from its arguments with no I/O.
#[derive(Debug)]
pub struct ContainerPlan<C: Connector> {
    /// The connector config.
    pub config: C::Config,
    /// Extract options (output included).
    pub options: ExtractOptions,
    /// The manifest's fargate vCPU.
    pub manifest_vcpu: f64,
}

/// Check the manifest declares `fargate` and resolve config and options. No I/O but
/// reading `CONNECTOR_CONFIG_FILE`.
pub fn resolve<C: Connector>(args: &ContainerArgs) -> Result<ContainerPlan<C>> {
    let manifest = ConnectorManifest::parse(C::MANIFEST)?;
    let needs = manifest.require_runner(Runner::Fargate)?;
    let config = match (&args.config_json, &args.config_file) {
        (Some(_), Some(_)) => {
            return Err(Error::ConfigSource(
                "both CONNECTOR_CONFIG and CONNECTOR_CONFIG_FILE are set; set exactly one".into(),
            ));
        }
        (Some(json), None) => {
            let value: serde_json::Value = serde_json::from_str(json).map_err(|e| {
                Error::ConfigSource(format!(
                    "CONNECTOR_CONFIG is not valid JSON (line {}, column {}); expected a JSON object of the connector's config (see `spec`)",
                    e.line(),
                    e.column()
                ))
            })?;
            config_from_value::<C>(value).map_err(|e| match e {
                connector_sdk::Error::Config(m) => {
                    Error::ConfigSource(format!("CONNECTOR_CONFIG: {m}"))
                }
                other => other.into(),
            })?
        }
        (None, Some(path)) => config_from_file::<C>(path)?,
        (None, None) => {
            return Err(Error::ConfigSource(
                "no connector config: set CONNECTOR_CONFIG (the config as JSON) or CONNECTOR_CONFIG_FILE (a path)".into(),
            ));
        }
    };
    let output: OutputLocation = args
        .output
        .as_deref()
        .ok_or_else(|| {
            Error::ConfigSource("no output: set CONNECTOR_OUTPUT to s3://bucket/prefix".into())
        })?
        .parse()?;
    let mut options = ExtractOptions::new(output);
    options.parquet.codec = args.codec.parse::<Codec>()?;
    options.parquet.row_group_rows = args.row_group_rows;
    options.parquet.target_file_bytes = args.target_file_mib.saturating_mul(1024 * 1024);
    if let Some(n) = args.concurrency {
        options.max_concurrent_partitions = n;
    }
    options.validate()?;
    if !(args.stop_budget_secs.is_finite() && args.stop_budget_secs > 0.0) {
        return Err(Error::ConfigSource(format!(
            "CONNECTOR_STOP_BUDGET_SECS={} is not a positive number of seconds (default 25)",
            args.stop_budget_secs
        )));
    }
    Ok(ContainerPlan {
        config,
        options,
        manifest_vcpu: needs.vcpu,
    })
}

/// Partitions read at once: the flag, else the task's vCPUs, else the manifest's, else
/// the CPUs this process sees. Always at least 1.
pub fn concurrency(flag: Option<usize>, task_vcpu: Option<f64>, manifest_vcpu: f64) -> usize {
    let from_vcpu = |v: f64| (v.is_finite() && v > 0.0).then(|| v.ceil() as usize);
    flag.or_else(|| task_vcpu.and_then(from_vcpu))
        .or_else(|| from_vcpu(manifest_vcpu))
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .max(1)
}

fn fail(e: &Error) -> u8 {
    let line = connector_sdk::one_line(&e.to_string());
    eprintln!("error: {line}");
    tracing::error!("{line}");
    e.exit_code()
}

/// Why the run was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Abort {
    SecondSignal,
    BudgetExceeded,
}

/// First SIGTERM/SIGINT: cancel `stop`. Then a second signal or `budget` elapsing
/// sends on the returned channel.
fn watch_signals(
    stop: CancellationToken,
    budget: Duration,
) -> std::io::Result<tokio::sync::oneshot::Receiver<Abort>> {
    use tokio::signal::unix::{SignalKind, signal};
    // Installed before any I/O: as PID 1 an unhandled SIGTERM would be ignored.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!(
            budget_secs = budget.as_secs_f64(),
            "stop requested: stopping at the next checkpoint and committing progress"
        );
        stop.cancel();
        let why = tokio::select! {
            _ = term.recv() => Abort::SecondSignal,
            _ = int.recv() => Abort::SecondSignal,
            _ = tokio::time::sleep(budget) => Abort::BudgetExceeded,
        };
        let _ = tx.send(why);
    });
    Ok(rx)
}

/// Run the container mode; returns the exit code.
pub async fn run<C: Connector>(connector: C, args: ContainerArgs) -> u8 {
    let stop = StopSignal::new();
    let budget = Duration::from_secs_f64(args.stop_budget_secs.clamp(0.001, 86_400.0));
    let mut aborted = match watch_signals(stop.cancel.clone(), budget) {
        Ok(rx) => rx,
        Err(e) => {
            eprintln!("error: cannot install signal handlers: {e}");
            return exit::INTERNAL;
        }
    };
    let plan = match resolve::<C>(&args) {
        Ok(p) => p,
        Err(e) => return fail(&e),
    };
    let task = match &args.metadata_uri {
        Some(uri) if !uri.is_empty() => match metadata::fetch(uri, Duration::from_secs(3)).await {
            Ok(m) => Some(m),
            Err(e) => {
                tracing::warn!(error = %e, "going on without task metadata");
                None
            }
        },
        _ => None,
    };
    let task = task.unwrap_or_default();
    let mut options = plan.options;
    options.max_concurrent_partitions =
        concurrency(args.concurrency, task.vcpu(), plan.manifest_vcpu);
    let span = tracing::info_span!(
        "task",
        task_arn = task.task_arn.as_deref().unwrap_or("-"),
        cluster = task.cluster.as_deref().unwrap_or("-"),
        availability_zone = task.availability_zone.as_deref().unwrap_or("-"),
    );
    let concurrency = options.max_concurrent_partitions;
    let store = S3Store::connect(&S3Options::default()).await;
    let core = match ExtractCore::new(connector, plan.config, store, options, "fargate") {
        Ok(core) => core.with_runtime(task.runtime_fields()),
        Err(e) => return fail(&e.into()),
    };
    let streams = args.streams.clone();
    let work = async {
        tracing::info!(concurrency, "container mode starting");
        let streams = if streams.is_empty() {
            match core.default_streams().await {
                Ok(s) => s,
                Err(e) => return fail(&e.into()),
            }
        } else {
            streams
        };
        for stream in &streams {
            match core.run(stream, &stop).await {
                Ok(report) => {
                    match serde_json::to_string(&report) {
                        Ok(s) => println!("{s}"),
                        Err(e) => eprintln!("error: cannot serialize the run report: {e}"),
                    }
                    tracing::info!(
                        stream = %report.stream,
                        status = ?report.status,
                        rows = report.rows,
                        files = report.files,
                        manifest = report.manifest.as_deref().unwrap_or("-"),
                        "run report"
                    );
                    if report.status == RunStatus::Partial {
                        if stop.cancel.is_cancelled() {
                            tracing::info!(
                                stream = %report.stream,
                                "stopped by signal with progress committed; the next start resumes"
                            );
                            return exit::OK;
                        }
                        return exit::PARTIAL;
                    }
                }
                Err(e) => {
                    core.abort_open_uploads().await;
                    return fail(&e.into());
                }
            }
        }
        exit::OK
    }
    .instrument(span.clone());
    tokio::select! {
        code = work => code,
        Ok(why) = &mut aborted => {
            let n = core.abort_open_uploads().await;
            let why = match why {
                Abort::SecondSignal => "a second stop signal".to_string(),
                Abort::BudgetExceeded => format!(
                    "the stop budget ({} s) ran out before the commit",
                    budget.as_secs_f64()
                ),
            };
            let _g = span.enter();
            tracing::error!(aborted_uploads = n, "aborted by {why}");
            eprintln!("error: aborted by {why}; {n} open multipart upload(s) aborted, the current run committed nothing");
            exit::ABORTED
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn concurrency_prefers_flag_then_task_then_manifest() {
        assert_eq!(concurrency(Some(3), Some(8.0), 1.0), 3);
        assert_eq!(concurrency(None, Some(0.25), 4.0), 1);
        assert_eq!(concurrency(None, Some(4.0), 1.0), 4);
        assert_eq!(concurrency(None, None, 2.0), 2);
        assert_eq!(concurrency(Some(0), None, 2.0), 1);
        assert!(concurrency(None, None, 0.0) >= 1);
    }
}
