//! Glue runner: the three steps a Glue (PySpark) job drives with the connector binary,
//! the Glue job definition, and the job script itself ([`JOB_SCRIPT`], `job/`).
//!
//! ```text
//! driver:    <binary> plan --config C --output O [--stream S]            -> RunPlan JSON
//! executors: <binary> extract-partition --plan - --partition P ...      -> PartitionResult JSON
//! driver:    <binary> commit --plan plan.json --results results.json    -> RunReport JSON
//! ```
//!
//! `extract-partition` writes deterministic files (`part-<run>-<partition>-<seq>.parquet`)
//! and commits nothing, so a Spark task retried after a failure overwrites exactly the
//! files of its failed attempt. `commit` writes the dataset manifest conditionally, once;
//! running it again for the same plan is a no-op (the manifest with this run id exists).
//!
//! Every step refuses with [`connector_sdk::Error::RunnerNotDeclared`] (exit 2) before
//! any I/O when the connector's manifest does not declare `glue`.

pub mod commands;
pub mod error;
pub mod job_definition;

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use connector_sdk::{
    Connector, ConnectorManifest, ExtractCore, ExtractOptions, OutputLocation, PartitionResult,
    RunPlan, RunReport, Runner, StopSignal,
};
use runner_layer::ExtractSettings;

pub use error::{Error, Result};
pub use job_definition::{JobDefinitionArgs, job_definition};

/// The runner label recorded in manifests and run reports.
pub const RUNNER: &str = "glue";

/// The PySpark job script (`runners/glue/job/connector_glue_job.py`): runs unchanged on
/// AWS Glue 5 and on a local PySpark 3.5.
pub const JOB_SCRIPT: &str = include_str!("../job/connector_glue_job.py");

/// File name of the job script.
pub const JOB_SCRIPT_NAME: &str = "connector_glue_job.py";

/// Arguments of `plan`.
#[derive(Debug, Clone, clap::Args)]
pub struct PlanArgs {
    /// Stream to plan [default: the connector's only declared stream; required when it
    /// declares several or discovers them at run time].
    #[arg(long, value_name = "NAME")]
    pub stream: Option<String>,
    /// The extract options, as for `extract-partition`: `plan` writes (the If-None-Match
    /// probe) and reads the output, so `--sse-kms-key-id` and `--expected-bucket-owner`
    /// apply; give every step the same options.
    #[command(flatten)]
    pub settings: ExtractSettings,
}

/// Arguments of `extract-partition`.
#[derive(Debug, Clone, clap::Args)]
pub struct ExtractPartitionArgs {
    /// The plan printed by `plan` (a JSON file, or `-` for stdin).
    #[arg(long, value_name = "FILE|-")]
    pub plan: PathBuf,
    /// Id of the partition to extract (`work[].partition.id` in the plan).
    #[arg(long, value_name = "ID")]
    pub partition: String,
    /// The Spark task attempt (`TaskContext.taskAttemptId()`, unique in the job): it goes
    /// into the partition's file names, so two attempts of one partition never write the
    /// same object and a zombie attempt cannot overwrite files a commit lists. Without
    /// it, a re-run of the partition rewrites the same names.
    #[arg(long, value_name = "N")]
    pub attempt: Option<u64>,
    /// How to write the Parquet files: the extract options, with the same names as
    /// every other input path. Use the same values for every partition of a run.
    /// `concurrency` does not apply (each Spark task reads one partition).
    #[command(flatten)]
    pub settings: ExtractSettings,
}

/// Arguments of `commit`.
#[derive(Debug, Clone, clap::Args)]
pub struct CommitArgs {
    /// The plan printed by `plan` (a JSON file, or `-` for stdin).
    #[arg(long, value_name = "FILE|-")]
    pub plan: PathBuf,
    /// The partition results printed by `extract-partition`: a JSON array, or one JSON
    /// object per line (a file, or `-` for stdin).
    #[arg(long, value_name = "FILE|-")]
    pub results: PathBuf,
    /// The extract options, as for `extract-partition`: the commit writes the table's log
    /// (`--sse-kms-key-id`, `--expected-bucket-owner` apply); give every step the same.
    #[command(flatten)]
    pub settings: ExtractSettings,
}

/// Refuse unless the connector's manifest is valid and declares `glue`. No I/O.
pub fn require_glue<C: Connector>() -> Result<Arc<ConnectorManifest>> {
    let manifest = ConnectorManifest::of::<C>()?;
    manifest.require_runner(Runner::Glue)?;
    Ok(manifest)
}

/// Part buffers of one `extract-partition` when unset: a Spark task reads one partition,
/// so two buffers let it fill one part while the previous one uploads.
const DEFAULT_BUFFERED_PARTS: usize = 2;

