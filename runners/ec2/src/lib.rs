//! EC2 runner: the daemon mode of every connector binary, run by systemd as a
//! `Type=notify` service (`<binary> daemon --config /etc/<connector>/daemon.toml`).
//!
//! The daemon reads a TOML config of scheduled jobs ([`config`]), refuses to start if the
//! connector's manifest does not declare the `ec2` runner, and then:
//!
//! - sends `READY=1` once the config is loaded and validated (never before);
//! - runs each job when it is due (fixed interval or cron, see [`schedule`]), at most
//!   `max_concurrent_jobs` at once, every stream through the SDK's `ExtractCore`;
//! - sends `STATUS=` with the last run's summary and the next due job after every change;
//! - sends `WATCHDOG=1` every half `WATCHDOG_USEC` while healthy: a job whose progress
//!   counters do not move for `stall_timeout` is stuck, and the pings stop;
//! - on `SIGHUP` sends `RELOADING=1`, reloads the config (an invalid one is rejected and
//!   logged, the running one kept) and sends `READY=1` again;
//! - on `SIGTERM`/`SIGINT` sends `STOPPING=1`; running jobs stop at the next checkpoint
//!   and commit their progress; exit 0. A second signal aborts open uploads (exit 130).
//!
//! **Missed schedules**: a job runs once at start if it never ran, if its last run did not
//! finish (crash or SIGTERM: the pending plan resumes), or if one or more slots passed
//! since its last run started — once, not once per missed slot. Last runs are recorded in
//! `$STATE_DIRECTORY/<job>.last-run.json` (systemd `StateDirectory=`).
//!
//! **Two daemons, one stream**: the core's conditional commit lets exactly one run commit
//! each manifest sequence; the loser gets `CommitConflict`, logs it, and waits for its
//! next slot (its files were removed by the core).
//!
//! **Credentials** come from the AWS SDK default chain (on EC2: the instance profile
//! through IMDSv2); the daemon never sets credentials itself.

pub mod config;
mod daemon;
pub mod error;
pub mod notify;
pub mod schedule;
pub mod state;

use std::path::PathBuf;

use connector_sdk::Connector;

pub use config::{DaemonConfig, JobConfig, LoadedConfig, daemon_config_schema};
pub use daemon::{Daemon, start};
pub use error::{Error, Result};

/// Exit code: stopped cleanly.
pub const EXIT_OK: u8 = 0;
/// Exit code: internal error (state directory, signal handlers).
pub const EXIT_INTERNAL: u8 = 1;
/// Exit code: bad input (config file, manifest, undeclared runner).
pub const EXIT_INPUT: u8 = 2;
/// Exit code: aborted by a second stop signal.
pub const EXIT_ABORTED: u8 = 130;

/// Arguments of the `daemon` subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct DaemonArgs {
    /// Daemon config file (TOML) [default: /etc/<connector>/daemon.toml].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Validate the config (and the manifest) and exit without running anything.
    #[arg(long)]
    pub check: bool,
    /// Print the JSON Schema of the daemon config and exit.
    #[arg(long)]
    pub print_schema: bool,
}

/// The default config path of connector `name`.
pub fn default_config_path(name: &str) -> PathBuf {
    PathBuf::from(format!("/etc/{name}/daemon.toml"))
}

/// Run the daemon until it is stopped; returns the process exit code. Startup errors
/// (manifest without `ec2`, invalid config) are printed on stderr and exit non-zero
/// before `READY=1` is sent.
pub async fn daemon<C: Connector>(connector: C, args: DaemonArgs) -> u8 {
    if args.print_schema {
        match serde_json::to_string_pretty(&daemon_config_schema()) {
            Ok(s) => {
                println!("{s}");
                return EXIT_OK;
            }
            Err(e) => {
                eprintln!("error: cannot serialize the schema: {e}");
                return EXIT_INTERNAL;
            }
        }
    }
    match start(connector, args.config.as_deref()).await {
        Ok(d) if args.check => {
            println!(
                "{}: ok, {} job(s)",
                d.config().path.display(),
                d.config().jobs.len()
            );
            EXIT_OK
        }
        Ok(d) => d.run().await,
        Err(e) => {
            let line = connector_sdk::one_line(&e.to_string());
            eprintln!("error: {line}");
            tracing::error!("daemon not started: {line}");
            if e.is_input_error() {
                EXIT_INPUT
            } else {
                EXIT_INTERNAL
            }
        }
    }
}

#[cfg(test)]
mod tests;
