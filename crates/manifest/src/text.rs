//! The text encoding; `docs/format/manifest.md` is the normative description.

use std::cmp::Ordering;

use crate::{cmp_paths, escape_path, unescape_path, Entry, Error, Kind, Manifest, Result, Timestamp};

/// The first word of a manifest's first line.
pub const MAGIC: &str = "#xtar-manifest";
/// The manifest format version this code writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// Appends the header lines of a manifest taken at `root`.
pub fn write_header(out: &mut Vec<u8>, root: &[u8]) {
    out.extend_from_slice(format!("{MAGIC} {FORMAT_VERSION}\n#root ").as_bytes());
    escape_path(out, root);
    out.push(b'\n');
}

/// Appends the text line of one entry (with its newline).
pub fn write_entry_line(out: &mut Vec<u8>, e: &Entry) {
    if e.path.is_empty() {
        out.push(b'.');
    } else {
        escape_path(out, &e.path);
    }
    out.push(b'\t');
    out.push(e.kind.code());
    out.push(b'\t');
    push_mode(out, e.mode);
    out.push(b'\t');
    push_time(out, e.mtime);
    out.push(b'\t');
    push_u64(out, e.size);
    out.push(b'\t');
    match &e.sha256 {
        Some(h) => push_hex(out, h),
        None => out.push(b'-'),
    }
    out.push(b'\t');
    match &e.target {
        Some(t) if matches!(e.kind, Kind::Symlink | Kind::HardLink) => escape_path(out, t),
        _ => out.push(b'-'),
    }
    out.push(b'\n');
}

/// Appends `n` in decimal (what `format!("{n}")` gives, without the
/// allocation: records and manifests write millions of these).
pub fn push_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Appends a timestamp as `SEC.NNNNNNNNN` (seconds may be negative).
pub fn push_time(out: &mut Vec<u8>, t: Timestamp) {
    if t.sec < 0 {
        out.push(b'-');
    }
    push_u64(out, t.sec.unsigned_abs());
    out.push(b'.');
    let mut buf = [b'0'; 9];
    let mut n = t.nsec;
    for d in buf.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    out.extend_from_slice(&buf);
}

/// Appends a mode as at least four octal digits.
fn push_mode(out: &mut Vec<u8>, mode: u32) {
    let mut buf = [0u8; 11];
    let mut i = buf.len();
    let mut m = mode;
    while m != 0 || buf.len() - i < 4 {
        i -= 1;
        buf[i] = b'0' + (m & 7) as u8;
        m >>= 3;
    }
    out.extend_from_slice(&buf[i..]);
}

fn push_hex(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for &b in bytes {
        out.push(HEX[(b >> 4) as usize]);
        out.push(HEX[(b & 15) as usize]);
    }
}

fn syntax(line: usize, message: impl Into<String>) -> Error {
    Error::Syntax { line, message: message.into() }
}

/// Parses one entry line (without its newline). `line` is used in errors.
pub fn parse_entry_line(text: &[u8], line: usize) -> Result<Entry> {
    let fields: Vec<&[u8]> = text.split(|&b| b == b'\t').collect();
    if fields.len() != 7 {
        return Err(syntax(line, format!("expected 7 tab-separated fields, found {}", fields.len())));
    }
    let path = if fields[0] == b"." {
        Vec::new()
    } else {
        let p = unescape_path(fields[0]).map_err(|m| syntax(line, m))?;
        check_relative(&p).map_err(|m| syntax(line, m))?;
        p
    };
    let kind = match fields[1] {
        [c] => Kind::from_code(*c),
        _ => None,
    }
    .ok_or_else(|| syntax(line, format!("unknown kind `{}`", String::from_utf8_lossy(fields[1]))))?;
    let mode = std::str::from_utf8(fields[2])
        .ok()
        .filter(|s| !s.is_empty() && s.len() <= 6)
        .and_then(|s| u32::from_str_radix(s, 8).ok())
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| syntax(line, "bad mode"))?;
    let mtime = parse_time(fields[3]).ok_or_else(|| syntax(line, "bad mtime"))?;
    let size = std::str::from_utf8(fields[4])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| syntax(line, "bad size"))?;
    let sha256 = match fields[5] {
        b"-" => None,
        h => Some(parse_hex32(h).ok_or_else(|| syntax(line, "bad sha256"))?),
    };
    let target = match (kind, fields[6]) {
        (Kind::Symlink | Kind::HardLink, t) => {
            let t = unescape_path(t).map_err(|m| syntax(line, m))?;
            if t.is_empty() {
                return Err(syntax(line, "empty link target"));
            }
            if kind == Kind::HardLink {
                check_relative(&t).map_err(|m| syntax(line, format!("hard link target: {m}")))?;
            }
            Some(t)
        }
        (_, b"-") => None,
        _ => return Err(syntax(line, "target given for an entry that is not a link")),
    };
    if path.is_empty() && kind != Kind::Dir {
        return Err(syntax(line, "the root must be a directory"));
    }
    Ok(Entry { path, kind, mode, mtime, size, sha256, target })
}

/// Checks that a path is relative, with no empty, `.` or `..` component.
fn check_relative(p: &[u8]) -> std::result::Result<(), String> {
    if p.is_empty() {
        return Err("empty path".into());
    }
    if p.contains(&0) {
        return Err("NUL byte in path".into());
    }
    if p.starts_with(b"/") {
        return Err("absolute path".into());
    }
    for c in p.split(|&b| b == b'/') {
        if c.is_empty() || c == b"." || c == b".." {
            return Err(format!("bad path component `{}`", String::from_utf8_lossy(c)));
        }
    }
    Ok(())
}

