//! Live progress counters and the run report.

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::connector::StoredValue;
use crate::dataset::{RunStatus, Timings};

/// Counters the core updates while it runs; a runner may poll them (progress bar,
/// status line).
#[derive(Debug, Default)]
pub struct Progress {
    rows: AtomicU64,
    bytes: AtomicU64,
    files: AtomicU64,
    partitions_done: AtomicU64,
}

impl Progress {
    pub(crate) fn add_rows(&self, n: u64) {
        self.rows.fetch_add(n, Ordering::Relaxed);
    }
    pub(crate) fn add_file(&self, bytes: u64) {
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.files.fetch_add(1, Ordering::Relaxed);
    }
    pub(crate) fn partition_done(&self) {
        self.partitions_done.fetch_add(1, Ordering::Relaxed);
    }
    /// Rows read so far.
    pub fn rows(&self) -> u64 {
        self.rows.load(Ordering::Relaxed)
    }
    /// Bytes of finished files so far.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
    /// Finished files so far.
    pub fn files(&self) -> u64 {
        self.files.load(Ordering::Relaxed)
    }
    /// Partitions read to the end so far.
    pub fn partitions_done(&self) -> u64 {
        self.partitions_done.load(Ordering::Relaxed)
    }
}

/// What a run did. Printed at the end of every run and stored beside its manifest.
/// Never contains the connector config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunReport {
    /// Connector name.
    pub connector: String,
    /// Connector version.
    pub connector_version: String,
    /// Stream.
    pub stream: String,
    /// Run id.
    pub run_id: String,
    /// Runner (`cli`, `lambda`, `fargate`, `ec2`, `glue`).
    pub runner: String,
    /// Complete or partial (stopped early; the next run continues).
    pub status: RunStatus,
    /// The committed manifest's sequence, or `None` if the run had nothing to commit.
    pub sequence: Option<u64>,
    /// `s3://bucket/prefix/stream`.
    pub dataset: String,
    /// The committed manifest's URL, if any.
    pub manifest: Option<String>,
    /// Rows committed by this run.
    pub rows: u64,
    /// Bytes committed by this run.
    pub bytes: u64,
    /// Files committed by this run.
    pub files: u64,
    /// Partitions in the plan.
    pub partitions: u64,
    /// Partitions finished (over the whole plan, including earlier runs).
    pub partitions_done: u64,
    /// Wall time, milliseconds.
    pub duration_ms: u64,
    /// Phase timings.
    pub timings: Timings,
    /// S3 requests made.
    pub s3_requests: u64,
    /// S3 request attempts that were retries (throttling, 5xx, network).
    pub s3_retries: u64,
    /// Stream cursor after this run.
    pub cursor: Option<StoredValue>,
    /// How far the cursor is behind the end of the run, in seconds, when the connector
    /// knows the point in time its cursor stands for ([`Connector::cursor_time`]); a
    /// cursor ahead of the clock gives a negative lag.
    ///
    /// [`Connector::cursor_time`]: crate::Connector::cursor_time
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor_lag_secs: Option<f64>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: DateTime<Utc>,
    /// Commits the run made before its last commit interval
    /// ([`ExtractOptions::commit_interval`]); `rows`, `bytes` and `files` count every
    /// commit of the run, `run_id`, `sequence` and `manifest` are its last commit's.
    ///
    /// [`ExtractOptions::commit_interval`]: crate::ExtractOptions::commit_interval
    #[serde(default, skip_serializing_if = "is_zero")]
    pub intermediate_commits: u64,
    /// Extra fields a runner adds (task ARN, availability zone, request id...).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub runtime: serde_json::Map<String, serde_json::Value>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl RunReport {
    /// Rows per second over the whole run.
    pub fn rows_per_sec(&self) -> f64 {
        self.rows as f64 / (self.duration_ms.max(1) as f64 / 1000.0)
    }

    /// The report of one run that committed `earlier` (an intermediate commit) and then
    /// `self`: counts add up, the rest is the later commit's, from the earlier start.
    pub(crate) fn after(self, earlier: RunReport) -> RunReport {
        let committed = earlier.sequence.is_some() as u64;
        let mut timings = self.timings.clone();
        timings.plan_ms += earlier.timings.plan_ms;
        timings.extract_ms += earlier.timings.extract_ms;
        timings.commit_ms += earlier.timings.commit_ms;
        RunReport {
            sequence: self.sequence.or(earlier.sequence),
            manifest: self.manifest.clone().or(earlier.manifest),
            // A last interval that committed nothing leaves the earlier commit's id: the
            // one a continuation builds on.
            run_id: if self.sequence.is_some() {
                self.run_id.clone()
            } else {
                earlier.run_id
            },
            rows: self.rows + earlier.rows,
            bytes: self.bytes + earlier.bytes,
            files: self.files + earlier.files,
            duration_ms: (self.finished_at - earlier.started_at)
                .num_milliseconds()
                .max(0) as u64,
            timings,
            started_at: earlier.started_at,
            intermediate_commits: earlier.intermediate_commits
                + self.intermediate_commits
                + committed,
            ..self
        }
    }
}
