//! A stream's Delta Lake table, read and committed through `delta_kernel`.
//!
//! The core writes the data files itself (its Parquet writer, multipart upload and memory
//! bounds); this module hands their add actions to a kernel transaction, with the run's
//! state as domain metadata and the run id as the transaction id, and reads the latest
//! snapshot back. The kernel's storage is our S3 client ([`BucketStore`]).
//!
//! The kernel's API is synchronous; every call runs on Tokio's blocking pool, and the
//! engine drives its own futures on a background executor thread.

mod bucket_store;
mod file_stats;

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType as ArrowType, Field, Schema};
use delta_kernel::checkpoint::LastCheckpointHintStats;
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_conversion::TryFromArrow;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::engine_data::FilteredEngineData;
use delta_kernel::expressions::ColumnName;
use delta_kernel::expressions::Scalar;
use delta_kernel::schema::{DataType as KernelType, StructField, StructType};
use delta_kernel::snapshot::IncrementalReplay;
use delta_kernel::transaction::create_table::create_table;
use delta_kernel::transaction::data_layout::DataLayout;
use delta_kernel::transaction::{CommitResult, Transaction, UpdateTableOperation};
use delta_kernel::{Engine, FileMeta, KernelError, Snapshot, SnapshotRef, Version};
use delta_kernel_default_engine::executor::tokio::TokioBackgroundExecutor;
use delta_kernel_default_engine::parquet::DataFileMetadata;
use delta_kernel_default_engine::{DefaultEngine, DefaultEngineBuilder, build_add_file_metadata};
use parquet::arrow::ArrowWriter;
use url::Url;

pub use bucket_store::BucketStore;
pub use file_stats::StatsCollector;

use crate::error::{Error, Result};
use crate::s3::S3Store;

/// The domain metadata that holds the run record and stream state of the last commit.
pub const STATE_DOMAIN: &str = "connector-sdk.run";

/// A checkpoint is written every this many versions (Delta's default
/// `delta.checkpointInterval`).
pub const CHECKPOINT_INTERVAL: Version = 10;

/// Table property naming the format of [`STATE_DOMAIN`]'s value.
const STATE_FORMAT_PROPERTY: &str = "connector-sdk.state-format";

type KernelEngine = DefaultEngine<TokioBackgroundExecutor>;

/// One stream's Delta table.
#[derive(Clone)]
pub struct DeltaTable {
    engine: Arc<KernelEngine>,
    store: S3Store,
    bucket: String,
    /// Key of the table root, ending in `/`.
    root_key: String,
    /// `s3://<bucket>/<root_key>`.
    root: Url,
}

impl std::fmt::Debug for DeltaTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeltaTable")
            .field("root", &self.root.as_str())
            .finish()
    }
}

/// A data file to add: where it is, what it holds, its Delta statistics.
#[derive(Debug, Clone)]
pub struct FileToAdd {
    /// Full object key.
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Delta file statistics as JSON (`numRecords`, `nullCount`, `minValues`...).
    pub stats: String,
}

/// A commit to apply on top of a table version (or to create the table).
#[derive(Debug)]
pub struct TableCommit<'a> {
    /// The version the run planned from; `None` when it found no table (this commit
    /// creates it).
    pub base_version: Option<Version>,
    /// The stream's schema.
    pub schema: &'a Schema,
    /// Files of the base version this commit removes.
    pub remove: Removal<'a>,
    /// The hive keys of the run's partitions (`dt` of `dt=2024-01-01/`). When this commit
    /// creates the table, those that are not columns of the stream become its Delta
    /// partition columns (strings), each file's values taken from its folder names. A key
    /// that is also a column stays a column of the files: its per-file statistics prune
    /// as well as a partition value would. An existing table keeps the partition columns
    /// it was created with.
    pub hive_keys: &'a [String],
    /// Files to add.
    pub files: &'a [FileToAdd],
    /// The run id: the commit's transaction id.
    pub run_id: &'a str,
    /// JSON stored as [`STATE_DOMAIN`] domain metadata.
    pub record: String,
    /// `connector/version` for the commit info.
    pub engine_info: String,
}

/// Which files of the base version a commit removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal<'a> {
    /// None (`append`).
    Nothing,
    /// Every file (`replace`).
    All,
    /// These files, by full object key (`merge`: the files it rewrote). A key the base
    /// version does not list is an error: the commit would not do what was planned.
    Files(&'a [String]),
}

