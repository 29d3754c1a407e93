//! The extract core: state → plan → read → Parquet → S3 → commit, for one stream.
//!
//! The three steps are public so a distributed runner (Glue) can run them in different
//! processes: [`ExtractCore::prepare`] on the driver, [`ExtractCore::extract_partition`]
//! on executors, [`ExtractCore::commit`] once on the driver. [`ExtractCore::run`] does
//! all three in one process.

mod commit;
mod merge;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use arrow::record_batch::RecordBatch;
use arrow_schema::SchemaRef;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::connector::{
    Connector, Partition, ReadContext, ReadItem, Stored, StoredValue, StreamDescriptor,
};
use crate::dataset::{DataFile, Dataset, PartitionProgress, RunStatus};
use crate::error::{ConnectorError, Error, Result};
use crate::manifest::ConnectorManifest;
use crate::options::{Dictionary, ExtractOptions, SchemaEvolution, WriteDisposition};
use crate::report::{Progress, RunReport};
use crate::s3::S3Store;
use crate::sink::{
    OpenUploads, ParquetObjectWriter, UploadLimits, adapt_dictionary, writer_properties,
};
use crate::table::StatsCollector;

/// When to stop reading: a cancellation (signal) and/or a deadline. The core stops at the
/// next checkpoint after either fires, then commits what it has.
#[derive(Debug, Clone, Default)]
pub struct StopSignal {
    /// Cancelled by the runner (SIGTERM, shutdown...).
    pub cancel: CancellationToken,
    /// Stop reading at this instant (the runner subtracts its commit margin first).
    pub deadline: Option<Instant>,
}

impl StopSignal {
    /// A signal that never fires unless `cancel` is cancelled.
    pub fn new() -> Self {
        Self::default()
    }
    /// With a deadline.
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }
    /// Whether it has fired.
    pub fn fired(&self) -> bool {
        self.cancel.is_cancelled() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
    /// Resolves when it fires.
    pub async fn wait(&self) {
        match self.deadline {
            Some(d) => tokio::select! {
                _ = self.cancel.cancelled() => {}
                _ = tokio::time::sleep_until(d.into()) => {}
            },
            None => self.cancel.cancelled().await,
        }
    }
    fn child(&self) -> Self {
        Self {
            cancel: self.cancel.child_token(),
            deadline: self.deadline,
        }
    }
}

/// The stop signal of one commit interval: the run's own (a child of it), with a deadline
/// `commit_interval.secs` from now, and fired once the core has finished
/// `commit_interval.bytes` of files since the interval started.
struct CommitIntervalStop {
    stop: StopSignal,
    /// Watches the bytes written; aborted with the interval.
    watcher: tokio::task::JoinHandle<()>,
}

impl CommitIntervalStop {
    /// How often the bytes written are looked at (an atomic load).
    const BYTES_POLL: Duration = Duration::from_millis(10);

    fn start(
        run: &StopSignal,
        interval: &crate::options::CommitInterval,
        progress: &Arc<Progress>,
    ) -> Self {
        let due = Instant::now().checked_add(Duration::from_secs(interval.secs));
        let deadline = match (run.deadline, due) {
            (Some(d), Some(due)) => Some(d.min(due)),
            (d, due) => d.or(due),
        };
        let stop = StopSignal {
            cancel: run.cancel.child_token(),
            deadline,
        };
        let (progress, cancel, limit) = (progress.clone(), stop.cancel.clone(), interval.bytes);
        let start = progress.bytes();
        let watcher = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Self::BYTES_POLL).await;
                if progress.bytes().saturating_sub(start) >= limit {
                    cancel.cancel();
                    return;
                }
            }
        });
        Self { stop, watcher }
    }
}

impl Drop for CommitIntervalStop {
    fn drop(&mut self) {
        self.watcher.abort();
    }
}

/// A planned run of one stream: what `prepare` decides, serializable so it can be
/// shipped to other processes (Glue executors).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunPlan {
    /// Unique id of this run; part of every file name it writes.
    pub run_id: String,
    /// The stream, with its schema.
    pub stream: StreamDescriptor,
    /// Sequence of the manifest this plan builds on (0: none yet).
    pub base_sequence: u64,
    /// The stream cursor before this run.
    pub previous_cursor: Option<StoredValue>,
    /// The stream cursor once every partition is done.
    pub target_cursor: Option<StoredValue>,
    /// Every partition of the plan, with progress from earlier runs.
    pub work: Vec<PartitionProgress>,
    /// Whether this run continues a plan an earlier run left pending.
    pub resumed: bool,
    /// When the run started.
    pub started_at: DateTime<Utc>,
    /// Milliseconds spent preparing.
    pub plan_ms: u64,
    /// How the complete plan's rows land in the table.
    #[serde(default)]
    pub disposition: WriteDisposition,
    /// `replace`: files earlier runs of this plan wrote, staged for its final commit.
    #[serde(default)]
    pub staged: Vec<DataFile>,
}

impl RunPlan {
    /// The hive keys of the plan's partitions, each once, in plan order.
    pub fn hive_keys(&self) -> Vec<String> {
        let mut keys: Vec<String> = Vec::new();
        for (k, _) in self.work.iter().flat_map(|w| &w.partition.hive) {
            if !keys.contains(k) {
                keys.push(k.clone());
            }
        }
        keys
    }

    /// Partitions that still have rows to read.
    pub fn remaining(&self) -> impl Iterator<Item = &PartitionProgress> {
        self.work.iter().filter(|w| !w.done)
    }
}

/// What reading one partition produced (its files are written, not committed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionResult {
    /// The partition id.
    pub partition: String,
    /// Files written.
    pub files: Vec<DataFile>,
    /// Rows written.
    pub rows: u64,
    /// Bytes written.
    pub bytes: u64,
    /// Last checkpoint reached (the resume point if not done).
    pub checkpoint: Option<StoredValue>,
    /// Whether the partition was read to its end.
    pub done: bool,
    /// Milliseconds spent.
    pub elapsed_ms: u64,
}

/// The extract core for one connector and config.
pub struct ExtractCore<C: Connector> {
    connector: Arc<C>,
    config: Arc<C::Config>,
    manifest: Arc<ConnectorManifest>,
    store: S3Store,
    options: Arc<ExtractOptions>,
    props: WriterProperties,
    limits: UploadLimits,
    progress: Arc<Progress>,
    cores: Arc<CoreUse>,
    runner: String,
    runtime: Arc<serde_json::Map<String, serde_json::Value>>,
    /// The task attempt this process is, when several may read one partition of one plan
    /// (Glue's Spark task retries): it goes into the file names.
    attempt: Option<u64>,
}

