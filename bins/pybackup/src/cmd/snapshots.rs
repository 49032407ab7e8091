//! `pybackup snapshots`: the snapshots of a repository.

use std::io::Write;
use std::process::ExitCode;

use serde_json::json;

use crate::cmd::*;
use crate::ui::human;

pub fn run(a: &SnapshotsArgs) -> anyhow::Result<ExitCode> {
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let repo = repo::Repo::open_keyed(&a.repo, &keys, repo::default_cache_dir())?;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let mut problems = 0;
    if !a.json {
        writeln!(
            out,
            "{:<24} {:>9} {:>10} {:>7} {:>7} {:>7} {:>10}  status",
            "snapshot", "files", "size", "added", "changed", "removed", "archive"
        )?;
    }
    let filter = filter(&a.filter);
    for (name, info) in repo.infos()? {
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                problems += 1;
                eprintln!("pybackup: warning: {e}");
                continue;
            }
        };
        if (!a.all && info.status != repo::Status::Complete) || !filter.accepts(&info.host, &info.root) {
            continue;
        }
        let s = info.stats;
        if a.json {
            let v = json!({
                "snapshot": name, "time": humantime::format_rfc3339_micros(info.time).to_string(),
                "status": info.status.word(), "parent": info.parent,
                "host": String::from_utf8_lossy(&info.host), "path": String::from_utf8_lossy(&info.root), "files": s.files, "bytes": s.bytes,
                "added": s.added, "changed": s.changed, "removed": s.removed, "stored": s.stored,
                "stored_bytes": s.stored_bytes, "archive_bytes": info.archive_bytes,
            });
            writeln!(out, "{v}")?;
        } else {
            writeln!(
                out,
                "{:<24} {:>9} {:>10} {:>7} {:>7} {:>7} {:>10}  {}",
                name,
                s.files,
                human(s.bytes),
                s.added,
                s.changed,
                s.removed,
                human(info.archive_bytes),
                info.status.word()
            )?;
        }
    }
    out.flush()?;
    Ok(code(problems == 0))
}