/// How a commit ended, short of an error.
#[derive(Debug, PartialEq, Eq)]
pub enum CommitOutcome {
    /// Committed as `version`.
    Committed(Version),
    /// Another commit took the version; the table's winner at that version, if readable.
    Conflict {
        /// The version this commit wanted.
        version: Version,
    },
}

/// One file of a snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFile {
    /// Full object key.
    pub key: String,
    /// Size in bytes.
    pub bytes: u64,
    /// Rows, from the statistics.
    pub rows: Option<u64>,
}

impl DeltaTable {
    /// The table at `root_key` (a key prefix ending in `/`) in `bucket`.
    pub fn new(store: S3Store, bucket: &str, root_key: &str) -> Result<Self> {
        let root_key = if root_key.ends_with('/') {
            root_key.to_string()
        } else {
            format!("{root_key}/")
        };
        let root = Url::parse(&format!("s3://{bucket}/"))
            .and_then(|u| u.join(&root_key))
            .map_err(|e| {
                Error::request_caused(
                    format!("s3://{bucket}/{root_key} is not a valid table location: {e}"),
                    e,
                )
            })?;
        let object_store = Arc::new(BucketStore::new(store.clone(), bucket)?);
        let engine = Arc::new(DefaultEngineBuilder::new(object_store).build());
        Ok(Self {
            engine,
            store,
            bucket: bucket.to_string(),
            root_key,
            root,
        })
    }

    /// `s3://bucket/prefix/stream/`.
    pub fn uri(&self) -> &str {
        self.root.as_str()
    }

    /// Key of the log entry of `version`.
    pub fn log_key(&self, version: Version) -> String {
        format!("{}_delta_log/{version:020}.json", self.root_key)
    }

