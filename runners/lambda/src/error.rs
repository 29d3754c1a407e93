//! The Lambda runner's one error enum and how it maps to the Runtime API's error report.

use lambda_runtime::Diagnostic;

/// Every error the Lambda runner reports.
///
/// Each error is reported through the Runtime API's `/invocation/{id}/error` path with an
/// `errorType` of the form `Retryable.<Class>` or `NonRetryable.<Class>` (see
/// [`LambdaError::error_type`]), so a Step Functions `Retry` can list the retryable ones.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LambdaError {
    /// The SDK (manifest, config, request, connector, sink, commit) failed.
    #[error(transparent)]
    Sdk(#[from] connector_sdk::Error),
    /// The invocation event is not a valid extract request.
    #[error("invalid invocation event: {0}")]
    Event(String),
    /// The continuation does not match the dataset's committed state.
    #[error(
        "continuation does not match stream `{stream}`: it expects the partial commit {expected}, but the latest commit is {found}; the dataset moved on (another run committed) — start a new chain without `continuation`"
    )]
    ContinuationMismatch {
        /// The stream.
        stream: String,
        /// What the continuation names (sequence and run).
        expected: String,
        /// What the dataset's latest manifest is.
        found: String,
    },
    /// The invocation has less time left than the safety margin needs.
    #[error(
        "the invocation has {remaining_ms} ms left, not more than the {margin_ms} ms safety margin needed to commit; raise the function timeout or lower `safety_margin_ms`"
    )]
    DeadlineTooShort {
        /// Milliseconds until the invocation deadline.
        remaining_ms: u64,
        /// The safety margin.
        margin_ms: u64,
    },
    /// A chain of invocations stopped making progress: each one reached its deadline
    /// before any checkpoint.
    #[error(
        "stream `{stream}`: {invocations} invocations in a row committed no progress (each reached its deadline before the first checkpoint; a partition of a stream without a key has none before its end and restarts each time), so invoking again would loop forever; raise the function timeout, lower `safety_margin_ms` or the connector's batch size, give the stream a key, or run this stream on Fargate or EC2"
    )]
    NoProgress {
        /// The stream.
        stream: String,
        /// Consecutive invocations without progress.
        invocations: u32,
    },
    /// The run's deadline passed before the stream began (nothing read, nothing
    /// committed).
    #[error(
        "stream `{stream}` did not start: its deadline (the request's `options.max_runtime_secs`, or the invocation's deadline less `safety_margin_ms`) passed before it began; raise `max_runtime_secs` or the function timeout"
    )]
    NotStarted {
        /// The stream.
        stream: String,
    },
    /// An AWS event's invocation (S3, SQS, EventBridge) stopped at its deadline before
    /// every object it names was read. Its progress is committed; the invocation fails
    /// so AWS delivers the event again (SQS makes the messages visible again, an
    /// asynchronous invocation is retried), and that delivery continues the committed plan
    /// and then reads the event's objects. Answering success would acknowledge the event
    /// with objects unread.
    #[error(
        "stream `{stream}`: the invocation reached its deadline after committing {rows} rows with the event's objects not all read; failing it so the event is delivered again and the next delivery continues from the committed plan (raise the function timeout or send fewer objects per event to finish in one)"
    )]
    EventUnfinished {
        /// The stream.
        stream: String,
        /// Rows this invocation committed.
        rows: u64,
    },
    /// The execution environment shut down (SIGTERM) during the run: the run was dropped
    /// and its open uploads aborted. A commit already under way may still have landed;
    /// invoking again continues from the last commit.
    #[error(
        "stream `{stream}`: the execution environment is shutting down (SIGTERM): the run was stopped and its open uploads aborted; nothing after the last commit is kept, invoke again to continue from it"
    )]
    ShutDown {
        /// The stream.
        stream: String,
    },
    /// The process environment is not a Lambda environment (missing variables...).
    #[error("not a usable Lambda environment: {0}")]
    Environment(String),
    /// The Lambda runtime loop failed (Runtime API unreachable...).
    #[error("the Lambda runtime failed: {0}")]
    Runtime(#[source] lambda_runtime::Error),
}

impl LambdaError {
    /// A short, stable name for the class of error.
    pub fn class(&self) -> &'static str {
        match self {
            LambdaError::Sdk(e) => e.class(),
            LambdaError::Event(_) => "InvalidEvent",
            LambdaError::ContinuationMismatch { .. } => "ContinuationMismatch",
            LambdaError::DeadlineTooShort { .. } => "DeadlineTooShort",
            LambdaError::NoProgress { .. } => "NoProgress",
            LambdaError::EventUnfinished { .. } => "EventUnfinished",
            LambdaError::NotStarted { .. } => "NotStarted",
            LambdaError::ShutDown { .. } => "ShutDown",
            LambdaError::Environment(_) => "EnvironmentError",
            LambdaError::Runtime(_) => "RuntimeError",
        }
    }

    /// Whether invoking again with the same event may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            LambdaError::Sdk(e) => e.is_retryable(),
            LambdaError::Runtime(_)
            | LambdaError::EventUnfinished { .. }
            | LambdaError::ShutDown { .. } => true,
            LambdaError::Event(_)
            | LambdaError::ContinuationMismatch { .. }
            | LambdaError::DeadlineTooShort { .. }
            | LambdaError::NoProgress { .. }
            | LambdaError::NotStarted { .. }
            | LambdaError::Environment(_) => false,
        }
    }

    /// The Runtime API `errorType`: `Retryable.<Class>` or `NonRetryable.<Class>`.
    pub fn error_type(&self) -> String {
        let prefix = if self.is_retryable() {
            "Retryable"
        } else {
            "NonRetryable"
        };
        format!("{prefix}.{}", self.class())
    }

    /// The message on one line.
    pub fn one_line(&self) -> String {
        connector_sdk::one_line(&self.to_string())
    }
}

impl From<LambdaError> for Diagnostic {
    fn from(e: LambdaError) -> Self {
        Diagnostic {
            error_type: e.error_type(),
            error_message: e.one_line(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use connector_sdk::{ConnectorError, ConnectorErrorKind, Error};

    #[test]
    fn error_types_say_retryable_or_not() {
        let source = LambdaError::from(Error::Connector(ConnectorError::new(
            ConnectorErrorKind::Source,
            "boom",
        )));
        assert_eq!(source.error_type(), "Retryable.SourceError");
        let config = LambdaError::from(Error::config("bad"));
        assert_eq!(config.error_type(), "NonRetryable.ConfigError");
        assert_eq!(
            LambdaError::Event("x".into()).error_type(),
            "NonRetryable.InvalidEvent"
        );
        // A shutdown mid-run: invoking again continues from the last commit.
        assert_eq!(
            LambdaError::ShutDown {
                stream: "orders".into()
            }
            .error_type(),
            "Retryable.ShutDown"
        );
        let d = Diagnostic::from(LambdaError::Event("a\n  b".into()));
        assert_eq!(d.error_message, "invalid invocation event: a b");
    }
}
