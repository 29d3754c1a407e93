//! The systemd notification protocol, through the `sd-notify` crate.
//!
//! Every call is a no-op when `NOTIFY_SOCKET` is unset (the daemon started by hand).

use std::time::Duration;

use sd_notify::NotifyState;

/// Sends state changes to the service manager; send failures are logged, never fatal.
#[derive(Debug, Clone, Copy, Default)]
pub struct Notifier;

impl Notifier {
    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(e) = sd_notify::notify(states) {
            tracing::warn!(error = %e, "sd_notify failed");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// `STATUS=...`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `RELOADING=1` with `MONOTONIC_USEC` (required by `Type=notify-reload`, harmless
    /// with `Type=notify`).
    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[
                NotifyState::Reloading,
                now,
                NotifyState::Status("reloading the config"),
            ]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    /// `STOPPING=1` with a status line.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`.
    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// The watchdog timeout systemd expects pings within (`WATCHDOG_USEC`, checked
    /// against `WATCHDOG_PID`), if enabled.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        sd_notify::watchdog_enabled().filter(|d| !d.is_zero())
    }
}
