use std::cmp::Ordering;

/// The kind of an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A directory.
    Dir,
    /// A regular file.
    File,
    /// A symbolic link; `target` holds where it points.
    Symlink,
    /// A further name of a regular file stored earlier; `target` holds the
    /// path of the first name.
    HardLink,
    /// A named pipe (recorded, never stored).
    Fifo,
    /// A socket (recorded, never stored).
    Socket,
    /// A character device (recorded, never stored).
    CharDevice,
    /// A block device (recorded, never stored).
    BlockDevice,
}

impl Kind {
    /// The one-letter code used in the text format.
    pub fn code(self) -> u8 {
        match self {
            Kind::Dir => b'd',
            Kind::File => b'f',
            Kind::Symlink => b'l',
            Kind::HardLink => b'h',
            Kind::Fifo => b'p',
            Kind::Socket => b's',
            Kind::CharDevice => b'c',
            Kind::BlockDevice => b'b',
        }
    }

    /// The kind for a one-letter code.
    pub fn from_code(c: u8) -> Option<Kind> {
        Some(match c {
            b'd' => Kind::Dir,
            b'f' => Kind::File,
            b'l' => Kind::Symlink,
            b'h' => Kind::HardLink,
            b'p' => Kind::Fifo,
            b's' => Kind::Socket,
            b'c' => Kind::CharDevice,
            b'b' => Kind::BlockDevice,
            _ => return None,
        })
    }

    /// A word for messages and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Dir => "dir",
            Kind::File => "file",
            Kind::Symlink => "symlink",
            Kind::HardLink => "hardlink",
            Kind::Fifo => "fifo",
            Kind::Socket => "socket",
            Kind::CharDevice => "char-device",
            Kind::BlockDevice => "block-device",
        }
    }

    /// Whether archives store this kind (data or link); fifos, sockets and
    /// devices are only recorded.
    pub fn is_stored(self) -> bool {
        matches!(self, Kind::Dir | Kind::File | Kind::Symlink | Kind::HardLink)
    }
}

impl From<walk::Kind> for Kind {
    fn from(k: walk::Kind) -> Kind {
        match k {
            walk::Kind::File => Kind::File,
            walk::Kind::Dir => Kind::Dir,
            walk::Kind::Symlink => Kind::Symlink,
            walk::Kind::Fifo => Kind::Fifo,
            walk::Kind::Socket => Kind::Socket,
            walk::Kind::CharDevice => Kind::CharDevice,
            walk::Kind::BlockDevice => Kind::BlockDevice,
        }
    }
}

/// A point in time with nanoseconds: `sec` may be negative (before 1970),
/// `nsec` is always in `0..1_000_000_000` and counts forward from `sec`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp {
    /// Whole seconds since the epoch.
    pub sec: i64,
    /// Nanoseconds after `sec`.
    pub nsec: u32,
}

impl Timestamp {
    /// A timestamp; `nsec` is clamped to below one second.
    pub fn new(sec: i64, nsec: u32) -> Timestamp {
        Timestamp { sec, nsec: nsec.min(999_999_999) }
    }
}

/// One entry of a tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Path relative to the root, raw bytes, `/`-separated; empty for the root.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Permission bits, `0o7777` at most.
    pub mode: u32,
    /// Modification time.
    pub mtime: Timestamp,
    /// Size in bytes of regular files (and hard links); 0 otherwise.
    pub size: u64,
    /// SHA-256 of a regular file's content, when hashed.
    pub sha256: Option<[u8; 32]>,
    /// Target of a symlink, or first path of a hard link.
    pub target: Option<Vec<u8>>,
}

impl Entry {
    /// A directory entry.
    pub fn dir(path: Vec<u8>, mode: u32, mtime: Timestamp) -> Entry {
        Entry { path, kind: Kind::Dir, mode, mtime, size: 0, sha256: None, target: None }
    }

    /// An entry made from walk metadata (no hash yet).
    pub fn from_walk(e: &walk::Entry) -> Entry {
        let kind = Kind::from(e.kind);
        Entry {
            path: e.path.clone(),
            kind,
            mode: e.meta.mode,
            mtime: Timestamp::new(e.meta.mtime, e.meta.mtime_nsec),
            size: if kind == Kind::File { e.meta.size } else { 0 },
            sha256: None,
            target: e.link_target.clone(),
        }
    }

    /// The last path component.
    pub fn name(&self) -> &[u8] {
        Entry::name_of(&self.path)
    }

    /// The last component of a path.
    pub fn name_of(path: &[u8]) -> &[u8] {
        match path.iter().rposition(|&b| b == b'/') {
            Some(i) => &path[i + 1..],
            None => path,
        }
    }
}

/// The parent of a relative path (`a/b` → `a`, `a` → ``).
pub fn parent_of(path: &[u8]) -> &[u8] {
    match path.iter().rposition(|&b| b == b'/') {
        Some(i) => &path[..i],
        None => &path[..0],
    }
}

