//! The Lambda runner: a connector binary started as a Lambda custom runtime
//! (`provided.al2023`, binary named `bootstrap`) serves invocations whose event is an
//! extract request ([`ExtractRequest`]), on `lambda_runtime`.
//!
//! - **Deadline-aware**: the core stops reading at a batch boundary
//!   [a safety margin](ExtractRequest::safety_margin_ms) before the invocation deadline,
//!   commits what it has (`status: partial` + the pending plan in the manifest) and the
//!   response carries a [`Continuation`]; invoking again with it resumes exactly there.
//!   A deadline already past at the start (emulators) means no deadline, with a warning.
//! - **Manifest enforcement**: a connector whose manifest does not declare `lambda` fails
//!   every invocation before anything is read.
//! - **Errors** go through the Runtime API error path with an `errorType`
//!   `Retryable.<Class>` / `NonRetryable.<Class>`.
//! - **Shutdown**: SIGTERM (Lambda sends it to functions with an extension; the runner
//!   registers a no-op internal extension, as `lambda_runtime`'s graceful-shutdown
//!   support does) aborts the open multipart uploads of the run in progress.
//! - Writes nothing to disk; memory is bounded by the upload options.

use std::process::ExitCode;
use std::sync::Arc;

use connector_sdk::{Connector, ConnectorManifest, Runner};
use lambda_runtime::{Diagnostic, LambdaEvent, service_fn};
use tracing_subscriber::EnvFilter;

mod error;
mod event;
mod handler;

pub use error::LambdaError;
pub use event::{
    Continuation, ExtractRequest, ExtractResponse, ExtractSettings, MAX_STALLED, RawEvent,
    ResponseStatus, request_schema, response_schema,
};
pub use handler::{
    ActiveRun, ActiveSlot, Invocation, LambdaHandler, RUNNER, abort_active, stop_deadline,
};

/// The environment variables Lambda sets for a custom runtime that the runtime needs.
pub const REQUIRED_ENV: [&str; 4] = [
    "AWS_LAMBDA_RUNTIME_API",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
];

/// Name of the no-op internal extension registered to receive SIGTERM on shutdown.
pub const SHUTDOWN_EXTENSION: &str = "_connector-lambda-runner-shutdown";

/// Whether this process was started as Lambda starts a custom runtime:
/// `AWS_LAMBDA_RUNTIME_API` is set, or the executable is named `bootstrap`.
pub fn is_lambda_environment() -> bool {
    std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some()
        || std::env::current_exe()
            .ok()
            .or_else(|| std::env::args_os().next().map(Into::into))
            .and_then(|p| p.file_name().map(|n| n == "bootstrap"))
            .unwrap_or(false)
}

/// Check the Lambda environment variables (the runtime library would panic on them).
pub fn check_environment() -> Result<(), LambdaError> {
    let missing: Vec<&str> = REQUIRED_ENV
        .iter()
        .copied()
        .filter(|v| std::env::var(v).map(|s| s.is_empty()).unwrap_or(true))
        .collect();
    if !missing.is_empty() {
        return Err(LambdaError::Environment(format!(
            "missing environment variable(s) {}; Lambda sets them for a custom runtime — to run the CLI instead, do not name the binary `bootstrap`",
            missing.join(", ")
        )));
    }
    let api = std::env::var("AWS_LAMBDA_RUNTIME_API").unwrap_or_default();
    if api.parse::<http::Uri>().is_err() {
        return Err(LambdaError::Environment(format!(
            "AWS_LAMBDA_RUNTIME_API={api:?} is not host:port"
        )));
    }
    let memory = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE").unwrap_or_default();
    if memory.parse::<i32>().is_err() {
        return Err(LambdaError::Environment(format!(
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE={memory:?} is not a number of MB"
        )));
    }
    Ok(())
}

/// JSON log lines on stderr (Lambda sends them to CloudWatch); level from `RUST_LOG`, else
/// `AWS_LAMBDA_LOG_LEVEL`, else `info`. Spans and run metrics also go to OTLP when
/// `OTEL_EXPORTER_OTLP_ENDPOINT` is set (flushed at the end of every invocation).
pub fn init_tracing(service: &str) -> runner_layer::telemetry::Telemetry {
    let filter = EnvFilter::try_from_default_env()
        .ok()
        .or_else(|| {
            std::env::var("AWS_LAMBDA_LOG_LEVEL")
                .ok()
                .and_then(|l| EnvFilter::try_new(l.to_ascii_lowercase()).ok())
        })
        .unwrap_or_else(|| EnvFilter::new("info"));
    // lambda_runtime logs every raw event at TRACE ("raw JSON event received from Lambda"),
    // and an event may carry an inline connector config with its secrets: its targets are
    // capped at DEBUG whatever RUST_LOG asks (a directive for the same target replaces
    // the user's).
    let filter = [
        "lambda_runtime=debug",
        "lambda_runtime::layers::api_response=debug",
    ]
    .into_iter()
    .filter_map(|d| d.parse().ok())
    .fold(filter, EnvFilter::add_directive);
    runner_layer::telemetry::init(runner_layer::telemetry::LogFormat::Json, filter, service)
}

