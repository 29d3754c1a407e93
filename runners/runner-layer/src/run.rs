//! The one run loop every runner calls: streams → core → reports → outcome. Runners keep
//! only their platform's part: how the request is built, which stop signals exist, and
//! how the outcome is reported (exit code, sd_notify status, Lambda response).

use crate::signals::HardStop;
use connector_sdk::{
    CancellationToken, Connector, Error, ExtractCore, RunReport, RunStatus, StopSignal, exit,
    one_line,
};

/// What happened to one stream of a run.
#[derive(Debug)]
pub enum StreamOutcome {
    /// The core ran and committed (or had nothing to commit); see the report's status.
    Ran(Box<RunReport>),
    /// The run failed; nothing of it is visible. For a [`Error::CommitConflict`] another
    /// run committed first.
    Failed(Error),
    /// Not started: a stop arrived before its turn.
    NotStarted,
}

/// The outcome of [`run_streams`].
#[derive(Debug, Default)]
pub struct RunOutcome {
    /// Every stream, in the order run.
    pub streams: Vec<(String, StreamOutcome)>,
    /// Listing the streams failed (nothing ran).
    pub listing_failed: Option<Error>,
    /// Aborted by a hard stop (second signal, stop budget): how many open multipart
    /// uploads were aborted. The stream in progress committed nothing.
    pub aborted: Option<usize>,
}

impl RunOutcome {
    /// The first error (listing or a stream's).
    pub fn first_error(&self) -> Option<&Error> {
        self.listing_failed.as_ref().or_else(|| {
            self.streams.iter().find_map(|(_, o)| match o {
                StreamOutcome::Failed(e) => Some(e),
                _ => None,
            })
        })
    }

    /// Whether some stream stopped early or was not started (run again to continue).
    pub fn is_partial(&self) -> bool {
        self.streams.iter().any(|(_, o)| match o {
            StreamOutcome::Ran(r) => r.status == RunStatus::Partial,
            StreamOutcome::NotStarted => true,
            StreamOutcome::Failed(_) => false,
        })
    }

    /// The reports of the streams that ran.
    pub fn reports(&self) -> impl Iterator<Item = &RunReport> {
        self.streams.iter().filter_map(|(_, o)| match o {
            StreamOutcome::Ran(r) => Some(r.as_ref()),
            _ => None,
        })
    }

    /// If the run was aborted, say so on stderr as one `error:` line naming why (from
    /// `hard`); returns whether it was.
    pub fn print_abort(&self, hard: &HardStop) -> bool {
        let Some(n) = self.aborted else {
            return false;
        };
        let why = hard
            .reason()
            .map_or("a hard stop".into(), |r| r.to_string());
        eprintln!(
            "error: aborted by {why}; {n} open multipart upload(s) aborted, the current run committed nothing"
        );
        true
    }

    /// The process exit code (`connector_sdk::exit`): aborted 130; else the first
    /// error's code; else partial 75 — or 0 when `partial_is_ok` (a container stopped by
    /// its platform, whose next start resumes); else 0.
    pub fn exit_code(&self, partial_is_ok: bool) -> u8 {
        if self.aborted.is_some() {
            exit::ABORTED
        } else if let Some(e) = self.first_error() {
            e.exit_code()
        } else if self.is_partial() && !partial_is_ok {
            exit::PARTIAL
        } else {
            exit::OK
        }
    }
}

/// Hooks a runner uses to show progress and results in its own terms.
pub trait RunObserver: Send {
    /// A stream is about to run.
    fn started(&mut self, _stream: &str) {}
    /// A stream ran to a report.
    fn report(&mut self, _report: &RunReport) {}
    /// A stream (or listing the streams, with `stream` = `None`) failed.
    fn failed(&mut self, _stream: Option<&str>, _error: &Error) {}
}

/// An observer that only logs (the loop logs every report and error itself).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogOnly;
impl RunObserver for LogOnly {}

/// Prints each report as one JSON line on stdout and each error as one `error: …` line
/// on stderr (the CLI and the container).
#[derive(Debug, Default, Clone, Copy)]
pub struct PrintReports;

impl RunObserver for PrintReports {
    fn report(&mut self, report: &RunReport) {
        print_report(report);
    }
    fn failed(&mut self, _stream: Option<&str>, error: &Error) {
        eprintln!("error: {}", one_line(&error.to_string()));
    }
}

