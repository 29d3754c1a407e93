//! The facade every connector binary calls: `connector_cli::main(MyConnector)` gives the
//! binary one CLI — `spec`, `check`, `discover`, `extract`, `gc` — the same for every
//! connector. Runner modes are added to this same binary by the runner crates.
//!
//! Exit codes (stable, documented in the README):
//! - 0: complete
//! - 1: internal error
//! - 2: bad input (usage, config, manifest, request, undeclared runner)
//! - 3: source error (the connector failed)
//! - 4: sink error (S3, Parquet, commit conflict)
//! - 75: stopped early and checkpointed (partial; run again to continue)

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use connector_sdk::{
    Codec, Connector, ConnectorManifest, Error, ExtractCore, ExtractOptions, OutputLocation,
    RunReport, RunStatus, S3Options, S3Store, StopSignal, config_schema, exit,
};

mod glue_commands;
mod observability;

pub use observability::{init_tracing, init_tracing_with_default, progress_bar, watch_signals};

/// Exit code: everything done.
pub const EXIT_OK: u8 = exit::OK;
/// Exit code: internal error.
pub const EXIT_INTERNAL: u8 = exit::INTERNAL;
/// Exit code: bad input.
pub const EXIT_INPUT: u8 = exit::INPUT;
/// Exit code: the source failed.
pub const EXIT_SOURCE: u8 = exit::SOURCE;
/// Exit code: the sink (S3, Parquet, commit) failed.
pub const EXIT_SINK: u8 = exit::SINK;
/// Exit code: stopped early with progress committed (`EX_TEMPFAIL`).
pub const EXIT_PARTIAL: u8 = exit::PARTIAL;
/// Exit code: aborted by a second signal.
pub const EXIT_ABORTED: u8 = exit::ABORTED;

/// Exit code for an SDK error.
pub fn exit_code(e: &Error) -> u8 {
    e.exit_code()
}

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A connector binary: extract a source to Parquet on S3"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Print the connector manifest and the JSON Schema of its config.
    Spec,
    /// Check that the source can be reached with a config.
    Check(ConfigArg),
    /// List the streams and their Arrow schemas.
    Discover(ConfigArg),
    /// Extract streams into Parquet on S3 and commit them.
    Extract(ExtractArgs),
    /// Delete the files of runs that never committed (and abort their stale multipart
    /// uploads), older than the connector's longest declared runtime plus a margin.
    Gc(GcArgs),
    /// Run as a systemd service (EC2 runner): scheduled extracts from a daemon config,
    /// sd_notify READY/STATUS/WATCHDOG, SIGHUP reload, SIGTERM checkpoint-and-exit.
    Daemon(ec2_runner::DaemonArgs),
    /// Run as a container (Fargate runner): config from CONNECTOR_CONFIG or
    /// CONNECTOR_CONFIG_FILE, output from CONNECTOR_OUTPUT, ECS task metadata, SIGTERM
    /// checkpoint within a budget. The image's default command.
    Container(fargate_runner::ContainerArgs),
    /// Render a deployment definition from the connector manifest.
    Deploy {
        /// What to render.
        #[command(subcommand)]
        target: DeployTarget,
    },
    /// Glue runner, driver: plan a run of one stream and print the plan (its partitions)
    /// as JSON. Commits nothing.
    Plan(glue_commands::PlanCommand),
    /// Glue runner, executor: extract one partition of a plan; writes its files, prints
    /// the partition result as JSON, commits nothing.
    ExtractPartition(glue_commands::ExtractPartitionCommand),
    /// Glue runner, driver: commit the partition results of a plan (the dataset
    /// manifest, conditionally, once) and print the run report.
    Commit(glue_commands::CommitCommand),
}

#[derive(Debug, Subcommand)]
enum DeployTarget {
    /// An ECS task definition (or `run-task` input) for Fargate.
    Fargate(fargate_runner::TaskDefinitionArgs),
    /// A Glue 5 job definition (`aws glue create-job --cli-input-json`).
    Glue(glue_runner::JobDefinitionArgs),
}

