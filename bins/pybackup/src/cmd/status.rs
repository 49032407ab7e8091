//! `pybackup status`: how each job is doing.

use std::process::ExitCode;

use serde_json::json;

use crate::cmd::config::{expand, load, now, select, state_path};
use crate::cmd::*;
use crate::ui::human;

/// An age in seconds as people say it: `3 h`, `2 d`.
fn age(secs: i64) -> String {
    let s = secs.max(0);
    match s {
        0..=119 => format!("{s} s"),
        120..=7_199 => format!("{} min", s / 60),
        7_200..=172_799 => format!("{} h", s / 3_600),
        _ => format!("{} d", s / 86_400),
    }
}

/// Bytes of every file under `dir`.
fn size_of(dir: &std::path::Path) -> Option<u64> {
    let mut total = 0u64;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).ok()?.flatten() {
            let m = e.metadata().ok()?;
            if m.is_dir() {
                stack.push(e.path());
            } else {
                total += m.len();
            }
        }
    }
    Some(total)
}

/// `pybackup status`.
pub fn run(a: &StatusArgs) -> anyhow::Result<ExitCode> {
    let cfg = load(&a.config)?;
    let chosen = select(&cfg, &a.names)?;
    let state = jobs::state::State::load(&state_path(&a.state)?)?;
    let t = now();
    let mut attention = false;
    for job in chosen {
        let s = state.jobs.get(&job.name).cloned().unwrap_or_default();
        let repo_path = expand(std::path::Path::new(&job.repository));
        let size = size_of(&repo_path);
        let snapshots = repo::Repo::open(&repo_path).ok().and_then(|r| {
            let host = job.host.as_ref().map(|h| h.as_bytes().to_vec());
            let mut n = 0;
            for src in &job.sources {
                let root = expand(src);
                let root = root.canonicalize().unwrap_or(root);
                let f = repo::Filter {
                    host: host.clone(),
                    root: Some(std::os::unix::ffi::OsStrExt::as_bytes(root.as_os_str()).to_vec()),
                };
                n += r.snapshots(&f).ok()?.len();
            }
            Some(n)
        });
        let warn_after = job.warn_after().unwrap_or(None);
        let last_ok = s.last_success.as_ref().map(|e| e.time);
        let overdue = match (warn_after, last_ok) {
            (Some(w), Some(ok)) => t - ok > w.as_secs() as i64,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let failing = match (&s.last_failure, last_ok) {
            (Some(f), Some(ok)) => f.time > ok,
            (Some(_), None) => true,
            (None, _) => false,
        };
        let mut warnings = Vec::new();
        if overdue {
            warnings.push(match last_ok {
                Some(ok) => format!(
                    "the last backup is {} old, more than {}",
                    age(t - ok),
                    age(warn_after.map_or(0, |w| w.as_secs() as i64))
                ),
                None => "it has never run successfully".to_string(),
            });
        }
        if failing {
            warnings.push("its last run failed".into());
        }
        attention |= !warnings.is_empty();
        if a.json {
            let v = json!({
                "job": job.name,
                "last_success": s.last_success.as_ref().map(|e| json!({"time": e.time, "age_seconds": t - e.time, "message": e.message})),
                "last_failure": s.last_failure.as_ref().map(|e| json!({"time": e.time, "age_seconds": t - e.time, "message": e.message})),
                "runs": s.runs,
                "repository": job.repository,
                "repository_bytes": size,
                "snapshots": snapshots,
                "warn_after_seconds": warn_after.map(|w| w.as_secs()),
                "warnings": warnings,
            });
            println!("{v}");
            continue;
        }
        println!("job {}:", job.name);
        match &s.last_success {
            Some(e) => println!("  last success: {} ago ({})", age(t - e.time), e.message),
            None => println!("  last success: never"),
        }
        if let Some(e) = &s.last_failure {
            println!("  last failure: {} ago: {}", age(t - e.time), e.message);
        }
        println!(
            "  repository `{}`: {}, {} snapshot(s) of this job",
            job.repository,
            size.map_or_else(|| "not readable".to_string(), human),
            snapshots.map_or_else(|| "?".to_string(), |n| n.to_string())
        );
        for w in warnings {
            println!("  WARNING: {w}");
        }
    }
    Ok(code(!attention))
}
