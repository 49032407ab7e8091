//! Volume names and the set's table (`.xtar-volumes`, volumes.md §3).

use std::path::{Path, PathBuf};

use manifest::Entry;
use sha2::Digest;

use crate::{Error, Result};

/// First line of the table, before the version.
pub const VOLUMES_MAGIC: &str = "#xtar-volumes";
/// Version of the table written.
pub const VOLUMES_VERSION: u32 = 1;

/// The path of volume `k` (from 1) of the set `base`: `BASE.NNN.xtar`.
pub fn volume_path(base: &Path, k: u32) -> PathBuf {
    let mut s = base.as_os_str().to_os_string();
    s.push(format!(".{k:03}.xtar"));
    PathBuf::from(s)
}

/// The set's base for an output named `out`: `NAME.xtar` and `NAME` both
/// give `NAME` (volumes `NAME.001.xtar`, …).
pub fn set_base(out: &Path) -> PathBuf {
    match out.to_str().and_then(|s| s.strip_suffix(".xtar")) {
        Some(s) if !s.is_empty() => PathBuf::from(s),
        _ => out.to_path_buf(),
    }
}

/// Splits a volume's path into the set's base and the volume number, when
/// it is named like one (`BASE.NNN.xtar`, three digits or more).
pub fn volume_base(path: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    let rest = b.strip_suffix(b".xtar")?;
    let dot = rest.iter().rposition(|&c| c == b'.')?;
    let digits = &rest[dot + 1..];
    if digits.len() < 3 || !digits.iter().all(u8::is_ascii_digit) || dot == 0 {
        return None;
    }
    let k = std::str::from_utf8(digits).ok()?.parse::<u32>().ok().filter(|&k| k > 0)?;
    Some((PathBuf::from(std::ffi::OsStr::from_bytes(&rest[..dot])), k))
}

/// Where an entry's content is in a set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// No member: directories, hard links (their first name holds the
    /// data), fifos, sockets, devices.
    None,
    /// The whole member is in this volume.
    Whole(u32),
    /// Cut into parts: part `i + 1` is in the `i`-th volume listed.
    Parts(Vec<u32>),
}

impl Place {
    /// The volumes it needs.
    pub fn volumes(&self) -> &[u32] {
        match self {
            Place::None => &[],
            Place::Whole(v) => std::slice::from_ref(v),
            Place::Parts(v) => v,
        }
    }
}

/// The table of a set: every entry of the tree and where its content is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Table {
    /// Identifies the set (the same in all its volumes).
    pub set_id: String,
    /// The volume this copy of the table was read from.
    pub volume: u32,
    /// Number of volumes in the set.
    pub count: u32,
    /// The root the set was made from.
    pub root: Vec<u8>,
    /// Every entry, in canonical order, with its place.
    pub entries: Vec<(Place, Entry)>,
}

impl Table {
    /// The entry lines, with their places: what the set id hashes.
    pub fn body(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for (place, e) in &self.entries {
            match place {
                Place::None => out.push(b'-'),
                Place::Whole(v) => out.extend_from_slice(v.to_string().as_bytes()),
                Place::Parts(vs) => {
                    // Always with a `+`, so that one part is not read as a
                    // whole member.
                    for v in vs {
                        out.extend_from_slice(v.to_string().as_bytes());
                        out.push(b'+');
                    }
                }
            }
            out.push(b'\t');
            manifest::write_entry_line(&mut out, e);
        }
        out
    }

    /// The set id a table's text declares (its `#set` line, the second),
    /// read from as little as its first lines.
    pub fn set_id_in(text: &[u8]) -> Option<&[u8]> {
        text.split(|&b| b == b'\n').nth(1).and_then(|l| l.strip_prefix(b"#set "))
    }

    /// The set id of a table whose body is `body` (volumes.md §3).
    pub fn set_id_of(body: &[u8]) -> String {
        sha2::Sha256::digest(body)[..16].iter().map(|x| format!("{x:02x}")).collect()
    }

    /// The table as stored in volume `volume`.
    pub fn to_text(&self, body: &[u8], volume: u32) -> Vec<u8> {
        let mut out = format!(
            "{VOLUMES_MAGIC} {VOLUMES_VERSION}\n#set {}\n#volume {volume}\n#count {}\n#root ",
            self.set_id, self.count
        )
        .into_bytes();
        manifest::escape_path(&mut out, &self.root);
        out.push(b'\n');
        out.extend_from_slice(body);
        out
    }

    /// Parses a table; `path` names it in errors.
    pub fn parse(text: &[u8], path: &Path) -> Result<Table> {
        let bad = |line: usize, message: String| Error::Table { path: path.to_path_buf(), line, message };
        let mut t = Table { set_id: String::new(), volume: 0, count: 0, root: Vec::new(), entries: Vec::new() };
        let mut lines = text.split(|&b| b == b'\n').enumerate().peekable();
        let first = lines.next().map(|(_, l)| l).unwrap_or_default();
        if first != format!("{VOLUMES_MAGIC} {VOLUMES_VERSION}").as_bytes() {
            return Err(bad(1, format!("expected `{VOLUMES_MAGIC} {VOLUMES_VERSION}`, found `{}`", lossy(first))));
        }
        for (i, line) in lines {
            let n = i + 1;
            if line.is_empty() {
                continue;
            }
            if let Some(h) = line.strip_prefix(b"#") {
                let (key, value) = match h.iter().position(|&b| b == b' ') {
                    Some(p) => (&h[..p], &h[p + 1..]),
                    None => (h, &b""[..]),
                };
                let num = || std::str::from_utf8(value).ok().and_then(|v| v.parse::<u32>().ok());
                match key {
                    b"set" => t.set_id = lossy(value),
                    b"volume" => t.volume = num().ok_or_else(|| bad(n, "bad volume number".into()))?,
                    b"count" => t.count = num().ok_or_else(|| bad(n, "bad volume count".into()))?,
                    b"root" => t.root = manifest::unescape_path(value).map_err(|m| bad(n, m))?,
                    _ => {}
                }
                continue;
            }
            let tab = line.iter().position(|&b| b == b'\t').ok_or_else(|| bad(n, "no place column".into()))?;
            let col = std::str::from_utf8(&line[..tab]).map_err(|_| bad(n, "bad place column".into()))?;
            let vol = |s: &str| s.parse::<u32>().ok().filter(|&v| v >= 1 && v <= t.count);
            let place = if col == "-" {
                Place::None
            } else if col.contains('+') {
                let vs: Option<Vec<u32>> = col.split('+').filter(|v| !v.is_empty()).map(vol).collect();
                Place::Parts(vs.ok_or_else(|| bad(n, format!("bad volumes `{col}`")))?)
            } else {
                Place::Whole(vol(col).ok_or_else(|| bad(n, format!("bad volume `{col}`")))?)
            };
            let e = manifest::parse_entry_line(&line[tab + 1..], n).map_err(|m| bad(n, m.to_string()))?;
            t.entries.push((place, e));
        }
        if t.count == 0 || t.volume == 0 || t.volume > t.count || t.set_id.is_empty() {
            return Err(bad(1, "the header lacks #set, #volume or #count".into()));
        }
        Ok(t)
    }
}

pub(crate) fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}
