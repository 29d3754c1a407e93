//! Job schedules (fixed interval or cron expression) and the missed-schedule rule.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use serde::{Deserialize, Deserializer};

/// A fixed interval such as `"15m"`, `"1h 30m"` or `"90s"` (humantime syntax), at least
/// one second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interval(pub Duration);

impl Interval {
    /// Parse `"15m"`-style text.
    pub fn parse(text: &str) -> Result<Self, String> {
        let d = humantime::parse_duration(text.trim()).map_err(|e| {
            format!(
                "invalid duration {text:?}: {e}; expected e.g. \"90s\", \"15m\", \"1h 30m\", \"1d\""
            )
        })?;
        if d < Duration::from_secs(1) {
            return Err(format!("duration {text:?} is shorter than 1s"));
        }
        Ok(Interval(d))
    }
}

impl<'de> Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Interval::parse(&s).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Interval {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", humantime::format_duration(self.0))
    }
}

/// A cron expression: 5 fields (minute granularity) or 6 (leading seconds field),
/// evaluated in UTC. Aliases such as `@hourly` are accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronExpr {
    text: String,
    cron: Cron,
}

impl CronExpr {
    /// Parse a cron expression.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Optional)
            .build()
            .parse(text.trim())
            .map_err(|e| {
                format!(
                    "invalid cron expression {text:?}: {e}; expected 5 fields (min hour day month weekday) or 6 with leading seconds, e.g. \"*/15 * * * *\""
                )
            })?;
        Ok(CronExpr {
            text: text.trim().to_string(),
            cron,
        })
    }
}

impl<'de> Deserialize<'de> for CronExpr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        CronExpr::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// When a job runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Every fixed interval, counted from the start of the previous run.
    Every(Interval),
    /// At the times a cron expression matches (UTC).
    Cron(Box<CronExpr>),
}

impl fmt::Display for Schedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Schedule::Every(i) => write!(f, "every {i}"),
            Schedule::Cron(c) => write!(f, "cron {:?}", c.text),
        }
    }
}

impl Schedule {
    /// The first slot strictly after `t`. `None` when a cron expression never matches
    /// again (e.g. a past year).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match self {
            Schedule::Every(i) => chrono::Duration::from_std(i.0).ok().map(|d| t + d),
            Schedule::Cron(c) => c.cron.find_next_occurrence(&t, false).ok(),
        }
    }

    /// The missed-schedule rule, applied when the daemon starts (or a job is added or
    /// changed by a reload). A job is due **now, once** when it has never run, when its
    /// last run did not finish (crash, or stopped early by SIGTERM: the pending plan is
    /// resumed), or when at least one slot passed since its last run started — however
    /// many slots were missed, it runs once. Otherwise it is due at its next slot.
    pub fn due_on_start(&self, last: Option<&LastRun>, now: DateTime<Utc>) -> DateTime<Utc> {
        let Some(last) = last else { return now };
        if !last.finished_cleanly() {
            return now;
        }
        match self.next_after(last.started_at) {
            Some(next) if next > now => next,
            Some(_) => now,
            None => far_future(now),
        }
    }

    /// When the job is due after a run that started at `started` ends at `now`: its next
    /// slot after `started`, or, if that passed while the run was going, the next slot
    /// after `now` (a slot missed because the job was busy is skipped, not queued).
    pub fn due_after_run(&self, started: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        match self.next_after(started) {
            Some(next) if next > now => next,
            _ => self.next_after(now).unwrap_or_else(|| far_future(now)),
        }
    }
}

/// A time so far ahead that a job never runs (a cron expression that no longer matches).
fn far_future(now: DateTime<Utc>) -> DateTime<Utc> {
    now + chrono::Duration::days(365 * 100)
}

