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
    #[cfg(feature = "deploy")]
    /// Check the connector's manifest, and CloudFormation templates, against a
    /// governance policy; every violation is one line naming the rule and the resource.
    Govern(GovernArgs),
    #[cfg(feature = "deploy")]
    /// Recommend a runner and network pattern for a workload profile, following the
    /// platform's decision guidance, with warnings where the manifest disagrees.
    Advise(AdviseArgs),
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
    /// A complete CloudFormation stack for one runner (compute, schedule, network
    /// pattern, least-privilege IAM, logs) from the manifest and a deploy config.
    #[cfg(feature = "deploy")]
    Cloudformation(CloudFormationArgs),
}

#[cfg(feature = "deploy")]
#[derive(Debug, Args)]
struct CloudFormationArgs {
    /// The deploy config (TOML): runner, network_pattern, output, streams, schedule,
    /// source_endpoints, config, secrets (names), tags, sse_kms. Schema:
    /// `--print-schema`.
    #[arg(long, value_name = "FILE", required_unless_present = "print_schema")]
    config: Option<std::path::PathBuf>,
    /// Write the template here instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<std::path::PathBuf>,
    /// Print the deploy config's JSON Schema.
    #[arg(long)]
    print_schema: bool,
}

#[cfg(feature = "deploy")]
#[derive(Debug, Args)]
struct GovernArgs {
    /// The governance policy (TOML) [default: the policy embedded in the binary,
    /// governance/policy.toml of the SDK].
    #[arg(long, value_name = "FILE")]
    policy: Option<std::path::PathBuf>,
    /// CloudFormation templates (JSON) to check as well as the manifest.
    #[arg(value_name = "TEMPLATE")]
    templates: Vec<std::path::PathBuf>,
}

