//! The daemon config file (`/etc/<connector>/daemon.toml`): jobs, schedules, limits.
//!
//! Parsed and validated without I/O (except reading connector config files a job names).
//! Every error names the file, line and column of the offending key or value.
//!
//! ```toml
//! max_concurrent_jobs = 2
//! stall_timeout = "30m"
//!
//! [[jobs]]
//! name = "orders"
//! output = "s3://my-bucket/raw/orders-demo"
//! streams = ["orders"]
//! every = "15m"                      # or: cron = "*/15 * * * *"
//! config = { rows = 1000000 }        # or: config_file = "orders.json"
//! extract = { concurrency = 2, codec = "zstd", part_size = "16MiB" }
//! ```

use connector_sdk::one_line;
use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use connector_sdk::{
    Connector, ConnectorManifest, ExtractOptions, OutputLocation, S3Options, config_from_value,
};
use runner_layer::ExtractSettings;
use schemars::JsonSchema;
use serde::Deserialize;
use toml::Spanned;

use crate::error::{Error, Result};
use crate::schedule::{CronExpr, Interval, Schedule};

/// The daemon config file.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// How many jobs may run at the same time (at least 1; default 1). A due job waits for
    /// a free slot, then runs once.
    #[serde(default)]
    #[schemars(with = "Option<usize>")]
    pub max_concurrent_jobs: Option<Spanned<usize>>,
    /// A running job whose progress counters (rows, files, partitions) do not move for this
    /// long is stuck: the daemon stops sending `WATCHDOG=1`, so systemd restarts the service.
    /// Humantime syntax, default `"30m"`. Set it above the longest quiet phase of a run
    /// (planning, a slow source query, the commit).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub stall_timeout: Option<Interval>,
    /// Directory for last-run records (missed-schedule rule). Default: `$STATE_DIRECTORY`
    /// (set by systemd's `StateDirectory=`); without either, every job runs once at start.
    #[serde(default)]
    pub state_directory: Option<PathBuf>,
    /// How to reach S3 (endpoint for S3-compatible servers, region, attempts). Credentials
    /// always come from the AWS SDK default chain (instance profile via IMDSv2 on EC2).
    #[serde(default)]
    pub s3: S3Options,
    /// The scheduled jobs (`[[jobs]]`), at least one.
    #[schemars(with = "Vec<JobConfig>")]
    pub jobs: Vec<Spanned<JobConfig>>,
}

/// One scheduled extract.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JobConfig {
    /// Unique job name: 1-64 characters of `[a-z0-9_-]`. Names the state file and log lines.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The connector config, inline (the same fields as the connector's config file; see
    /// `<binary> spec`). Exactly one of `config` and `config_file`.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Map<String, serde_json::Value>>")]
    pub config: Option<Spanned<toml::Table>>,
    /// The connector config as a file (JSON, or TOML when it ends in `.toml`), relative to
    /// this file's directory. Keep secrets here (mode 0600) rather than inline.
    #[serde(default)]
    #[schemars(with = "Option<PathBuf>")]
    pub config_file: Option<Spanned<PathBuf>>,
    /// Output location, `s3://bucket/prefix`.
    pub output: OutputLocation,
    /// Streams to extract, one after another (default: every stream of the connector).
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    pub streams: Option<Spanned<Vec<String>>>,
    /// Fixed interval between run starts, e.g. `"15m"`, `"1h 30m"`. Exactly one of `every`
    /// and `cron`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub every: Option<Interval>,
    /// Cron expression, UTC: 5 fields, or 6 with a leading seconds field, e.g.
    /// `"*/15 * * * *"`. Exactly one of `every` and `cron`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    pub cron: Option<CronExpr>,
    /// Extract options, with the same names as every other input path (`codec`,
    /// `part_size`, `concurrency`, `max_runtime_secs`, ...; see `spec`).
    #[serde(default)]
    #[schemars(with = "Option<ExtractSettings>")]
    pub extract: Option<Spanned<ExtractSettings>>,
}

