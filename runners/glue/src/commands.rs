//! The Glue runner's subcommands of every connector binary (`plan`, `extract-partition`,
//! `commit`, `deploy glue`). Each prints one line of JSON on stdout and refuses, before
//! any I/O, when the manifest does not declare `glue`.

use clap::Args;
use connector_sdk::exit::{OK as EXIT_OK, PARTIAL as EXIT_PARTIAL};
use connector_sdk::{Connector, ExtractCore, ExtractOptions, OutputLocation, RunStatus, S3Store};
use runner_layer::{ConfigArg, OutputArgs, load_config};

/// `plan`: plan a run of one stream and print it (the Glue driver's first step).
#[derive(Debug, Args)]
pub struct PlanCommand {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    glue: crate::PlanArgs,
}

/// `extract-partition`: extract one partition of a plan; writes files, commits nothing.
#[derive(Debug, Args)]
pub struct ExtractPartitionCommand {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    glue: crate::ExtractPartitionArgs,
}

/// `commit`: commit the partition results of a plan, conditionally, once.
#[derive(Debug, Args)]
pub struct CommitCommand {
    #[command(flatten)]
    config: ConfigArg,
    #[command(flatten)]
    output: OutputArgs,
    #[command(flatten)]
    glue: crate::CommitArgs,
}

/// Print a Glue runner error as one line on stderr; returns its exit code.
fn report(e: &crate::Error) -> u8 {
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
    options: impl FnOnce(OutputLocation) -> crate::Result<ExtractOptions>,
) -> crate::Result<ExtractCore<C>> {
    crate::require_glue::<C>()?;
    let config = load_config::<C>(&config.config)?;
    let location: OutputLocation = output.output.parse()?;
    let options = options(location)?;
    let store = S3Store::connect(&output.s3_options()).await;
    Ok(ExtractCore::new(
        connector,
        config,
        store,
        options,
        crate::RUNNER,
    )?)
}

pub async fn plan<C: Connector>(connector: C, a: PlanCommand) -> u8 {
    let result = async {
        let core = core(connector, &a.config, &a.output, |o| {
            Ok(a.glue.settings.resolve(o)?)
        })
        .await?;
        let plan = crate::plan(&core, &a.glue).await?;
        crate::print_json_line("the plan", &plan)
    }
    .await;
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e),
    }
}

pub async fn extract_partition<C: Connector>(connector: C, a: ExtractPartitionCommand) -> u8 {
    let started = std::time::Instant::now();
    let result = async {
        let core = core(connector, &a.config, &a.output, |o| {
            crate::extract_options(o, &a.glue.settings)
        })
        .await?;
        let core = match a.glue.attempt {
            Some(n) => core.with_attempt(n),
            None => core,
        };
        let plan = crate::read_plan(&a.glue.plan)?;
        let deadline = a.glue.settings.deadline(started);
        let result = crate::extract_partition(&core, &plan, &a.glue.partition, deadline).await;
        if result.is_err() {
            core.abort_open_uploads().await;
        }
        crate::print_json_line("the partition result", &result?)
    }
    .await;
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e),
    }
}

pub async fn commit<C: Connector>(connector: C, a: CommitCommand) -> u8 {
    let result = async {
        let core = core(connector, &a.config, &a.output, |o| {
            Ok(a.glue.settings.resolve(o)?)
        })
        .await?;
        let plan = crate::read_plan(&a.glue.plan)?;
        let results = crate::read_results(&a.glue.results)?;
        let report = crate::commit(&core, &plan, results, &a.glue.results).await?;
        runner_layer::log_report(&report);
        crate::print_json_line("the run report", &report)?;
        Ok::<_, crate::Error>(report.status)
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
pub fn deploy<C: Connector>(a: crate::JobDefinitionArgs) -> u8 {
    let result = (|| {
        let manifest = connector_sdk::ConnectorManifest::of::<C>()?;
        let job = crate::job_definition(&manifest, &a)?;
        if let Some(path) = &a.write_script {
            std::fs::write(path, crate::JOB_SCRIPT).map_err(|source| crate::Error::Output {
                what: format!("the job script to {}", path.display()),
                source,
            })?;
        }
        let text = serde_json::to_string_pretty(&job).map_err(|e| crate::Error::Output {
            what: "the job definition".into(),
            source: std::io::Error::other(e),
        })?;
        println!("{text}");
        Ok::<_, crate::Error>(())
    })();
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => report(&e),
    }
}
