//! The runner layer: what every runner mode of a connector binary shares, so each runner
//! keeps only its platform's glue (the Runtime API loop, ECS metadata and the SIGTERM
//! budget, sd_notify and schedules, the three Glue steps).
//!
//! - [`ExtractSettings`]: every extract option, defined once with its validation and
//!   documentation, read with the same names from CLI flags, the `CONNECTOR_*`
//!   environment, Lambda events, daemon TOML and Glue job arguments.
//! - [`run_streams`]: streams → core → reports → [`RunOutcome`] (exit code), with the stop
//!   signal and the hard stop passed in.
//! - [`watch_stop_signals`]: SIGTERM/SIGINT → stop at the next checkpoint; a second signal
//!   or a stop budget → abort.

mod args;
pub mod emf;
mod run;
mod settings;
mod signals;
pub mod telemetry;

pub use args::{ConfigArg, OutputArgs, load_config};
pub use run::{
    EmitMetrics, LogOnly, PrintReports, RunObserver, RunOutcome, StreamOutcome, log_report,
    print_report, run_streams,
};
pub use settings::{ByteSize, ExtractSettings};
pub use signals::{AbortReason, HardStop, watch_stop_signals};