/// A validated job, ready to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Unique name.
    pub name: String,
    /// The connector config as JSON; it parsed into the connector's config type.
    pub connector_config: serde_json::Value,
    /// Streams (empty: every stream).
    pub streams: Vec<String>,
    /// When it runs.
    pub schedule: Schedule,
    /// Output and extract options, resolved.
    pub options: ExtractOptions,
    /// The extract options as set (for `max_runtime_secs`).
    pub settings: ExtractSettings,
}

/// A validated daemon config.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    /// Where it was read from.
    pub path: PathBuf,
    /// Jobs that may run at once.
    pub max_concurrent_jobs: usize,
    /// No progress for this long → stuck.
    pub stall_timeout: Duration,
    /// Where last-run records go.
    pub state_directory: Option<PathBuf>,
    /// S3 options.
    pub s3: S3Options,
    /// The jobs, in file order.
    pub jobs: Vec<Job>,
}

/// Default stall timeout.
pub const DEFAULT_STALL_TIMEOUT: Duration = Duration::from_secs(30 * 60);

/// The JSON Schema of the daemon config file.
pub fn daemon_config_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(DaemonConfig)).unwrap_or_default()
}

/// 1-based line and column of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text.as_bytes()[..offset];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map(|p| p + 1)
        .unwrap_or(0);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    (line, column)
}

struct Source<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Source<'_> {
    fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> Error {
        let (line, column) = span.map(|s| line_col(self.text, s.start)).unwrap_or((1, 1));
        Error::Config {
            path: self.path.to_path_buf(),
            line,
            column,
            message: one_line(&message.into()),
        }
    }
}

fn is_job_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

impl LoadedConfig {
    /// Read and validate the daemon config at `path` for connector `C` (whose parsed
    /// manifest is `manifest`): TOML syntax, known keys, value types, schedules, output
    /// URLs, stream names, extract options, and every job's connector config against
    /// `C::Config`. No network I/O.
    pub fn load<C: Connector>(path: &Path, manifest: &ConnectorManifest) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ConfigRead {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse::<C>(path, &text, manifest)
    }