impl<C: Connector> Clone for ExtractCore<C> {
    fn clone(&self) -> Self {
        Self {
            connector: self.connector.clone(),
            config: self.config.clone(),
            manifest: self.manifest.clone(),
            store: self.store.clone(),
            options: self.options.clone(),
            props: self.props.clone(),
            limits: self.limits.clone(),
            progress: self.progress.clone(),
            cores: self.cores.clone(),
            runner: self.runner.clone(),
            runtime: self.runtime.clone(),
            attempt: self.attempt,
        }
    }
}

impl<C: Connector> std::fmt::Debug for ExtractCore<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExtractCore")
            .field("connector", &self.manifest.name)
            .field("output", &self.options.output.to_string())
            .field("runner", &self.runner)
            .finish_non_exhaustive()
    }
}

impl<C: Connector> ExtractCore<C> {
    /// A core for `connector` with `config`, writing through `store`. `runner` is the
    /// label recorded in manifests and reports. Validates the manifest and options; no I/O.
    pub fn new(
        connector: C,
        config: C::Config,
        store: S3Store,
        options: ExtractOptions,
        runner: impl Into<String>,
    ) -> Result<Self> {
        Self::with_shared(Arc::new(connector), config, store, options, runner)
    }

    /// [`ExtractCore::new`] for a connector shared with other cores (a daemon's jobs, a
    /// Lambda function's invocations).
    pub fn with_shared(
        connector: Arc<C>,
        config: C::Config,
        store: S3Store,
        options: ExtractOptions,
        runner: impl Into<String>,
    ) -> Result<Self> {
        let manifest = ConnectorManifest::of::<C>()?;
        options.validate()?;
        let runner = runner.into();
        require_governed::<C>(&connector, &config, &manifest, &options, &runner)?;
        let store = if options.sse_kms_key_id.is_some() || options.expected_bucket_owner.is_some() {
            store.with_bucket_settings(
                &options.output.bucket,
                crate::s3::BucketSettings {
                    expected_owner: options.expected_bucket_owner.clone(),
                    sse_kms_key_id: options.sse_kms_key_id.clone(),
                },
            )
        } else {
            store
        };
        let props = writer_properties(&options.parquet)?;
        let limits = UploadLimits::new(&options, Arc::new(OpenUploads::default()));
        Ok(Self {
            connector,
            config: Arc::new(config),
            manifest,
            store,
            options: Arc::new(options),
            props,
            limits,
            progress: Arc::new(Progress::default()),
            cores: Arc::new(CoreUse::of_this_process()),
            runner,
            runtime: Arc::default(),
            attempt: None,
        })
    }

    /// Facts about where this core runs (task ARN, availability zone, request id...),
    /// copied into every run report it writes (`runtime`).
    pub fn with_runtime(mut self, runtime: serde_json::Map<String, serde_json::Value>) -> Self {
        self.runtime = Arc::new(runtime);
        self
    }

    /// Mark this process as task attempt `attempt` of its partitions (Glue: Spark's task
    /// attempt id): file names become `part-<run>-<partition>-<attempt:010><seq:05>`, so
    /// two attempts of one partition of one plan never write the same object, and an
    /// attempt still running after another one's files were committed (a zombie) cannot
    /// overwrite them.
    pub fn with_attempt(mut self, attempt: u64) -> Self {
        self.attempt = Some(attempt);
        self
    }

    /// The connector.
    pub fn connector(&self) -> &C {
        &self.connector
    }

    /// The connector manifest.
    pub fn manifest(&self) -> &ConnectorManifest {
        &self.manifest
    }

    /// The options.
    pub fn options(&self) -> &ExtractOptions {
        &self.options
    }

    /// The S3 store.
    pub fn store(&self) -> &S3Store {
        &self.store
    }

    /// Live counters.
    pub fn progress(&self) -> Arc<Progress> {
        self.progress.clone()
    }

    /// Multipart uploads open right now (abort them on a hard stop).
    pub fn open_uploads(&self) -> Arc<OpenUploads> {
        self.limits.open.clone()
    }

    /// Abort every open multipart upload (hard stop).
    pub async fn abort_open_uploads(&self) -> usize {
        self.limits.open.abort_all(&self.store).await
    }

    /// The dataset of `stream`.
    pub fn dataset(&self, stream: &str) -> Dataset {
        Dataset::new(self.store.clone(), self.options.output.clone(), stream)
    }

    /// The streams to extract when none is named: the manifest's, or discovered ones
    /// for connectors with dynamic streams.
    pub async fn default_streams(&self) -> Result<Vec<String>> {
        if !self.manifest.dynamic_streams {
            return Ok(self.manifest.stream_names());
        }
        Ok(self
            .connector
            .discover(&self.config)
            .await?
            .into_iter()
            .map(|s| s.name)
            .collect())
    }

