//! The commit of one run, as small typed stages (after delta-rs's commit builder):
//!
//! 1. [`merge_progress`]: the plan's progress with this run's partition results merged in;
//! 2. [`decide`]: complete or partial, the state to commit, and whether anything changed;
//! 3. `merge` only: [`ExtractCore::rewrite_for_merge`] rewrites the table's files that
//!    hold keys this run replaces;
//! 4. [`ExtractCore::build_manifest`]: the dataset manifest of the next sequence;
//! 5. [`ExtractCore::apply`]: check every file exists, write the manifest conditionally;
//! 6. [`ExtractCore::clean_up`]: a losing or refused run deletes its files;
//! 7. [`ExtractCore::report`]: the run report (stored beside the manifest).

use std::collections::HashMap;
use std::time::Instant;

use chrono::Utc;
use futures::StreamExt;

use super::{ExtractCore, PartitionResult, RunPlan};
use crate::connector::Connector;
use crate::dataset::{
    DataFile, Dataset, DatasetManifest, MANIFEST_FORMAT, PartitionProgress, PendingPlan, RunStatus,
    StreamState, Timings,
};
use crate::error::{Error, Result};
use crate::options::WriteDisposition;
use crate::report::RunReport;
use crate::table::Removal;

/// Stage 1: every partition's progress after this run, and the files it wrote.
#[derive(Debug)]
pub(super) struct MergedProgress {
    /// Every partition of the plan with its progress after this run.
    pub work: Vec<PartitionProgress>,
    /// Whether this run moved any partition (files, a checkpoint, done).
    pub changed: bool,
    /// The files this run wrote.
    pub files: Vec<DataFile>,
}

/// Merge `results` into `plan`'s progress. Results for partitions not in the plan are
/// refused.
pub(super) fn merge_progress(
    plan: &RunPlan,
    results: &[PartitionResult],
) -> Result<MergedProgress> {
    let by_id: HashMap<&str, &PartitionResult> =
        results.iter().map(|r| (r.partition.as_str(), r)).collect();
    let unknown: Vec<&str> = by_id
        .keys()
        .filter(|id| !plan.work.iter().any(|w| w.partition.id == **id))
        .copied()
        .collect();
    if !unknown.is_empty() {
        return Err(Error::request(format!(
            "results for partitions not in the plan: {}",
            unknown.join(", ")
        )));
    }
    let mut changed = false;
    let work = plan
        .work
        .iter()
        .map(|w| match by_id.get(w.partition.id.as_str()) {
            Some(r) if !w.done => {
                changed |= !r.files.is_empty() || r.done || r.checkpoint != w.checkpoint;
                PartitionProgress {
                    partition: w.partition.clone(),
                    checkpoint: r.checkpoint.clone(),
                    done: r.done,
                }
            }
            _ => w.clone(),
        })
        .collect();
    let files = results.iter().flat_map(|r| r.files.clone()).collect();
    Ok(MergedProgress {
        work,
        changed,
        files,
    })
}

/// Stage 2: what the commit records.
#[derive(Debug)]
pub(super) struct CommitDecision {
    /// Complete (every partition done) or partial.
    pub status: RunStatus,
    /// The state after this run: the new cursor, or the pending plan.
    pub state: StreamState,
    /// Whether there is anything to commit. A plan with nothing new (no files, state
    /// unchanged) commits nothing.
    pub needs_commit: bool,
    /// The files the commit adds to the table.
    pub adds: Vec<DataFile>,
    /// Whether the commit removes every file of the previous version (`replace`, complete).
    pub replace: bool,
    /// Files of the previous version the commit removes (`merge`: rewritten without the
    /// rows whose keys this run replaces; their rewrites are in `adds`).
    pub removed: Vec<String>,
}

/// Decide the status and state of `plan` after `merged`.
pub(super) fn decide(plan: &RunPlan, merged: &MergedProgress) -> CommitDecision {
    let all_done = merged.work.iter().all(|w| w.done);
    let replace = plan.disposition == WriteDisposition::Replace;
    // `replace` stages a partial plan's files; the completing commit adds all of them.
    let staged: Vec<DataFile> = plan.staged.iter().chain(&merged.files).cloned().collect();
    let (status, state) = if all_done {
        let cursor = plan
            .target_cursor
            .clone()
            .or_else(|| plan.previous_cursor.clone());
        (
            RunStatus::Complete,
            StreamState {
                cursor,
                pending: None,
            },
        )
    } else {
        (
            RunStatus::Partial,
            StreamState {
                cursor: plan.previous_cursor.clone(),
                pending: Some(PendingPlan {
                    target_cursor: plan.target_cursor.clone(),
                    partitions: merged.work.clone(),
                    staged: if replace { staged.clone() } else { Vec::new() },
                }),
            },
        )
    };
    // A complete `replace` always commits: the table becomes the source as it is now,
    // even when that is no rows.
    let needs_commit = merged.changed
        || plan.base_sequence == 0
        || (all_done && (replace || plan.resumed || state.cursor != plan.previous_cursor));
    let adds = match (replace, all_done) {
        (false, _) => merged.files.clone(),
        (true, true) => staged,
        (true, false) => Vec::new(),
    };
    CommitDecision {
        status,
        state,
        needs_commit,
        adds,
        replace: replace && all_done,
        removed: Vec::new(),
    }
}

