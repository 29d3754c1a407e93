//! The committed dataset of one stream: manifests written last and conditionally, the
//! state they carry, reading them back, and collecting garbage.
//!
//! Layout under `<prefix>/<stream>/`:
//! - data files: `[k=v/...]part-<run>-<partition>-<seq>.parquet`
//! - `_manifests/<sequence:020>.json`: one per committed run, written with
//!   `If-None-Match: *`; sequence numbers are consecutive from 1
//! - `_reports/<sequence:020>.json`: the run report of that run
//!
//! A file is part of the dataset if and only if a committed manifest lists it.

use std::collections::BTreeSet;

use arrow_schema::Schema;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::connector::{Cursor, Partition};
use crate::error::{Error, Result};
use crate::options::OutputLocation;
use crate::s3::S3Store;

/// Version of the manifest format.
pub const MANIFEST_FORMAT: u32 = 1;

const MANIFESTS: &str = "_manifests/";
const REPORTS: &str = "_reports/";

/// One data file of a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataFile {
    /// Full object key.
    pub key: String,
    /// The partition that wrote it.
    pub partition: String,
    /// Rows in the file.
    pub rows: u64,
    /// Size in bytes.
    pub bytes: u64,
}

/// Progress of one partition of a plan that is not finished yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: Partition,
    /// The last committed checkpoint inside it (`None`: start from the beginning).
    pub checkpoint: Option<Cursor>,
    /// Whether every row of it is committed.
    pub done: bool,
}

/// A plan that was started but not finished: the next run continues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingPlan {
    /// The stream cursor to commit once every partition is done.
    pub target_cursor: Option<Cursor>,
    /// Every partition of the plan with its progress.
    pub partitions: Vec<PartitionProgress>,
}

/// Incremental state, stored only in committed manifests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamState {
    /// Cursor of the last complete plan: the next plan covers what comes after it.
    pub cursor: Option<Cursor>,
    /// A plan still in progress, if the last run stopped early.
    pub pending: Option<PendingPlan>,
}

/// Whether a run finished its plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Every partition of the plan is committed.
    Complete,
    /// The run stopped early (signal, deadline); `state.pending` says where to continue.
    Partial,
}

/// Timings of a run, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timings {
    /// Loading state, discovering and planning.
    pub plan_ms: u64,
    /// Reading and uploading.
    pub extract_ms: u64,
    /// Writing the manifest.
    pub commit_ms: u64,
}

/// The dataset manifest of one committed run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetManifest {
    /// Manifest format version.
    pub format: u32,
    /// Commit sequence number (1, 2, ...) within the stream.
    pub sequence: u64,
    /// The run that committed it.
    pub run_id: String,
    /// Stream name.
    pub stream: String,
    /// Connector name.
    pub connector: String,
    /// Connector version.
    pub connector_version: String,
    /// The runner it ran on (`cli`, `lambda`, `fargate`, `ec2`, `glue`).
    pub runner: String,
    /// Whether the run finished its plan.
    pub status: RunStatus,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// When it committed.
    pub committed_at: DateTime<Utc>,
    /// Phase timings.
    pub timings: Timings,
    /// Arrow schema of every file.
    pub schema: Schema,
    /// Files this run added.
    pub files: Vec<DataFile>,
    /// Rows this run added.
    pub rows: u64,
    /// Bytes this run added.
    pub bytes: u64,
    /// State after this run.
    pub state: StreamState,
}

/// A stream's dataset in the bucket.
#[derive(Debug, Clone)]
pub struct Dataset {
    store: S3Store,
    output: OutputLocation,
    stream: String,
}

/// What a garbage collection removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GarbageReport {
    /// Objects deleted.
    pub deleted_objects: Vec<String>,
    /// Multipart uploads aborted.
    pub aborted_uploads: usize,
}

impl Dataset {
    /// The dataset of `stream` under `output`.
    pub fn new(store: S3Store, output: OutputLocation, stream: impl Into<String>) -> Self {
        Self {
            store,
            output,
            stream: stream.into(),
        }
    }

    /// The store.
    pub fn store(&self) -> &S3Store {
        &self.store
    }

    /// The output location.
    pub fn output(&self) -> &OutputLocation {
        &self.output
    }

    /// The stream name.
    pub fn stream(&self) -> &str {
        &self.stream
    }

    /// `<prefix>/<stream>/` + `rest`.
    pub fn key(&self, rest: &str) -> String {
        self.output.key(&format!("{}/{}", self.stream, rest))
    }

    /// Key of the manifest with `sequence`.
    pub fn manifest_key(&self, sequence: u64) -> String {
        self.key(&format!("{MANIFESTS}{sequence:020}.json"))
    }

