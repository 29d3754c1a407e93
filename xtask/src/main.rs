//! Workspace tasks (`cargo xtask ...`, an alias in .cargo/config.toml):
//!
//! - `matrix`: every connector of `matrix.toml` on every runner its manifest declares,
//!   against the local stand-ins, plus the refusal of every runner it does not declare;
//!   every runner's dataset must equal a one-shot `extract` row for row (stable row
//!   hashes). Prints a connector × runner table and writes JUnit XML.
//! - `workflow`: generate `.github/workflows/matrix.yml` from `matrix.toml` and the
//!   manifests (`--check`: fail when the file on disk differs).

mod dataset_check;
mod govern;
mod matrix_file;
mod report;
mod scenarios;
mod workflow;

use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use connector_sdk::conformance::source_rows;
use futures::FutureExt;
use integration_tests::json_server::JsonServer;
use integration_tests::postgres_server::{PASSWORD, PgServer};
use integration_tests::{TestEnv, binary, workspace_root};

use crate::dataset_check::{Committed, SourceCheck, SourceFacts};
use crate::matrix_file::{ConnectorEntry, DeclaredManifest, MatrixFile, RUNNERS, Source};
use crate::report::{CellResult, Verdict};
use crate::scenarios::ConnectorRun;

#[derive(Debug, Parser)]
#[command(about = "Workspace tasks: the runner matrix and its CI workflow")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run every connector on every runner its manifest declares (and check that the
    /// others are refused); print a table, write JUnit XML; exit 1 if a cell failed.
    Matrix {
        /// Only this connector (its manifest name, package or binary); repeatable.
        #[arg(long)]
        connector: Vec<String>,
        /// Only this runner (lambda, fargate, ec2, glue); repeatable.
        #[arg(long, value_parser = RUNNERS)]
        runner: Vec<String>,
        /// Where the JUnit XML goes.
        #[arg(long, default_value = "target/matrix/junit.xml")]
        junit: PathBuf,
    },
    /// Deployment and governance as code for every connector in matrix.toml: render a
    /// CloudFormation stack per declared runner × pattern (and every runner × pattern of
    /// a synthetic manifest), check each with the governance policy, cfn-lint and
    /// cfn-guard, and show each rule failing on a template broken for it.
    Govern,
    /// Generate .github/workflows/matrix.yml from matrix.toml and the manifests.
    Workflow {
        /// Do not write: exit 1 if the file on disk is not what would be generated.
        #[arg(long)]
        check: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.task {
            Task::Matrix {
                connector,
                runner,
                junit,
            } => matrix(&connector, &runner, &junit).await,
            Task::Workflow { check } => workflow::run(check),
            Task::Govern => govern::run_all(),
        }
    });
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The built binary of `entry` (cargo builds it when it is missing).
pub fn entry_binary(entry: &ConnectorEntry) -> Result<PathBuf> {
    let (package, bin) = (entry.package.clone(), entry.binary.clone());
    std::panic::catch_unwind(move || binary(&package, &bin))
        .map_err(|p| anyhow::anyhow!("building {}: {}", entry.binary, panic_text(&p)))
}

fn panic_text(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>()
        .cloned()
        .or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_else(|| "panic".into())
}

async fn matrix(only: &[String], runners: &[String], junit: &std::path::Path) -> Result<bool> {
    let root = workspace_root();
    let file = MatrixFile::load(&root)?;
    let env = TestEnv::start().await;
    let started = Instant::now();
    let mut cells: Vec<CellResult> = Vec::new();
    let mut selected = 0;
    for entry in &file.connector {
        let binary = entry_binary(entry)?;
        let names = [&entry.package, &entry.binary];
        let manifest = DeclaredManifest::from_binary(&binary, &[])?;
        if !only.is_empty()
            && !only
                .iter()
                .any(|o| names.contains(&o) || *o == manifest.name)
        {
            continue;
        }
        selected += 1;
        eprintln!("==> {} ({})", manifest.name, entry.dir);
        cells.extend(connector_cells(&env, entry, binary, manifest, runners).await?);
    }
    if selected == 0 {
        bail!("no connector in matrix.toml matches {only:?}");
    }
    let all_passed = cells.iter().all(|c| c.verdict.passed());
    report::print_table(&cells);
    report::write_junit(&cells, started.elapsed(), &root.join(junit))?;
    eprintln!("JUnit XML: {}", root.join(junit).display());
    Ok(all_passed)
}

