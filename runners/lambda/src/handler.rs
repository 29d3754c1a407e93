//! One invocation: event -> extract request -> `ExtractCore` run with a deadline ->
//! response (or error).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use connector_sdk::{
    CancellationToken, Connector, ConnectorManifest, Error, ExtractCore, OpenUploads, RunReport,
    RunStatus, Runner, S3Options, S3Store, StopSignal, config_from_value,
};
use runner_layer::{EmitMetrics, LogOnly, StreamOutcome};
use tokio::sync::OnceCell;

use crate::error::LambdaError;
use crate::event::{
    Continuation, EVENT_REQUEST_ENV, ExtractRequest, ExtractResponse, LambdaEvent, MAX_STALLED,
    RawEvent, ResponseStatus,
};

/// The runner label recorded in manifests and reports.
pub const RUNNER: &str = "lambda";

/// Smallest and largest default safety margin.
const MIN_MARGIN: Duration = Duration::from_secs(1);
const MAX_MARGIN: Duration = Duration::from_secs(30);

/// What the runtime says about one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The Lambda request id.
    pub request_id: String,
    /// The deadline, milliseconds since the Unix epoch (`Lambda-Runtime-Deadline-Ms`).
    pub deadline_ms: u64,
}

/// The run in progress, so a shutdown signal can stop it and abort its uploads.
#[derive(Debug, Clone)]
pub struct ActiveRun {
    /// Ends the run at once: its work is dropped (it sends no further request, so no file
    /// is completed or committed after it) and its open uploads are aborted.
    pub abort: CancellationToken,
    /// Fires when the invocation's work is dropped or done and its uploads aborted.
    pub finished: CancellationToken,
    /// The run's open multipart uploads.
    pub open: Arc<OpenUploads>,
    /// The store they are open on.
    pub store: S3Store,
}

/// Shared slot holding the run in progress, if any.
pub type ActiveSlot = Arc<Mutex<Option<ActiveRun>>>;

/// How long a shutdown waits for the run to drop its work before aborting the uploads
/// itself (Lambda gives a function with an extension 500 ms after SIGTERM).
const SHUTDOWN_WAIT: Duration = Duration::from_millis(300);

/// Stop the run in progress (shutdown) and abort its open uploads. Returns how many this
/// call aborted (the run aborts those it holds itself once its work is dropped; this call
/// waits for that, up to [`SHUTDOWN_WAIT`], then aborts whatever is still open).
///
/// A graceful stop is not attempted: finishing the current file while its upload is being
/// aborted races with the abort, and the chain's next invocation resumes from the last
/// commit anyway. The run stops sending requests when its work is dropped; one already
/// sent may still land (a complete: a file no commit lists, never part of the table; a
/// commit under way: a valid commit the next invocation continues from).
pub async fn abort_active(slot: &ActiveSlot) -> usize {
    let active = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
    match active {
        Some(run) => {
            run.abort.cancel();
            // Wait for the work to be dropped, so that no complete is sent after the
            // aborts below; a run stuck in a long computation is not waited for longer.
            let _ = tokio::time::timeout(SHUTDOWN_WAIT, run.finished.cancelled()).await;
            run.open.abort_all(&run.store).await
        }
        None => 0,
    }
}

/// Handles invocations for connector `C`. Reused across the invocations of one execution
/// environment: the S3 client is built on the first invocation and kept.
pub struct LambdaHandler<C: Connector> {
    connector: Arc<C>,
    s3_options: S3Options,
    store: OnceCell<S3Store>,
    active: ActiveSlot,
}

impl<C: Connector> std::fmt::Debug for LambdaHandler<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaHandler")
            .field("s3_options", &self.s3_options)
            .finish_non_exhaustive()
    }
}

impl<C: Connector> LambdaHandler<C> {
    /// A handler writing through S3 as configured by the environment (the SDK chain).
    pub fn new(connector: C) -> Self {
        Self::with_s3_options(connector, S3Options::default())
    }

    /// A handler with explicit S3 options.
    pub fn with_s3_options(connector: C, s3_options: S3Options) -> Self {
        Self {
            connector: Arc::new(connector),
            s3_options,
            store: OnceCell::new(),
            active: Arc::default(),
        }
    }

    /// The slot holding the run in progress (for the shutdown handler).
    pub fn active(&self) -> ActiveSlot {
        self.active.clone()
    }

    async fn store(&self) -> S3Store {
        self.store
            .get_or_init(|| S3Store::connect(&self.s3_options))
            .await
            .clone()
    }