    /// Load the committed state of `stream` and decide what this run reads: the pending
    /// plan of a stopped run, or a new plan after the committed cursor.
    #[tracing::instrument(name = "plan", skip_all, fields(stream, run_id = tracing::field::Empty))]
    pub async fn prepare(&self, stream: &str) -> Result<RunPlan> {
        let run_id = new_run_id();
        tracing::Span::current().record("run_id", run_id.as_str());
        let started = Instant::now();
        let started_at = Utc::now();
        self.manifest.require_stream(stream)?;
        self.store
            .check_bucket(&self.options.output.bucket, &self.options.output.key(""))
            .await?;
        self.store
            .check_conditional_writes(
                &self.options.output.bucket,
                &self
                    .options
                    .output
                    .key(&format!("_probes/if-none-match-{run_id}")),
            )
            .await?;
        let descriptor = self
            .connector
            .discover(&self.config)
            .await?
            .into_iter()
            .find(|s| s.name == stream)
            .ok_or_else(|| {
                Error::request(format!(
                    "stream `{stream}` was not found by discover; run `discover` to list the streams"
                ))
            })?;
        if !crate::manifest::is_stream_name(&descriptor.name) {
            return Err(Error::Connector(ConnectorError::internal(format!(
                "discover returned stream name {:?}; stream names must match [a-z][a-z0-9_]*",
                descriptor.name
            ))));
        }
        // Every column must have a Delta Lake type before anything is read.
        let stream_schema =
            crate::table::table_schema(&descriptor.schema).map_err(|e| match e {
                Error::Request { message: m, .. } => {
                    Error::Connector(ConnectorError::internal(format!("stream `{stream}`: {m}")))
                }
                other => other,
            })?;
        let dataset = self.dataset(stream);
        let mut descriptor = descriptor;
        let (latest, table) = match Box::pin(dataset.latest_with_schema()).await? {
            Some((record, table)) => (Some(record), Some(table)),
            None => (None, None),
        };
        if let Some(table) = table {
            descriptor.schema =
                self.apply_schema_policy(stream, &descriptor.schema, &table, &stream_schema)?;
        }
        let base_sequence = latest.as_ref().map(|m| m.sequence).unwrap_or(0);
        let state = latest.map(|m| m.state).unwrap_or_default();
        let disposition = self
            .options
            .write_disposition
            .or(descriptor.write_disposition)
            .or_else(|| self.manifest.stream(stream)?.write_disposition)
            .unwrap_or(if descriptor.cursor_field.is_some() {
                WriteDisposition::Append
            } else {
                WriteDisposition::Replace
            });
        if disposition == WriteDisposition::Merge {
            merge_key_problem(&descriptor).map_or(Ok(()), |m| {
                Err(Error::request(format!("stream `{stream}`: {m}")))
            })?;
        }
        let (work, target_cursor, resumed, staged) = match state.pending {
            Some(pending) => (
                pending.partitions,
                pending.target_cursor,
                true,
                pending.staged,
            ),
            None => {
                // `replace` makes the table the whole source: the plan starts from no
                // cursor (a plan after the cursor would replace the table with only the
                // rows since the last run).
                // The stored cursor is still read: one of another type is refused, never
                // silently ignored.
                let stored: Option<C::Cursor> = state
                    .cursor
                    .as_ref()
                    .map(|c| from_stored(stream, "cursor", c))
                    .transpose()?;
                let cursor = match disposition {
                    WriteDisposition::Replace => None,
                    _ => stored,
                };
                let plan = self
                    .connector
                    .plan(&self.config, &descriptor, cursor.as_ref())
                    .await?;
                let partitions = plan
                    .partitions
                    .iter()
                    .map(|p| p.try_map_spec(|spec| to_stored("partition spec", spec)))
                    .collect::<Result<Vec<_>>>()?;
                validate_partitions(&partitions)?;
                let target_cursor = match &plan.cursor {
                    None => None,
                    Some(c) => match to_stored("cursor", c)? {
                        // Stored as JSON, `Some(null)` reads back as no cursor: the next
                        // run would extract everything again.
                        StoredValue::Null => {
                            return Err(Error::Connector(ConnectorError::internal(
                                "plan returned a cursor that is JSON null; return `cursor: None` for no cursor, or a value that is not null",
                            )));
                        }
                        c => Some(c),
                    },
                };
                let work = partitions
                    .into_iter()
                    .map(|partition| PartitionProgress {
                        partition,
                        checkpoint: None,
                        done: false,
                    })
                    .collect();
                (work, target_cursor, false, Vec::new())
            }
        };
        let plan = RunPlan {
            run_id,
            stream: descriptor,
            base_sequence,
            previous_cursor: state.cursor,
            target_cursor,
            work,
            resumed,
            started_at,
            plan_ms: started.elapsed().as_millis() as u64,
            // Files staged by a `replace` plan finish as `replace`, whatever the option says
            // now: appending them would leave the old rows beside the new ones.
            disposition: if staged.is_empty() {
                disposition
            } else {
                WriteDisposition::Replace
            },
            staged,
        };
        tracing::info!(
            stream,
            run_id = %plan.run_id,
            base_sequence,
            partitions = plan.work.len(),
            remaining = plan.remaining().count(),
            resumed,
            "planned"
        );
        Ok(plan)
    }

    /// Read one partition of `plan` into Parquet files in S3. Commits nothing. Stops at
    /// the next checkpoint once `stop` fires; a partition that has emitted no checkpoint
    /// cannot stop part way, so it is abandoned then (its files deleted, `done: false`,
    /// no checkpoint: it restarts from its beginning). On error, its open upload is
    /// aborted.
    pub async fn extract_partition(
        &self,
        plan: &RunPlan,
        partition_id: &str,
        stop: &StopSignal,
    ) -> Result<PartitionResult> {
        let run = self.open_run(plan).await?;
        self.extract_partition_of_run(&run, plan, partition_id, stop, stop)
            .await
    }

    /// The connector's value for a run of `plan` in this process.
    async fn open_run(&self, plan: &RunPlan) -> Result<C::Run> {
        Ok(self.connector.open_run(&self.config, &plan.stream).await?)
    }

    /// [`ExtractCore::extract_partition`] with the run already opened. `stop` ends the read
    /// at the next checkpoint; `abandon` (the run's own stop, not a commit interval's) also
    /// ends a partition that has emitted no checkpoint.
    #[tracing::instrument(name = "partition", skip_all, fields(run_id = %plan.run_id, stream = %plan.stream.name, partition = partition_id))]
    async fn extract_partition_of_run(
        &self,
        run: &C::Run,
        plan: &RunPlan,
        partition_id: &str,
        stop: &StopSignal,
        abandon: &StopSignal,
    ) -> Result<PartitionResult> {
        let work = plan
            .work
            .iter()
            .find(|w| w.partition.id == partition_id)
            .ok_or_else(|| {
                Error::request(format!(
                    "partition `{partition_id}` is not in the plan of run {}",
                    plan.run_id
                ))
            })?;
        let started = Instant::now();
        if work.done {
            return Ok(PartitionResult {
                partition: partition_id.to_string(),
                files: vec![],
                rows: 0,
                bytes: 0,
                checkpoint: work.checkpoint.clone(),
                done: true,
                elapsed_ms: 0,
            });
        }
        let _reading = self.cores.reading();
        let mut reader = PartitionReader {
            core: self,
            run,
            plan,
            partition: &work.partition,
            writer: None,
            upload: None,
            stats: None,
            encoding: None,
            props: None,
            files: Vec::new(),
            seq: 0,
        };
        let result = reader.read(work.checkpoint.clone(), stop, abandon).await;
        if result.is_err()
            && let Some(w) = reader.writer.take()
        {
            w.abort().await;
        }
        let (checkpoint, done) = result?;
        let files = std::mem::take(&mut reader.files);
        if done {
            self.progress.partition_done();
        }
        let result = PartitionResult {
            partition: partition_id.to_string(),
            rows: files.iter().map(|f| f.rows).sum(),
            bytes: files.iter().map(|f| f.bytes).sum(),
            files,
            checkpoint,
            done,
            elapsed_ms: started.elapsed().as_millis() as u64,
        };
        tracing::info!(
            stream = %plan.stream.name,
            partition = partition_id,
            rows = result.rows,
            files = result.files.len(),
            done,
            "partition read"
        );
        Ok(result)
    }