/// Extract options for `output` from `settings`. No I/O. One partition per process.
pub fn extract_options(
    output: OutputLocation,
    settings: &ExtractSettings,
) -> Result<ExtractOptions> {
    if let Some(n) = settings.concurrency {
        return Err(connector_sdk::Error::request(format!(
            "concurrency = {n} does not apply to extract-partition: each Spark task reads one partition; set the job's --spark_partitions instead"
        ))
        .into());
    }
    let mut options = settings.resolve(output)?;
    options.max_concurrent_partitions = 1;
    options
        .upload
        .max_buffered_parts
        .get_or_insert(DEFAULT_BUFFERED_PARTS);
    Ok(options)
}

/// The stream `plan` plans: `requested`, or the manifest's only stream.
pub fn resolve_stream(manifest: &ConnectorManifest, requested: Option<&str>) -> Result<String> {
    match requested {
        Some(s) => Ok(s.to_string()),
        None if !manifest.dynamic_streams && manifest.streams.len() == 1 => {
            Ok(manifest.streams[0].name.clone())
        }
        None if manifest.dynamic_streams => Err(connector_sdk::Error::request(format!(
            "connector `{}` discovers its streams at run time: pass --stream NAME (see `discover`)",
            manifest.name
        ))
        .into()),
        None => Err(connector_sdk::Error::request(format!(
            "connector `{}` has several streams: pass --stream with one of {}",
            manifest.name,
            manifest.stream_names().join(", ")
        ))
        .into()),
    }
}

/// Plan a run of one stream (the driver's first step): loads the committed state and
/// returns the plan (a pending plan of an earlier run is resumed). Commits nothing.
pub async fn plan<C: Connector>(core: &ExtractCore<C>, args: &PlanArgs) -> Result<RunPlan> {
    let stream = resolve_stream(core.manifest(), args.stream.as_deref())?;
    Ok(core.prepare(&stream).await?)
}

/// The ids of the partitions of `plan` that still have rows to read, in plan order.
pub fn remaining_partitions(plan: &RunPlan) -> Vec<String> {
    plan.remaining().map(|w| w.partition.id.clone()).collect()
}

/// Extract one partition of `plan` (an executor's task): writes its files, commits
/// nothing. Errors name the partition.
pub async fn extract_partition<C: Connector>(
    core: &ExtractCore<C>,
    plan: &RunPlan,
    partition: &str,
    deadline: Option<std::time::Instant>,
) -> Result<PartitionResult> {
    check_plan_output(core, plan)?;
    core.extract_partition(plan, partition, &StopSignal::new().with_deadline(deadline))
        .await
        .map_err(|source| match source {
            // "partition X is not in the plan" already names it.
            e @ connector_sdk::Error::Request { .. } => Error::Sdk(e),
            source => Error::Partition {
                partition: partition.to_string(),
                stream: plan.stream.name.clone(),
                run_id: plan.run_id.clone(),
                source: Box::new(source),
            },
        })
}

/// Commit `results` of `plan` (the driver's last step): the dataset manifest is written
/// conditionally, once. Results must be for partitions of the plan, each at most once.
pub async fn commit<C: Connector>(
    core: &ExtractCore<C>,
    plan: &RunPlan,
    results: Vec<PartitionResult>,
    results_path: &Path,
) -> Result<RunReport> {
    check_plan_output(core, plan)?;
    let mut seen = BTreeSet::new();
    for r in &results {
        if !seen.insert(r.partition.as_str()) {
            return Err(Error::InvalidInput {
                what: "partition results",
                path: results_path.to_path_buf(),
                message: format!(
                    "partition `{}` appears twice; pass exactly one result per partition",
                    r.partition
                ),
            });
        }
        if !plan.work.iter().any(|w| w.partition.id == r.partition) {
            return Err(Error::InvalidInput {
                what: "partition results",
                path: results_path.to_path_buf(),
                message: format!(
                    "partition `{}` is not in the plan of run {}; were the results made from another plan?",
                    r.partition, plan.run_id
                ),
            });
        }
        if let Some(f) = r.files.iter().find(|f| !f.key.contains(&plan.run_id)) {
            return Err(Error::InvalidInput {
                what: "partition results",
                path: results_path.to_path_buf(),
                message: format!(
                    "file {} of partition `{}` was not written by run {}",
                    f.key, r.partition, plan.run_id
                ),
            });
        }
    }
    Ok(core.commit(plan, results).await?)
}

/// Data files of a plan are named after its stream; a plan made for another stream than
/// the core's manifest declares is refused early. (The output location cannot be
/// checked: the plan does not carry it.)
fn check_plan_output<C: Connector>(core: &ExtractCore<C>, plan: &RunPlan) -> Result<()> {
    core.manifest()
        .require_stream(&plan.stream.name)
        .map_err(|e| {
            connector_sdk::Error::request(format!(
                "the plan is for a stream this connector does not have ({}); was it made by another connector?",
                error::sdk_message(&e)
            ))
            .into()
        })
}

