//! `pybackup diff`: what changed between two snapshots of a tree.

use std::io::{Read, Write};
use std::path::Path;
use std::process::ExitCode;

use ::manifest::{Change, Entry, Kind, Manifest};
use anyhow::Context;
use serde_json::json;

use crate::cmd::*;
use crate::ui::{human, Ui};

/// Loads one side of a diff: a directory, a manifest file, or an archive.
fn load_side(p: &Path, a: &DiffArgs, jobs: usize, ui: &Ui) -> anyhow::Result<(Manifest, u64)> {
    if !p.exists() {
        if let Some(s) = p.to_str() {
            if let (repo, Some(snap)) = split_spec(s) {
                let keys = crate::cmd::key::open_keys(&a.open)?;
                let m = repo::snapshot_manifest(&repo, Some(&snap), &repo::Filter::default(), &keys)
                    .with_context(|| format!("cannot read snapshot `{s}`"))?;
                return Ok((m, 0));
            }
        }
    }
    if p.is_dir() {
        return tree_manifest(p, a.walk.options()?, !a.no_hash, jobs, ui);
    }
    let mut head = [0u8; 14];
    let n = std::fs::File::open(p)
        .and_then(|mut f| f.read(&mut head))
        .with_context(|| format!("cannot read `{}`", p.display()))?;
    if head[..n].starts_with(::manifest::MAGIC.as_bytes()) {
        let text = std::fs::read(p).with_context(|| format!("cannot read `{}`", p.display()))?;
        let m = Manifest::parse(&text).with_context(|| format!("cannot parse manifest `{}`", p.display()))?;
        return Ok((m, 0));
    }
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let m = xtar::archive_manifest_keyed(p, &keys, ui).with_context(|| format!("cannot read `{}`", p.display()))?;
    Ok((m, 0))
}

pub fn run(a: &DiffArgs, jobs: usize, ui: &Ui) -> anyhow::Result<ExitCode> {
    let (ma, pa) = load_side(&a.a, a, jobs, ui)?;
    let (mb, pb) = load_side(&a.b, a, jobs, ui)?;
    let rules = a.walk.options()?.rules;
    let paths = a.paths.iter().map(|p| request_path(p)).collect::<anyhow::Result<Vec<_>>>()?;
    let keep = |e: &Entry| {
        let in_paths = paths.is_empty() || paths.iter().any(|p| ::manifest::is_within(&e.path, p));
        in_paths && rules.keeps(&e.path, e.kind == Kind::Dir)
    };
    let changes = ::manifest::diff(&ma, &mb, keep);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for c in &changes {
        if a.json {
            serde_json::to_writer(&mut out, &change_json(c))?;
            out.write_all(b"\n")?;
        } else {
            write_change(&mut out, c)?;
        }
    }
    out.flush()?;
    if !ui.quiet() && !a.json {
        ui.say(&summary(&changes));
    }
    if pa + pb > 0 {
        anyhow::bail!("{} entries could not be read; the comparison is incomplete", pa + pb);
    }
    Ok(code(changes.is_empty()))
}

pub fn summary(changes: &[Change]) -> String {
    if changes.is_empty() {
        return "pybackup: no differences".into();
    }
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for c in changes {
        match counts.iter_mut().find(|(w, _)| *w == c.word()) {
            Some((_, n)) => *n += 1,
            None => counts.push((c.word(), 1)),
        }
    }
    let parts: Vec<String> = counts.iter().map(|(w, n)| format!("{n} {w}")).collect();
    format!("pybackup: {}", parts.join(", "))
}

fn kind_word(e: &Entry) -> &'static str {
    match e.kind {
        Kind::HardLink => "file",
        k => k.name(),
    }
}

fn signed(d: i128) -> String {
    let h = human(d.unsigned_abs() as u64);
    if d < 0 {
        format!("-{h}")
    } else {
        format!("+{h}")
    }
}

fn write_path(out: &mut impl Write, p: &[u8]) -> std::io::Result<()> {
    crate::output::write_display_path(out, p)
}

/// One aligned line: change, detail, path.
pub fn write_change(out: &mut impl Write, c: &Change) -> std::io::Result<()> {
    let detail = match c {
        Change::Added(e) => {
            format!("{} {}", kind_word(e), if e.kind == Kind::Dir { String::new() } else { signed(i128::from(e.size)) })
        }
        Change::Removed(e) => format!(
            "{} {}",
            kind_word(e),
            if e.kind == Kind::Dir { String::new() } else { signed(-i128::from(e.size)) }
        ),
        Change::Modified { old, new } if old.kind == Kind::Symlink => "link target".to_string(),
        Change::Modified { old, new } if old.size != new.size => {
            format!(
                "{} -> {} ({})",
                human(old.size),
                human(new.size),
                signed(i128::from(new.size) - i128::from(old.size))
            )
        }
        Change::Modified { .. } => "content".to_string(),
        Change::TypeChanged { old, new } => format!("{} -> {}", kind_word(old), kind_word(new)),
        Change::Metadata { old, new } => {
            let mut parts = Vec::new();
            if old.mode != new.mode {
                parts.push(format!("mode {:04o} -> {:04o}", old.mode, new.mode));
            }
            if old.mtime != new.mtime {
                parts.push("mtime".to_string());
            }
            parts.join(", ")
        }
        Change::Moved { new, .. } => format!("{} {}", kind_word(new), human(new.size)),
    };
    write!(out, "{:<12} {:<28} ", c.word(), detail)?;
    if let Change::Moved { old, new } = c {
        write_path(out, &old.path)?;
        out.write_all(b" -> ")?;
        write_path(out, &new.path)?;
    } else {
        write_path(out, c.path())?;
    }
    out.write_all(b"\n")
}

fn hex(h: Option<[u8; 32]>) -> serde_json::Value {
    h.map_or(serde_json::Value::Null, |h| json!(h.iter().map(|b| format!("{b:02x}")).collect::<String>()))
}

fn change_json(c: &Change) -> serde_json::Value {
    let side = |e: &Entry| {
        json!({
            "kind": kind_word(e),
            "mode": format!("{:04o}", e.mode),
            "mtime": iso_time(e.mtime.sec, e.mtime.nsec),
            "size": e.size,
            "sha256": hex(e.sha256),
            "target": e.target.as_deref().map(json_path),
        })
    };
    match c {
        Change::Added(e) | Change::Removed(e) => {
            json!({"type": c.word(), "path": json_path(&e.path), "entry": side(e)})
        }
        Change::Moved { old, new } => {
            json!({"type": "moved", "from": json_path(&old.path), "path": json_path(&new.path), "old": side(old), "new": side(new)})
        }
        Change::Modified { old, new } | Change::TypeChanged { old, new } | Change::Metadata { old, new } => {
            json!({"type": c.word(), "path": json_path(&new.path), "old": side(old), "new": side(new)})
        }
    }
}
