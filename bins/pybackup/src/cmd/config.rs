//! `pybackup init-config` and `pybackup config check`, and what the job
//! commands share: finding and reading the config file and the state file.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};

use crate::cmd::*;

/// The config file `a` names, or the default one.
pub fn config_path(a: &ConfigArgs) -> anyhow::Result<PathBuf> {
    match &a.config {
        Some(p) => Ok(p.clone()),
        None => jobs::Config::default_path().context("no config file: give --config FILE (HOME is not set)"),
    }
}

/// The config file, read and checked.
pub fn load(a: &ConfigArgs) -> anyhow::Result<jobs::Config> {
    let path = config_path(a)?;
    if a.config.is_none() && !path.exists() {
        bail!("no config file at `{}`: `pybackup init-config` writes an example", path.display());
    }
    Ok(jobs::Config::load(&path)?)
}

/// The jobs named, in the order given (all of the file's without names).
pub fn select<'a>(c: &'a jobs::Config, names: &[String]) -> anyhow::Result<Vec<&'a jobs::Job>> {
    if names.is_empty() {
        if c.jobs.is_empty() {
            bail!("`{}` has no jobs", c.path.display());
        }
        return Ok(c.jobs.values().collect());
    }
    names
        .iter()
        .map(|n| {
            c.jobs.get(n).with_context(|| {
                let known: Vec<&str> = c.jobs.keys().map(String::as_str).collect();
                format!("`{}` has no job `{n}` (its jobs: {})", c.path.display(), known.join(", "))
            })
        })
        .collect()
}

/// The state file `a` names, or the default one.
pub fn state_path(a: &StateArgs) -> anyhow::Result<PathBuf> {
    match &a.state {
        Some(p) => Ok(p.clone()),
        None => jobs::state::default_path().context("no state file: give --state FILE (HOME is not set)"),
    }
}

/// Now, in seconds since the epoch; `PYBACKUP_NOW` (seconds) sets it, so
/// that ages can be checked against a fixed clock.
pub fn now() -> i64 {
    if let Some(t) = std::env::var("PYBACKUP_NOW").ok().and_then(|v| v.trim().parse().ok()) {
        return t;
    }
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

/// A path of the config file: `~` and `~/…` are the home directory.
pub fn expand(p: &Path) -> PathBuf {
    let s = p.to_string_lossy();
    match (s.strip_prefix('~'), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            PathBuf::from(home).join(rest.trim_start_matches('/'))
        }
        _ => p.to_path_buf(),
    }
}

/// `pybackup init-config`.
pub fn init(a: &InitConfigArgs) -> anyhow::Result<ExitCode> {
    let path = config_path(&a.config)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
    }
    fsutil::write_new(&path, false, |f, p| {
        use std::io::Write;
        let mut f: &std::fs::File = f;
        f.write_all(jobs::EXAMPLE.as_bytes()).map_err(|source| fsutil::Error::Write { path: p.to_path_buf(), source })
    })
    .with_context(|| format!("cannot write `{}`", path.display()))?;
    eprintln!(
        "pybackup: wrote an example config with one job to `{}`; edit it, then `pybackup config check`",
        path.display()
    );
    Ok(code(true))
}

/// `pybackup config ...`.
pub fn run(c: &ConfigCommand) -> anyhow::Result<ExitCode> {
    match c {
        ConfigCommand::Check { config } => {
            let cfg = load(config)?;
            let mut clean = true;
            for j in cfg.jobs.values() {
                let mut notes = Vec::new();
                for s in &j.sources {
                    if !expand(s).is_dir() {
                        notes.push(format!("source `{}` is not a directory here", s.display()));
                    }
                }
                if j.schedule.is_none() {
                    notes.push("no schedule: it runs only when `pybackup run` is".into());
                }
                println!(
                    "job {}: {} source(s) into `{}`{}{}",
                    j.name,
                    j.sources.len(),
                    j.repository,
                    j.schedule.as_deref().map(|s| format!(", {s}")).unwrap_or_default(),
                    if j.keep.any() { ", with retention" } else { "" }
                );
                for n in notes {
                    clean = false;
                    eprintln!("pybackup: warning: job {}: {n}", j.name);
                }
            }
            eprintln!("pybackup: `{}`: {} job(s), no errors", cfg.path.display(), cfg.jobs.len());
            Ok(code(clean))
        }
    }
}