    /// Prepare, read every remaining partition (up to `max_concurrent_partitions` at
    /// once) and commit. Stops early at a checkpoint when `stop` fires and commits the
    /// progress (status `partial`).
    ///
    /// A long run also commits every [`commit_interval`](ExtractOptions::commit_interval)
    /// (seconds or bytes of files, whichever comes first): its partitions stop at their
    /// next checkpoint, the progress is committed as a stopped run's would be, and the run
    /// goes on from that commit, so a hard kill loses at most one interval of work. The
    /// report covers every commit ([`RunReport::intermediate_commits`]).
    pub async fn run(&self, stream: &str, stop: &StopSignal) -> Result<RunReport> {
        let span = tracing::info_span!(
            "run",
            connector = %self.manifest.name,
            stream,
            runner = %self.runner,
            run_id = tracing::field::Empty,
        );
        async {
            let mut earlier: Option<RunReport> = None;
            let mut commit_interval = self.options.commit_interval.clone();
            loop {
                let plan = Arc::new(self.prepare(stream).await?);
                tracing::Span::current().record("run_id", plan.run_id.as_str());
                let interval = CommitIntervalStop::start(stop, &commit_interval, &self.progress);
                let results = self.extract_all(&plan, &interval.stop, stop).await?;
                // The interval's signal fires with the run's (it is a child) and on its
                // own limits; only its own firing means "commit and go on".
                let interval_due = interval.stop.fired() && !stop.fired();
                drop(interval);
                let report = self.commit(&plan, results).await?;
                let committed = report.sequence.is_some();
                let go_on = report.status == RunStatus::Partial && interval_due && !stop.fired();
                let report = match earlier.take() {
                    Some(e) => report.after(e),
                    None => report,
                };
                if !go_on {
                    return Ok(report);
                }
                if committed {
                    commit_interval = self.options.commit_interval.clone();
                } else {
                    // A whole interval without a checkpoint (a source slow to start, a
                    // sparse checkpoint): the next one is twice as long, so the run makes
                    // progress and still commits now and then.
                    commit_interval.secs = commit_interval.secs.saturating_mul(2);
                    commit_interval.bytes = commit_interval.bytes.saturating_mul(2);
                    tracing::info!(
                        stream,
                        next_secs = commit_interval.secs,
                        "no checkpoint within a commit interval: the next one is twice as long"
                    );
                }
                tracing::info!(
                    stream,
                    sequence = ?report.sequence,
                    rows = report.rows,
                    "intermediate commit; reading on"
                );
                earlier = Some(report);
            }
        }
        .instrument(span)
        .await
    }

    /// Read the remaining partitions of `plan`: each stops at its next checkpoint once
    /// `stop` fires (a commit interval's or the run's); one without any checkpoint is
    /// abandoned only when `run_stop` fires (the run's deadline or signal) or another
    /// partition fails.
    async fn extract_all(
        &self,
        plan: &Arc<RunPlan>,
        stop: &StopSignal,
        run_stop: &StopSignal,
    ) -> Result<Vec<PartitionResult>> {
        let ids: Vec<String> = plan.remaining().map(|w| w.partition.id.clone()).collect();
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let run = Arc::new(self.open_run(plan).await?);
        let inner_stop = stop.child();
        let abandon = run_stop.child();
        let limit = Arc::new(tokio::sync::Semaphore::new(
            self.options.max_concurrent_partitions,
        ));
        let mut tasks = JoinSet::new();
        // Partitions start in plan order: the permit is taken before the task is
        // spawned, so a stopped run leaves the tail of the plan, not a random subset.
        for id in ids {
            let permit = limit
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| Error::internal("partition semaphore closed"))?;
            if inner_stop.fired() {
                // Not started: left for the next run.
                break;
            }
            let (core, run, plan, stop, abandon) = (
                self.clone(),
                run.clone(),
                plan.clone(),
                inner_stop.clone(),
                abandon.clone(),
            );
            // The partition's span is a child of the run's, across the spawn.
            let parent = tracing::Span::current();
            tasks.spawn(async move {
                let _permit = permit;
                let result = core
                    .extract_partition_of_run(&run, &plan, &id, &stop, &abandon)
                    .instrument(parent)
                    .await;
                if result.is_err() {
                    // Stop the other partitions at their next checkpoint (and those
                    // without one at once): the run fails.
                    stop.cancel.cancel();
                    abandon.cancel.cancel();
                }
                result
            });
        }
        let mut results = Vec::new();
        let mut first_error: Option<Error> = None;
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok(Ok(r)) => results.push(r),
                Ok(Err(e)) => {
                    if first_error.is_none() {
                        // Stop the other partitions at their next checkpoint.
                        inner_stop.cancel.cancel();
                        abandon.cancel.cancel();
                        first_error = Some(e);
                    }
                }
                Err(e) => {
                    inner_stop.cancel.cancel();
                    abandon.cancel.cancel();
                    first_error.get_or_insert(Error::internal_caused(
                        format!("partition task failed: {e}"),
                        e,
                    ));
                }
            }
        }
        if let Some(e) = first_error {
            self.abort_open_uploads().await;
            return Err(e);
        }
        Ok(results)
    }

    /// Delete the files of runs of `stream` that never committed (and abort their
    /// multipart uploads), older than `grace` — by default, and at least, the connector's
    /// longest declared runtime plus [`GC_MARGIN_SECS`](crate::manifest::GC_MARGIN_SECS),
    /// so the files of a run in flight are never deleted. With `dry_run`, only lists them.
    /// Refuses a stream the connector does not declare (or discover, for dynamic streams)
    /// and a stream with no committed run.
    pub async fn collect_garbage(
        &self,
        stream: &str,
        grace: Option<Duration>,
        dry_run: bool,
    ) -> Result<crate::dataset::GarbageReport> {
        let floor = self.manifest.min_gc_grace_secs();
        let grace_secs = match grace {
            None => floor,
            Some(g) if g.as_secs() >= floor => g.as_secs(),
            Some(g) => {
                let (runner, longest) = self.manifest.longest_runtime();
                return Err(Error::request(format!(
                    "a grace period of {} s is too short: connector `{}` declares runs of up to {longest} s (runners.{runner}.max_runtime_secs), and gc must leave the files of a run in flight alone; use at least {floor} s ({longest} + a {} s margin), or omit it",
                    g.as_secs(),
                    self.manifest.name,
                    crate::manifest::GC_MARGIN_SECS
                )));
            }
        };
        let streams = self.default_streams().await?;
        if !streams.iter().any(|s| s == stream) {
            return Err(Error::request(format!(
                "stream `{stream}` is not a stream of connector `{}`; gc only cleans declared streams: {}",
                self.manifest.name,
                streams.join(", ")
            )));
        }
        self.dataset(stream)
            .collect_garbage(grace_secs, dry_run)
            .await
    }
}