/// One connector's row: its source, a one-shot reference extract, then every runner.
async fn connector_cells(
    env: &TestEnv,
    entry: &ConnectorEntry,
    binary: PathBuf,
    manifest: DeclaredManifest,
    runners: &[String],
) -> Result<Vec<CellResult>> {
    let work = tempfile::Builder::new()
        .prefix(&format!("matrix-{}-", manifest.name))
        .tempdir()?;
    // The source server lives until every cell of this connector has run.
    let (config_text, extra_env, source_server) = match entry.source {
        None => (entry.config.to_string(), entry.env.clone(), None),
        Some(Source::Postgres) => {
            let pg = tokio::task::spawn_blocking(PgServer::start)
                .await
                .map_err(|e| anyhow::anyhow!("starting PostgreSQL: {e}"))?;
            let seed = entry.seed.as_deref().context("postgres needs a seed")?;
            let sql = std::fs::read_to_string(workspace_root().join(seed))
                .with_context(|| format!("reading {seed}"))?;
            pg.client()
                .await
                .batch_execute(&sql)
                .await
                .with_context(|| format!("running {seed}"))?;
            let port = pg.port.to_string();
            let text = entry.config.to_string().replace("\"${PG_PORT}\"", &port);
            let env: BTreeMap<String, String> = entry
                .env
                .iter()
                .map(|(k, v)| (k.clone(), v.replace("${PG_PASSWORD}", PASSWORD)))
                .collect();
            (text, env, Some(SourceServer::Postgres(pg)))
        }
        Some(Source::JsonServer) => {
            let seed = entry.seed.as_deref().context("json_server needs a seed")?;
            let db: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(workspace_root().join(seed))
                    .with_context(|| format!("reading {seed}"))?,
            )
            .with_context(|| format!("parsing {seed}"))?;
            let server = tokio::task::spawn_blocking(move || JsonServer::start(&db))
                .await
                .map_err(|e| anyhow::anyhow!("starting json-server: {e}"))?;
            let text = entry
                .config
                .to_string()
                .replace("${SOURCE_URL}", &server.url());
            (text, entry.env.clone(), Some(SourceServer::Json(server)))
        }
        Some(Source::S3Objects) => {
            let seed = entry.seed.as_deref().context("s3_objects needs a seed")?;
            let dir = workspace_root().join(seed);
            let store = env.store().await;
            let prefix = format!("matrix-sources/{}/", manifest.name);
            for file in seed_files(&dir)? {
                let name = file
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let body =
                    std::fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
                store
                    .put(
                        integration_tests::BUCKET,
                        &format!("{prefix}{name}"),
                        body.into(),
                        false,
                    )
                    .await
                    .with_context(|| format!("uploading {name}"))?;
            }
            (
                entry.config.to_string(),
                entry.env.clone(),
                Some(SourceServer::Files(dir)),
            )
        }
    };
    let config: serde_json::Value = serde_json::from_str(&config_text)?;
    let config_file = work.path().join("config.json");
    std::fs::write(&config_file, &config_text)?;
    let run = ConnectorRun {
        env,
        binary,
        manifest,
        stream: entry.stream.clone(),
        config,
        config_file,
        extra_env: extra_env.into_iter().collect(),
        work: work.path().to_path_buf(),
    };
    let store = env.store().await;

    // The reference every runner's dataset must equal, itself checked against the source
    // and the expected row count.
    let t = Instant::now();
    let source = source_check(entry, &run, source_server.as_ref()).await;
    let reference = async {
        guarded(run.one_shot()).await?;
        let reference = Committed::read(&store, &run.output("one-shot"), &run.stream)
            .await
            .context("reading the one-shot dataset")?;
        expect_rows(&reference, entry.rows)?;
        source?.expect_matches(&reference)?;
        Ok::<_, anyhow::Error>(reference)
    }
    .await;
    let mut cells = vec![CellResult::new(
        &run.manifest.name,
        "one-shot",
        match &reference {
            Ok(r) => Verdict::Passed { rows: r.rows.len() },
            Err(e) => Verdict::Failed(format!("{e:#}")),
        },
        t.elapsed(),
    )];

    for runner in RUNNERS {
        if !runners.is_empty() && !runners.iter().any(|r| r == runner) {
            continue;
        }
        let declared = run.manifest.declares(runner);
        eprintln!(
            "  -> {runner} ({})",
            if declared { "declared" } else { "undeclared" }
        );
        let t = Instant::now();
        let outcome = match (runner, declared) {
            ("lambda", true) => guarded(run.lambda()).await,
            ("lambda", false) => guarded(run.lambda_refused()).await,
            ("fargate", true) => guarded(run.fargate()).await,
            ("fargate", false) => guarded(run.fargate_refused()).await,
            ("ec2", true) => guarded(run.ec2()).await,
            ("ec2", false) => guarded(run.ec2_refused()).await,
            ("glue", true) => guarded(run.glue()).await,
            (_, _) => guarded(run.glue_refused()).await,
        };
        let verdict = match (outcome, declared) {
            (Err(e), _) => Verdict::Failed(format!("{e:#}")),
            (Ok(()), false) => Verdict::Refused,
            (Ok(()), true) => same_dataset(&store, &run, runner, &reference, entry.rows).await,
        };
        if let Verdict::Failed(why) = &verdict {
            eprintln!("     FAILED: {why}");
        }
        cells.push(CellResult::new(
            &run.manifest.name,
            runner,
            verdict,
            t.elapsed(),
        ));
    }
    Ok(cells)
}

