//! The text and JSON reports.

use std::io::{self, Write};
use std::path::PathBuf;

use activity::{Group, Records};
use base64::Engine as _;
use serde_json::{json, Value};

use crate::timeline::Timeline;
use crate::Cli;

/// Local date and time of a nanosecond timestamp, or a note when it is out
/// of range.
pub fn local(t: i64, fmt: &str) -> String {
    match jiff::Timestamp::from_nanosecond(i128::from(t)) {
        Ok(ts) => ts.to_zoned(jiff::tz::TimeZone::system()).strftime(fmt).to_string(),
        Err(_) => "(out of range)".to_string(),
    }
}

/// `57m`, `2h05m`, `3d04h`.
pub fn span(ns: i64) -> String {
    let s = ns / 1_000_000_000;
    match s {
        s if s < 60 => format!("{s}s"),
        s if s < 3600 => format!("{}m", s / 60),
        s if s < 86_400 => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
        s => format!("{}d{:02}h", s / 86_400, (s % 86_400) / 3600),
    }
}

pub use cli::human;

fn path_text(p: &[u8]) -> String {
    let mut s = String::new();
    for chunk in p.utf8_chunks() {
        for c in chunk.valid().chars() {
            if (c as u32) < 0x20 || c as u32 == 0x7f || c == '\\' {
                s.push_str(&format!("\\x{:02x}", c as u32));
            } else {
                s.push(c);
            }
        }
        for b in chunk.invalid() {
            s.push_str(&format!("\\x{b:02x}"));
        }
    }
    if s.is_empty() {
        ".".into()
    } else {
        s
    }
}

fn json_path(p: &[u8]) -> Value {
    match std::str::from_utf8(p) {
        Ok(s) => Value::String(s.into()),
        Err(_) => json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(p) }),
    }
}

fn marks(g: &Group, now: i64) -> &'static str {
    if g.end > now {
        "  (in the future)"
    } else if g.start < 0 {
        "  (before 1970)"
    } else {
        ""
    }
}

pub fn text(
    out: &mut impl Write,
    r: &Records,
    groups: &[Group],
    roots: &[PathBuf],
    cli: &Cli,
    now: i64,
) -> io::Result<()> {
    let files: u64 = groups.iter().map(|g| g.files).sum();
    let bytes: u64 = groups.iter().map(|g| g.bytes).sum();
    let names: Vec<String> = roots.iter().map(|p| p.display().to_string()).collect();
    writeln!(
        out,
        "{} groups of activity, {files} files, {} in {} (radius {})",
        groups.len(),
        human(bytes),
        names.join(", "),
        humantime::format_duration(cli.radius)
    )?;
    if groups.is_empty() {
        return Ok(());
    }
    if !cli.no_timeline {
        writeln!(out)?;
        out.write_all(Timeline::of(r, groups, 72).terminal().as_bytes())?;
    }
    writeln!(out)?;
    for g in groups {
        let dirs: Vec<String> =
            g.top_dirs(r, 3).iter().map(|d| format!("{} ({})", path_text(&d.dir), d.files)).collect();
        writeln!(
            out,
            "#{:<4} {} .. {}  {:>7}  {:>7} files  {:>10}  {}{}",
            g.number,
            local(g.start, "%Y-%m-%d %H:%M"),
            local(g.end, "%H:%M"),
            span(g.end - g.start),
            g.files,
            human(g.bytes),
            dirs.join(", "),
            marks(g, now)
        )?;
        if cli.files {
            for i in g.members.clone() {
                let (t, size, p) = r.get(i);
                writeln!(out, "    {}  {:>10}  {}", local(t, "%Y-%m-%d %H:%M:%S"), human(size), path_text(p))?;
            }
        }
    }
    Ok(())
}

pub fn json(out: &mut impl Write, r: &Records, groups: &[Group], with_files: bool, now: i64) -> io::Result<()> {
    let iso = |t: i64| match jiff::Timestamp::from_nanosecond(i128::from(t)) {
        Ok(ts) => Value::String(ts.to_zoned(jiff::tz::TimeZone::system()).to_string()),
        Err(_) => Value::Null,
    };
    for g in groups {
        let dirs: Vec<Value> = g
            .top_dirs(r, 3)
            .iter()
            .map(|d| json!({"dir": json_path(&d.dir), "files": d.files, "bytes": d.bytes}))
            .collect();
        let mut v = json!({
            "type": "group",
            "group": g.number,
            "start": iso(g.start),
            "end": iso(g.end),
            "start_ns": g.start,
            "end_ns": g.end,
            "files": g.files,
            "bytes": g.bytes,
            "top_dirs": dirs,
            "future": g.end > now,
            "before_1970": g.start < 0,
        });
        if with_files {
            v["paths"] = g
                .members
                .clone()
                .map(|i| {
                    let (t, size, p) = r.get(i);
                    json!({"path": json_path(p), "time": iso(t), "size": size})
                })
                .collect();
        }
        serde_json::to_writer(&mut *out, &v)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_sizes() {
        assert_eq!(span(59_000_000_000), "59s");
        assert_eq!(span(3_540_000_000_000), "59m");
        assert_eq!(span(7_500_000_000_000), "2h05m");
        assert_eq!(span(90_000_000_000_000), "1d01h");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(path_text(b"a\nb\xff"), "a\\x0ab\\xff");
    }
}
