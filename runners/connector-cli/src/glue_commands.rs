//! The Glue runner's subcommands (`plan`, `extract-partition`, `commit`, `deploy glue`):
//! the thin part that needs the facade's `ConfigArg`/`OutputArgs`; the logic is in
//! `glue_runner`. Each prints one line of JSON on stdout and refuses, before any I/O,
//! when the manifest does not declare `glue`.

use clap::Args;
use connector_sdk::{Connector, ExtractCore, ExtractOptions, OutputLocation, RunStatus, S3Store};

use super::{ConfigArg, EXIT_OK, EXIT_PARTIAL, OutputArgs, load_config};

/// `plan`: plan a run of one stream and print it (the Glue driver's first step).
#[derive(Debug, Args)]
pub(crate) struct PlanCommand {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    glue: glue_runner::PlanArgs,
}

/// `extract-partition`: extract one partition of a plan; writes files, commits nothing.
#[derive(Debug, Args)]
pub(crate) struct ExtractPartitionCommand {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    glue: glue_runner::ExtractPartitionArgs,
}

/// `commit`: commit the partition results of a plan, conditionally, once.
#[derive(Debug, Args)]
pub(crate) struct CommitCommand {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    glue: glue_runner::CommitArgs,
}

/// Print a Glue runner error as one line on stderr; returns its exit code.
fn report(e: &glue_runner::Error) -> u8 {
    let line = e.one_line();
    eprintln!("error: {line}");
    tracing::error!("{line}");
    e.exit_code()
}

/// Refuse without `glue` (no I/O), then load the config and build a core.
async fn core<C: Connector>(
    connector: C,
    config: &ConfigArg,
    output: &OutputArgs,
    options: impl FnOnce(OutputLocation) -> glue_runner::Result<ExtractOptions>,
) -> glue_runner::Result<ExtractCore<C>> {
    glue_runner::require_glue::<C>()?;
    let config = load_config::<C>(&config.config)?;
    let location: OutputLocation = output.output.parse()?;
    let options = options(location)?;
    let store = S3Store::connect(&output.s3_options()).await;
    Ok(ExtractCore::new(
        connector,
        config,
        store,
        options,
        glue_runner::RUNNER,
    )?)
}

pub(crate) async fn plan<C: Connector>(connector: C, a: PlanCommand) -> u8 {
    let result = async {
        let core = core(connector, &a.config, &a.output, |o| {
            Ok(ExtractOptions::new(o))
        })
        .await?;
        let plan = glue_runner::plan(&core, &a.glue).await?;
        glue_runner::print_json_line("the plan", &plan)
    }
    .await;
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e),
    }
}

pub(crate) async fn extract_partition<C: Connector>(
    connector: C,
    a: ExtractPartitionCommand,
) -> u8 {
    let result = async {
        let core = core(connector, &a.config, &a.output, |o| {
            glue_runner::extract_options(o, &a.glue.write)
        })
        .await?;
        let plan = glue_runner::read_plan(&a.glue.plan)?;
        let result = glue_runner::extract_partition(&core, &plan, &a.glue.partition).await;
        if result.is_err() {
            core.abort_open_uploads().await;
        }
        glue_runner::print_json_line("the partition result", &result?)
    }
    .await;
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e),
    }
}

pub(crate) async fn commit<C: Connector>(connector: C, a: CommitCommand) -> u8 {
    let result = async {
        let core = core(connector, &a.config, &a.output, |o| {
            Ok(ExtractOptions::new(o))
        })
        .await?;
        let plan = glue_runner::read_plan(&a.glue.plan)?;
        let results = glue_runner::read_results(&a.glue.results)?;
        let report = glue_runner::commit(&core, &plan, results, &a.glue.results).await?;
        glue_runner::print_json_line("the run report", &report)?;
        Ok::<_, glue_runner::Error>(report.status)
    }
    .await;
    match result {
        Ok(RunStatus::Complete) => EXIT_OK,
        // Results were missing for some partitions: their progress is committed as a
        // pending plan; the next run resumes it.
        Ok(_) => EXIT_PARTIAL,
        Err(e) => report(&e),
    }
}

/// `deploy glue`: print the Glue job definition (and write the job script if asked).
pub(crate) fn deploy<C: Connector>(a: glue_runner::JobDefinitionArgs) -> u8 {
    let result = (|| {
        let manifest = connector_sdk::ConnectorManifest::parse(C::MANIFEST)?;
        let job = glue_runner::job_definition(&manifest, &a)?;
        if let Some(path) = &a.write_script {
            std::fs::write(path, glue_runner::JOB_SCRIPT).map_err(|source| {
                glue_runner::Error::Output {
                    what: format!("the job script to {}", path.display()),
                    source,
                }
            })?;
        }
        let text = serde_json::to_string_pretty(&job).map_err(|e| glue_runner::Error::Output {
            what: "the job definition".into(),
            source: std::io::Error::other(e),
        })?;
        println!("{text}");
        Ok::<_, glue_runner::Error>(())
    })();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e),
    }
}