impl<C: Connector> ExtractCore<C> {
    /// The schema this run writes, given the table's: the stream's (`evolve`: new columns
    /// are added by the commit), an error naming the new columns (`freeze`), or the
    /// stream's without them (`discard_columns`). A changed column type is an error under
    /// every policy. Nothing has been read yet.
    fn apply_schema_policy(
        &self,
        stream: &str,
        source: &SchemaRef,
        table: &delta_kernel::schema::StructType,
        source_kernel: &delta_kernel::schema::StructType,
    ) -> Result<SchemaRef> {
        let diff = crate::table::compare_schemas(table, source_kernel)
            .map_err(|e| Error::request_caused(format!("stream `{stream}`: {e}"), e))?;
        if diff.new_columns.is_empty() {
            return Ok(source.clone());
        }
        let named = diff
            .new_columns
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        match self.options.schema_evolution {
            SchemaEvolution::Evolve => {
                tracing::info!(stream, columns = %named, "new source columns: this run adds them to the table");
                Ok(source.clone())
            }
            SchemaEvolution::Freeze => Err(Error::request(format!(
                "stream `{stream}`: the source has column(s) {named} that its table does not (schema_evolution = freeze); set schema_evolution to evolve to add them, or to discard_columns to leave them out"
            ))),
            SchemaEvolution::DiscardColumns => {
                tracing::info!(stream, columns = %named, "new source columns discarded (schema_evolution = discard_columns)");
                let kept: Vec<_> = source
                    .fields()
                    .iter()
                    .filter(|f| !diff.new_columns.contains(f.name()))
                    .cloned()
                    .collect();
                Ok(Arc::new(arrow_schema::Schema::new_with_metadata(
                    kept,
                    source.metadata().clone(),
                )))
            }
        }
    }
}

/// The partitions this process is reading, against the cores it may use
/// (`available_parallelism`, which counts the CPU quota of a container or a Lambda
/// function): a partition encodes on a thread of its own only while a core is left over.
#[derive(Debug)]
struct CoreUse {
    reading: AtomicUsize,
    cores: usize,
}

impl CoreUse {
    fn of_this_process() -> Self {
        Self {
            reading: AtomicUsize::new(0),
            cores: std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
        }
    }

    /// Count a partition as being read until the guard is dropped.
    fn reading(&self) -> Reading<'_> {
        self.reading.fetch_add(1, Ordering::Relaxed);
        Reading(&self.reading)
    }

    /// Whether the partitions being read leave a core over.
    fn spare(&self) -> bool {
        self.reading.load(Ordering::Relaxed) < self.cores
    }
}

/// A partition being read (see [`CoreUse::reading`]).
struct Reading<'a>(&'a AtomicUsize);

impl Drop for Reading<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A batch encoded into a file on a blocking thread: the file's writer and statistics
/// come back with the outcome.
struct EncodedBatch {
    writer: ParquetObjectWriter,
    stats: Option<StatsCollector>,
    result: Result<()>,
}

/// Reads one partition; owns the file being written so it can be aborted on failure.
struct PartitionReader<'a, C: Connector> {
    core: &'a ExtractCore<C>,
    run: &'a C::Run,
    plan: &'a RunPlan,
    partition: &'a Partition,
    writer: Option<ParquetObjectWriter>,
    /// The span of the file being written and uploaded (`upload`), from its first batch
    /// to its completed upload.
    upload: Option<tracing::Span>,
    /// Delta statistics of the file being written.
    stats: Option<StatsCollector>,
    /// The last batch, being encoded into the file on a blocking thread (with the file's
    /// writer and statistics) while the next one is read.
    encoding: Option<tokio::task::JoinHandle<EncodedBatch>>,
    /// The partition's writer properties, settled on its first batch (`dictionary: auto`).
    props: Option<WriterProperties>,
    files: Vec<DataFile>,
    seq: u32,
}

