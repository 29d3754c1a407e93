//! The committed dataset of one stream: a Delta Lake table, the state its commits carry,
//! reading them back, and collecting garbage.
//!
//! Layout under `<prefix>/<stream>/` (the table root):
//! - data files: `[k=v/...]part-<run>-<partition>-<seq>.parquet`
//! - `_delta_log/<version:020>.json`: one Delta commit per committed run, written by
//!   `delta_kernel` with `If-None-Match: *`. Each commit adds the run's files, records the
//!   run id as its transaction id and the run record (state, files, timings) as the
//!   `connector-sdk.run` domain metadata.
//! - `_reports/<sequence:020>.json`: the run report of that run
//!
//! A file is part of the dataset if and only if the table's latest snapshot lists it. A
//! run's *sequence* is its table version plus one (the first commit creates version 0).

use std::collections::BTreeSet;

use arrow_schema::Schema;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::connector::{Partition, StoredValue};
use crate::error::{Error, Result};
use crate::options::OutputLocation;
use crate::s3::S3Store;
use crate::table::{CommitOutcome, DeltaTable, FileToAdd, Removal, TableCommit};

/// Version of the run record format.
pub const MANIFEST_FORMAT: u32 = 1;

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
    /// Delta statistics of the file (JSON), for its add action. Not kept in the run
    /// record: the table's log holds them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stats: Option<String>,
}

/// Progress of one partition of a plan that is not finished yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionProgress {
    /// The partition.
    pub partition: Partition,
    /// The last committed checkpoint inside it (`None`: start from the beginning).
    pub checkpoint: Option<StoredValue>,
    /// Whether every row of it is committed.
    pub done: bool,
}

/// A plan that was started but not finished: the next run continues it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PendingPlan {
    /// The stream cursor to commit once every partition is done.
    pub target_cursor: Option<StoredValue>,
    /// Every partition of the plan with its progress.
    pub partitions: Vec<PartitionProgress>,
    /// `replace`: the files written so far, not yet in the table (with their statistics);
    /// the commit that completes the plan adds them and removes the previous ones.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub staged: Vec<DataFile>,
}

/// Incremental state, stored only in committed manifests.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StreamState {
    /// Cursor of the last complete plan: the next plan covers what comes after it.
    pub cursor: Option<StoredValue>,
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

/// The record of one committed run, stored with its commit (domain metadata of the
/// Delta commit).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetManifest {
    /// Manifest format version.
    pub format: u32,
    /// Commit sequence number (1, 2, ...) within the stream: the table version plus one.
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
    /// Files this run added (without their statistics).
    pub files: Vec<DataFile>,
    /// Rows this run added.
    pub rows: u64,
    /// Bytes this run added.
    pub bytes: u64,
    /// State after this run.
    pub state: StreamState,
    /// Whether this commit removed every earlier file of the table (`replace`).
    #[serde(default)]
    pub replaced_table: bool,
    /// Files this commit took out of the table (`merge`: the files it rewrote without the
    /// rows whose keys the run replaced), by full object key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_files: Vec<String>,
}

/// A stream's dataset in the bucket.
#[derive(Debug, Clone)]
pub struct Dataset {
    store: S3Store,
    output: OutputLocation,
    stream: String,
    table: std::result::Result<DeltaTable, String>,
}

/// What a garbage collection removed (or, with `dry_run`, would remove).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GarbageReport {
    /// Objects deleted (with `dry_run`: that would be deleted).
    pub deleted_objects: Vec<String>,
    /// Multipart uploads aborted (with `dry_run`: that would be aborted).
    pub aborted_uploads: usize,
    /// The grace period applied: nothing younger was touched.
    pub grace_secs: u64,
    /// Whether this was a dry run (nothing deleted).
    pub dry_run: bool,
}