/// Whether `path` is `base` or below it (`/`-separated, relative paths;
/// the empty path is the root and holds everything).
pub fn is_within(path: &[u8], base: &[u8]) -> bool {
    base.is_empty() || path == base || (path.starts_with(base) && path.get(base.len()) == Some(&b'/'))
}

/// The civil date (year, month 1–12, day 1–31, proleptic Gregorian) of a
/// day counted from 1970-01-01 (Howard Hinnant's `civil_from_days`).
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// The day counted from 1970-01-01 of a civil date (year, month 1–12,
/// day 1–31, proleptic Gregorian): the inverse of [`civil_from_days`]
/// (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The canonical order of paths: component by component, each compared as
/// raw bytes. A directory sorts right before its contents, so `a`, `a/b`,
/// `a.txt` is the order (plain byte order would put `a.txt` before `a/b`).
pub fn cmp_paths(a: &[u8], b: &[u8]) -> Ordering {
    if canonical(a) && canonical(b) {
        return cmp_canonical(a, b);
    }
    cmp_components(a, b)
}

/// [`cmp_paths`] for paths without empty components (no `//`, no `/` at
/// either end), as every parsed entry and every walked path is: the bytes
/// compared with `/` below every other byte, no allocation, no second
/// pass.
pub fn cmp_canonical(a: &[u8], b: &[u8]) -> Ordering {
    debug_assert!(canonical(a) && canonical(b), "{a:?} {b:?}");
    let n = mismatch(a, b);
    match (a.get(n), b.get(n)) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Less,
        (Some(_), None) => Ordering::Greater,
        (Some(b'/'), Some(_)) => Ordering::Less,
        (Some(_), Some(b'/')) => Ordering::Greater,
        (Some(x), Some(y)) => x.cmp(y),
    }
}

/// The length of the common prefix of two byte strings, eight bytes at a
/// time.
fn mismatch(a: &[u8], b: &[u8]) -> usize {
    let n = a.len().min(b.len());
    let mut i = 0;
    while i + 8 <= n && a[i..i + 8] == b[i..i + 8] {
        i += 8;
    }
    while i < n && a[i] == b[i] {
        i += 1;
    }
    i
}

/// Whether a path has no empty component (no `//`, no `/` at either end).
fn canonical(p: &[u8]) -> bool {
    p.first() != Some(&b'/') && p.last() != Some(&b'/') && !p.windows(2).any(|w| w == b"//")
}

/// [`cmp_paths`] by its definition: component by component, empty ones
/// skipped.
fn cmp_components(a: &[u8], b: &[u8]) -> Ordering {
    let mut ia = a.split(|&c| c == b'/').filter(|s| !s.is_empty());
    let mut ib = b.split(|&c| c == b'/').filter(|s| !s.is_empty());
    loop {
        match (ia.next(), ib.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) => match x.cmp(y) {
                Ordering::Equal => continue,
                other => return other,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte comparison gives what the definition gives, on paths made
    /// of the bytes that matter (`/` and its neighbours, `.`, `-`, 0 and
    /// 255), empty components included.
    #[test]
    fn the_fast_comparison_is_the_definition() {
        let alphabet: &[u8] = b"/a.-\x00\xff0";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let path = |next: &mut dyn FnMut() -> u64| -> Vec<u8> {
            let len = (next() % 7) as usize;
            (0..len).map(|_| alphabet[(next() % alphabet.len() as u64) as usize]).collect()
        };
        for _ in 0..200_000 {
            let a = path(&mut next);
            if next() % 3 == 0 {
                // Long shared prefixes, for the eight-byte steps.
                let mut long = b"0123456789abcdef/".repeat((next() % 3) as usize);
                long.extend_from_slice(&a);
                let mut other = long.clone();
                other.extend_from_slice(&path(&mut next));
                assert_eq!(cmp_paths(&long, &other), cmp_components(&long, &other), "{long:?} {other:?}");
            }
            let b = if next() % 4 == 0 { a.clone() } else { path(&mut next) };
            assert_eq!(cmp_paths(&a, &b), cmp_components(&a, &b), "{a:?} {b:?}");
        }
    }

    #[test]
    fn directory_sorts_before_its_contents() {
        let mut v: Vec<&[u8]> = vec![b"a.txt", b"a/b", b"a", b"", b"a/b/c", b"a-b"];
        v.sort_by(|x, y| cmp_paths(x, y));
        assert_eq!(v, vec![&b""[..], b"a", b"a/b", b"a/b/c", b"a-b", b"a.txt"]);
    }
}

#[cfg(test)]
mod date_and_path_tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_786), (2026, 11, 29));
    }

    #[test]
    fn days_from_civil_inverts_civil_from_days() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(days_from_civil(2000, 2, 29), 11_016);
    }

    #[test]
    fn within() {
        assert!(is_within(b"a/b", b"a"));
        assert!(is_within(b"a", b"a"));
        assert!(is_within(b"a", b""));
        assert!(!is_within(b"ab", b"a"));
        assert!(!is_within(b"a", b"a/b"));
    }
}