impl<C: Connector> PartitionReader<'_, C> {
    /// Returns the last checkpoint and whether the partition was read to the end. On an
    /// error, the file being written is back in `writer` (to be aborted).
    async fn read(
        &mut self,
        resume: Option<StoredValue>,
        stop: &StopSignal,
        abandon: &StopSignal,
    ) -> Result<(Option<StoredValue>, bool)> {
        let result = self.read_batches(resume, stop, abandon).await;
        if result.is_err() {
            // The first error is the one reported; the batch being encoded only has to
            // give the writer back.
            let _ = self.encoded().await;
        }
        result
    }

    async fn read_batches(
        &mut self,
        resume: Option<StoredValue>,
        stop: &StopSignal,
        abandon: &StopSignal,
    ) -> Result<(Option<StoredValue>, bool)> {
        let (core, plan, stored) = (self.core, self.plan, self.partition);
        let name = plan.stream.name.as_str();
        let partition = stored
            .try_map_spec(|spec| from_stored::<C::PartitionSpec>(name, "partition spec", spec))?;
        let ctx = ReadContext {
            checkpoint: resume
                .as_ref()
                .map(|c| from_stored::<C::Checkpoint>(name, "checkpoint", c))
                .transpose()?,
            cancel: stop.cancel.clone(),
            deadline: stop.deadline,
        };
        let schema = plan.stream.schema.clone();
        let mut stream = core
            .connector
            .read(&core.config, self.run, &plan.stream, &partition, ctx);
        let mut checkpoint = resume;
        let mut rows_since_checkpoint = 0u64;
        let mut abandoned = false;
        let done = loop {
            // At a checkpoint, a stop (or deadline) may cut in while the source is busy.
            let item = if rows_since_checkpoint == 0 {
                tokio::select! {
                    biased;
                    _ = stop.wait() => break false,
                    item = stream.next() => item,
                }
            } else if checkpoint.is_none() {
                // No checkpoint yet (a stream without a key emits none before its end):
                // the partition cannot stop part way. A commit interval lets it finish;
                // the run's own stop (a deadline, a signal) abandons it, so a deadline
                // runner never runs past its deadline on it.
                tokio::select! {
                    biased;
                    _ = abandon.wait() => {
                        abandoned = true;
                        break false;
                    }
                    item = stream.next() => item,
                }
            } else {
                stream.next().await
            };
            match item {
                None => break true,
                Some(Err(e)) => return Err(Error::Connector(e)),
                Some(Ok(ReadItem::Checkpoint(c))) => match to_stored("checkpoint", &c)? {
                    // Stored as JSON, a null checkpoint reads back as none: the resumed
                    // partition would start over and write its rows twice.
                    StoredValue::Null => {
                        return Err(Error::Connector(ConnectorError::internal(format!(
                            "partition `{}` emitted a checkpoint that is JSON null; a checkpoint must be a value that is not null and says where to resume",
                            partition.id
                        ))));
                    }
                    c => {
                        checkpoint = Some(c);
                        rows_since_checkpoint = 0;
                    }
                },
                Some(Ok(ReadItem::Batch(batch))) => {
                    if batch.num_rows() == 0 {
                        continue;
                    }
                    let batch = self.conform(&schema, batch)?;
                    rows_since_checkpoint += batch.num_rows() as u64;
                    self.write(&schema, batch).await?;
                }
            }
        };
        drop(stream);
        if abandoned {
            self.abandon(rows_since_checkpoint).await;
            return Ok((None, false));
        }
        self.finish_file().await?;
        Ok((checkpoint, done))
    }

    /// Give up a partition stopped before its first checkpoint: its open upload is aborted
    /// and its finished files deleted (nothing of it is committed); it restarts from its
    /// beginning in the next run.
    async fn abandon(&mut self, rows: u64) {
        // Its rows are discarded: an encoding error no longer matters.
        let _ = self.encoded().await;
        if let Some(w) = self.writer.take() {
            w.abort().await;
        }
        self.stats = None;
        self.upload = None;
        let files = std::mem::take(&mut self.files);
        self.core.clean_up(&files).await;
        tracing::warn!(
            stream = %self.plan.stream.name,
            partition = %self.partition.id,
            rows,
            "stopped before the partition's first checkpoint (it has no key to resume from): its rows are discarded and it restarts from its beginning in the next run"
        );
    }

    fn conform(&self, schema: &SchemaRef, batch: RecordBatch) -> Result<RecordBatch> {
        // `discard_columns` writes fewer columns than the source gives: keep the table's.
        let batch = if batch.num_columns() > schema.fields().len()
            && self.core.options.schema_evolution == SchemaEvolution::DiscardColumns
        {
            let indices: Option<Vec<usize>> = schema
                .fields()
                .iter()
                .map(|f| batch.schema().index_of(f.name()).ok())
                .collect();
            match indices {
                Some(i) => batch.project(&i).map_err(|e| Error::SchemaMismatch {
                    stream: self.plan.stream.name.clone(),
                    partition: self.partition.id.clone(),
                    detail: e.to_string(),
                })?,
                None => batch,
            }
        } else {
            batch
        };
        if let Some(detail) = schema_difference(schema, &batch) {
            return Err(Error::SchemaMismatch {
                stream: self.plan.stream.name.clone(),
                partition: self.partition.id.clone(),
                detail,
            });
        }
        // Same fields; adopt the stream's schema (metadata) so every file is identical.
        RecordBatch::try_new(schema.clone(), batch.columns().to_vec()).map_err(|e| {
            Error::SchemaMismatch {
                stream: self.plan.stream.name.clone(),
                partition: self.partition.id.clone(),
                detail: e.to_string(),
            }
        })
    }

    /// Write `batch` into the partition's current file (a new one when there is none).
    ///
    /// While fewer partitions are being read than the process has cores, the batch is
    /// encoded on a blocking thread as the partition reads the next one: decoding a source
    /// and encoding Parquet are both CPU work, so a partition alone on a runner, or the
    /// last ones of a run, use an otherwise idle core (one JSON Lines object read alone on
    /// 2 cores: 4.5 s → 3.1 s). Not a task on the runtime: one spawned from a worker goes
    /// to that worker's LIFO slot, which other workers never steal, so it would wait for
    /// the decoding it is meant to overlap. At most one batch is being encoded: this waits
    /// for the previous one first.
    async fn write(&mut self, schema: &SchemaRef, batch: RecordBatch) -> Result<()> {
        self.encoded().await?;
        if let Some(writer) = &self.writer
            && writer.estimated_size() >= self.core.options.parquet.target_file_bytes
        {
            self.finish_file().await?;
        }
        if self.writer.is_none() {
            let key = self.file_key();
            self.upload = Some(tracing::info_span!(
                "upload",
                run_id = %self.plan.run_id,
                key = %key,
                rows = tracing::field::Empty,
                bytes = tracing::field::Empty,
            ));
            let props = self
                .props
                .get_or_insert_with(|| match self.core.options.parquet.dictionary {
                    Dictionary::Auto => adapt_dictionary(&self.core.props, &batch),
                    Dictionary::Always | Dictionary::Never => self.core.props.clone(),
                })
                .clone();
            self.stats = Some(StatsCollector::new(schema, &props)?);
            self.writer = Some(ParquetObjectWriter::new(
                self.core.store.clone(),
                self.core.options.output.bucket.clone(),
                key,
                schema.clone(),
                props,
                self.core.limits.clone(),
            )?);
        }
        let rows = batch.num_rows() as u64;
        let span = self.upload.clone().unwrap_or_else(tracing::Span::none);
        if !self.core.cores.spare() {
            // Every core has a partition to read: encode here, while the batch is still in
            // this core's cache (handing it to another core cost ~9 % more CPU when all
            // were busy, measured on the s3-files benchmark).
            let writer = self
                .writer
                .as_mut()
                .ok_or_else(|| Error::internal("no writer"))?;
            writer.encode(&batch)?;
            if let Some(stats) = self.stats.as_mut() {
                stats.add(&batch)?;
            }
            writer.upload_encoded().instrument(span).await?;
            self.core.progress.add_rows(rows);
            return Ok(());
        }
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| Error::internal("no writer"))?;
        let mut stats = self.stats.take();
        self.encoding = Some(tokio::task::spawn_blocking(move || {
            let result = span
                .in_scope(|| writer.encode(&batch))
                .and_then(|()| stats.as_mut().map_or(Ok(()), |stats| stats.add(&batch)));
            EncodedBatch {
                writer,
                stats,
                result,
            }
        }));
        self.core.progress.add_rows(rows);
        Ok(())
    }

    /// Wait for the batch being encoded (if any), take the file's writer and statistics
    /// back and upload what the encoding produced. On an error the writer is back too
    /// (to be aborted).
    async fn encoded(&mut self) -> Result<()> {
        let Some(task) = self.encoding.take() else {
            return Ok(());
        };
        let encoded = task.await.map_err(|e| {
            Error::internal_caused(format!("encoding a batch into Parquet failed: {e}"), e)
        })?;
        let writer = self.writer.insert(encoded.writer);
        self.stats = encoded.stats;
        encoded.result?;
        let span = self.upload.clone().unwrap_or_else(tracing::Span::none);
        writer.upload_encoded().instrument(span).await
    }

    async fn finish_file(&mut self) -> Result<()> {
        self.encoded().await?;
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let stats = self.stats.take();
        let span = self.upload.take().unwrap_or_else(tracing::Span::none);
        if writer.rows() == 0 {
            writer.abort().await;
            return Ok(());
        }
        let key = writer.key().to_string();
        let written = writer.finish().instrument(span.clone()).await?;
        let (rows, bytes) = (written.rows, written.bytes);
        span.record("rows", rows).record("bytes", bytes);
        self.core.progress.add_file(bytes);
        tracing::debug!(%key, rows, bytes, "file written");
        self.files.push(DataFile {
            key,
            partition: self.partition.id.clone(),
            rows,
            bytes,
            stats: stats.map(|s| s.finish(&written.row_groups)).transpose()?,
        });
        self.seq += 1;
        Ok(())
    }

    fn file_key(&self) -> String {
        let mut rel = String::new();
        for (k, v) in &self.partition.hive {
            rel.push_str(&format!("{k}={v}/"));
        }
        // The last `-` segment is digits only (what gc recognises); an attempt is a fixed
        // width prefix of it.
        let seq = match self.core.attempt {
            Some(attempt) => format!("{attempt:010}{:05}", self.seq),
            None => format!("{:05}", self.seq),
        };
        rel.push_str(&format!(
            "part-{}-{}-{seq}.parquet",
            self.plan.run_id, self.partition.id
        ));
        self.core
            .options
            .output
            .key(&format!("{}/{}", self.plan.stream.name, rel))
    }
}

