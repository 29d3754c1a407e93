//! The daemon loop: schedule, run, notify, reload, stop.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use connector_sdk::{
    CancellationToken, Connector, ConnectorManifest, Error as SdkError, ExtractCore, Progress,
    RunStatus, Runner, S3Store, StopSignal, config_from_value,
};
use runner_layer::{LogOnly, StreamOutcome};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::task::{Id, JoinError, JoinSet};
use tracing::Instrument;

use crate::config::{Job, LoadedConfig};
use crate::error::{Error, Result};
use crate::notify::Notifier;
use crate::schedule::{LastRun, Outcome};
use crate::state::StateStore;
use crate::{EXIT_ABORTED, EXIT_OK, default_config_path};

/// The runner label recorded in manifests and run reports.
const RUNNER: &str = "ec2";
/// Re-evaluate the schedule at least this often (clock changes, suspend).
const MAX_SLEEP: Duration = Duration::from_secs(30);

type Core<C> = ExtractCore<C>;

/// A job in the schedule.
#[derive(Debug)]
struct JobSlot {
    job: Job,
    last: Option<LastRun>,
    next_due: DateTime<Utc>,
}

/// A job that is running.
struct Running<C: Connector> {
    name: String,
    core: Core<C>,
    started_at: DateTime<Utc>,
    snapshot: (u64, u64, u64, u64),
    last_change: Instant,
}

/// What a job run ended with.
#[derive(Debug)]
struct JobResult {
    outcome: Outcome,
    summary: String,
}

struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(Error::Signals)?,
            int: signal(SignalKind::interrupt()).map_err(Error::Signals)?,
            hup: signal(SignalKind::hangup()).map_err(Error::Signals)?,
        })
    }
}

enum Event {
    Wake,
    Finished(std::result::Result<(Id, JobResult), JoinError>),
    WatchdogTick,
    Reload,
    Stop,
}

/// A started daemon: config validated, signal handlers installed, nothing run yet.
pub struct Daemon<C: Connector> {
    connector: Arc<C>,
    manifest: Arc<ConnectorManifest>,
    config: LoadedConfig,
    store: S3Store,
    state: StateStore,
    jobs: BTreeMap<String, JobSlot>,
    running: HashMap<Id, Running<C>>,
    tasks: JoinSet<JobResult>,
    shutdown: CancellationToken,
    signals: Signals,
    notifier: Notifier,
    last_summary: Option<String>,
    note: Option<String>,
    stuck: Option<String>,
}

