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
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use connector_sdk::{
    Connector, ConnectorManifest, Error, ExtractCore, ExtractOptions, OutputLocation, RunReport,
    S3Store, StopSignal, config_schema, exit,
};
use runner_layer::ExtractSettings;

mod observability;

pub use observability::{init_tracing, init_tracing_with_default, progress_bar};
pub use runner_layer::{ConfigArg, OutputArgs};

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
    #[cfg(feature = "ec2")]
    /// Run as a systemd service (EC2 runner): scheduled extracts from a daemon config,
    /// sd_notify READY/STATUS/WATCHDOG, SIGHUP reload, SIGTERM checkpoint-and-exit.
    Daemon(ec2_runner::DaemonArgs),
    #[cfg(feature = "fargate")]
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
    #[cfg(feature = "glue")]
    /// Glue runner, driver: plan a run of one stream and print the plan (its partitions)
    /// as JSON. Commits nothing.
    Plan(glue_runner::commands::PlanCommand),
    #[cfg(feature = "glue")]
    /// Glue runner, executor: extract one partition of a plan; writes its files, prints
    /// the partition result as JSON, commits nothing.
    ExtractPartition(glue_runner::commands::ExtractPartitionCommand),
    #[cfg(feature = "glue")]
    /// Glue runner, driver: commit the partition results of a plan (the dataset
    /// manifest, conditionally, once) and print the run report.
    Commit(glue_runner::commands::CommitCommand),
}

#[derive(Debug, Subcommand)]
enum DeployTarget {
    /// The streams' Delta tables in the Glue Data Catalog, for Athena: a CloudFormation
    /// template (AWS::Glue::Table per stream) or Athena DDL.
    CatalogTable(CatalogTableArgs),
    /// An ECS task definition (or `run-task` input) for Fargate.
    #[cfg(feature = "fargate")]
    Fargate(fargate_runner::TaskDefinitionArgs),
    /// A Glue 5 job definition (`aws glue create-job --cli-input-json`).
    #[cfg(feature = "glue")]
    Glue(glue_runner::JobDefinitionArgs),
}