    /// Run `f` with the engine on the blocking pool.
    async fn blocking<T, F>(&self, what: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(&KernelEngine, &Url) -> std::result::Result<T, KernelError> + Send + 'static,
        T: Send + 'static,
    {
        let (engine, root) = (self.engine.clone(), self.root.clone());
        let uri = self.root.to_string();
        tokio::task::spawn_blocking(move || f(&engine, &root))
            .await
            .map_err(|e| Error::internal_caused(format!("{what}: the kernel task failed: {e}"), e))?
            .map_err(|e| from_kernel(&uri, what, e))
    }

    /// Whether the table exists (its log has an entry).
    pub async fn exists(&self) -> Result<bool> {
        let log = format!("{}_delta_log/", self.root_key);
        // Boxed, like the other awaits on the SDK below: its futures are deep, and every
        // runner's future holds this one.
        // The first entry is enough: log names sort with versions first (`_last_checkpoint`
        // sorts after every digit), and a version's checksum (`.crc`, before its `.json`)
        // is only ever written after its commit: a table whose log holds only checksums
        // is broken, and the kernel says so, rather than a new table to create over them.
        Ok(
            Box::pin(self.store.list_after(&self.bucket, &log, None, Some(1)))
                .await?
                .iter()
                .any(|o| {
                    o.key.ends_with(".json")
                        || o.key.ends_with(".parquet")
                        || o.key.ends_with(".crc")
                }),
        )
    }

    /// The latest snapshot (`version: None`) or the one at `version`; `None` when there is
    /// no table.
    pub async fn snapshot(&self, version: Option<Version>) -> Result<Option<SnapshotRef>> {
        if !self.exists().await? {
            return Ok(None);
        }
        self.blocking("reading the table's snapshot", move |engine, root| {
            // A version checksum (`<v>.crc`, written after every commit) holds the table's
            // protocol, metadata, domain metadata and transaction ids: with it, the run
            // record and the run ids are read without replaying the checkpoint and the log
            // after it (planning measured flat to 1000 commits: bench/delta/commits.py).
            // Without one at the version (another writer's commit, a checksum that failed
            // to write), the newest one is advanced over the commits after it.
            let mut builder = Snapshot::builder_for(root.as_str())
                .with_incremental_crc_replay(IncrementalReplay::Unlimited);
            if let Some(v) = version {
                builder = builder.at_version(v);
            }
            builder.build(engine).map(Some)
        })
        .await
    }

    /// The [`STATE_DOMAIN`] record of `snapshot`.
    pub async fn record(&self, snapshot: &SnapshotRef) -> Result<Option<String>> {
        let snapshot = snapshot.clone();
        self.blocking("reading the run record", move |engine, _| {
            snapshot.get_domain_metadata(STATE_DOMAIN, engine)
        })
        .await
    }

    /// The version that transaction `run_id` committed in `snapshot`, if it did.
    pub async fn committed_by(&self, snapshot: &SnapshotRef, run_id: &str) -> Result<Option<i64>> {
        let (snapshot, run_id) = (snapshot.clone(), run_id.to_string());
        self.blocking("reading the transaction ids", move |engine, _| {
            snapshot.get_app_id_version(&run_id, engine)
        })
        .await
    }

    /// Every file of `snapshot`.
    pub async fn files(&self, snapshot: &SnapshotRef) -> Result<Vec<LiveFile>> {
        let snapshot = snapshot.clone();
        let root_key = self.root_key.clone();
        let bucket_prefix = format!("s3://{}/", self.bucket);
        self.blocking("listing the table's files", move |engine, _| {
            let scan = snapshot.scan_builder().build()?;
            let mut files: Vec<LiveFile> = Vec::new();
            for meta in scan.scan_metadata(engine)? {
                files = meta?.visit_scan_files(files, |files, f| {
                    files.push(LiveFile {
                        key: f.path.clone(),
                        bytes: f.size.max(0) as u64,
                        rows: f.stats.map(|s| s.num_records),
                    })
                })?;
            }
            for f in &mut files {
                // Paths are relative to the root (percent-encoded) or absolute URLs.
                let decoded = percent_decode(&f.key);
                f.key = match decoded.strip_prefix(&bucket_prefix) {
                    Some(key) => key.to_string(),
                    None => format!("{root_key}{decoded}"),
                };
            }
            files.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(files)
        })
        .await
    }

    /// Write the checkpoint of `version` (Parquet, by our writer, through our S3 client)
    /// and point `_last_checkpoint` at it, so a snapshot reads one checkpoint plus the
    /// commits after it rather than the whole log.
    pub async fn checkpoint(&self, version: Version) -> Result<()> {
        let snapshot = Box::pin(self.snapshot(Some(version)))
            .await?
            .ok_or_else(|| {
                Error::internal(format!("{}: no version {version} to checkpoint", self.root))
            })?;
        let (store, bucket, runtime) = (
            self.store.clone(),
            self.bucket.clone(),
            tokio::runtime::Handle::current(),
        );
        self.blocking("writing a checkpoint", move |engine, _| {
            let writer = snapshot.create_checkpoint_writer(engine)?;
            let path = writer.checkpoint_path()?;
            let data = writer.checkpoint_data(engine)?;
            let state = data.state();
            let mut parquet: Option<ArrowWriter<Vec<u8>>> = None;
            for batch in data {
                let batch =
                    ArrowEngineData::try_from_engine_data(batch?.apply_selection_vector()?)?;
                let batch = batch.record_batch();
                let w = match parquet.as_mut() {
                    Some(w) => w,
                    None => parquet.insert(ArrowWriter::try_new(Vec::new(), batch.schema(), None)?),
                };
                w.write(batch)?;
            }
            let bytes = parquet
                .ok_or_else(|| KernelError::generic("the checkpoint has no actions"))?
                .into_inner()?;
            let size = bytes.len() as u64;
            let key = percent_decode(path.path().trim_start_matches('/'));
            runtime
                .block_on(store.put(&bucket, &key, bytes::Bytes::from(bytes), false))
                .map_err(|e| KernelError::generic(e.to_string()))?;
            let state = Arc::into_inner(state).ok_or_else(|| {
                KernelError::generic("the checkpoint's reconciliation state is still shared")
            })?;
            let stats = LastCheckpointHintStats::from_reconciliation_state(state, size, 0)?;
            writer.finalize(engine, &stats)
        })
        .await
    }

    /// Apply `commit`: create the table or add to `base_version`, with the record and the
    /// transaction id, conditionally on the next version being free.
    pub async fn commit(&self, commit: TableCommit<'_>) -> Result<CommitOutcome> {
        let schema = table_schema(commit.schema)?;
        let files = commit.files.to_vec();
        let remove: Option<Vec<String>> = match commit.remove {
            Removal::Nothing => Some(Vec::new()),
            Removal::All => None,
            Removal::Files(keys) => Some(keys.to_vec()),
        };
        let base = match commit.base_version {
            Some(v) => Some(Box::pin(self.snapshot(Some(v))).await?.ok_or_else(|| {
                Error::internal(format!(
                    "{}: version {v} was planned from, but the table is gone",
                    self.root
                ))
            })?),
            None => None,
        };
        let (run_id, record, engine_info) =
            (commit.run_id.to_string(), commit.record, commit.engine_info);
        let new_partition_columns: Vec<String> = commit
            .hive_keys
            .iter()
            .filter(|k| schema.field(k).is_none())
            .cloned()
            .collect();
        let next = commit.base_version.map_or(0, |v| v + 1);
        let root_key = self.root_key.clone();
        let bucket = self.bucket.clone();
        self.blocking("committing to the table", move |engine, root| {
            let committer = Box::new(FileSystemCommitter::new());
            let partition_columns: Vec<String>;
            let txn: Transaction<_> = match base {
                None => {
                    let schema = with_partition_fields(schema, &new_partition_columns)?;
                    let mut builder = create_table(root.as_str(), schema, engine_info, true)
                        .with_table_properties([
                            ("delta.feature.domainMetadata", "supported"),
                            (STATE_FORMAT_PROPERTY, "1"),
                        ]);
                    if !new_partition_columns.is_empty() {
                        builder = builder
                            .with_data_layout(DataLayout::partitioned(&new_partition_columns));
                    }
                    let built = builder
                        .with_transaction_id(run_id.clone(), next as i64)
                        .with_domain_metadata(STATE_DOMAIN, record)
                        .build(engine, committer);
                    let mut txn = match built {
                        // Another run created it since this one planned (found no table).
                        Err(KernelError::TableAlreadyExistsAtPath(_)) => {
                            return Ok(CommitOutcome::Conflict { version: 0 });
                        }
                        other => other?,
                    };
                    add_files(
                        &mut txn,
                        engine,
                        &files,
                        &new_partition_columns,
                        &bucket,
                        &root_key,
                        root,
                    )?;
                    return outcome(txn.commit(engine)?, engine);
                }
                Some(snapshot) => {
                    partition_columns = snapshot
                        .table_configuration()
                        .logical_partition_columns()
                        .to_vec();
                    // Columns the files have and the table not yet: added in this commit
                    // (the run's policy allowed them before anything was read).
                    let diff = compare_schemas(&snapshot.schema(), &schema)
                        .map_err(|e| KernelError::generic(e.to_string()))?;
                    let mut builder = snapshot
                        .clone()
                        .update_table(UpdateTableOperation::Write, engine_info, true)
                        .with_transaction_id(run_id.clone(), next as i64)
                        .with_domain_metadata(STATE_DOMAIN, record);
                    for name in &diff.new_columns {
                        if let Some(f) = schema.field(name) {
                            builder = builder.add_column(StructField::new(
                                f.name().clone(),
                                f.data_type().clone(),
                                true,
                            ));
                        }
                    }
                    for name in &diff.now_nullable {
                        builder = builder.set_nullable(ColumnName::new([name.as_str()]));
                    }
                    let mut txn = builder.build(engine, committer)?;
                    match remove {
                        None => {
                            let scan = snapshot.scan_builder().build()?;
                            for meta in scan.scan_metadata(engine)? {
                                txn.remove_files(meta?.scan_files);
                            }
                        }
                        Some(keys) if !keys.is_empty() => {
                            remove_some(&mut txn, engine, &snapshot, &keys, &bucket, &root_key)?;
                        }
                        Some(_) => {}
                    }
                    txn
                }
            };
            let mut txn = txn;
            add_files(
                &mut txn,
                engine,
                &files,
                &partition_columns,
                &bucket,
                &root_key,
                root,
            )?;
            outcome(txn.commit(engine)?, engine)
        })
        .await
    }
}

/// Remove the files of `snapshot` whose keys are in `keys`: the scan's own rows, with a
/// selection of just those files (so each remove action carries the add's path, size and
/// partition values exactly as the log has them).
fn remove_some(
    txn: &mut Transaction,
    engine: &KernelEngine,
    snapshot: &SnapshotRef,
    keys: &[String],
    bucket: &str,
    root_key: &str,
) -> std::result::Result<(), KernelError> {
    let mut wanted: std::collections::HashSet<&str> = keys.iter().map(String::as_str).collect();
    let bucket_prefix = format!("s3://{bucket}/");
    let scan = snapshot.clone().scan_builder().build()?;
    for meta in scan.scan_metadata(engine)? {
        let (data, mut selection) = meta?.scan_files.into_parts();
        let rows = data.len();
        selection.resize(rows, true);
        let paths = ArrowEngineData::try_from_engine_data(data)?;
        let batch = paths.record_batch();
        let path = batch
            .column_by_name("path")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| KernelError::generic("the scan's files have no `path` column"))?;
        let mut any = false;
        for (i, selected) in selection.iter_mut().enumerate() {
            if !*selected || path.is_null(i) {
                *selected = false;
                continue;
            }
            let decoded = percent_decode(path.value(i));
            let key = match decoded.strip_prefix(&bucket_prefix) {
                Some(key) => key.to_string(),
                None => format!("{root_key}{decoded}"),
            };
            *selected = wanted.remove(key.as_str());
            any |= *selected;
        }
        if any {
            txn.remove_files(FilteredEngineData::try_new(paths, selection)?);
        }
    }
    if let Some(missing) = wanted.into_iter().next() {
        return Err(KernelError::generic(format!(
            "file s3://{bucket}/{missing} is to be removed, but the table version the run planned from does not list it"
        )));
    }
    Ok(())
}