impl<C: Connector> std::fmt::Debug for Daemon<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("connector", &self.manifest.name)
            .field("config", &self.config.path)
            .field("jobs", &self.jobs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// Validate everything and get ready to run, without sending anything to systemd:
/// the manifest must declare the `ec2` runner, the config (`config_path`, default
/// `/etc/<connector>/daemon.toml`) must be valid, the state directory writable.
pub async fn start<C: Connector>(connector: C, config_path: Option<&Path>) -> Result<Daemon<C>> {
    let manifest = ConnectorManifest::of::<C>()?;
    manifest.require_runner(Runner::Ec2)?;
    let path = config_path
        .map(Path::to_path_buf)
        .unwrap_or_else(|| default_config_path(&manifest.name));
    let config = LoadedConfig::load::<C>(&path, &manifest)?;
    let state = StateStore::new(config.state_directory.clone());
    state.check()?;
    // Before READY: a SIGHUP right after READY must reload, not kill the process.
    let signals = Signals::install()?;
    let store = S3Store::connect(&config.s3).await;
    let now = Utc::now();
    let jobs = config
        .jobs
        .iter()
        .map(|job| {
            let last = state.load(&job.name);
            let next_due = job.schedule.due_on_start(last.as_ref(), now);
            (
                job.name.clone(),
                JobSlot {
                    job: job.clone(),
                    last,
                    next_due,
                },
            )
        })
        .collect();
    Ok(Daemon {
        connector: Arc::new(connector),
        manifest,
        config,
        store,
        state,
        jobs,
        running: HashMap::new(),
        tasks: JoinSet::new(),
        shutdown: CancellationToken::new(),
        signals,
        notifier: Notifier,
        last_summary: None,
        note: None,
        stuck: None,
    })
}

fn snapshot(p: &Progress) -> (u64, u64, u64, u64) {
    (p.rows(), p.bytes(), p.files(), p.partitions_done())
}

fn hms(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

impl<C: Connector> Daemon<C> {
    /// The validated config.
    pub fn config(&self) -> &LoadedConfig {
        &self.config
    }

    /// Send `READY=1` and run until SIGTERM/SIGINT; returns the exit code.
    pub async fn run(mut self) -> u8 {
        tracing::info!(
            connector = %self.manifest.name,
            config = %self.config.path.display(),
            jobs = self.jobs.len(),
            max_concurrent_jobs = self.config.max_concurrent_jobs,
            state_directory = %self.state.dir().map(|d| d.display().to_string()).unwrap_or_else(|| "-".into()),
            "daemon ready"
        );
        for slot in self.jobs.values() {
            tracing::info!(job = %slot.job.name, schedule = %slot.job.schedule, output = %slot.job.options.output, next_due = %hms(slot.next_due), "job scheduled");
        }
        self.notifier.ready(&self.status_line());
        let watchdog = self.notifier.watchdog_timeout();
        let mut ticker = tokio::time::interval(
            watchdog
                .map(|d| d / 2)
                .unwrap_or(Duration::from_secs(3600))
                .max(Duration::from_millis(10)),
        );
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        if let Some(w) = watchdog {
            tracing::info!(
                timeout_ms = w.as_millis() as u64,
                "watchdog enabled; pinging every half timeout"
            );
        }
        loop {
            self.start_due_jobs();
            let wake = self.next_wake();
            let has_tasks = !self.tasks.is_empty();
            let event = tokio::select! {
                _ = tokio::time::sleep(wake) => Event::Wake,
                Some(j) = self.tasks.join_next_with_id(), if has_tasks => Event::Finished(j),
                _ = ticker.tick(), if watchdog.is_some() => Event::WatchdogTick,
                _ = self.signals.hup.recv() => Event::Reload,
                _ = self.signals.term.recv() => Event::Stop,
                _ = self.signals.int.recv() => Event::Stop,
            };
            match event {
                Event::Wake => {}
                Event::Finished(j) => self.finish_job(j),
                Event::WatchdogTick => {
                    if self.healthy() {
                        self.notifier.watchdog();
                    }
                }
                Event::Reload => self.reload().await,
                Event::Stop => break,
            }
        }
        self.stop(watchdog.is_some(), ticker).await
    }

    fn status_line(&self) -> String {
        let mut parts = Vec::new();
        if let Some(s) = &self.stuck {
            parts.push(format!("STUCK: {s}"));
        }
        let running: Vec<&str> = self.running.values().map(|r| r.name.as_str()).collect();
        if running.is_empty() {
            parts.push(format!("{} job(s), none running", self.jobs.len()));
        } else {
            parts.push(format!(
                "{} job(s), running: {}",
                self.jobs.len(),
                running.join(",")
            ));
        }
        parts.push(format!(
            "last: {}",
            self.last_summary.as_deref().unwrap_or("none yet")
        ));
        if let Some(slot) = self
            .jobs
            .values()
            .filter(|s| !running.contains(&s.job.name.as_str()))
            .min_by_key(|s| s.next_due)
        {
            parts.push(format!("next: {} at {}", slot.job.name, hms(slot.next_due)));
        }
        if let Some(n) = &self.note {
            parts.push(n.clone());
        }
        parts.join("; ")
    }

    fn is_running(&self, name: &str) -> bool {
        self.running.values().any(|r| r.name == name)
    }

    fn next_wake(&self) -> Duration {
        if self.running.len() >= self.config.max_concurrent_jobs {
            return MAX_SLEEP;
        }
        let now = Utc::now();
        self.jobs
            .values()
            .filter(|s| !self.is_running(&s.job.name))
            .map(|s| (s.next_due - now).to_std().unwrap_or(Duration::ZERO))
            .min()
            .unwrap_or(MAX_SLEEP)
            .min(MAX_SLEEP)
    }

    fn start_due_jobs(&mut self) {
        let now = Utc::now();
        let mut due: Vec<(DateTime<Utc>, String)> = self
            .jobs
            .values()
            .filter(|s| s.next_due <= now && !self.is_running(&s.job.name))
            .map(|s| (s.next_due, s.job.name.clone()))
            .collect();
        due.sort();
        let mut changed = false;
        for (_, name) in due {
            if self.running.len() >= self.config.max_concurrent_jobs {
                break;
            }
            self.start_job(&name);
            changed = true;
        }
        if changed {
            self.notifier.status(&self.status_line());
        }
    }

    fn start_job(&mut self, name: &str) {
        let Some(job) = self.jobs.get(name).map(|s| s.job.clone()) else {
            return;
        };
        let started_at = Utc::now();
        let core = config_from_value::<C>(job.connector_config.clone()).and_then(|config| {
            ExtractCore::with_shared(
                self.connector.clone(),
                config,
                self.store.clone(),
                job.options.clone(),
                RUNNER,
            )
        });
        let core = match core {
            Ok(core) => core,
            Err(e) => {
                // Validated at load time; only reachable if the connector changed its mind.
                tracing::error!(job = name, error = %e, "job cannot start");
                let last = LastRun {
                    started_at,
                    finished_at: Some(started_at),
                    outcome: Some(Outcome::Failed),
                    summary: format!("failed to start: {}", e.class()),
                };
                self.save_state(name, &last);
                if let Some(slot) = self.jobs.get_mut(name) {
                    slot.next_due = job.schedule.due_after_run(started_at, started_at);
                    slot.last = Some(last);
                }
                return;
            }
        };
        let record = LastRun {
            started_at,
            finished_at: None,
            outcome: None,
            summary: "running".into(),
        };
        self.save_state(name, &record);
        tracing::info!(job = name, output = %job.options.output, "job started");
        let stop = StopSignal {
            cancel: self.shutdown.child_token(),
            deadline: job.settings.deadline(std::time::Instant::now()),
        };
        let handle = self.tasks.spawn(run_job(
            name.to_string(),
            core.clone(),
            job.streams.clone(),
            stop,
        ));
        let snap = snapshot(&core.progress());
        self.running.insert(
            handle.id(),
            Running {
                name: name.to_string(),
                core,
                started_at,
                snapshot: snap,
                last_change: Instant::now(),
            },
        );
    }

    fn save_state(&self, name: &str, run: &LastRun) {
        if let Err(e) = self.state.save(name, run) {
            tracing::warn!(job = name, error = %e, "cannot record the last run; after a restart the job may run early");
        }
    }

    fn finish_job(&mut self, joined: std::result::Result<(Id, JobResult), JoinError>) {
        let (id, result) = match joined {
            Ok((id, r)) => (id, r),
            Err(e) => (
                e.id(),
                JobResult {
                    outcome: Outcome::Failed,
                    summary: format!("job task failed: {e}"),
                },
            ),
        };
        let Some(run) = self.running.remove(&id) else {
            return;
        };
        let finished_at = Utc::now();
        let last = LastRun {
            started_at: run.started_at,
            finished_at: Some(finished_at),
            outcome: Some(result.outcome),
            summary: result.summary.clone(),
        };
        self.save_state(&run.name, &last);
        if let Some(slot) = self.jobs.get_mut(&run.name) {
            slot.next_due = slot.job.schedule.due_after_run(run.started_at, finished_at);
            slot.last = Some(last);
            tracing::info!(job = %run.name, outcome = %result.outcome, next_due = %hms(slot.next_due), "job finished: {}", result.summary);
        } else {
            tracing::info!(job = %run.name, outcome = %result.outcome, "job finished (removed from the config by a reload): {}", result.summary);
        }
        self.last_summary = Some(format!(
            "{} {} at {} ({})",
            run.name,
            result.outcome,
            hms(finished_at),
            result.summary
        ));
        if self.stuck.is_some() && !self.running.values().any(|r| self.is_stalled(r)) {
            self.stuck = None;
        }
        self.notifier.status(&self.status_line());
    }

    fn is_stalled(&self, r: &Running<C>) -> bool {
        r.last_change.elapsed() > self.config.stall_timeout
    }

    /// Update the progress snapshots; healthy unless a running job made no progress for
    /// longer than `stall_timeout`.
    fn healthy(&mut self) -> bool {
        let now = Instant::now();
        for r in self.running.values_mut() {
            let snap = snapshot(&r.core.progress());
            if snap != r.snapshot {
                r.snapshot = snap;
                r.last_change = now;
            }
        }
        let stalled: Vec<String> = self
            .running
            .values()
            .filter(|r| self.is_stalled(r))
            .map(|r| r.name.clone())
            .collect();
        if stalled.is_empty() {
            if self.stuck.take().is_some() {
                tracing::info!("no job is stuck any more; watchdog pings resume");
                self.notifier.status(&self.status_line());
            }
            return true;
        }
        if self.stuck.is_none() {
            let what = format!(
                "job(s) {} made no progress for more than {}",
                stalled.join(","),
                humantime::format_duration(self.config.stall_timeout)
            );
            tracing::error!("{what}; stopping watchdog pings so systemd restarts the service");
            self.stuck = Some(what);
            self.notifier.status(&self.status_line());
        }
        false
    }

    async fn reload(&mut self) {
        self.notifier.reloading();
        tracing::info!(config = %self.config.path.display(), "SIGHUP: reloading the config");
        let loaded = LoadedConfig::load::<C>(&self.config.path, &self.manifest).and_then(|c| {
            let state = StateStore::new(c.state_directory.clone());
            state.check()?;
            Ok((c, state))
        });
        match loaded {
            Err(e) => {
                let line = connector_sdk::one_line(&e.to_string());
                tracing::error!("config reload rejected, keeping the running config: {line}");
                self.note = Some(format!("reload rejected at {}", hms(Utc::now())));
            }
            Ok((new, state)) => {
                if new.s3 != self.config.s3 {
                    self.store = S3Store::connect(&new.s3).await;
                }
                let now = Utc::now();
                let mut old = std::mem::take(&mut self.jobs);
                let (mut added, mut changed) = (Vec::new(), Vec::new());
                for job in &new.jobs {
                    let prev = old.remove(&job.name);
                    let slot = match prev {
                        Some(p) if p.job == *job => p,
                        Some(p) => {
                            changed.push(job.name.clone());
                            let next_due = if p.job.schedule == job.schedule {
                                p.next_due
                            } else {
                                job.schedule.due_on_start(p.last.as_ref(), now)
                            };
                            JobSlot {
                                job: job.clone(),
                                last: p.last,
                                next_due,
                            }
                        }
                        None => {
                            added.push(job.name.clone());
                            let last = state.load(&job.name);
                            JobSlot {
                                next_due: job.schedule.due_on_start(last.as_ref(), now),
                                job: job.clone(),
                                last,
                            }
                        }
                    };
                    self.jobs.insert(job.name.clone(), slot);
                }
                let removed: Vec<String> = old.into_keys().collect();
                tracing::info!(
                    jobs = self.jobs.len(),
                    added = %added.join(","),
                    changed = %changed.join(","),
                    removed = %removed.join(","),
                    "config reloaded (running jobs finish with the settings they started with)"
                );
                self.config = new;
                self.state = state;
                self.note = None;
            }
        }
        self.notifier.ready(&self.status_line());
    }

    async fn stop(mut self, watchdog: bool, mut ticker: tokio::time::Interval) -> u8 {
        let n = self.running.len();
        tracing::info!(
            running = n,
            "stop requested: running jobs stop at the next checkpoint and commit (signal again to abort)"
        );
        self.notifier.stopping(&format!(
            "stopping: {n} running job(s) stop at the next checkpoint and commit"
        ));
        self.shutdown.cancel();
        loop {
            let has_tasks = !self.tasks.is_empty();
            if !has_tasks {
                break;
            }
            tokio::select! {
                Some(j) = self.tasks.join_next_with_id() => self.finish_job(j),
                _ = ticker.tick(), if watchdog => self.notifier.watchdog(),
                _ = self.signals.term.recv() => return self.abort().await,
                _ = self.signals.int.recv() => return self.abort().await,
            }
        }
        tracing::info!("stopped");
        EXIT_OK
    }

    async fn abort(mut self) -> u8 {
        let mut aborted = 0;
        for r in self.running.values() {
            aborted += r.core.abort_open_uploads().await;
        }
        self.tasks.abort_all();
        tracing::error!(
            aborted_uploads = aborted,
            "second stop signal: aborted; uncommitted progress of running jobs is lost (committed state is intact)"
        );
        EXIT_ABORTED
    }
}

/// Run every stream of one job through the shared run loop; summarise the outcome for
/// the job's STATUS line and last-run record.
async fn run_job<C: Connector>(
    name: String,
    core: Core<C>,
    streams: Vec<String>,
    stop: StopSignal,
) -> JobResult {
    let span = tracing::info_span!("job", job = %name);
    // A daemon job is never aborted by the loop: the daemon's own shutdown aborts it.
    let never = CancellationToken::new();
    let outcome = runner_layer::run_streams(&core, &streams, &stop, &never, &mut LogOnly)
        .instrument(span)
        .await;
    if let Some(e) = &outcome.listing_failed {
        return JobResult {
            outcome: Outcome::Failed,
            summary: format!("listing streams failed: {}", e.class()),
        };
    }
    let mut result = Outcome::Complete;
    let mut parts = Vec::new();
    let worse = |a: Outcome, b: Outcome| {
        let rank = |o: Outcome| match o {
            Outcome::Complete => 0,
            Outcome::Conflict => 1,
            Outcome::Failed => 2,
            Outcome::Partial => 3,
        };
        if rank(b) > rank(a) { b } else { a }
    };
    for (stream, o) in &outcome.streams {
        let (part, this) = match o {
            StreamOutcome::Ran(r) if r.status == RunStatus::Partial => (
                format!("{stream} partial +{} rows", r.rows),
                Outcome::Partial,
            ),
            StreamOutcome::Ran(r) => (
                format!("{stream} complete +{} rows", r.rows),
                Outcome::Complete,
            ),
            StreamOutcome::NotStarted => (format!("{stream} not started"), Outcome::Partial),
            StreamOutcome::Failed(SdkError::CommitConflict { .. }) => {
                tracing::warn!(job = %name, stream, "waiting for the next slot");
                (
                    format!("{stream} conflict (another run committed first)"),
                    Outcome::Conflict,
                )
            }
            StreamOutcome::Failed(e) => {
                (format!("{stream} failed ({})", e.class()), Outcome::Failed)
            }
        };
        parts.push(part);
        result = worse(result, this);
    }
    JobResult {
        outcome: result,
        summary: parts.join(", "),
    }
}