    /// Handle one invocation.
    pub async fn handle(
        &self,
        event: RawEvent,
        invocation: &Invocation,
    ) -> Result<ExtractResponse, LambdaError> {
        let result = self.checked_extract(event, invocation).await;
        match &result {
            Ok(r) => tracing::info!(
                request_id = %invocation.request_id,
                status = ?r.status,
                rows = r.rows,
                files = r.files,
                sequence = ?r.sequence,
                "invocation done"
            ),
            Err(e) => tracing::error!(
                request_id = %invocation.request_id,
                error_type = %e.error_type(),
                "{}",
                e.one_line()
            ),
        }
        result
    }

    /// Enforce the manifest (before anything is parsed or read), parse the event, extract.
    async fn checked_extract(
        &self,
        event: RawEvent,
        invocation: &Invocation,
    ) -> Result<ExtractResponse, LambdaError> {
        let manifest = ConnectorManifest::of::<C>()?;
        manifest.require_runner(Runner::Lambda)?;
        let (request, objects, event_driven) = match event.into_event()? {
            LambdaEvent::Extract(request) => (*request, None, false),
            LambdaEvent::Scheduled => (event_request()?, None, true),
            LambdaEvent::Objects(objects) => (event_request()?, Some(objects), true),
        };
        manifest.require_stream(&request.stream)?;
        let (response, resumed) = self
            .extract(request.clone(), objects.clone(), invocation)
            .await?;
        if event_driven && resumed && response.status == ResponseStatus::Complete {
            // The invocation finished a stopped run's plan, which did not include what
            // this event names (no caller continues an S3, SQS or EventBridge event):
            // plan again for it now, so the event is never acknowledged unread.
            tracing::info!(stream = %request.stream, "the pending plan is complete; now the event's own objects");
            let (again, _) = self.extract(request.clone(), objects, invocation).await?;
            return unfinished_event_fails(again, &request.stream, event_driven);
        }
        unfinished_event_fails(response, &request.stream, event_driven)
    }