/// What a kernel commit's result means here.
fn outcome<S>(
    result: CommitResult<S>,
    engine: &KernelEngine,
) -> std::result::Result<CommitOutcome, KernelError> {
    match result {
        CommitResult::Committed(c) => {
            // The version checksum of the new version, from the base version's checksum and
            // this commit's actions (no log replay). An optimisation, like the checkpoints:
            // without it readers replay the log, so a failure is only logged.
            if let Some(snapshot) = c.post_commit_snapshot()
                && let Err(e) = snapshot.write_checksum(engine)
            {
                tracing::warn!(version = c.commit_version(), error = %e, "the table's version checksum was not written; the next run replays the log instead");
            }
            Ok(CommitOutcome::Committed(c.commit_version()))
        }
        CommitResult::Conflicted(c) => Ok(CommitOutcome::Conflict {
            version: c.conflict_version(),
        }),
        CommitResult::Retryable(_) => Err(KernelError::generic(
            "the log entry could not be written (I/O error); nothing was committed",
        )),
    }
}

/// `schema` with a nullable string column for each of `partition_columns` appended.
fn with_partition_fields(
    schema: Arc<StructType>,
    partition_columns: &[String],
) -> std::result::Result<Arc<StructType>, KernelError> {
    if partition_columns.is_empty() {
        return Ok(schema);
    }
    let fields = schema.fields().cloned().chain(
        partition_columns
            .iter()
            .map(|c| StructField::nullable(c.clone(), KernelType::STRING)),
    );
    Ok(Arc::new(StructType::try_new(fields)?))
}