#[cfg(feature = "deploy")]
#[derive(Debug, Args)]
struct AdviseArgs {
    /// The workload profile (TOML): expected_runtime_secs, memory_mb, data_volume_gb,
    /// parallelism, trigger (schedule | event | continuous), source (aws-service |
    /// endpoint-service | on-premises | public-internet), large_dependencies,
    /// specialized_environment, containerizable, distributed, stateless.
    #[arg(long, value_name = "FILE")]
    profile: std::path::PathBuf,
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
        Command::Deploy { target } => return deploy(connector, target),
        #[cfg(feature = "deploy")]
        Command::Govern(a) => return govern::<C>(a),
        #[cfg(feature = "deploy")]
        Command::Advise(a) => return advise::<C>(a),
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

#[cfg_attr(not(feature = "deploy"), allow(unused_variables))]
fn deploy<C: Connector>(connector: C, target: DeployTarget) -> u8 {
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
        #[cfg(feature = "deploy")]
        DeployTarget::Cloudformation(a) => cloudformation(connector, a),
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

#[cfg(feature = "deploy")]
fn deployment_error(e: &deployment::Error) -> u8 {
    eprintln!("error: {}", connector_sdk::one_line(&e.to_string()));
    match e {
        deployment::Error::Sdk(e) => e.exit_code(),
        _ => EXIT_INPUT,
    }
}

#[cfg(feature = "deploy")]
fn cloudformation<C: Connector>(connector: C, a: CloudFormationArgs) -> u8 {
    if a.print_schema {
        return match print_json(&schemars::schema_for!(deployment::DeployConfig)) {
            Ok(()) => EXIT_OK,
            Err(e) => report_error(&e),
        };
    }
    let Some(path) = a.config else {
        return EXIT_INPUT;
    };
    let rendered = ConnectorManifest::of::<C>()
        .map_err(deployment::Error::from)
        .and_then(|m| {
            let config = deployment::DeployConfig::from_file(&path)?;
            let template = deployment::render(&m, &config)?;
            // The connector config must be one the connector accepts, and resolve to the
            // endpoints the stack opens and pins.
            let parsed = connector_sdk::config_from_value::<C>(serde_json::Value::Object(
                config.config.clone(),
            ))
            .map_err(|e| deployment::Error::config("config", e.to_string()))?;
            let pinned = template["Metadata"]["Connector"]["SourceEndpoints"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e.as_str()?.parse().ok())
                .collect::<Vec<connector_sdk::Endpoint>>();
            connector_sdk::governance::require_declared_endpoints(
                &m,
                &connector.source_endpoints(&parsed),
                &pinned,
            )?;
            Ok(template)
        });
    let template = match rendered {
        Ok(t) => t,
        Err(e) => return deployment_error(&e),
    };
    let text = serde_json::to_string_pretty(&template).unwrap_or_default() + "\n";
    match a.out {
        Some(out) => match std::fs::write(&out, text) {
            Ok(()) => EXIT_OK,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", out.display());
                EXIT_INPUT
            }
        },
        None => {
            print!("{text}");
            EXIT_OK
        }
    }
}

#[cfg(feature = "deploy")]
fn govern<C: Connector>(a: GovernArgs) -> u8 {
    let checked = (|| -> Result<Vec<connector_sdk::Violation>, deployment::Error> {
        let manifest = ConnectorManifest::of::<C>()?;
        let policy = match &a.policy {
            Some(p) => connector_sdk::GovernancePolicy::from_file(p)?,
            None => connector_sdk::GovernancePolicy::embedded(),
        };
        let mut all = deployment::check_manifest(&policy, &manifest);
        for path in &a.templates {
            let template = deployment::read_template(path)?;
            for mut v in deployment::check_template(&policy, &template) {
                v.resource = format!("{} {}", path.display(), v.resource);
                all.push(v);
            }
        }
        Ok(all)
    })();
    match checked {
        Err(e) => deployment_error(&e),
        Ok(v) if v.is_empty() => {
            println!(
                "ok: the manifest and {} template(s) follow the governance policy",
                a.templates.len()
            );
            EXIT_OK
        }
        Ok(v) => {
            for x in &v {
                eprintln!("error: {x}");
            }
            eprintln!("error: {} governance policy violation(s)", v.len());
            EXIT_INPUT
        }
    }
}

#[cfg(feature = "deploy")]
fn advise<C: Connector>(a: AdviseArgs) -> u8 {
    let advice = (|| -> Result<deployment::Advice, deployment::Error> {
        let manifest = ConnectorManifest::of::<C>()?;
        let text = std::fs::read_to_string(&a.profile).map_err(|e| {
            deployment::Error::config(
                "--profile",
                format!("cannot read {}: {e}", a.profile.display()),
            )
        })?;
        let profile = deployment::WorkloadProfile::parse(&text)?;
        Ok(deployment::advise(&profile, Some(&manifest)))
    })();
    match advice {
        Err(e) => deployment_error(&e),
        Ok(advice) => {
            for w in &advice.warnings {
                eprintln!("warning: {w}");
            }
            match print_json(&advice) {
                Ok(()) => EXIT_OK,
                Err(e) => report_error(&e),
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
    let manifest = ConnectorManifest::of::<C>()?;
    let config = load_config::<C>(path)?;
    // Before any connection: the config's endpoints must be ones the manifest declares.
    connector_sdk::governance::require_declared_endpoints(
        &manifest,
        &connector.source_endpoints(&config),
        &[],
    )?;
    connector.check(&config).await?;
    print_json(&serde_json::json!({"status": "ok"}))
}

async fn discover<C: Connector>(connector: C, path: &Path) -> Result<(), Error> {
    let manifest = ConnectorManifest::of::<C>()?;
    let config = load_config::<C>(path)?;
    // Before any connection: the config's endpoints must be ones the manifest declares.
    connector_sdk::governance::require_declared_endpoints(
        &manifest,
        &connector.source_endpoints(&config),
        &[],
    )?;
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