impl Dataset {
    /// The dataset of `stream` under `output`.
    pub fn new(store: S3Store, output: OutputLocation, stream: impl Into<String>) -> Self {
        let stream = stream.into();
        let root = output.key(&format!("{stream}/"));
        let table =
            DeltaTable::new(store.clone(), &output.bucket, &root).map_err(|e| e.to_string());
        Self {
            store,
            output,
            stream,
            table,
        }
    }

    /// The stream's Delta table.
    pub fn table(&self) -> Result<&DeltaTable> {
        self.table
            .as_ref()
            .map_err(|message| Error::request(message.clone()))
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

    /// Key of the Delta log entry that `sequence` committed.
    pub fn manifest_key(&self, sequence: u64) -> String {
        self.key(&format!(
            "_delta_log/{:020}.json",
            sequence.saturating_sub(1)
        ))
    }

    /// Key of the report of the run that committed `sequence`.
    pub fn report_key(&self, sequence: u64) -> String {
        self.key(&format!("{REPORTS}{sequence:020}.json"))
    }

    /// Sequence numbers of every commit of the table (1 = version 0), ascending.
    pub async fn sequences(&self) -> Result<Vec<u64>> {
        match self.table()?.snapshot(None).await? {
            Some(s) => Ok((1..=s.version() + 1).collect()),
            None => Ok(Vec::new()),
        }
    }

    /// The run record of `sequence` from its JSON text: a record of a newer format (a
    /// newer SDK wrote it) is refused by its format number before its fields are read, so
    /// the error says what is wrong rather than naming a field this binary does not know.
    fn parse_record(&self, sequence: u64, text: &str) -> Result<DatasetManifest> {
        let corrupt = |message: String| Error::CorruptManifest {
            bucket: self.output.bucket.clone(),
            key: self.manifest_key(sequence),
            message,
        };
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            corrupt(format!(
                "its run record is not JSON ({e}); it is corrupt or truncated. Nothing was read or written: restore the table's log from a backup or write the stream to a new output"
            ))
        })?;
        match value.get("format").and_then(serde_json::Value::as_u64) {
            Some(f) if f > u64::from(MANIFEST_FORMAT) => {
                return Err(corrupt(format!(
                    "its run record has format {f}, newer than this binary reads (up to {MANIFEST_FORMAT}): a newer version of the connector committed it. Nothing was read or written: run the newer version"
                )));
            }
            Some(_) => {}
            None => {
                return Err(corrupt(
                    "its run record has no format number; it is corrupt or was not written by this SDK. Nothing was read or written".into(),
                ));
            }
        }
        serde_json::from_value(value)
            .map_err(|e| corrupt(format!("its run record does not parse: {e}")))
    }

    /// The record of the run that committed `sequence`; `None` if no such commit, or if
    /// another writer made it (it carries no run record of its own).
    pub async fn manifest(&self, sequence: u64) -> Result<Option<DatasetManifest>> {
        if sequence == 0 {
            return Ok(None);
        }
        let table = self.table()?;
        let Some(snapshot) = table.snapshot(None).await? else {
            return Ok(None);
        };
        if sequence > snapshot.version() + 1 {
            return Ok(None);
        }
        let at = if snapshot.version() + 1 == sequence {
            snapshot
        } else {
            match table.snapshot(Some(sequence - 1)).await? {
                Some(s) => s,
                None => return Ok(None),
            }
        };
        match table.record(&at).await? {
            Some(text) => {
                let record = self.parse_record(sequence, &text)?;
                Ok((record.sequence == sequence).then_some(record))
            }
            None => Ok(None),
        }
    }

    /// The record of the last committed run, if any.
    pub async fn latest(&self) -> Result<Option<DatasetManifest>> {
        Ok(self.latest_with_schema().await?.map(|(record, _)| record))
    }

    /// The record of the last committed run and the table's schema, from one snapshot (what
    /// planning needs: one read of the log).
    pub async fn latest_with_schema(
        &self,
    ) -> Result<
        Option<(
            DatasetManifest,
            std::sync::Arc<delta_kernel::schema::StructType>,
        )>,
    > {
        let table = self.table()?;
        let Some(snapshot) = table.snapshot(None).await? else {
            return Ok(None);
        };
        match table.record(&snapshot).await? {
            Some(text) => {
                // The state is current as of the latest version, whoever wrote it (another
                // engine's OPTIMIZE carries the record forward): the next commit follows it.
                let sequence = snapshot.version() + 1;
                let mut record = self.parse_record(sequence, &text)?;
                record.sequence = sequence;
                Ok(Some((record, snapshot.schema())))
            }
            None => Err(Error::CorruptManifest {
                bucket: self.output.bucket.clone(),
                key: self.manifest_key(snapshot.version() + 1),
                message: format!(
                    "the table at {} has no run record (domain metadata `{}`); it was not created by this SDK, or its state was removed",
                    table.uri(),
                    crate::table::STATE_DOMAIN
                ),
            }),
        }
    }

    /// Every run record, in commit order.
    pub async fn manifests(&self) -> Result<Vec<DatasetManifest>> {
        let mut out = Vec::new();
        for seq in self.sequences().await? {
            if let Some(m) = self.manifest(seq).await? {
                out.push(m);
            }
        }
        Ok(out)
    }

    /// Every file of the table's latest snapshot, ordered by key.
    pub async fn committed_files(&self) -> Result<Vec<DataFile>> {
        let table = self.table()?;
        let Some(snapshot) = table.snapshot(None).await? else {
            return Ok(Vec::new());
        };
        Ok(table
            .files(&snapshot)
            .await?
            .into_iter()
            .map(|f| DataFile {
                partition: data_file_partition(&f.key).unwrap_or_default().to_string(),
                key: f.key,
                rows: f.rows.unwrap_or(0),
                bytes: f.bytes,
                stats: None,
            })
            .collect())
    }

    /// Commit `manifest` as table version `manifest.sequence - 1`, adding `files` (with
    /// their statistics) and removing what `removal` says of the previous version, only if
    /// that version is free. Returns [`Error::CommitConflict`] if another run got there
    /// first. `hive_keys` are the folder keys of the run's partitions: the first commit
    /// makes those that are not columns the table's partition columns.
    pub async fn commit(
        &self,
        manifest: &DatasetManifest,
        files: &[DataFile],
        removal: Removal<'_>,
        hive_keys: &[String],
    ) -> Result<()> {
        let table = self.table()?;
        let mut record = manifest.clone();
        for f in &mut record.files {
            f.stats = None;
        }
        // Staged files keep their statistics: the completing commit adds them.
        let record = serde_json::to_string(&record)
            .map_err(|e| Error::internal_caused(format!("serializing the run record: {e}"), e))?;
        let to_add: Vec<FileToAdd> = files
            .iter()
            .map(|f| {
                Ok(FileToAdd {
                    key: f.key.clone(),
                    bytes: f.bytes,
                    stats: f.stats.clone().ok_or_else(|| {
                        Error::internal(format!("file {} has no statistics", f.key))
                    })?,
                })
            })
            .collect::<Result<_>>()?;
        let version = manifest.sequence.saturating_sub(1);
        let outcome = Box::pin(table.commit(TableCommit {
            base_version: version.checked_sub(1),
            schema: &manifest.schema,
            remove: removal,
            hive_keys,
            files: &to_add,
            run_id: &manifest.run_id,
            record,
            engine_info: format!(
                "{}/{} (connector-sdk/{})",
                manifest.connector,
                manifest.connector_version,
                env!("CARGO_PKG_VERSION")
            ),
        }))
        .await?;
        match outcome {
            CommitOutcome::Committed(v) if v == version => {
                if v > 0 && v % crate::table::CHECKPOINT_INTERVAL == 0 {
                    // An optimisation: a failure leaves the log as it is, still complete.
                    if let Err(e) = Box::pin(table.checkpoint(v)).await {
                        tracing::warn!(version = v, error = %e, "the table checkpoint was not written; the next checkpoint interval tries again");
                    }
                }
                Ok(())
            }
            CommitOutcome::Committed(v) => Err(Error::internal(format!(
                "the table committed version {v}, not the planned {version}"
            ))),
            CommitOutcome::Conflict { .. } => {
                // The version exists. It may be our own write whose response was lost and
                // whose retry then met the precondition: then the commit did happen, and the
                // table's transaction id for this run says so.
                let latest = Box::pin(table.snapshot(None)).await?;
                if let Some(snapshot) = &latest
                    && table.committed_by(snapshot, &manifest.run_id).await? == Some(version as i64)
                {
                    return Ok(());
                }
                let winner = Box::pin(self.manifest(manifest.sequence))
                    .await
                    .ok()
                    .flatten()
                    .map(|m| m.run_id)
                    .unwrap_or_else(|| "unknown".into());
                Err(Error::CommitConflict {
                    stream: self.stream.clone(),
                    sequence: manifest.sequence,
                    run_id: manifest.run_id.clone(),
                    winner,
                })
            }
        }
    }

    /// Store a run report beside the manifest with the same sequence.
    pub async fn put_report(&self, sequence: u64, report: &impl Serialize) -> Result<()> {
        let body = serde_json::to_vec_pretty(report)
            .map_err(|e| Error::internal_caused(format!("serializing the report: {e}"), e))?;
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

    /// Delete the data files of runs that never committed and abort their multipart
    /// uploads, when they are older than `grace_secs`, and the files a `replace` took out
    /// of the table `grace_secs` or more ago (Delta's vacuum); with `dry_run`, only list
    /// them.
    ///
    /// Only object names of the data-file pattern (`part-<run>-<partition>-<seq>.parquet`)
    /// that the latest snapshot does not list and whose run id is not a committed run's are
    /// candidates: the log, reports, files of committed runs and anything else under the
    /// prefix are never touched. A stream with
    /// no committed run is refused (a wrong `--output` or `--stream` must not delete
    /// someone else's data). The caller chooses `grace_secs`; [`ExtractCore`]'s `gc`
    /// never passes less than the connector's longest declared runtime plus a margin.
    ///
    /// [`ExtractCore`]: crate::ExtractCore
    pub async fn collect_garbage(&self, grace_secs: u64, dry_run: bool) -> Result<GarbageReport> {
        let now = Utc::now().timestamp();
        let manifests = self.manifests().await?;
        let live_files = self.committed_files().await?;
        if manifests.is_empty() {
            return Err(Error::request(format!(
                "stream `{}` has no committed run under {}; gc only removes the leftovers of uncommitted runs beside a committed dataset — check --output and --stream",
                self.stream, self.output
            )));
        }
        let committed_runs: BTreeSet<&str> = manifests.iter().map(|m| m.run_id.as_str()).collect();
        let live: BTreeSet<&str> = live_files.iter().map(|f| f.key.as_str()).collect();
        // When each file a `replace` or `merge` took out of the table was removed: the
        // commit time of the first commit after the one that added it that removed it (Delta's vacuum counts
        // retention from the removal, so a reader of the older snapshot keeps its files).
        let mut removed_at: std::collections::HashMap<&str, i64> = Default::default();
        let mut added: Vec<&str> = Vec::new();
        for m in &manifests {
            if m.replaced_table {
                for key in added.drain(..) {
                    removed_at.insert(key, m.committed_at.timestamp());
                }
            }
            for key in &m.removed_files {
                removed_at.insert(key.as_str(), m.committed_at.timestamp());
            }
            added.extend(m.files.iter().map(|f| f.key.as_str()));
        }
        let grace = grace_secs.min(i64::MAX as u64) as i64;
        let is_garbage = |key: &str, age_secs: i64| {
            if live.contains(key) || data_file_run_id(key).is_none() {
                return false;
            }
            match removed_at.get(key) {
                Some(at) => now - at >= grace,
                None => {
                    age_secs >= grace
                        && data_file_run_id(key).is_some_and(|run| !committed_runs.contains(run))
                }
            }
        };
        let root = self.key("");
        let mut report = GarbageReport {
            grace_secs,
            dry_run,
            ..GarbageReport::default()
        };
        for o in self.store.list(&self.output.bucket, &root).await? {
            if !is_garbage(&o.key, now - o.last_modified_secs) {
                continue;
            }
            if !dry_run {
                self.store.delete(&self.output.bucket, &o.key).await?;
            }
            report.deleted_objects.push(o.key);
        }
        for u in self
            .store
            .list_open_uploads(&self.output.bucket, &root)
            .await?
        {
            if !is_garbage(&u.key, now - u.initiated_secs) {
                continue;
            }
            if !dry_run {
                self.store
                    .abort_multipart(&self.output.bucket, &u.key, &u.upload_id)
                    .await?;
            }
            report.aborted_uploads += 1;
        }
        Ok(report)
    }
}