impl<C: Connector> ExtractCore<C> {
    /// Commit the results of `plan`'s partitions: write the dataset manifest with the
    /// next sequence, conditionally. If another run committed first, this run's files are
    /// deleted and [`Error::CommitConflict`] is returned; if a file it wrote is gone
    /// (deleted under the run), nothing is committed and [`Error::DataFileMissing`] is
    /// returned.
    #[tracing::instrument(name = "commit", skip_all, fields(run_id = %plan.run_id, stream = %plan.stream.name))]
    pub async fn commit(&self, plan: &RunPlan, results: Vec<PartitionResult>) -> Result<RunReport> {
        let commit_started = Instant::now();
        let merged = merge_progress(plan, &results)?;
        let mut decision = decide(plan, &merged);
        // Files this run wrote: a run that does not commit deletes them.
        let mut written = merged.files.clone();
        if plan.disposition == WriteDisposition::Merge && decision.needs_commit {
            let rewrite = match Box::pin(self.rewrite_for_merge(plan, &merged.files)).await {
                Ok(r) => r,
                Err(e) => {
                    if matches!(e, Error::DuplicateMergeKey { .. }) {
                        // No later attempt can commit these rows as they are.
                        self.clean_up(&written).await;
                    }
                    return Err(e);
                }
            };
            tracing::info!(
                stream = %plan.stream.name,
                files_rewritten = rewrite.removed.len(),
                rows_replaced = rewrite.replaced_rows,
                "merge: files holding replaced keys rewritten"
            );
            written.extend(rewrite.written.iter().cloned());
            decision.adds.extend(rewrite.written);
            decision.removed = rewrite.removed;
        }
        let extract_ms = (Utc::now() - plan.started_at).num_milliseconds().max(0) as u64;
        let mut timings = Timings {
            plan_ms: plan.plan_ms,
            extract_ms: extract_ms.saturating_sub(plan.plan_ms),
            commit_ms: 0,
        };
        let dataset = self.dataset(&plan.stream.name);
        let sequence = plan.base_sequence + 1;
        let committed = if decision.needs_commit {
            let manifest = self.build_manifest(plan, &decision, &merged, sequence, &timings);
            tracing::info!(stream = %plan.stream.name, sequence, files = merged.files.len(), "committing");
            if let Err(e) = self.apply(&dataset, plan, &manifest, &decision).await {
                if matches!(
                    e,
                    Error::CommitConflict { .. } | Error::DataFileMissing { .. }
                ) {
                    self.clean_up(&written).await;
                }
                return Err(e);
            }
            true
        } else {
            false
        };
        timings.commit_ms = commit_started.elapsed().as_millis() as u64;
        let report = self.report(
            plan,
            &decision,
            &merged,
            committed.then_some(sequence),
            timings,
        );
        if committed && let Err(e) = dataset.put_report(sequence, &report).await {
            tracing::warn!(error = %e, "the run committed, but its report could not be stored");
        }
        tracing::info!(
            stream = %report.stream,
            status = ?report.status,
            sequence = ?report.sequence,
            rows = report.rows,
            files = report.files,
            "committed"
        );
        Ok(report)
    }

    /// Stage 4: the manifest of `sequence`.
    fn build_manifest(
        &self,
        plan: &RunPlan,
        decision: &CommitDecision,
        merged: &MergedProgress,
        sequence: u64,
        timings: &Timings,
    ) -> DatasetManifest {
        DatasetManifest {
            format: MANIFEST_FORMAT,
            sequence,
            run_id: plan.run_id.clone(),
            stream: plan.stream.name.clone(),
            connector: self.manifest.name.clone(),
            connector_version: self.manifest.version.clone(),
            runner: self.runner.clone(),
            status: decision.status,
            started_at: plan.started_at,
            committed_at: Utc::now(),
            timings: timings.clone(),
            schema: plan.stream.schema.as_ref().clone(),
            rows: merged.files.iter().map(|f| f.rows).sum(),
            bytes: merged.files.iter().map(|f| f.bytes).sum(),
            files: decision.adds.clone(),
            state: decision.state.clone(),
            replaced_table: decision.replace,
            removed_files: decision.removed.clone(),
        }
    }

