//! Stop signals: the first SIGTERM/SIGINT asks the run to stop at its next checkpoint and
//! commit; a second one — or the stop budget running out — aborts it.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use connector_sdk::CancellationToken;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// Why a run was aborted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AbortReason {
    /// A second stop signal.
    SecondSignal,
    /// The stop budget ran out before the run committed.
    BudgetExceeded(Duration),
}

impl std::fmt::Display for AbortReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            AbortReason::SecondSignal => f.write_str("a second stop signal"),
            AbortReason::BudgetExceeded(b) => write!(
                f,
                "the stop budget ({} s) ran out before the commit",
                b.as_secs_f64()
            ),
        }
    }
}

/// The hard stop: cancelled when the run must be aborted, with the reason.
#[derive(Debug, Clone, Default)]
pub struct HardStop {
    /// Cancelled on abort.
    pub token: CancellationToken,
    reason: Arc<OnceLock<AbortReason>>,
}

impl HardStop {
    /// Abort for `reason` (the first reason wins).
    pub fn abort(&self, reason: AbortReason) {
        let _ = self.reason.set(reason);
        self.token.cancel();
    }
    /// Why it was aborted, if it was.
    pub fn reason(&self) -> Option<AbortReason> {
        self.reason.get().copied()
    }
}

/// Listen for SIGTERM and SIGINT: the first cancels `stop` (stop at the next checkpoint
/// and commit); then a second signal, or `budget` elapsing (when given), aborts through
/// the returned [`HardStop`].
///
/// The handlers are registered before this returns, so a signal that arrives right after
/// (a process reporting it is up, then stopped at once) is a stop request rather than the
/// default action. Each on its own: if one cannot be registered, the other still works.
pub fn watch_stop_signals(stop: CancellationToken, budget: Option<Duration>) -> HardStop {
    let hard = HardStop::default();
    let watch = |kind: SignalKind, name: &str| {
        signal(kind)
            .inspect_err(|err| {
                tracing::warn!(%err, "cannot listen for {name}; it will kill the process without a checkpoint");
            })
            .ok()
    };
    let mut term = watch(SignalKind::terminate(), "SIGTERM");
    let mut int = watch(SignalKind::interrupt(), "SIGINT");
    async fn recv(stream: &mut Option<Signal>) {
        match stream {
            Some(stream) => {
                stream.recv().await;
            }
            None => std::future::pending().await,
        }
    }
    let out = hard.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = recv(&mut term) => {}
            _ = recv(&mut int) => {}
        }
        match budget {
            Some(b) => tracing::warn!(
                budget_secs = b.as_secs_f64(),
                "stop requested: stopping at the next checkpoint and committing progress (signal again to abort)"
            ),
            None => tracing::warn!(
                "stop requested: stopping at the next checkpoint and committing progress (signal again to abort)"
            ),
        }
        stop.cancel();
        let budget_over = async {
            match budget {
                Some(b) => tokio::time::sleep(b).await,
                None => std::future::pending().await,
            }
        };
        let reason = tokio::select! {
            _ = recv(&mut term) => AbortReason::SecondSignal,
            _ = recv(&mut int) => AbortReason::SecondSignal,
            () = budget_over => AbortReason::BudgetExceeded(budget.unwrap_or_default()),
        };
        tracing::warn!("aborting: {reason}");
        hard.abort(reason);
    });
    out
}