    async fn extract(
        &self,
        request: ExtractRequest,
        objects: Option<Vec<(String, String)>>,
        invocation: &Invocation,
    ) -> Result<(ExtractResponse, bool), LambdaError> {
        let mut config = resolve_config::<C>(&request)?;
        if let Some(objects) = objects {
            config = match self.connector.for_objects(&config, &objects) {
                Some(restricted) => restricted.map_err(connector_sdk::Error::Connector)?,
                None => {
                    return Err(LambdaError::Event(format!(
                        "the function was invoked with an S3 object event, but connector `{}` does not ingest S3 objects; invoke it with an extract request",
                        ConnectorManifest::of::<C>()?.name
                    )));
                }
            };
        }
        if let Some(c) = &request.continuation
            && c.stream != request.stream
        {
            return Err(LambdaError::Event(format!(
                "continuation is for stream `{}`, but the event extracts `{}`",
                c.stream, request.stream
            )));
        }
        let started = Instant::now();
        let mut settings = request.options.clone().unwrap_or_default();
        function_pins(
            &mut settings,
            std::env::var("CONNECTOR_ALLOWED_ENDPOINTS").ok().as_deref(),
            std::env::var_os("CONNECTOR_GOVERNANCE_POLICY"),
        )?;
        let options = settings.resolve(request.output.clone())?;
        let deadline = stop_deadline(
            invocation.deadline_ms,
            SystemTime::now(),
            request.safety_margin_ms,
        )?;
        // The earlier of the invocation's deadline and the event's max_runtime_secs.
        let deadline = match (deadline, settings.deadline(started)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        let store = self.store().await;
        let core = ExtractCore::with_shared(
            self.connector.clone(),
            config,
            store.clone(),
            options,
            RUNNER,
        )?;
        let dataset = core.dataset(&request.stream);
        let latest = Box::pin(dataset.latest()).await?;
        let resumed = latest.as_ref().is_some_and(|m| m.state.pending.is_some());
        if let Some(c) = &request.continuation {
            let matches = latest.as_ref().is_some_and(|m| {
                m.sequence == c.sequence
                    && m.run_id == c.run_id
                    && m.status == RunStatus::Partial
                    && m.state.pending.is_some()
            });
            if !matches {
                return Err(LambdaError::ContinuationMismatch {
                    stream: request.stream.clone(),
                    expected: format!("sequence {} (run {})", c.sequence, c.run_id),
                    found: match &latest {
                        Some(m) => {
                            format!("sequence {} (run {}, {:?})", m.sequence, m.run_id, m.status)
                        }
                        None => "none (nothing committed)".into(),
                    },
                });
            }
        } else if latest.as_ref().is_some_and(|m| m.state.pending.is_some()) {
            tracing::info!(
                stream = %request.stream,
                "the stream has a pending plan from a stopped run; continuing it"
            );
        }
        let stop = StopSignal::new().with_deadline(deadline);
        let abort = CancellationToken::new();
        let finished = CancellationToken::new();
        // Fires `finished` when dropped: at the end of this call, whichever way it returns.
        let finished_on_return = finished.clone().drop_guard();
        *self.active.lock().unwrap_or_else(|e| e.into_inner()) = Some(ActiveRun {
            abort: abort.clone(),
            finished,
            open: core.open_uploads(),
            store,
        });
        let result = match &request.partition {
            None => {
                let streams = [request.stream.clone()];
                let mut outcome = runner_layer::run_streams(
                    &core,
                    &streams,
                    &stop,
                    &abort,
                    &mut EmitMetrics(LogOnly),
                )
                .await;
                if outcome.aborted.is_some() {
                    return Err(LambdaError::ShutDown {
                        stream: request.stream.clone(),
                    });
                }
                match outcome.streams.pop() {
                    Some((_, StreamOutcome::Ran(report))) => Ok(*report),
                    Some((_, StreamOutcome::Failed(e))) => Err(e),
                    Some((_, StreamOutcome::NotStarted)) => {
                        self.active.lock().unwrap_or_else(|e| e.into_inner()).take();
                        return Err(LambdaError::NotStarted {
                            stream: request.stream.clone(),
                        });
                    }
                    None => Err(Error::internal(format!(
                        "stream `{}` did not run",
                        request.stream
                    ))),
                }
            }
            Some(id) => {
                let result = tokio::select! {
                    r = run_partition(&core, &request.stream, id, &stop) => Some(r),
                    () = abort.cancelled() => None,
                };
                let Some(result) = result else {
                    core.abort_open_uploads().await;
                    return Err(LambdaError::ShutDown {
                        stream: request.stream.clone(),
                    });
                };
                match &result {
                    Ok(report) => {
                        runner_layer::log_report(report);
                        runner_layer::emf::emit(report);
                    }
                    Err(_) => {
                        core.abort_open_uploads().await;
                    }
                }
                result
            }
        };
        self.active.lock().unwrap_or_else(|e| e.into_inner()).take();
        drop(finished_on_return);
        let report = result?;
        let before = request.continuation.as_ref();
        let continuation = continuation_after(
            &report,
            latest.as_ref().map(|m| (m.sequence, m.run_id.clone())),
            before.map_or(0, |c| c.invocations) + 1,
            before.map_or(0, |c| c.stalled),
        );
        if let Some(c) = &continuation
            && c.stalled >= MAX_STALLED
        {
            return Err(LambdaError::NoProgress {
                stream: request.stream.clone(),
                invocations: c.stalled,
            });
        }
        Ok((
            ExtractResponse::from_report(&report, &invocation.request_id, continuation),
            resumed,
        ))
    }
}

/// The continuation after a partial `report`: its commit, or, if it committed nothing
/// (no progress: `stalled` counts one more), the commit it started from.
fn continuation_after(
    report: &RunReport,
    base: Option<(u64, String)>,
    invocations: u32,
    stalled_before: u32,
) -> Option<Continuation> {
    if report.status != RunStatus::Partial {
        return None;
    }
    let (sequence, run_id, stalled) = match report.sequence {
        Some(s) => (s, report.run_id.clone(), 0),
        // Nothing committed: the next invocation continues the commit this one started
        // from (its run id is that commit's).
        None => {
            let (s, run) = base?;
            (s, run, stalled_before + 1)
        }
    };
    Some(Continuation {
        stream: report.stream.clone(),
        sequence,
        run_id,
        invocations,
        stalled,
    })
}

/// Read one partition of the plan and commit it (the rest stays pending).
async fn run_partition<C: Connector>(
    core: &ExtractCore<C>,
    stream: &str,
    partition: &str,
    stop: &StopSignal,
) -> Result<RunReport, Error> {
    let plan = core.prepare(stream).await?;
    if !plan.work.iter().any(|w| w.partition.id == partition) {
        let ids: Vec<&str> = plan.work.iter().map(|w| w.partition.id.as_str()).collect();
        return Err(Error::request(format!(
            "partition `{partition}` is not in the plan of stream `{stream}`; its partitions: {}",
            if ids.is_empty() {
                "(none)".to_string()
            } else {
                ids.join(", ")
            }
        )));
    }
    let result = core.extract_partition(&plan, partition, stop).await?;
    core.commit(&plan, vec![result]).await
}

/// An AWS event's invocation that stopped before its objects were all read fails (so the
/// event is delivered again; see [`LambdaError::EventUnfinished`]); an extract request's
/// partial response is answered as it is (its caller continues it).
fn unfinished_event_fails(
    response: ExtractResponse,
    stream: &str,
    event_driven: bool,
) -> Result<ExtractResponse, LambdaError> {
    if event_driven && response.status != ResponseStatus::Complete {
        return Err(LambdaError::EventUnfinished {
            stream: stream.to_string(),
            rows: response.rows,
        });
    }
    Ok(response)
}

/// The extract request S3, SQS, EventBridge and scheduled events run: the function's
/// `CONNECTOR_EVENT_REQUEST` (set by the deployment).
fn event_request() -> Result<ExtractRequest, LambdaError> {
    let text = std::env::var(EVENT_REQUEST_ENV).map_err(|_| {
        LambdaError::Event(format!(
            "an AWS event (S3, SQS, EventBridge) carries no extract request: set the function's {EVENT_REQUEST_ENV} to one, e.g. {{\"config_env\": \"CONNECTOR_CONFIG\", \"output\": \"s3://bucket/prefix\", \"stream\": \"name\"}}"
        ))
    })?;
    RawEvent::from_slice(text.as_bytes())
        .into_request()
        .map_err(|e| LambdaError::Event(format!("{EVENT_REQUEST_ENV}: {}", e.one_line())))
}

/// Resolve the connector config of `request` (inline or from an environment variable).
/// Values are never echoed in errors.
fn resolve_config<C: Connector>(request: &ExtractRequest) -> Result<C::Config, LambdaError> {
    let value = match (&request.config, &request.config_env) {
        (Some(v), _) => v.clone(),
        (None, Some(name)) => {
            let text = std::env::var(name).map_err(|_| {
                Error::config(format!(
                    "config_env names the environment variable `{name}`, which is not set (or not UTF-8) in the function's environment"
                ))
            })?;
            serde_json::from_str(&text).map_err(|e| {
                Error::config(format!(
                    "the environment variable `{name}` (config_env) is not JSON: {}",
                    e.to_string()
                        .split(" at line")
                        .next()
                        .unwrap_or("syntax error")
                ))
            })?
        }
        (None, None) => {
            return Err(LambdaError::Event(
                "missing field `config` (or `config_env`)".into(),
            ));
        }
    };
    Ok(config_from_value::<C>(value)?)
}

/// When the core must stop reading: the invocation deadline minus the safety margin.
/// A deadline already past (some emulators send a constant) means no deadline.
pub fn stop_deadline(
    deadline_ms: u64,
    now: SystemTime,
    margin_ms: Option<u64>,
) -> Result<Option<Instant>, LambdaError> {
    let now_ms = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    if deadline_ms <= now_ms {
        tracing::warn!(
            deadline_ms,
            now_ms,
            "the invocation deadline is already past at the start; running without a deadline"
        );
        return Ok(None);
    }
    let remaining = Duration::from_millis(deadline_ms - now_ms);
    let margin = margin_ms
        .map(Duration::from_millis)
        .unwrap_or_else(|| (remaining / 10).clamp(MIN_MARGIN, MAX_MARGIN));
    if remaining <= margin {
        return Err(LambdaError::DeadlineTooShort {
            remaining_ms: remaining.as_millis() as u64,
            margin_ms: margin.as_millis() as u64,
        });
    }
    // A deadline too far away to represent is no deadline.
    Ok(Instant::now().checked_add(remaining - margin))
}

/// The deployment's governance settings from the function's environment, which whoever
/// invokes the function cannot change: `CONNECTOR_ALLOWED_ENDPOINTS` (the endpoints the
/// stack pins; an event may narrow them, never widen them) and
/// `CONNECTOR_GOVERNANCE_POLICY` (the policy file; an event may not name another).
pub(crate) fn function_pins(
    settings: &mut runner_layer::ExtractSettings,
    allowed: Option<&str>,
    policy: Option<std::ffi::OsString>,
) -> Result<(), LambdaError> {
    if let Some(allowed) = allowed.filter(|a| !a.trim().is_empty()) {
        let pinned: Vec<String> = allowed
            .split(',')
            .map(|e| e.trim().to_string())
            .filter(|e| !e.is_empty())
            .collect();
        if settings.allowed_endpoints.is_empty() {
            settings.allowed_endpoints = pinned;
        } else if let Some(wider) = settings
            .allowed_endpoints
            .iter()
            .find(|e| !pinned.iter().any(|p| p.eq_ignore_ascii_case(e)))
        {
            return Err(LambdaError::Event(format!(
                "options.allowed_endpoints names {wider}, which the function's deployment does not allow (CONNECTOR_ALLOWED_ENDPOINTS: {}); an event may only narrow the pinned endpoints",
                pinned.join(", ")
            )));
        }
    }
    if let Some(policy) = policy.filter(|p| !p.is_empty()) {
        if settings.governance_policy.is_some() {
            return Err(LambdaError::Event(
                "options.governance_policy is set, but the function's deployment sets the policy (CONNECTOR_GOVERNANCE_POLICY); leave it out of the event".into(),
            ));
        }
        settings.governance_policy = Some(policy.into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(ms)
    }

    #[test]
    fn past_deadline_means_no_deadline() {
        assert!(stop_deadline(123, at(1_000_000), None).unwrap().is_none());
        assert!(stop_deadline(0, at(1_000_000), Some(5)).unwrap().is_none());
    }

    #[test]
    fn deadline_keeps_the_margin() {
        let before = Instant::now();
        let d = stop_deadline(1_010_000, at(1_000_000), None)
            .unwrap()
            .unwrap();
        // 10 s left, default margin 1 s (a tenth, at least 1 s): stop after ~9 s.
        let left = d - before;
        assert!(
            left <= Duration::from_millis(9_100) && left > Duration::from_millis(8_900),
            "{left:?}"
        );
        let d = stop_deadline(1_900_000, at(1_000_000), None)
            .unwrap()
            .unwrap();
        // 900 s left: margin capped at 30 s.
        let left = d - Instant::now();
        assert!(left <= Duration::from_secs(871) && left > Duration::from_secs(869));
        let d = stop_deadline(1_003_000, at(1_000_000), Some(500))
            .unwrap()
            .unwrap();
        let left = d - Instant::now();
        assert!(left <= Duration::from_millis(2_600) && left > Duration::from_millis(2_400));
    }

    #[test]
    fn far_deadline_does_not_overflow() {
        assert!(stop_deadline(u64::MAX, at(1_000_000), None).is_ok());
    }

    #[test]
    fn too_short_deadline_is_refused() {
        let e = stop_deadline(1_000_800, at(1_000_000), None).unwrap_err();
        assert_eq!(e.error_type(), "NonRetryable.DeadlineTooShort");
        assert!(e.to_string().contains("800 ms left"), "{e}");
    }

    #[test]
    fn the_function_environment_pins_endpoints_an_event_can_only_narrow() {
        let mut s = runner_layer::ExtractSettings::default();
        function_pins(&mut s, Some("db.internal:5432, db2.internal:5432"), None).unwrap();
        assert_eq!(
            s.allowed_endpoints,
            ["db.internal:5432", "db2.internal:5432"]
        );
        let mut s = runner_layer::ExtractSettings {
            allowed_endpoints: vec!["DB2.internal:5432".into()],
            ..Default::default()
        };
        function_pins(&mut s, Some("db.internal:5432,db2.internal:5432"), None).unwrap();
        assert_eq!(s.allowed_endpoints, ["DB2.internal:5432"]);
        let mut s = runner_layer::ExtractSettings {
            allowed_endpoints: vec!["evil.example.com:5432".into()],
            ..Default::default()
        };
        let e = function_pins(&mut s, Some("db.internal:5432"), None).unwrap_err();
        assert_eq!(e.error_type(), "NonRetryable.InvalidEvent");
        assert!(e.to_string().contains("evil.example.com:5432"), "{e}");
        let mut s = runner_layer::ExtractSettings {
            governance_policy: Some("/tmp/lenient.toml".into()),
            ..Default::default()
        };
        assert!(function_pins(&mut s, None, Some("/var/task/policy.toml".into())).is_err());
        let mut s = runner_layer::ExtractSettings::default();
        function_pins(&mut s, Some(" "), Some("/var/task/policy.toml".into())).unwrap();
        assert!(s.allowed_endpoints.is_empty());
        assert_eq!(
            s.governance_policy.as_deref(),
            Some(std::path::Path::new("/var/task/policy.toml"))
        );
    }
}