    /// Stage 5: check that every file exists as written, then commit to the table
    /// conditionally.
    async fn apply(
        &self,
        dataset: &Dataset,
        plan: &RunPlan,
        manifest: &DatasetManifest,
        decision: &CommitDecision,
    ) -> Result<()> {
        // Staged files too: a `replace` plan's earlier files must still be there.
        self.verify_files(&plan.run_id, &decision.adds).await?;
        // Boxed: the table commit's future is deep, and every runner's future holds it.
        let removal = if decision.replace {
            Removal::All
        } else if decision.removed.is_empty() {
            Removal::Nothing
        } else {
            Removal::Files(&decision.removed)
        };
        Box::pin(dataset.commit(manifest, &decision.adds, removal, &plan.hive_keys())).await
    }

    /// Check that every file this run is about to commit exists with the size it was
    /// written with (HEAD, in parallel). A file deleted under the run (`gc` with too short
    /// a grace, a lifecycle rule) must fail the commit: committing it would record rows
    /// that are gone, and advance the cursor past them.
    async fn verify_files(&self, run_id: &str, files: &[DataFile]) -> Result<()> {
        // Owned values in each check: a future that borrows from the closure's argument
        // is not `Send` for every lifetime, which a spawned run needs.
        let checks = files.iter().cloned().map(|f| {
            let (store, bucket) = (self.store.clone(), self.options.output.bucket.clone());
            let run_id = run_id.to_string();
            async move {
                let problem = match store.head(&bucket, &f.key).await? {
                    None => Some("missing".to_string()),
                    Some(n) if n != f.bytes => {
                        Some(format!("{n} bytes instead of the {} written", f.bytes))
                    }
                    Some(_) => None,
                };
                Ok::<_, Error>(problem.map(|problem| Error::DataFileMissing {
                    bucket,
                    key: f.key,
                    run_id,
                    problem,
                }))
            }
        });
        let mut checks = futures::stream::iter(checks).buffer_unordered(16);
        while let Some(checked) = checks.next().await {
            if let Some(missing) = checked? {
                return Err(missing);
            }
        }
        Ok(())
    }

    /// Stage 6: a run that did not commit deletes its files (garbage collection removes
    /// whatever a failure here leaves).
    pub(super) async fn clean_up(&self, files: &[DataFile]) {
        for f in files {
            if let Err(e) = self.store.delete(&self.options.output.bucket, &f.key).await {
                tracing::warn!(key = %f.key, error = %e, "could not delete a file of a run that did not commit; gc will");
            }
        }
    }

    /// Stage 7: the run report.
    fn report(
        &self,
        plan: &RunPlan,
        decision: &CommitDecision,
        merged: &MergedProgress,
        sequence: Option<u64>,
        timings: Timings,
    ) -> RunReport {
        let dataset = self.dataset(&plan.stream.name);
        let bucket = &self.options.output.bucket;
        let finished_at = Utc::now();
        RunReport {
            connector: self.manifest.name.clone(),
            connector_version: self.manifest.version.clone(),
            stream: plan.stream.name.clone(),
            run_id: plan.run_id.clone(),
            runner: self.runner.clone(),
            status: decision.status,
            sequence,
            dataset: format!("s3://{bucket}/{}", dataset.key("").trim_end_matches('/')),
            manifest: sequence.map(|s| format!("s3://{bucket}/{}", dataset.manifest_key(s))),
            rows: merged.files.iter().map(|f| f.rows).sum(),
            bytes: merged.files.iter().map(|f| f.bytes).sum(),
            files: merged.files.len() as u64,
            partitions: merged.work.len() as u64,
            partitions_done: merged.work.iter().filter(|w| w.done).count() as u64,
            duration_ms: (finished_at - plan.started_at).num_milliseconds().max(0) as u64,
            timings,
            s3_requests: self.store.requests(),
            s3_retries: self.store.retries(),
            cursor: decision.state.cursor.clone(),
            cursor_lag_secs: decision.state.cursor.as_ref().and_then(|c| {
                let cursor: C::Cursor = serde_json::from_value(c.clone()).ok()?;
                let at = self.connector().cursor_time(&cursor)?;
                Some((finished_at - at).num_milliseconds() as f64 / 1000.0)
            }),
            started_at: plan.started_at,
            finished_at,
            intermediate_commits: 0,
            runtime: self.runtime.as_ref().clone(),
        }
    }
}