fn parse_time(f: &[u8]) -> Option<Timestamp> {
    let s = std::str::from_utf8(f).ok()?;
    let (sec, nsec) = s.split_once('.')?;
    if nsec.len() != 9 || !nsec.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(Timestamp { sec: sec.parse().ok()?, nsec: nsec.parse().ok()? })
}

fn parse_hex32(h: &[u8]) -> Option<[u8; 32]> {
    fn nibble(c: u8) -> Option<u8> {
        match c {
            b'0'..=b'9' => Some(c - b'0'),
            b'a'..=b'f' => Some(c - b'a' + 10),
            _ => None,
        }
    }
    if h.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(h.chunks_exact(2)) {
        *o = (nibble(pair[0])? << 4) | nibble(pair[1])?;
    }
    Some(out)
}

pub(crate) fn parse(input: &[u8]) -> Result<Manifest> {
    let mut lines = input.split(|&b| b == b'\n').enumerate().map(|(i, l)| (i + 1, l));
    let (_, first) = lines.next().ok_or_else(|| syntax(1, "empty manifest"))?;
    let first = std::str::from_utf8(first).map_err(|_| syntax(1, "header is not UTF-8"))?;
    let version = first
        .strip_prefix(MAGIC)
        .and_then(|r| r.strip_prefix(' '))
        .ok_or_else(|| syntax(1, format!("not a manifest: expected `{MAGIC} {FORMAT_VERSION}`")))?;
    if version != FORMAT_VERSION.to_string() {
        return Err(Error::Version { found: version.to_string() });
    }
    let mut m = Manifest::new(Vec::new());
    let mut ended = false;
    for (n, l) in lines {
        if ended {
            return Err(syntax(n - 1, "manifest must end with a newline"));
        }
        if l.is_empty() {
            ended = true;
            continue;
        }
        if let Some(root) = l.strip_prefix(b"#root ") {
            if !m.entries.is_empty() {
                return Err(syntax(n, "`#root` after the entries"));
            }
            m.root = unescape_path(root).map_err(|e| syntax(n, e))?;
            continue;
        }
        if l.starts_with(b"#") {
            // Comments and unknown header lines are ignored, for forward compatibility.
            continue;
        }
        let e = parse_entry_line(l, n)?;
        if let Some(prev) = m.entries.last() {
            match cmp_paths(&prev.path, &e.path) {
                Ordering::Less => {}
                Ordering::Equal => return Err(syntax(n, "duplicate path")),
                Ordering::Greater => return Err(syntax(n, "entries are not in sorted order")),
            }
        }
        m.entries.push(e);
    }
    if !ended {
        return Err(syntax(1, "manifest must end with a newline"));
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn number_writers_match_format() {
        for n in [0u64, 7, 10, 99, 1_000_000_007, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string().into_bytes());
        }
        for (sec, nsec) in [(0i64, 0u32), (-2, 5), (i64::MIN, 999_999_999), (i64::MAX, 1), (1_700_000_000, 120)] {
            let mut out = Vec::new();
            push_time(&mut out, Timestamp::new(sec, nsec));
            assert_eq!(out, format!("{sec}.{nsec:09}").into_bytes());
        }
        for m in [0u32, 0o7, 0o644, 0o7777, 0o100644] {
            let mut out = Vec::new();
            push_mode(&mut out, m);
            assert_eq!(out, format!("{m:04o}").into_bytes());
        }
    }

    fn sample() -> Manifest {
        let mut m = Manifest::new(b"/src".to_vec());
        let t = Timestamp::new(-5, 123);
        m.entries.push(Entry::dir(Vec::new(), 0o755, t));
        let mut f = Entry::dir(b"a b".to_vec(), 0o4755, t);
        f.kind = Kind::File;
        f.size = 10;
        f.sha256 = Some([0xab; 32]);
        m.entries.push(f);
        let mut l = Entry::dir(b"link".to_vec(), 0o777, t);
        l.kind = Kind::Symlink;
        l.target = Some(b"-".to_vec());
        m.entries.push(l);
        m
    }

    #[test]
    fn round_trip() {
        let m = sample();
        assert_eq!(Manifest::parse(&m.to_text()).expect("parses"), m);
    }

    #[test]
    fn errors_name_the_line() {
        let mut t = sample().to_text();
        t.extend_from_slice(b"zzz\tq\t0644\t0.000000000\t0\t-\t-\n");
        let err = Manifest::parse(&t).expect_err("bad kind");
        assert_eq!(err.to_string(), "line 6: unknown kind `q`");
    }

    #[test]
    fn rejects_traversal_and_disorder() {
        let head = b"#xtar-manifest 1\n#root x\n.\td\t0755\t0.000000000\t0\t-\t-\n";
        let mut t = head.to_vec();
        t.extend_from_slice(b"../x\tf\t0644\t0.000000000\t0\t-\t-\n");
        assert!(Manifest::parse(&t).is_err());
        let mut t = head.to_vec();
        t.extend_from_slice(b"b\tf\t0644\t0.000000000\t0\t-\t-\na\tf\t0644\t0.000000000\t0\t-\t-\n");
        let err = Manifest::parse(&t).expect_err("disorder");
        assert!(err.to_string().contains("line 5"), "{err}");
    }

    /// Found by the random-tree property test: a directory named `#...`
    /// made its index line look like a comment, and its entry was lost.
    #[test]
    fn path_with_leading_hash_is_not_a_comment() {
        let mut m = sample();
        m.entries.push(Entry::dir(b"#not-a-comment".to_vec(), 0o755, Timestamp::new(0, 0)));
        m.sort();
        assert_eq!(Manifest::parse(&m.to_text()).expect("parses"), m);
    }

    #[test]
    fn rejects_unknown_version() {
        let err = Manifest::parse(b"#xtar-manifest 9\n").expect_err("version");
        assert!(matches!(err, Error::Version { .. }));
    }
}