fn read_input(what: &'static str, path: &Path) -> Result<String> {
    let mut text = String::new();
    let res = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::read_to_string(path).map(|t| text = t)
    };
    res.map_err(|e| Error::InputRead {
        what,
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if text.trim().is_empty() {
        return Err(Error::InvalidInput {
            what,
            path: path.to_path_buf(),
            message: "it is empty; pass the JSON printed by the previous step".into(),
        });
    }
    Ok(text)
}

fn json_message(e: &serde_json::Error) -> String {
    // serde_json messages name the field and position, never whole values.
    connector_sdk::one_line(&e.to_string())
}

/// Read a plan printed by `plan` (a file, or `-` for stdin).
pub fn read_plan(path: &Path) -> Result<RunPlan> {
    let text = read_input("plan", path)?;
    serde_json::from_str(&text).map_err(|e| Error::InvalidInput {
        what: "plan",
        path: path.to_path_buf(),
        message: format!(
            "{}; expected the JSON object printed by `plan`",
            json_message(&e)
        ),
    })
}

/// Read partition results: a JSON array of the objects `extract-partition` prints, or
/// one object per line.
pub fn read_results(path: &Path) -> Result<Vec<PartitionResult>> {
    let text = read_input("partition results", path)?;
    let invalid = |e: serde_json::Error, line: Option<usize>| Error::InvalidInput {
        what: "partition results",
        path: path.to_path_buf(),
        message: format!(
            "{}{}; expected a JSON array (or JSON lines) of the objects printed by `extract-partition`",
            line.map(|l| format!("line {l}: ")).unwrap_or_default(),
            json_message(&e)
        ),
    };
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(&text).map_err(|e| invalid(e, None));
    }
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| invalid(e, Some(i + 1))))
        .collect()
}

/// Print `value` as one line of JSON on stdout (the job script reads it).
pub fn print_json_line(what: &str, value: &impl serde::Serialize) -> Result<()> {
    use std::io::Write;
    let text = serde_json::to_string(value).map_err(|e| Error::Output {
        what: what.to_string(),
        source: std::io::Error::other(e),
    })?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{text}")
        .and_then(|_| out.flush())
        .map_err(|source| Error::Output {
            what: what.to_string(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MANIFEST: &str = r#"
name = "two-streams"
version = "1.0.0"
description = "test"
data_classification = "public"
[[streams]]
name = "a"
[[streams]]
name = "b"
[runners.glue]
memory_mb = 16384
vcpu = 4
max_runtime_secs = 3600
[[networking]]
pattern = "vpc-endpoint"
endpoints = ["s3.amazonaws.com:443"]
"#;

    #[test]
    fn stream_is_required_when_there_are_several() {
        let m = ConnectorManifest::parse(MANIFEST).unwrap();
        let err = resolve_stream(&m, None).unwrap_err().one_line();
        assert!(err.contains("pass --stream with one of a, b"), "{err}");
        assert_eq!(resolve_stream(&m, Some("b")).unwrap(), "b");
        let one =
            ConnectorManifest::parse(&MANIFEST.replace("[[streams]]\nname = \"b\"\n", "")).unwrap();
        assert_eq!(resolve_stream(&one, None).unwrap(), "a");
    }

    #[test]
    fn bad_plan_and_results_are_named() {
        let dir = std::env::temp_dir().join(format!("glue-runner-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("plan.json");
        std::fs::write(&p, "{\"run_id\": 1}").unwrap();
        let err = read_plan(&p).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        let msg = err.one_line();
        assert!(msg.starts_with("invalid plan in "), "{msg}");
        assert!(
            msg.contains("expected the JSON object printed by `plan`"),
            "{msg}"
        );
        std::fs::write(&p, "  \n").unwrap();
        assert!(
            read_plan(&p)
                .unwrap_err()
                .one_line()
                .contains("it is empty")
        );
        let missing = dir.join("missing.json");
        let msg = read_results(&missing).unwrap_err().one_line();
        assert!(
            msg.starts_with("cannot read partition results from ") && msg.contains("missing.json"),
            "{msg}"
        );
        std::fs::write(&p, "{\"partition\": \"x\"}\nnot json\n").unwrap();
        let msg = read_results(&p).unwrap_err().one_line();
        assert!(msg.contains("line 1: missing field"), "{msg}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn write_settings_are_validated() {
        use runner_layer::ByteSize;
        let out: OutputLocation = "s3://bucket/prefix".parse().unwrap();
        let mut w = ExtractSettings {
            row_group_rows: Some(10),
            target_file_size: Some(ByteSize::kib(64)),
            ..Default::default()
        };
        let o = extract_options(out.clone(), &w).unwrap();
        assert_eq!(o.parquet.target_file_bytes, 64 * 1024);
        assert_eq!(o.max_concurrent_partitions, 1);
        assert_eq!(o.upload.max_buffered_parts, Some(2));
        w.part_size = Some(ByteSize::mib(1));
        let msg = extract_options(out.clone(), &w).unwrap_err().one_line();
        assert!(msg.contains("5 MiB multipart minimum"), "{msg}");
        w.part_size = None;
        w.concurrency = Some(4);
        let e = extract_options(out, &w).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(
            e.one_line().contains("--spark_partitions"),
            "{}",
            e.one_line()
        );
    }
}