/// `None` if `batch` has the fields of `schema` (names, types, nullability).
pub fn schema_difference(schema: &SchemaRef, batch: &RecordBatch) -> Option<String> {
    let expected = schema.fields();
    let actual = batch.schema_ref().fields();
    if expected.len() != actual.len() {
        return Some(format!(
            "expected {} columns, got {}",
            expected.len(),
            actual.len()
        ));
    }
    for (e, a) in expected.iter().zip(actual.iter()) {
        if e.name() != a.name() {
            return Some(format!(
                "expected column `{}`, got `{}`",
                e.name(),
                a.name()
            ));
        }
        if e.data_type() != a.data_type() {
            return Some(format!(
                "column `{}`: expected {}, got {}",
                e.name(),
                e.data_type(),
                a.data_type()
            ));
        }
        if !e.is_nullable() && a.is_nullable() && a_has_nulls(batch, e.name()) {
            return Some(format!(
                "column `{}` is declared non-nullable but has nulls",
                e.name()
            ));
        }
    }
    None
}

fn a_has_nulls(batch: &RecordBatch, name: &str) -> bool {
    batch
        .column_by_name(name)
        .is_some_and(|c| c.null_count() > 0)
}

/// Why `stream` cannot be merged by key, if it cannot: no `primary_key`, a key column the
/// schema lacks, or a nullable one.
fn merge_key_problem(stream: &StreamDescriptor) -> Option<String> {
    if stream.primary_key.is_empty() {
        return Some(
            "write_disposition = merge needs the stream's primary_key, and it declares none; declare the key columns in discover, or use append or replace".into(),
        );
    }
    for name in &stream.primary_key {
        match stream.schema.field_with_name(name) {
            Err(_) => {
                return Some(format!(
                    "primary_key column `{name}` is not a column of the stream; merge needs every key column (columns: {})",
                    stream
                        .schema
                        .fields()
                        .iter()
                        .map(|f| f.name().as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            Ok(f) if f.is_nullable() => {
                return Some(format!(
                    "primary_key column `{name}` is nullable; merge needs non-null keys (declare the column NOT NULL at the source and in the stream schema), or use append or replace"
                ));
            }
            Ok(_) => {}
        }
    }
    None
}

fn validate_partitions(partitions: &[Partition]) -> Result<()> {
    let mut seen = BTreeSet::new();
    for p in partitions {
        let ok = !p.id.is_empty()
            && p.id.len() <= 100
            && p.id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '=' | '-'));
        if !ok {
            return Err(Error::Connector(ConnectorError::internal(format!(
                "plan returned partition id {:?}; ids must be 1-100 characters of [A-Za-z0-9._=-]",
                p.id
            ))));
        }
        if !seen.insert(&p.id) {
            return Err(Error::Connector(ConnectorError::internal(format!(
                "plan returned partition id {:?} twice",
                p.id
            ))));
        }
        for (k, v) in &p.hive {
            let bad =
                |s: &str| s.is_empty() || s.contains(['/', '=', '\\']) || s == "." || s == "..";
            if bad(k) || v.is_empty() || v.contains(['/', '\\']) || v == "." || v == ".." {
                return Err(Error::Connector(ConnectorError::internal(format!(
                    "partition {:?} has an invalid hive segment {k:?}={v:?}; keys and values must be non-empty and contain no '/'",
                    p.id
                ))));
            }
        }
    }
    Ok(())
}

/// The stored (JSON) form of a connector's cursor, checkpoint or partition spec.
fn to_stored<T: Stored>(what: &str, value: &T) -> Result<StoredValue> {
    serde_json::to_value(value).map_err(|e| {
        Error::Connector(ConnectorError::internal(format!(
            "the {what} {value:?} does not serialize to JSON ({e}); a {what} type must serialize to JSON (maps need string keys)"
        )).with_source(e))
    })
}

/// A connector's cursor, checkpoint or partition spec from its stored (JSON) form.
fn from_stored<T: Stored>(stream: &str, what: &'static str, value: &StoredValue) -> Result<T> {
    T::deserialize(value).map_err(|source| {
        let mut shown = value.to_string();
        if shown.len() > 200 {
            shown.truncate(shown.floor_char_boundary(200));
            shown.push('…');
        }
        Error::StoredStateMismatch {
            stream: stream.to_string(),
            what,
            value: shown,
            source,
        }
    })
}

/// A new run id: UTC time plus randomness, sortable, file-name safe.
fn new_run_id() -> String {
    format!(
        "{}{:08x}",
        Utc::now().format("%Y%m%dT%H%M%SZ"),
        rand::random::<u32>()
    )
}

/// The governance checks every run passes before any I/O: the runner (when `runner` names
/// one; `cli` is a developer's machine) must be allowed for the connector's data
/// classification by the policy (`options.governance_policy`, or the embedded one), and
/// every source endpoint the config resolves to must be declared by the manifest and
/// allowed by the deployment (`options.allowed_endpoints`).
pub fn require_governed<C: Connector>(
    connector: &C,
    config: &C::Config,
    manifest: &ConnectorManifest,
    options: &ExtractOptions,
    runner: &str,
) -> Result<()> {
    if let Some(runner) = crate::manifest::Runner::ALL
        .into_iter()
        .find(|r| r.as_str() == runner)
    {
        let policy = match &options.governance_policy {
            Some(path) => crate::governance::GovernancePolicy::from_file(path)?,
            None => crate::governance::GovernancePolicy::embedded(),
        };
        policy.require_runner_allowed(manifest, runner)?;
    }
    let allowed = options
        .allowed_endpoints
        .iter()
        .map(|e| e.parse())
        .collect::<Result<Vec<crate::governance::Endpoint>>>()?;
    crate::governance::require_declared_endpoints(
        manifest,
        &connector.source_endpoints(config),
        &allowed,
    )
}

/// Parse a connector config from JSON text, with a one-line error. Values from the input
/// are not echoed (they may be secrets).
pub fn parse_config<C: Connector>(text: &str) -> Result<C::Config> {
    serde_json::from_str(text).map_err(|e| Error::config(redact_serde_message(&e.to_string())))
}

/// Parse a connector config from a JSON value.
///
/// The parser's error is not kept as the error's source: its message quotes input
/// values, and a misplaced secret must never be echoed.
pub fn config_from_value<C: Connector>(value: serde_json::Value) -> Result<C::Config> {
    serde_json::from_value(value).map_err(|e| Error::config(redact_serde_message(&e.to_string())))
}

/// Read a connector config file: JSON, or TOML when the name ends in `.toml`. Errors name
/// the file and never echo values.
pub fn config_from_file<C: Connector>(path: &std::path::Path) -> Result<C::Config> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::config_caused(
            format!("cannot read config file {}: {e}", path.display()),
            e,
        )
    })?;
    let value: serde_json::Value = if path.extension().is_some_and(|x| x == "toml") {
        let v: toml::Value = toml::from_str(&text).map_err(|e| {
            Error::config(format!(
                "{}: {}",
                path.display(),
                crate::one_line(e.message())
            ))
        })?;
        serde_json::to_value(v).map_err(|e| Error::config(e.to_string()))?
    } else {
        serde_json::from_str(&text).map_err(|e| {
            Error::config(format!(
                "{} is not valid JSON: {} (expected a JSON object of the connector's config; see `spec`)",
                path.display(),
                redact_serde_message(&e.to_string())
            ))
        })?
    };
    config_from_value::<C>(value).map_err(|e| match e {
        Error::Config { message, source } => Error::Config {
            message: format!("{}: {message}", path.display()),
            source,
        },
        other => other,
    })
}