/// How a job's last run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Every stream completed its plan.
    Complete,
    /// Stopped early (SIGTERM) at a checkpoint; progress committed, the rest is pending.
    Partial,
    /// Another run (e.g. a daemon on another instance) committed first; nothing committed.
    Conflict,
    /// The run failed; the next slot retries.
    Failed,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Complete => "complete",
            Outcome::Partial => "partial",
            Outcome::Conflict => "conflict",
            Outcome::Failed => "failed",
        })
    }
}

/// A job's last run, as kept in the state directory.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LastRun {
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When it ended (`None`: it was still running when the daemon died).
    pub finished_at: Option<DateTime<Utc>>,
    /// How it ended (`None`: it was still running when the daemon died).
    pub outcome: Option<Outcome>,
    /// One-line summary of the run.
    #[serde(default)]
    pub summary: String,
}

impl LastRun {
    /// Whether the run ended without leaving work pending (complete, conflict, failed).
    pub fn finished_cleanly(&self) -> bool {
        matches!(
            self.outcome,
            Some(Outcome::Complete | Outcome::Conflict | Outcome::Failed)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 5, 1, h, m, 0).single().unwrap()
    }

    fn last(started: DateTime<Utc>, outcome: Option<Outcome>) -> LastRun {
        LastRun {
            started_at: started,
            finished_at: outcome.map(|_| started),
            outcome,
            summary: String::new(),
        }
    }

    #[test]
    fn intervals_parse() {
        assert_eq!(Interval::parse("15m").unwrap().0, Duration::from_secs(900));
        assert_eq!(
            Interval::parse("1h 30m").unwrap().0,
            Duration::from_secs(5400)
        );
        assert!(Interval::parse("15 parsecs").unwrap_err().contains("15m"));
        assert!(Interval::parse("10ms").unwrap_err().contains("shorter"));
    }

    #[test]
    fn cron_next_slot_in_utc() {
        let s = Schedule::Cron(Box::new(CronExpr::parse("*/15 * * * *").unwrap()));
        assert_eq!(s.next_after(t(10, 7)), Some(t(10, 15)));
        assert_eq!(s.next_after(t(10, 15)), Some(t(10, 30)));
        let six = Schedule::Cron(Box::new(CronExpr::parse("30 0 * * * *").unwrap()));
        assert_eq!(
            six.next_after(t(10, 0)),
            Some(t(10, 0) + chrono::Duration::seconds(30))
        );
        assert!(CronExpr::parse("61 * * * *").is_err());
    }

    #[test]
    fn missed_slots_run_once_on_start() {
        let s = Schedule::Every(Interval::parse("15m").unwrap());
        // Never ran: now.
        assert_eq!(s.due_on_start(None, t(12, 0)), t(12, 0));
        // Last run at 08:00, machine down until 12:00 (15 slots missed): once, now.
        let l = last(t(8, 0), Some(Outcome::Complete));
        assert_eq!(s.due_on_start(Some(&l), t(12, 0)), t(12, 0));
        // Last run 5 minutes ago: at its next slot.
        let l = last(t(11, 55), Some(Outcome::Complete));
        assert_eq!(s.due_on_start(Some(&l), t(12, 0)), t(12, 10));
        // Stopped early or crashed 5 minutes ago: resume now.
        let l = last(t(11, 55), Some(Outcome::Partial));
        assert_eq!(s.due_on_start(Some(&l), t(12, 0)), t(12, 0));
        let l = last(t(11, 55), None);
        assert_eq!(s.due_on_start(Some(&l), t(12, 0)), t(12, 0));
    }

    #[test]
    fn slots_missed_while_running_are_skipped() {
        let s = Schedule::Every(Interval::parse("15m").unwrap());
        assert_eq!(s.due_after_run(t(12, 0), t(12, 5)), t(12, 15));
        // The run took 40 minutes: next is 15 minutes after it ended, not three catch-ups.
        assert_eq!(s.due_after_run(t(12, 0), t(12, 40)), t(12, 55));
        let c = Schedule::Cron(Box::new(CronExpr::parse("0 * * * *").unwrap()));
        assert_eq!(c.due_after_run(t(12, 0), t(13, 20)), t(14, 0));
    }
}