/// Wraps another observer and also emits each report's metrics as a CloudWatch Embedded
/// Metric Format line (see [`crate::emf`]): on Lambda and Fargate, whose logs go to
/// CloudWatch Logs.
#[derive(Debug, Default, Clone, Copy)]
pub struct EmitMetrics<O>(pub O);

impl<O: RunObserver> RunObserver for EmitMetrics<O> {
    fn started(&mut self, stream: &str) {
        self.0.started(stream);
    }
    fn report(&mut self, report: &RunReport) {
        self.0.report(report);
        crate::emf::emit(report);
    }
    fn failed(&mut self, stream: Option<&str>, error: &Error) {
        self.0.failed(stream, error);
    }
}

/// Print a run report as one JSON line on stdout.
pub fn print_report(report: &RunReport) {
    match serde_json::to_string(report) {
        Ok(s) => println!("{s}"),
        Err(e) => eprintln!("error: cannot serialize the run report: {e}"),
    }
}

/// Run `streams` (every stream when empty) one after another through `core`.
///
/// - A stream whose turn comes after `stop` fired is not started; a stream stopped by
///   `stop` commits its progress (`partial`).
/// - A failed stream has its open multipart uploads aborted and the next stream still
///   runs (streams are independent datasets); a commit conflict is logged as a warning.
/// - `abort` (a second signal, a stop budget) aborts the open uploads at once and ends
///   the loop: the stream in progress commits nothing.
///
/// Every report and error is logged here, once, with the same fields on every runner.
pub async fn run_streams<C: Connector>(
    core: &ExtractCore<C>,
    streams: &[String],
    stop: &StopSignal,
    abort: &CancellationToken,
    observer: &mut dyn RunObserver,
) -> RunOutcome {
    let mut outcome = RunOutcome::default();
    let work = run_each(core, streams, stop, observer, &mut outcome);
    let aborted = tokio::select! {
        () = work => false,
        () = abort.cancelled() => true,
    };
    if aborted {
        let n = core.abort_open_uploads().await;
        tracing::error!(
            aborted_uploads = n,
            "aborted: the run in progress committed nothing"
        );
        outcome.aborted = Some(n);
    }
    outcome
}

async fn run_each<C: Connector>(
    core: &ExtractCore<C>,
    streams: &[String],
    stop: &StopSignal,
    observer: &mut dyn RunObserver,
    outcome: &mut RunOutcome,
) {
    let streams = if streams.is_empty() {
        match core.default_streams().await {
            Ok(s) => s,
            Err(e) => {
                log_error(None, &e);
                observer.failed(None, &e);
                outcome.listing_failed = Some(e);
                return;
            }
        }
    } else {
        streams.to_vec()
    };
    for stream in streams {
        if stop.fired() {
            tracing::info!(%stream, "not started: stop requested");
            outcome.streams.push((stream, StreamOutcome::NotStarted));
            continue;
        }
        observer.started(&stream);
        match core.run(&stream, stop).await {
            Ok(report) => {
                log_report(&report);
                observer.report(&report);
                outcome
                    .streams
                    .push((stream, StreamOutcome::Ran(Box::new(report))));
            }
            Err(e) => {
                if !matches!(e, Error::CommitConflict { .. }) {
                    core.abort_open_uploads().await;
                }
                log_error(Some(&stream), &e);
                observer.failed(Some(&stream), &e);
                outcome.streams.push((stream, StreamOutcome::Failed(e)));
            }
        }
    }
}

/// The one "run report" log line, and the run metrics of the report (OTLP, when on).
pub fn log_report(report: &RunReport) {
    tracing::info!(
        stream = %report.stream,
        status = ?report.status,
        rows = report.rows,
        bytes = report.bytes,
        files = report.files,
        sequence = ?report.sequence,
        duration_ms = report.duration_ms,
        s3_retries = report.s3_retries,
        manifest = report.manifest.as_deref().unwrap_or("-"),
        "run report"
    );
    crate::telemetry::record(report);
}

fn log_error(stream: Option<&str>, e: &Error) {
    let line = one_line(&e.to_string());
    if matches!(e, Error::CommitConflict { .. }) {
        tracing::warn!(stream, class = e.class(), "{line}");
    } else {
        tracing::error!(
            stream,
            class = e.class(),
            retryable = e.is_retryable(),
            "{line}"
        );
    }
}