/// The values of `partition_columns` for the file at `rel` (relative to the table root):
/// its `k=v` folder names; a column with no folder is null.
fn partition_values(rel: &str, partition_columns: &[String]) -> HashMap<String, Scalar> {
    let folders: HashMap<&str, &str> = rel
        .split('/')
        .rev()
        .skip(1)
        .filter_map(|segment| segment.split_once('='))
        .collect();
    partition_columns
        .iter()
        .map(|c| {
            let value = match folders.get(c.as_str()) {
                Some(v) if !v.is_empty() => Scalar::String(v.to_string()),
                _ => Scalar::Null(KernelType::STRING),
            };
            (c.clone(), value)
        })
        .collect()
}

/// Add `files` to `txn`, their statistics parsed with the table's stats schema and their
/// partition values (of `partition_columns`) read from their folder names.
fn add_files<S>(
    txn: &mut Transaction<S>,
    engine: &KernelEngine,
    files: &[FileToAdd],
    partition_columns: &[String],
    bucket: &str,
    root_key: &str,
    root: &Url,
) -> std::result::Result<(), KernelError> {
    if files.is_empty() {
        return Ok(());
    }
    let stats_schema = txn.stats_schema()?;
    let write_state = txn.write_state()?;
    let json: Vec<&str> = files.iter().map(|f| f.stats.as_str()).collect();
    let json_batch = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new(
            "stats",
            ArrowType::Utf8,
            true,
        )])),
        vec![Arc::new(StringArray::from(json))],
    )?;
    let parsed = engine
        .json_handler()
        .parse_json(Box::new(ArrowEngineData::new(json_batch)), stats_schema)?;
    let parsed = ArrowEngineData::try_from_engine_data(parsed)?;
    let stats = StructArray::from(parsed.record_batch().clone());
    let unpartitioned = if partition_columns.is_empty() {
        Some(write_state.write_context_builder().build()?)
    } else {
        None
    };
    for (i, f) in files.iter().enumerate() {
        let rel = f
            .key
            .strip_prefix(root_key)
            .ok_or_else(|| {
                KernelError::generic(format!(
                    "file s3://{bucket}/{} is outside the table root {root}",
                    f.key
                ))
            })?
            .to_string();
        let location = root.join(&rel).map_err(KernelError::from)?;
        let meta = FileMeta {
            location,
            last_modified: chrono::Utc::now().timestamp_millis(),
            size: f.bytes,
        };
        let one = stats.slice(i, 1);
        let partitioned;
        let ctx = match &unpartitioned {
            Some(ctx) => ctx,
            None => {
                partitioned = write_state
                    .write_context_builder()
                    .with_partition_values(partition_values(&rel, partition_columns))
                    .build()?;
                &partitioned
            }
        };
        let add = build_add_file_metadata(DataFileMetadata::new(meta, one), ctx)?;
        txn.add_files(add);
    }
    Ok(())
}