/// The run id in a data file's name (`.../part-<run>-<partition>-<seq:05>.parquet`), or
/// `None` if `key` is not a data file's name.
pub fn data_file_run_id(key: &str) -> Option<&str> {
    let name = key.rsplit('/').next()?;
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let (run_id, rest) = rest.split_at_checked(RUN_ID_LEN)?;
    let (partition, seq) = rest.strip_prefix('-')?.rsplit_once('-')?;
    let ok = is_run_id(run_id)
        && !partition.is_empty()
        && seq.len() >= 5
        && seq.bytes().all(|b| b.is_ascii_digit());
    ok.then_some(run_id)
}

/// The partition id in a data file's name, or `None` if `key` is not a data file's name.
pub fn data_file_partition(key: &str) -> Option<&str> {
    let run_id = data_file_run_id(key)?;
    let name = key.rsplit('/').next()?;
    let rest = name.strip_prefix("part-")?.strip_suffix(".parquet")?;
    let rest = rest.strip_prefix(run_id)?.strip_prefix('-')?;
    Some(rest.rsplit_once('-')?.0)
}

/// Length of a run id: `YYYYMMDDTHHMMSSZ` and 8 hex digits.
pub(crate) const RUN_ID_LEN: usize = 24;

/// Whether `s` has the shape of a run id (`YYYYMMDDTHHMMSSZ` + 8 lowercase hex digits).
pub(crate) fn is_run_id(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == RUN_ID_LEN
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && b[15] == b'Z'
        && b[16..]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_file_names_are_recognised() {
        let run = "20261202T061500Z0a1b2c3d";
        assert_eq!(
            data_file_run_id(&format!(
                "p/orders/dt=2024-01-01/part-{run}-dt=2024-01-01-00000.parquet"
            )),
            Some(run)
        );
        assert_eq!(
            data_file_run_id(&format!("orders/part-{run}-a-b-c-00012.parquet")),
            Some(run)
        );
        assert_eq!(
            data_file_partition(&format!("orders/part-{run}-a-b-c-00012.parquet")),
            Some("a-b-c")
        );
        for not_data in [
            "p/orders/_delta_log/00000000000000000001.json".to_string(),
            "p/orders/notes.txt".to_string(),
            format!("p/orders/part-{run}-00000.parquet"),
            format!("p/orders/part-{run}--00000.parquet"),
            format!("p/orders/part-{run}-a-0001.parquet"),
            format!("p/orders/part-{run}-a-00000.parquet.tmp"),
            "p/orders/part-20261202T061500Z0A1B2C3D-a-00000.parquet".to_string(),
            "p/orders/part-x-a-00000.parquet".to_string(),
            "p/orders/my-part-20261202T061500Z0a1b2c3d-a-00000.parquet".to_string(),
        ] {
            assert_eq!(data_file_run_id(&not_data), None, "{not_data}");
        }
    }
}