    /// Key of the report of the run that committed `sequence`.
    pub fn report_key(&self, sequence: u64) -> String {
        self.key(&format!("{REPORTS}{sequence:020}.json"))
    }

    /// Sequence numbers of every committed manifest, ascending.
    pub async fn sequences(&self) -> Result<Vec<u64>> {
        let prefix = self.key(MANIFESTS);
        let mut seqs: Vec<u64> = self
            .store
            .list(&self.output.bucket, &prefix)
            .await?
            .into_iter()
            .filter_map(|o| {
                o.key
                    .strip_prefix(&prefix)?
                    .strip_suffix(".json")?
                    .parse()
                    .ok()
            })
            .collect();
        seqs.sort_unstable();
        Ok(seqs)
    }

    /// Read the manifest with `sequence`.
    pub async fn manifest(&self, sequence: u64) -> Result<Option<DatasetManifest>> {
        let key = self.manifest_key(sequence);
        let Some(body) = self.store.get(&self.output.bucket, &key).await? else {
            return Ok(None);
        };
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| Error::CorruptManifest {
                bucket: self.output.bucket.clone(),
                key,
                message: e.to_string(),
            })
    }

    /// The last committed manifest, if any.
    pub async fn latest(&self) -> Result<Option<DatasetManifest>> {
        match self.sequences().await?.last() {
            Some(&seq) => self.manifest(seq).await,
            None => Ok(None),
        }
    }

    /// Every committed manifest, in commit order.
    pub async fn manifests(&self) -> Result<Vec<DatasetManifest>> {
        let mut out = Vec::new();
        for seq in self.sequences().await? {
            if let Some(m) = self.manifest(seq).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Every file of the committed dataset, in commit order.
    pub async fn committed_files(&self) -> Result<Vec<DataFile>> {
        Ok(self
            .manifests()
            .await?
            .into_iter()
            .flat_map(|m| m.files)
            .collect())
    }

    /// Write `manifest` as sequence `manifest.sequence`, only if no manifest with that
    /// sequence exists. Returns [`Error::CommitConflict`] if another run got there first.
    pub async fn commit(&self, manifest: &DatasetManifest) -> Result<()> {
        let key = self.manifest_key(manifest.sequence);
        let body = serde_json::to_vec_pretty(manifest)
            .map_err(|e| Error::Internal(format!("serializing the manifest: {e}")))?;
        if self
            .store
            .put(&self.output.bucket, &key, Bytes::from(body), true)
            .await?
        {
            return Ok(());
        }
        // The key exists. It may be our own write whose response was lost and whose
        // retry then met the precondition: then the commit did happen.
        let existing = self.manifest(manifest.sequence).await?;
        match existing {
            Some(m) if m.run_id == manifest.run_id => Ok(()),
            other => Err(Error::CommitConflict {
                stream: self.stream.clone(),
                sequence: manifest.sequence,
                run_id: manifest.run_id.clone(),
                winner: other.map(|m| m.run_id).unwrap_or_else(|| "unknown".into()),
            }),
        }
    }

    /// Store a run report beside the manifest with the same sequence.
    pub async fn put_report(&self, sequence: u64, report: &impl Serialize) -> Result<()> {
        let body = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::Internal(format!("serializing the report: {e}")))?;
        self.store
            .put(
                &self.output.bucket,
                &self.report_key(sequence),
                Bytes::from(body),
                false,
            )
            .await?;
        Ok(())
    }

    /// Delete data files no committed manifest lists and abort open multipart uploads,
    /// when they are older than `grace_secs` (so runs in flight are left alone).
    pub async fn collect_garbage(&self, grace_secs: i64) -> Result<GarbageReport> {
        let now = Utc::now().timestamp();
        let live: BTreeSet<String> = self
            .committed_files()
            .await?
            .into_iter()
            .map(|f| f.key)
            .collect();
        let root = self.key("");
        let (manifests, reports) = (self.key(MANIFESTS), self.key(REPORTS));
        let mut report = GarbageReport::default();
        for o in self.store.list(&self.output.bucket, &root).await? {
            if o.key.starts_with(&manifests) || o.key.starts_with(&reports) {
                continue;
            }
            if live.contains(&o.key) || now - o.last_modified_secs < grace_secs {
                continue;
            }
            self.store.delete(&self.output.bucket, &o.key).await?;
            report.deleted_objects.push(o.key);
        }
        for u in self
            .store
            .list_open_uploads(&self.output.bucket, &root)
            .await?
        {
            if now - u.initiated_secs >= grace_secs {
                self.store
                    .abort_multipart(&self.output.bucket, &u.key, &u.upload_id)
                    .await?;
                report.aborted_uploads += 1;
            }
        }
        Ok(report)
    }
}