/// The runner's committed dataset against the one-shot reference: schema field by field,
/// committed state, the expected row count, and rows by stable row hash.
async fn same_dataset(
    store: &connector_sdk::S3Store,
    run: &ConnectorRun<'_>,
    runner: &str,
    reference: &Result<Committed>,
    expected_rows: usize,
) -> Verdict {
    let Ok(reference) = reference else {
        return Verdict::Failed("no one-shot reference to compare with".into());
    };
    let checked = async {
        let committed = Committed::read(store, &run.output(runner), &run.stream)
            .await
            .context("reading the dataset")?;
        committed.expect_equal(reference)?;
        expect_rows(&committed, expected_rows)?;
        Ok::<_, anyhow::Error>(committed.rows.len())
    }
    .await;
    match checked {
        Ok(rows) => Verdict::Passed { rows },
        Err(e) => Verdict::Failed(format!("{e:#}")),
    }
}

/// The number of rows matrix.toml expects.
fn expect_rows(committed: &Committed, expected: usize) -> Result<()> {
    anyhow::ensure!(
        committed.rows.len() == expected,
        "{} rows committed, matrix.toml expects {expected}",
        committed.rows.len()
    );
    Ok(())
}

/// A source server the matrix started for a connector.
#[derive(Debug)]
enum SourceServer {
    Postgres(PgServer),
    Json(JsonServer),
    /// Seed files put into the matrix's S3 bucket (the directory they came from).
    Files(PathBuf),
}

/// The files of a seed directory, sorted.
fn seed_files(dir: &std::path::Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// The rows of the CSV seed files (header line, comma-separated, no quoting; an empty
/// field is null; `key` as an integer), read here rather than by the connector.
fn csv_seed_records(dir: &std::path::Path, key: &str) -> Result<Vec<serde_json::Value>> {
    let mut out = Vec::new();
    for file in seed_files(dir)? {
        let text = std::fs::read_to_string(&file)?;
        let mut lines = text.lines();
        let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
        for line in lines.filter(|l| !l.is_empty()) {
            let mut record = serde_json::Map::new();
            for (name, value) in header.iter().zip(line.split(',')) {
                let v = match value {
                    "" => serde_json::Value::Null,
                    v if *name == key => serde_json::Value::from(v.parse::<i64>()?),
                    v => serde_json::Value::from(v),
                };
                record.insert(name.to_string(), v);
            }
            out.push(serde_json::Value::Object(record));
        }
    }
    Ok(out)
}

/// How the one-shot extract of `entry` is checked against its source.
async fn source_check(
    entry: &ConnectorEntry,
    run: &ConnectorRun<'_>,
    server: Option<&SourceServer>,
) -> Result<SourceCheck> {
    let rows = |r: std::result::Result<_, connector_sdk::conformance::ConformanceFailure>| {
        r.map(SourceCheck::Rows)
            .map_err(|e| anyhow::anyhow!("reading the source: {e}"))
    };
    match (entry.package.as_str(), server, &entry.source_table) {
        (_, Some(SourceServer::Postgres(pg)), Some(t)) => Ok(SourceCheck::Facts(
            SourceFacts::read(&pg.client().await, &t.table, &t.key)
                .await
                .context("reading the source table")?,
        )),
        (_, Some(SourceServer::Json(server)), Some(t)) => {
            // The database file the server serves (read here, not through the server).
            let db: serde_json::Value = serde_json::from_slice(&std::fs::read(server.db_file())?)?;
            let records = db[t.table.as_str()]
                .as_array()
                .with_context(|| format!("the seed has no collection `{}`", t.table))?;
            Ok(SourceCheck::Facts(SourceFacts::from_json_records(
                records, &t.key,
            )?))
        }
        (_, Some(SourceServer::Files(dir)), Some(t)) => Ok(SourceCheck::Facts(
            SourceFacts::from_json_records(&csv_seed_records(dir, &t.key)?, &t.key)?,
        )),
        ("orders-demo", None, _) => {
            rows(source_rows(&orders_demo::OrdersDemo, &run.config, &run.stream).await)
        }
        ("sensor-readings", None, _) => {
            rows(source_rows(&sensor_readings::SensorReadings, &run.config, &run.stream).await)
        }
        _ => Ok(SourceCheck::None),
    }
}

/// A scenario's result, with a panic in a helper (the integration-test servers assert)
/// turned into a failure of that cell only.
async fn guarded(f: impl std::future::Future<Output = Result<()>>) -> Result<()> {
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(r) => r,
        Err(p) => bail!("panicked: {}", panic_text(&p)),
    }
}

/// How long a matrix cell took, for the table.
pub fn secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}
