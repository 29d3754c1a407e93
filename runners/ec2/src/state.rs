//! Last-run records in the state directory (`StateDirectory=`): one JSON file per job.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::schedule::LastRun;

/// Where last-run records are kept; `None` keeps nothing (every job runs once at start).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StateStore {
    dir: Option<PathBuf>,
}

impl StateStore {
    /// Records under `dir`.
    pub fn new(dir: Option<PathBuf>) -> Self {
        Self { dir }
    }

    /// The directory, if any.
    pub fn dir(&self) -> Option<&Path> {
        self.dir.as_deref()
    }

    fn file(&self, job: &str) -> Option<PathBuf> {
        self.dir
            .as_ref()
            .map(|d| d.join(format!("{job}.last-run.json")))
    }

    /// Check that the directory exists and is writable (creating it if needed).
    pub fn check(&self) -> Result<()> {
        let Some(dir) = &self.dir else { return Ok(()) };
        std::fs::create_dir_all(dir).map_err(|source| Error::State {
            path: dir.clone(),
            source,
        })?;
        let probe = dir.join(".write-probe");
        std::fs::write(&probe, b"").map_err(|source| Error::State {
            path: probe.clone(),
            source,
        })?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// The last run of `job`; `None` if none is recorded or the record is unreadable
    /// (then the job counts as never run: it runs once now).
    pub fn load(&self, job: &str) -> Option<LastRun> {
        let path = self.file(job)?;
        let bytes = std::fs::read(&path).ok()?;
        match serde_json::from_slice(&bytes) {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "unreadable last-run record; treating the job as never run");
                None
            }
        }
    }

    /// Record the last run of `job` (write to a temp file, then rename).
    pub fn save(&self, job: &str, run: &LastRun) -> Result<()> {
        let Some(path) = self.file(job) else {
            return Ok(());
        };
        let tmp = path.with_extension("json.tmp");
        let body = serde_json::to_vec_pretty(run).unwrap_or_default();
        std::fs::write(&tmp, body)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|source| Error::State { path, source })
    }
}