    /// Validate config `text` (read from `path`; relative `config_file`s resolve against
    /// its directory).
    pub fn parse<C: Connector>(
        path: &Path,
        text: &str,
        manifest: &ConnectorManifest,
    ) -> Result<Self> {
        let src = Source { path, text };
        // The message only, with our own line/column: toml's Display quotes the source
        // line, which could hold a secret of an inline connector config.
        let raw: DaemonConfig =
            toml::from_str(text).map_err(|e| src.error(e.span(), e.message()))?;
        let max_concurrent_jobs = match &raw.max_concurrent_jobs {
            Some(v) if *v.get_ref() == 0 => {
                return Err(src.error(Some(v.span()), "max_concurrent_jobs must be at least 1"));
            }
            Some(v) => *v.get_ref(),
            None => 1,
        };
        if raw.jobs.is_empty() {
            return Err(src.error(
                None,
                "no jobs: add at least one [[jobs]] table with name, output, config and every/cron",
            ));
        }
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let mut names = BTreeSet::new();
        let mut jobs = Vec::with_capacity(raw.jobs.len());
        for spanned in &raw.jobs {
            let job_span = spanned.span();
            let j = spanned.get_ref();
            let name = j.name.get_ref().clone();
            if !is_job_name(&name) {
                return Err(src.error(
                    Some(j.name.span()),
                    format!(
                        "jobs.name {name:?} is invalid: use 1-64 characters of a-z, 0-9, '_' and '-'"
                    ),
                ));
            }
            if !names.insert(name.clone()) {
                return Err(src.error(
                    Some(j.name.span()),
                    format!("jobs.name {name:?} is used by two jobs; job names must be unique"),
                ));
            }
            let schedule = match (&j.every, &j.cron) {
                (Some(i), None) => Schedule::Every(*i),
                (None, Some(c)) => Schedule::Cron(Box::new(c.clone())),
                (Some(_), Some(_)) => {
                    return Err(src.error(
                        Some(job_span),
                        format!("job `{name}` sets both `every` and `cron`; keep one"),
                    ));
                }
                (None, None) => {
                    return Err(src.error(
                        Some(job_span),
                        format!(
                            "job `{name}` has no schedule: set `every = \"15m\"` or `cron = \"*/15 * * * *\"`"
                        ),
                    ));
                }
            };
            let connector_config = match (&j.config, &j.config_file) {
                (Some(table), None) => {
                    let value = serde_json::to_value(table.get_ref()).map_err(|e| {
                        src.error(Some(table.span()), format!("job `{name}` config: {e}"))
                    })?;
                    config_from_value::<C>(value.clone()).map_err(|e| {
                        src.error(
                            Some(table.span()),
                            format!("job `{name}` config: {}", sdk_message(&e)),
                        )
                    })?;
                    value
                }
                (None, Some(file)) => {
                    let file_path = base_dir.join(file.get_ref());
                    let value = read_connector_config(&file_path).map_err(|m| {
                        src.error(Some(file.span()), format!("job `{name}` config_file: {m}"))
                    })?;
                    config_from_value::<C>(value.clone()).map_err(|e| {
                        src.error(
                            Some(file.span()),
                            format!(
                                "job `{name}` config_file {}: {}",
                                file_path.display(),
                                sdk_message(&e)
                            ),
                        )
                    })?;
                    value
                }
                (Some(_), Some(_)) => {
                    return Err(src.error(
                        Some(job_span),
                        format!("job `{name}` sets both `config` and `config_file`; keep one"),
                    ));
                }
                (None, None) => {
                    return Err(src.error(
                        Some(job_span),
                        format!(
                            "job `{name}` has no connector config: set `config = {{ ... }}` or `config_file = \"...\"`"
                        ),
                    ));
                }
            };
            let streams = match &j.streams {
                None => Vec::new(),
                Some(s) => {
                    for stream in s.get_ref() {
                        manifest.require_stream(stream).map_err(|e| {
                            src.error(
                                Some(s.span()),
                                format!("job `{name}` streams: {}", sdk_message(&e)),
                            )
                        })?;
                    }
                    s.get_ref().clone()
                }
            };
            let settings = j
                .extract
                .as_ref()
                .map(|x| x.get_ref().clone())
                .unwrap_or_default();
            let options = settings.resolve(j.output.clone()).map_err(|e| {
                src.error(
                    j.extract.as_ref().map(|x| x.span()),
                    format!("job `{name}` extract: {}", sdk_message(&e)),
                )
            })?;
            jobs.push(Job {
                name,
                connector_config,
                streams,
                schedule,
                options,
                settings,
            });
        }
        Ok(LoadedConfig {
            path: path.to_path_buf(),
            max_concurrent_jobs,
            stall_timeout: raw
                .stall_timeout
                .map(|i| i.0)
                .unwrap_or(DEFAULT_STALL_TIMEOUT),
            state_directory: raw.state_directory.or_else(|| {
                // systemd may list several directories, separated by ':'.
                std::env::var("STATE_DIRECTORY")
                    .ok()
                    .and_then(|v| v.split(':').next().map(PathBuf::from))
                    .filter(|p| !p.as_os_str().is_empty())
            }),
            s3: raw.s3,
            jobs,
        })
    }
}

/// The message of an SDK config/request error without its "invalid ...:" prefix.
fn sdk_message(e: &connector_sdk::Error) -> String {
    match e {
        connector_sdk::Error::Config { message: m, .. }
        | connector_sdk::Error::Request { message: m, .. } => m.clone(),
        other => other.to_string(),
    }
}

/// Read a connector config file (JSON, or TOML for `.toml`) into JSON. Errors never
/// quote the file's content.
fn read_connector_config(path: &Path) -> std::result::Result<serde_json::Value, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if path.extension().is_some_and(|x| x == "toml") {
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let (line, column) = e.span().map(|s| line_col(&text, s.start)).unwrap_or((1, 1));
            format!(
                "{}:{line}:{column}: {}",
                path.display(),
                one_line(e.message())
            )
        })?;
        serde_json::to_value(table).map_err(|e| e.to_string())
    } else {
        serde_json::from_str(&text).map_err(|e| {
            format!(
                "{} is not valid JSON (line {}, column {}): {}",
                path.display(),
                e.line(),
                e.column(),
                match e.classify() {
                    serde_json::error::Category::Syntax => "syntax error",
                    serde_json::error::Category::Eof => "unexpected end of file",
                    _ => "invalid data",
                }
            )
        })
    }
}