#[derive(Debug, Args)]
struct CatalogTableArgs {
    /// Where the connector's tables are: the extract's output, s3://bucket/prefix.
    #[arg(long, value_name = "S3_URL")]
    output: String,
    /// The Glue database the tables go into.
    #[arg(long)]
    database: String,
    /// Stream (repeatable; default: every declared stream).
    #[arg(long = "stream", value_name = "STREAM")]
    streams: Vec<String>,
    /// `cloudformation` (JSON template) or `athena-sql` (CREATE EXTERNAL TABLE statements).
    #[arg(long, default_value = "cloudformation", value_parser = ["cloudformation", "athena-sql"])]
    format: String,
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
    #[command(flatten)]
    settings: ExtractSettings,
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

/// The command-line definition every connector binary has (for completions, man pages,
/// and tests that check an option reaches every subcommand).
pub fn command() -> clap::Command {
    <Cli as clap::CommandFactory>::command()
}

/// Run the connector CLI with the process arguments; returns the exit code.
pub fn main<C: Connector>(connector: C) -> ExitCode {
    // Started as Lambda starts a custom runtime: serve invocations instead of the CLI.
    #[cfg(feature = "lambda")]
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
    let interactive = std::io::stderr().is_terminal();
    let service = ConnectorManifest::of::<C>()
        .map(|m| m.name.clone())
        .unwrap_or_else(|_| "connector".into());
    let telemetry = init_tracing(interactive, &service);
    let code = runtime.block_on(run(connector, cli.command, interactive));
    // The exporters flush from their own threads, once the async runtime is gone.
    drop(runtime);
    telemetry.shutdown();
    ExitCode::from(code)
}

async fn run<C: Connector>(connector: C, command: Command, interactive: bool) -> u8 {
    let result = match command {
        Command::Spec => spec::<C>(),
        Command::Check(a) => check(connector, &a.config).await,
        Command::Discover(a) => discover(connector, &a.config).await,
        Command::Extract(a) => return extract(connector, a, interactive).await,
        Command::Gc(a) => gc(connector, a).await,
        #[cfg(feature = "ec2")]
        Command::Daemon(a) => return ec2_runner::daemon(connector, a).await,
        #[cfg(feature = "fargate")]
        Command::Container(a) => return fargate_runner::run(connector, a).await,
        #[cfg(any(feature = "fargate", feature = "glue"))]
        Command::Deploy { target } => return deploy::<C>(target),
        #[cfg(feature = "glue")]
        Command::Plan(a) => return glue_runner::commands::plan(connector, a).await,
        #[cfg(feature = "glue")]
        Command::ExtractPartition(a) => {
            return glue_runner::commands::extract_partition(connector, a).await;
        }
        #[cfg(feature = "glue")]
        Command::Commit(a) => return glue_runner::commands::commit(connector, a).await,
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
        .map_err(|e| Error::internal_caused(format!("serializing output: {e}"), e))?;
    println!("{text}");
    Ok(())
}

fn deploy<C: Connector>(target: DeployTarget) -> u8 {
    match target {
        DeployTarget::CatalogTable(a) => {
            let format = if a.format == "athena-sql" {
                connector_sdk::catalog::CatalogFormat::AthenaSql
            } else {
                connector_sdk::catalog::CatalogFormat::CloudFormation
            };
            let rendered = ConnectorManifest::of::<C>().and_then(|manifest| {
                let output = a.output.parse()?;
                connector_sdk::catalog::render_catalog_tables(
                    &manifest,
                    &output,
                    &a.database,
                    &a.streams,
                    format,
                )
            });
            match rendered {
                Ok(text) => {
                    println!("{}", text.trim_end());
                    EXIT_OK
                }
                Err(e) => report_error(&e),
            }
        }
        #[cfg(feature = "glue")]
        DeployTarget::Glue(a) => glue_runner::commands::deploy::<C>(a),
        #[cfg(feature = "fargate")]
        DeployTarget::Fargate(a) => {
            let rendered = ConnectorManifest::of::<C>()
                .map_err(fargate_runner::Error::from)
                .and_then(|manifest| fargate_runner::render_task_definition(&manifest, &a));
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
    }
}

fn spec<C: Connector>() -> Result<(), Error> {
    let manifest = ConnectorManifest::of::<C>()?;
    print_json(&serde_json::json!({
        "manifest": &*manifest,
        "config_schema": config_schema::<C>(),
        "extract_options_schema": schemars::schema_for!(ExtractSettings),
    }))
}

/// Read a connector config file (JSON, or TOML for `.toml`) into the connector's type.
pub use runner_layer::load_config;

async fn check<C: Connector>(connector: C, path: &Path) -> Result<(), Error> {
    ConnectorManifest::of::<C>()?;
    let config = load_config::<C>(path)?;
    connector.check(&config).await?;
    print_json(&serde_json::json!({"status": "ok"}))
}

async fn discover<C: Connector>(connector: C, path: &Path) -> Result<(), Error> {
    ConnectorManifest::of::<C>()?;
    let config = load_config::<C>(path)?;
    let streams = connector.discover(&config).await?;
    print_json(&streams)
}

async fn extract<C: Connector>(connector: C, a: ExtractArgs, interactive: bool) -> u8 {
    let started = std::time::Instant::now();
    let prepared = async {
        ConnectorManifest::of::<C>()?;
        let config = load_config::<C>(&a.config.config)?;
        let options = a.settings.resolve(a.output.output.parse()?)?;
        let store = S3Store::connect(&a.output.s3_options()).await;
        ExtractCore::new(connector, config, store, options, "cli")
    }
    .await;
    let core = match prepared {
        Ok(core) => core,
        Err(e) => return report_error(&e),
    };
    let stop = StopSignal::new().with_deadline(a.settings.deadline(started));
    let hard = runner_layer::watch_stop_signals(stop.cancel.clone(), None);
    let mut observer = CliObserver {
        bar: None,
        progress: interactive.then(|| core.progress()),
    };
    let outcome =
        runner_layer::run_streams(&core, &a.streams, &stop, &hard.token, &mut observer).await;
    if let Some(bar) = observer.bar.take() {
        bar.finish();
    }
    outcome.print_abort(&hard);
    outcome.exit_code(false)
}

/// The CLI's view of a run: a progress bar per stream on a terminal, each report as a
/// JSON line on stdout, each error as one line on stderr.
struct CliObserver {
    bar: Option<indicatif::ProgressBar>,
    progress: Option<std::sync::Arc<connector_sdk::Progress>>,
}

impl runner_layer::RunObserver for CliObserver {
    fn started(&mut self, stream: &str) {
        if let Some(p) = &self.progress {
            self.bar = Some(observability::progress_bar(p.clone(), stream));
        }
    }
    fn report(&mut self, report: &RunReport) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        runner_layer::print_report(report);
    }
    fn failed(&mut self, stream: Option<&str>, error: &Error) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
        runner_layer::PrintReports.failed(stream, error);
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