#[derive(Debug, Args)]
struct ConfigArg {
    /// Connector config file (JSON, or TOML when the name ends in .toml).
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Where and how to write; shared by every command that writes.
#[derive(Debug, Args)]
pub struct OutputArgs {
    /// Output location, s3://bucket/prefix.
    #[arg(long, value_name = "S3_URL")]
    pub output: String,
    /// S3 endpoint URL for S3-compatible servers (default: AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL).
    #[arg(long, value_name = "URL")]
    pub endpoint_url: Option<String>,
    /// AWS region (default: the SDK chain, then us-east-1).
    #[arg(long)]
    pub region: Option<String>,
    /// Maximum attempts per S3 request (SDK standard retry mode).
    #[arg(long, default_value_t = 8)]
    pub max_attempts: u32,
}

impl OutputArgs {
    /// The S3 options these arguments give.
    pub fn s3_options(&self) -> S3Options {
        S3Options {
            endpoint_url: self.endpoint_url.clone(),
            region: self.region.clone(),
            max_attempts: Some(self.max_attempts),
            static_credentials: None,
        }
    }
}

#[derive(Debug, Args)]
struct ExtractArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    /// Stream to extract (repeatable; default: every stream).
    #[arg(long = "stream", value_name = "NAME")]
    streams: Vec<String>,
    /// Parquet codec: zstd, snappy, lz4, none.
    #[arg(long, default_value = "zstd")]
    codec: String,
    /// Zstandard level.
    #[arg(long, default_value_t = 1)]
    zstd_level: i32,
    /// Maximum rows per row group.
    #[arg(long, default_value_t = 64 * 1024)]
    row_group_rows: usize,
    /// Dictionary encoding: auto (off for mostly-distinct columns), always, never.
    #[arg(long, default_value = "auto")]
    dictionary: String,
    /// Roll to a new file at this size, MiB.
    #[arg(long, default_value_t = 128)]
    target_file_mib: u64,
    /// Multipart part size, MiB (at least 5).
    #[arg(long, default_value_t = 8)]
    part_mib: usize,
    /// Part buffers in memory at once, being filled or uploaded (memory for parts is at
    /// most this × the part size) [default: one per partition read at once]
    #[arg(long, value_name = "N")]
    max_buffered_parts: Option<usize>,
    /// Partitions read at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Stop reading after this many seconds, commit, and exit 75 (resume by running again).
    #[arg(long, value_name = "SECS")]
    max_runtime_secs: Option<f64>,
}

#[derive(Debug, Args)]
struct GcArgs {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    /// Stream (repeatable; default: every stream).
    #[arg(long = "stream", value_name = "NAME")]
    streams: Vec<String>,
    /// Leave objects younger than this alone (runs in flight), seconds [default and
    /// minimum: the connector's longest declared max_runtime_secs + 900]
    #[arg(long, value_name = "SECS")]
    grace_secs: Option<u64>,
    /// List what would be deleted and aborted; delete nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Run the connector CLI with the process arguments; returns the exit code.
pub fn main<C: Connector>(connector: C) -> ExitCode {
    // Started as Lambda starts a custom runtime: serve invocations instead of the CLI.
    if lambda_runner::is_lambda_environment() {
        return lambda_runner::main(connector);
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EXIT_INPUT } else { EXIT_OK });
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_INTERNAL);
        }
    };
    ExitCode::from(runtime.block_on(run(connector, cli.command)))
}

async fn run<C: Connector>(connector: C, command: Command) -> u8 {
    let interactive = std::io::stderr().is_terminal();
    init_tracing(interactive);
    let result = match command {
        Command::Spec => spec::<C>(),
        Command::Check(a) => check(connector, &a.config).await,
        Command::Discover(a) => discover(connector, &a.config).await,
        Command::Extract(a) => return extract(connector, a, interactive).await,
        Command::Gc(a) => gc(connector, a).await,
        Command::Daemon(a) => return ec2_runner::daemon(connector, a).await,
        Command::Container(a) => return fargate_runner::run(connector, a).await,
        Command::Deploy { target } => return deploy::<C>(target),
        Command::Plan(a) => return glue_commands::plan(connector, a).await,
        Command::ExtractPartition(a) => {
            return glue_commands::extract_partition(connector, a).await;
        }
        Command::Commit(a) => return glue_commands::commit(connector, a).await,
    };
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report_error(&e),
    }
}

/// Print `e` as one line on stderr; returns its exit code.
pub fn report_error(e: &Error) -> u8 {
    let line = connector_sdk::one_line(&e.to_string());
    eprintln!("error: {line}");
    tracing::error!(class = e.class(), retryable = e.is_retryable(), "{line}");
    exit_code(e)
}

fn print_json(value: &impl serde::Serialize) -> Result<(), Error> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| Error::Internal(format!("serializing output: {e}")))?;
    println!("{text}");
    Ok(())
}

fn deploy<C: Connector>(target: DeployTarget) -> u8 {
    let fargate = match target {
        DeployTarget::Fargate(a) => a,
        DeployTarget::Glue(a) => return glue_commands::deploy::<C>(a),
    };
    let rendered = ConnectorManifest::parse(C::MANIFEST)
        .map_err(fargate_runner::Error::from)
        .and_then(|manifest| fargate_runner::render_task_definition(&manifest, &fargate));
    match rendered {
        Ok(doc) => match print_json(&doc) {
            Ok(()) => EXIT_OK,
            Err(e) => report_error(&e),
        },
        Err(e) => {
            eprintln!("error: {}", connector_sdk::one_line(&e.to_string()));
            e.exit_code()
        }
    }
}

fn spec<C: Connector>() -> Result<(), Error> {
    let manifest = ConnectorManifest::parse(C::MANIFEST)?;
    print_json(&serde_json::json!({
        "manifest": manifest,
        "config_schema": config_schema::<C>(),
        "extract_options_schema": schemars::schema_for!(ExtractOptions),
    }))
}

/// Read a connector config file (JSON, or TOML for `.toml`) into the connector's type.
pub fn load_config<C: Connector>(path: &Path) -> Result<C::Config, Error> {
    connector_sdk::config_from_file::<C>(path)
}

