//! The state of past runs, per job: the last success, the last failure
//! and its message, how many runs. One JSON file,
//! `$XDG_STATE_HOME/pybackup/jobs.json` (`~/.local/state/…`), replaced
//! whole on each update, so that it is never half-written.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// What happened at a time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Seconds since the epoch.
    pub time: i64,
    /// The snapshots made (a success), or the error (a failure).
    pub message: String,
}

/// The state of one job.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobState {
    /// The last run that made its snapshots.
    pub last_success: Option<Event>,
    /// The last run that failed.
    pub last_failure: Option<Event>,
    /// Runs so far.
    pub runs: u64,
}

/// Every job's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    /// By job name.
    pub jobs: BTreeMap<String, JobState>,
}

/// The default place of the state file.
pub fn default_path() -> Option<PathBuf> {
    std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local").join("state")))
        .map(|d| d.join("pybackup").join("jobs.json"))
}

impl State {
    /// Reads the state at `path` (empty if there is none yet).
    pub fn load(path: &Path) -> Result<State> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b)
                .map_err(|e| Error::State { path: path.to_path_buf(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(Error::Io { path: path.to_path_buf(), source }),
        }
    }

    /// Applies `change` to job `name`'s state in the file at `path`, read
    /// again just before (other jobs' runs may have written it), and
    /// writes the file whole.
    pub fn update(path: &Path, name: &str, change: impl FnOnce(&mut JobState)) -> Result<()> {
        let mut s = State::load(path)?;
        change(s.jobs.entry(name.to_string()).or_default());
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io { path: dir.to_path_buf(), source })?;
        }
        let text = serde_json::to_vec_pretty(&s)
            .map_err(|e| Error::State { path: path.to_path_buf(), message: e.to_string() })?;
        fsutil::write_new(path, true, |f, p| {
            use std::io::Write;
            let mut f: &std::fs::File = f;
            f.write_all(&text).map_err(|source| Error::Io { path: p.to_path_buf(), source })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn updates_keep_other_jobs() {
        let t = tempfile::tempdir().unwrap();
        let p = t.path().join("state/jobs.json");
        assert_eq!(State::load(&p).unwrap(), State::default());
        State::update(&p, "a", |j| j.runs += 1).unwrap();
        State::update(&p, "b", |j| j.last_failure = Some(Event { time: 5, message: "no".into() })).unwrap();
        State::update(&p, "a", |j| j.runs += 1).unwrap();
        let s = State::load(&p).unwrap();
        assert_eq!(s.jobs["a"].runs, 2);
        assert_eq!(s.jobs["b"].last_failure.as_ref().unwrap().message, "no");
        std::fs::write(&p, b"not json").unwrap();
        assert!(State::load(&p).is_err());
    }
}