/// serde's "invalid type: string \"hunter2\", expected u16" quotes the input value;
/// replace quoted values so a misplaced secret is never echoed.
/// A serde error message with any quoted input string replaced by `(value hidden)`: the
/// value may be a secret in the wrong place.
pub fn redact_serde_message(msg: &str) -> String {
    let msg = crate::one_line(msg);
    for marker in ["invalid type: string ", "invalid value: string "] {
        if let Some(start) = msg.find(marker) {
            let after = &msg[start + marker.len()..];
            if let Some(rest) = after.strip_prefix('"')
                && let Some(end) = rest.find("\", ")
            {
                return format!(
                    "{}{marker}(value hidden){}",
                    &msg[..start],
                    &rest[end + 1..]
                );
            }
        }
    }
    msg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_hide_values() {
        let m = redact_serde_message(
            "invalid type: string \"hunter2\", expected u16 at line 1 column 9",
        );
        assert!(!m.contains("hunter2"), "{m}");
        assert!(m.contains("expected u16 at line 1"), "{m}");
    }

    #[test]
    fn partition_ids_are_checked() {
        let p = |id: &str| Partition {
            id: id.into(),
            hive: vec![],
            spec: serde_json::Value::Null,
        };
        assert!(validate_partitions(&[p("a-1"), p("b_2")]).is_ok());
        assert!(validate_partitions(&[p("a/1")]).is_err());
        assert!(validate_partitions(&[p("a"), p("a")]).is_err());
    }

    #[test]
    fn merge_needs_a_declared_non_null_key() {
        use arrow_schema::{DataType, Field, Schema};
        let stream = |key: &[&str]| StreamDescriptor {
            name: "s".into(),
            schema: Arc::new(Schema::new(vec![
                Field::new("id", DataType::Int64, false),
                Field::new("region", DataType::Utf8, false),
                Field::new("note", DataType::Utf8, true),
            ])),
            cursor_field: None,
            primary_key: key.iter().map(|k| k.to_string()).collect(),
            write_disposition: None,
        };
        assert_eq!(merge_key_problem(&stream(&["id"])), None);
        assert_eq!(merge_key_problem(&stream(&["region", "id"])), None);
        let none = merge_key_problem(&stream(&[])).unwrap();
        assert!(none.contains("declares none"), "{none}");
        let missing = merge_key_problem(&stream(&["id", "sku"])).unwrap();
        assert!(
            missing.contains("`sku`") && missing.contains("id, region, note"),
            "{missing}"
        );
        let nullable = merge_key_problem(&stream(&["note"])).unwrap();
        assert!(nullable.contains("`note` is nullable"), "{nullable}");
    }

    #[test]
    fn run_ids_have_the_shape_gc_recognises() {
        for _ in 0..100 {
            let id = new_run_id();
            assert!(crate::dataset::is_run_id(&id), "{id}");
        }
    }
}
