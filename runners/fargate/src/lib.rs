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
    Connector, ConnectorManifest, ExtractCore, ExtractOptions, OutputLocation, Runner, S3Options,
    S3Store, StopSignal, config_from_file, config_from_value,
};
use runner_layer::ExtractSettings;
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
    /// Seconds after SIGTERM to stop reading and commit, in (0, 86400]; past it the run
    /// is aborted.
    #[arg(long, env = "CONNECTOR_STOP_BUDGET_SECS", default_value_t = 25.0)]
    pub stop_budget_secs: f64,
    /// ECS task metadata endpoint v4 (set by ECS).
    #[arg(long, env = "ECS_CONTAINER_METADATA_URI_V4", value_name = "URL")]
    pub metadata_uri: Option<String>,
    /// The extract options (`CONNECTOR_CODEC`, `CONNECTOR_PART_SIZE`, ...). Unset
    /// `concurrency` follows the task's vCPUs.
    #[command(flatten)]
    pub settings: ExtractSettings,
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
    /// Seconds after SIGTERM to stop and commit.
    pub stop_budget: Duration,
}

/// The longest stop budget accepted (ECS itself allows at most 120 s of `stopTimeout`).
const MAX_STOP_BUDGET_SECS: f64 = 86_400.0;

/// Check the manifest declares `fargate` and resolve config and options. No I/O but
/// reading `CONNECTOR_CONFIG_FILE`.
pub fn resolve<C: Connector>(args: &ContainerArgs) -> Result<ContainerPlan<C>> {
    let manifest = ConnectorManifest::of::<C>()?;
    let needs = manifest.require_runner(Runner::Fargate)?;
    let stop_budget = stop_budget(args.stop_budget_secs).ok_or_else(|| {
        Error::ConfigSource(format!(
            "CONNECTOR_STOP_BUDGET_SECS={} is not a number of seconds in (0, {MAX_STOP_BUDGET_SECS}] (default 25)",
            args.stop_budget_secs
        ))
    })?;
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
                connector_sdk::Error::Config { message: m, .. } => {
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
    let options = args.settings.resolve(output)?;
    Ok(ContainerPlan {
        config,
        options,
        manifest_vcpu: needs.vcpu,
        stop_budget,
    })
}

/// The stop budget, if `secs` is a valid one.
fn stop_budget(secs: f64) -> Option<Duration> {
    (secs.is_finite() && secs > 0.0 && secs <= MAX_STOP_BUDGET_SECS)
        .then(|| Duration::from_secs_f64(secs))
}

/// Partitions read at once: the flag, else the task's vCPUs, else the manifest's, else
/// the CPUs this process sees. Always at least 1.
pub fn concurrency(flag: Option<usize>, task_vcpu: Option<f64>, manifest_vcpu: f64) -> usize {
    let from_vcpu = |v: f64| (v.is_finite() && v > 0.0).then(|| v.ceil() as usize);
    flag.or_else(|| task_vcpu.and_then(from_vcpu))
        .or_else(|| from_vcpu(manifest_vcpu))
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(1)
        .clamp(1, 256)
}

fn fail(e: &Error) -> u8 {
    let line = connector_sdk::one_line(&e.to_string());
    eprintln!("error: {line}");
    tracing::error!("{line}");
    e.exit_code()
}

/// Run the container mode; returns the exit code.
pub async fn run<C: Connector>(connector: C, args: ContainerArgs) -> u8 {
    let started = std::time::Instant::now();
    let stop = StopSignal::new();
    // Installed before any I/O: as PID 1 an unhandled SIGTERM would be ignored. An
    // invalid budget is refused by `resolve` just below.
    let budget = stop_budget(args.stop_budget_secs).unwrap_or(Duration::from_secs(25));
    let hard = runner_layer::watch_stop_signals(stop.cancel.clone(), Some(budget));
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
        concurrency(args.settings.concurrency, task.vcpu(), plan.manifest_vcpu);
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
    let stop = stop.with_deadline(args.settings.deadline(started));
    let outcome = async {
        tracing::info!(concurrency, "container mode starting");
        runner_layer::run_streams(
            &core,
            &args.streams,
            &stop,
            &hard.token,
            &mut runner_layer::EmitMetrics(runner_layer::PrintReports),
        )
        .await
    }
    .instrument(span.clone())
    .await;
    let _g = span.enter();
    let stopped_by_signal = stop.cancel.is_cancelled();
    if !outcome.print_abort(&hard) && outcome.is_partial() && stopped_by_signal {
        tracing::info!("stopped by signal with progress committed; the next start resumes");
    }
    // Stopped by ECS (SIGTERM) with progress committed is a clean exit: the next task
    // resumes. Stopped by max_runtime_secs is a partial run (75).
    outcome.exit_code(stopped_by_signal)
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
        assert_eq!(concurrency(None, Some(1e300), 2.0), 256);
        assert!(concurrency(None, None, 0.0) >= 1);
    }
}