/// Report an initialization failure on the Runtime API (`/runtime/init/error`).
pub async fn report_init_error(error: &LambdaError) {
    let diagnostic = Diagnostic::from(LambdaError::Environment(error.one_line()));
    let diagnostic = Diagnostic {
        error_type: error.error_type(),
        ..diagnostic
    };
    let Ok(body) = serde_json::to_vec(&diagnostic) else {
        return;
    };
    let client = match lambda_runtime_api_client::Client::builder().build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: cannot reach the Runtime API to report the init error: {e}");
            return;
        }
    };
    let request = lambda_runtime_api_client::build_request()
        .method(http::Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .body(lambda_runtime_api_client::body::Body::from(body));
    match request {
        Ok(req) => {
            if let Err(e) = client.call(req).await {
                eprintln!("error: reporting the init error failed: {e}");
            }
        }
        Err(e) => eprintln!("error: building the init error report failed: {e}"),
    }
}

/// Register the no-op internal extension (so Lambda sends SIGTERM on shutdown) and, on
/// SIGTERM/SIGINT, stop the run in progress, abort its open multipart uploads and exit.
/// Registration failures (an emulator without the Extensions API) are only logged.
async fn spawn_shutdown_handler(active: ActiveSlot) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::warn!("cannot install signal handlers; SIGTERM will not abort open uploads");
        return;
    };
    match lambda_extension::Extension::new()
        .with_events(&[])
        .with_extension_name(SHUTDOWN_EXTENSION)
        .register()
        .await
    {
        Ok(extension) => {
            tokio::spawn(async move {
                // Never receives events; only keeps the extension alive.
                let _ = extension.run().await;
            });
        }
        Err(e) => tracing::warn!(
            error = %e,
            "could not register the shutdown extension; Lambda sends SIGTERM only to functions with an extension"
        ),
    }
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::warn!(signal = name, "shutting down");
        let aborted = abort_active(&active).await;
        tracing::warn!(
            aborted_uploads = aborted,
            "shutdown: open multipart uploads aborted"
        );
        std::process::exit(0);
    });
}

/// Serve invocations for `connector` on the Lambda Runtime API until the runtime ends.
///
/// Checks the environment and the connector manifest first; an invalid manifest is
/// reported on `/runtime/init/error`. A manifest that does not declare `lambda` makes
/// every invocation fail (nothing is read).
pub async fn run<C: Connector>(connector: C) -> Result<(), LambdaError> {
    if let Err(e) = check_environment() {
        if std::env::var("AWS_LAMBDA_RUNTIME_API").is_ok_and(|v| v.parse::<http::Uri>().is_ok()) {
            report_init_error(&e).await;
        }
        return Err(e);
    }
    let manifest = match ConnectorManifest::of::<C>() {
        Ok(m) => m,
        Err(e) => {
            let e = LambdaError::from(e);
            report_init_error(&e).await;
            return Err(e);
        }
    };
    match manifest.require_runner(Runner::Lambda) {
        Err(e) => tracing::error!(
            "{}; every invocation will fail",
            LambdaError::from(e).one_line()
        ),
        Ok(req) => {
            let memory: u32 = std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .ok()
                .and_then(|m| m.parse().ok())
                .unwrap_or(0);
            if memory < req.memory_mb {
                tracing::warn!(
                    function_memory_mb = memory,
                    manifest_memory_mb = req.memory_mb,
                    "the function has less memory than the connector manifest asks for"
                );
            }
        }
    }
    let handler = Arc::new(LambdaHandler::new(connector));
    spawn_shutdown_handler(handler.active()).await;
    let service = service_fn(move |event: LambdaEvent<RawEvent>| {
        let handler = handler.clone();
        async move {
            let (payload, context) = event.into_parts();
            let invocation = Invocation {
                request_id: context.request_id.clone(),
                deadline_ms: context.deadline,
            };
            // Boxed: the extract's future (connector, core, Delta commit) is deeper than
            // rustc's default layout query limit once the Runtime API loop holds it.
            let result = Box::pin(handler.handle(payload, &invocation)).await;
            // The function may be frozen once the response is sent.
            runner_layer::telemetry::flush().await;
            result.map_err(Diagnostic::from)
        }
    });
    lambda_runtime::Runtime::new(service)
        .layer(lambda_runtime::layers::TracingLayer::new())
        .run()
        .await
        .map_err(LambdaError::Runtime)
}

/// Run [`run`] on a new async runtime; returns the process exit code (1 on failure).
pub fn main<C: Connector>(connector: C) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let service = ConnectorManifest::of::<C>()
        .map(|m| m.name.clone())
        .unwrap_or_else(|_| "connector".into());
    let telemetry = init_tracing(&service);
    let result = runtime.block_on(run(connector));
    drop(runtime);
    telemetry.shutdown();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", e.one_line());
            ExitCode::from(1)
        }
    }
}