/// The table schema: the stream's columns, each with its Delta Lake type.
pub fn table_schema(schema: &Schema) -> Result<Arc<StructType>> {
    if schema.fields().is_empty() {
        return Err(Error::request(
            "the stream has no columns; a Delta Lake table needs at least one",
        ));
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    for f in schema.fields() {
        // The kernel's error carries a backtrace in its text: name the column instead.
        fields.push(StructField::try_from_arrow(f.as_ref()).map_err(|_| {
            Error::request(format!(
                "column `{}` has Arrow type {}, which a Delta Lake table cannot hold (no time-of-day, duration or interval types); convert it in the connector, e.g. to a string or an integer",
                f.name(),
                f.data_type()
            ))
        })?);
    }
    StructType::try_new(fields).map(Arc::new).map_err(|e| {
        Error::request_caused(
            format!("the stream's schema is not a valid table schema: {e}"),
            e,
        )
    })
}

/// How a stream's schema differs from its table's.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct SchemaDiff {
    /// Source columns the table does not have.
    pub new_columns: Vec<String>,
    /// Columns the table holds as non-null that the source may give as null, or no longer
    /// gives at all (its rows from then on read null).
    pub now_nullable: Vec<String>,
}

/// Compare the stream's columns with the table's. A column whose type differs is an error
/// that names the column and both types (the table keeps its type; widening is not
/// supported yet). Table columns the source no longer has are fine: they read as null (a
/// non-null one is made nullable by the commit).
pub fn compare_schemas(table: &StructType, stream: &StructType) -> Result<SchemaDiff> {
    let mut diff = SchemaDiff::default();
    for f in stream.fields() {
        match table.field(f.name()) {
            None => diff.new_columns.push(f.name().clone()),
            Some(t) if t.data_type() != f.data_type() => {
                return Err(Error::request(format!(
                    "column `{}` is {} in the table but {} at the source; a Delta table keeps a column's type (only adding columns is supported) — cast it in the connector, or write to a new output",
                    f.name(),
                    t.data_type(),
                    f.data_type()
                )));
            }
            Some(t) if !t.is_nullable() && f.is_nullable() => {
                diff.now_nullable.push(f.name().clone())
            }
            Some(_) => {}
        }
    }
    for t in table.fields() {
        if !t.is_nullable() && stream.field(t.name()).is_none() {
            diff.now_nullable.push(t.name().clone());
        }
    }
    Ok(diff)
}

/// Decode the `%XX` escapes of a log path.
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Our error from a kernel error: an S3 error inside it comes back whole (with its
/// category and retryability); anything else names the table and the step.
fn from_kernel(table: &str, what: &str, e: KernelError) -> Error {
    match e {
        KernelError::Backtraced { source, .. } => from_kernel(table, what, *source),
        KernelError::ObjectStore(object_store::Error::Generic { source, .. }) => {
            match source.downcast::<Error>() {
                Ok(ours) => *ours,
                Err(other) => Error::Table {
                    table: table.to_string(),
                    message: format!("{what}: {}", crate::one_line(&other.to_string())),
                    source: Some(other),
                },
            }
        }
        other => Error::Table {
            table: table.to_string(),
            message: format!("{what}: {}", crate::one_line(&other.to_string())),
            source: Some(Box::new(other)),
        },
    }
}