async fn check<C: Connector>(connector: C, path: &Path) -> Result<(), Error> {
    ConnectorManifest::parse(C::MANIFEST)?;
    let config = load_config::<C>(path)?;
    connector.check(&config).await?;
    print_json(&serde_json::json!({"status": "ok"}))
}

async fn discover<C: Connector>(connector: C, path: &Path) -> Result<(), Error> {
    ConnectorManifest::parse(C::MANIFEST)?;
    let config = load_config::<C>(path)?;
    let streams = connector.discover(&config).await?;
    print_json(&streams)
}

fn extract_options(a: &ExtractArgs) -> Result<ExtractOptions, Error> {
    let output: OutputLocation = a.output.output.parse()?;
    let mut options = ExtractOptions::new(output);
    options.parquet.codec = a.codec.parse::<Codec>()?;
    options.parquet.zstd_level = a.zstd_level;
    options.parquet.row_group_rows = a.row_group_rows;
    options.parquet.dictionary = a.dictionary.parse()?;
    options.parquet.target_file_bytes = a.target_file_mib.saturating_mul(1024 * 1024);
    options.upload.part_bytes = a.part_mib.saturating_mul(1024 * 1024);
    options.upload.max_buffered_parts = a.max_buffered_parts;
    options.max_concurrent_partitions = a.concurrency;
    options.validate()?;
    Ok(options)
}

async fn extract<C: Connector>(connector: C, a: ExtractArgs, interactive: bool) -> u8 {
    let prepared = async {
        ConnectorManifest::parse(C::MANIFEST)?;
        let config = load_config::<C>(&a.config.config)?;
        let options = extract_options(&a)?;
        let store = S3Store::connect(&a.output.s3_options()).await;
        ExtractCore::new(connector, config, store, options, "cli")
    }
    .await;
    let core = match prepared {
        Ok(core) => core,
        Err(e) => return report_error(&e),
    };
    let deadline = a
        .max_runtime_secs
        .map(|s| std::time::Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let stop = StopSignal::new().with_deadline(deadline);
    let hard_stop = observability::watch_signals(stop.cancel.clone());
    tokio::select! {
        code = run_streams(&core, &a.streams, &stop, interactive) => code,
        _ = hard_stop.cancelled() => {
            let aborted = core.abort_open_uploads().await;
            eprintln!("error: aborted by a second signal; {aborted} open multipart upload(s) aborted, the current run committed nothing");
            EXIT_ABORTED
        }
    }
}

/// Extract `streams` (all when empty) one after another, printing each run report on
/// stdout. Returns the exit code.
pub async fn run_streams<C: Connector>(
    core: &ExtractCore<C>,
    streams: &[String],
    stop: &StopSignal,
    interactive: bool,
) -> u8 {
    let streams = if streams.is_empty() {
        match core.default_streams().await {
            Ok(s) => s,
            Err(e) => return report_error(&e),
        }
    } else {
        streams.to_vec()
    };
    let mut partial = false;
    for stream in &streams {
        let bar = interactive.then(|| observability::progress_bar(core.progress(), stream));
        let result = core.run(stream, stop).await;
        if let Some(bar) = bar {
            bar.finish();
        }
        match result {
            Ok(report) => {
                print_report(&report);
                if report.status == RunStatus::Partial {
                    partial = true;
                    break;
                }
            }
            Err(e) => {
                core.abort_open_uploads().await;
                return report_error(&e);
            }
        }
    }
    if partial { EXIT_PARTIAL } else { EXIT_OK }
}

/// Print a run report as JSON on stdout and a summary line in the log.
pub fn print_report(report: &RunReport) {
    tracing::info!(
        stream = %report.stream,
        status = ?report.status,
        rows = report.rows,
        bytes = report.bytes,
        files = report.files,
        duration_ms = report.duration_ms,
        s3_retries = report.s3_retries,
        manifest = report.manifest.as_deref().unwrap_or("-"),
        "run report"
    );
    match serde_json::to_string(report) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot serialize the run report: {e}"),
    }
}

async fn gc<C: Connector>(connector: C, a: GcArgs) -> Result<(), Error> {
    let config = load_config::<C>(&a.config.config)?;
    let output: OutputLocation = a.output.output.parse()?;
    let store = S3Store::connect(&a.output.s3_options()).await;
    let core = ExtractCore::new(connector, config, store, ExtractOptions::new(output), "cli")?;
    let streams = if a.streams.is_empty() {
        core.default_streams().await?
    } else {
        a.streams.clone()
    };
    let mut out = serde_json::Map::new();
    for s in &streams {
        let r = core
            .collect_garbage(s, a.grace_secs.map(Duration::from_secs), a.dry_run)
            .await?;
        out.insert(s.clone(), serde_json::to_value(r).unwrap_or_default());
    }
    print_json(&out)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// clap checks argument ids, groups and flags only when a command is built: one
    /// clash (two flattened structs with the same group id) panics every subcommand at
    /// run time. This builds all of them.
    #[test]
    fn every_subcommand_is_well_formed() {
        Cli::command().debug_assert();
    }
}
