//! Formatting listed entries as text or JSON Lines.

use std::io::{self, Write};

use base64::Engine as _;
use serde_json::{json, Value};

/// A path for JSON: a string when it is UTF-8, else `{"bytes": BASE64}`,
/// as ripgrep's JSON output does.
pub fn json_path(p: &[u8]) -> Value {
    match std::str::from_utf8(p) {
        Ok(s) => Value::String(s.to_string()),
        Err(_) => json!({ "bytes": base64::engine::general_purpose::STANDARD.encode(p) }),
    }
}

/// A path for text output: control bytes, backslashes and bytes that are
/// not UTF-8 are escaped (`\xHH`, `\\`), so that every entry stays on one
/// line; spaces and other text print as they are.
pub fn write_display_path(out: &mut impl Write, p: &[u8]) -> io::Result<()> {
    if p.is_empty() {
        return out.write_all(b".");
    }
    for chunk in p.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '\\' => out.write_all(b"\\\\")?,
                c if (c as u32) < 0x20 || c as u32 == 0x7f => write!(out, "\\x{:02x}", c as u32)?,
                c => write!(out, "{c}")?,
            }
        }
        for b in chunk.invalid() {
            write!(out, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

/// `2026-11-23T05:00:00.123456789Z` from seconds and nanoseconds (UTC).
pub fn iso_time(sec: i64, nsec: u32) -> String {
    let days = sec.div_euclid(86_400);
    let s = sec.rem_euclid(86_400);
    let (y, m, d) = manifest::civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{nsec:09}Z", s / 3600, (s % 3600) / 60, s % 60)
}

fn mode_string(kind: manifest::Kind, mode: u32) -> String {
    let t = match kind {
        manifest::Kind::Dir => 'd',
        manifest::Kind::Symlink => 'l',
        manifest::Kind::HardLink => 'h',
        manifest::Kind::Fifo => 'p',
        manifest::Kind::Socket => 's',
        manifest::Kind::CharDevice => 'c',
        manifest::Kind::BlockDevice => 'b',
        manifest::Kind::File => '-',
    };
    let mut s = String::with_capacity(10);
    s.push(t);
    let bits = [
        (0o400, 'r'),
        (0o200, 'w'),
        (0o100, 'x'),
        (0o040, 'r'),
        (0o020, 'w'),
        (0o010, 'x'),
        (0o004, 'r'),
        (0o002, 'w'),
        (0o001, 'x'),
    ];
    for (i, (bit, c)) in bits.iter().enumerate() {
        let special = match i {
            2 if mode & 0o4000 != 0 => Some(if mode & bit != 0 { 's' } else { 'S' }),
            5 if mode & 0o2000 != 0 => Some(if mode & bit != 0 { 's' } else { 'S' }),
            8 if mode & 0o1000 != 0 => Some(if mode & bit != 0 { 't' } else { 'T' }),
            _ => None,
        };
        s.push(special.unwrap_or(if mode & bit != 0 { *c } else { '-' }));
    }
    s
}

/// One line like `ls -l`: mode, size, stored size, mtime (UTC), path.
pub fn text_listed(out: &mut impl Write, l: &xtar::Listed) -> io::Result<()> {
    let e = &l.entry;
    let stored = l.stored.map_or_else(|| "-".to_string(), |s| s.to_string());
    let t = iso_time(e.mtime.sec, e.mtime.nsec);
    write!(out, "{} {:>12} {:>12} {} ", mode_string(e.kind, e.mode), e.size, stored, &t[..19])?;
    write_display_path(out, &e.path)?;
    match (&e.kind, &e.target) {
        (manifest::Kind::Symlink, Some(t)) => {
            out.write_all(b" -> ")?;
            write_display_path(out, t)?;
        }
        (manifest::Kind::HardLink, Some(t)) => {
            out.write_all(b" link to ")?;
            write_display_path(out, t)?;
        }
        _ => {}
    }
    out.write_all(b"\n")
}

/// One JSON object with `type: "entry"`.
pub fn json_listed(out: &mut impl Write, l: &xtar::Listed) -> io::Result<()> {
    let e = &l.entry;
    let sha = e.sha256.map(|h| h.iter().map(|b| format!("{b:02x}")).collect::<String>());
    let v = json!({
        "type": "entry",
        "path": json_path(&e.path),
        "kind": e.kind.name(),
        "mode": format!("{:04o}", e.mode),
        "size": e.size,
        "stored": l.stored,
        "mtime": iso_time(e.mtime.sec, e.mtime.nsec),
        "sha256": sha,
        "target": e.target.as_deref().map(json_path),
    });
    serde_json::to_writer(&mut *out, &v)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_modes() {
        assert_eq!(iso_time(0, 5), "1970-01-01T00:00:00.000000005Z");
        assert_eq!(iso_time(-1, 0), "1969-12-31T23:59:59.000000000Z");
        assert_eq!(mode_string(manifest::Kind::File, 0o4755), "-rwsr-xr-x");
        assert_eq!(mode_string(manifest::Kind::Dir, 0o1777), "drwxrwxrwt");
    }

    #[test]
    fn display_paths_stay_on_one_line() {
        let mut v = Vec::new();
        write_display_path(&mut v, b"a b\n\\\xffc").expect("write");
        assert_eq!(String::from_utf8(v).expect("utf-8"), "a b\\x0a\\\\\\xffc");
    }

    #[test]
    fn non_utf8_paths_are_base64() {
        assert_eq!(json_path(b"a\xff"), json!({"bytes": "Yf8="}));
        assert_eq!(json_path(b"ok"), json!("ok"));
    }
}
