//! An archive cut into pieces, `NAME.xtar.001`, `NAME.xtar.002`, …: an
//! encrypted volume set (`docs/format/volumes.md` §6). Readers read the
//! pieces in order as one archive; salvage puts the pieces it has at their
//! places in one file, the missing ones as holes.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

/// Numbers of missing pieces looked past before the set is taken to end.
const GAP: u32 = 100;

/// The pieces of an archive found on disk.
#[derive(Debug, Clone)]
pub struct Pieces {
    /// The whole archive's name, `NAME.xtar` (not a file on disk).
    pub whole: PathBuf,
    /// The pieces there are: number (from 1), path and size, in order.
    pub found: Vec<(u32, PathBuf, u64)>,
    /// Numbers below the last piece found that are missing.
    pub missing: Vec<u32>,
}

/// The path of piece `k` (from 1) of the archive `whole`: `WHOLE.NNN`.
pub fn piece_path(whole: &Path, k: u32) -> PathBuf {
    let mut s = whole.as_os_str().to_os_string();
    s.push(format!(".{k:03}"));
    PathBuf::from(s)
}

/// `NAME.xtar.NNN` (three digits or more): the whole's name and the number.
pub fn piece_of(path: &Path) -> Option<(PathBuf, u32)> {
    use std::os::unix::ffi::OsStrExt;
    let b = path.as_os_str().as_bytes();
    let dot = b.iter().rposition(|&c| c == b'.')?;
    let digits = &b[dot + 1..];
    let whole = &b[..dot];
    if digits.len() < 3 || !digits.iter().all(u8::is_ascii_digit) || !whole.ends_with(b".xtar") || whole == b".xtar" {
        return None;
    }
    let k = std::str::from_utf8(digits).ok()?.parse::<u32>().ok().filter(|&k| k > 0)?;
    Some((PathBuf::from(std::ffi::OsStr::from_bytes(whole)), k))
}

impl Pieces {
    /// The pieces that `path` belongs to: `path` is a piece
    /// (`NAME.xtar.NNN`), or a `NAME.xtar` that does not exist while
    /// `NAME.xtar.001` does. `None` otherwise.
    pub fn find(path: &Path) -> io::Result<Option<Pieces>> {
        let whole = match piece_of(path) {
            Some((w, _)) => w,
            None if !path.exists() && piece_path(path, 1).is_file() => path.to_path_buf(),
            None => return Ok(None),
        };
        let (mut found, mut missing, mut gap) = (Vec::new(), Vec::new(), Vec::new());
        let mut k = 1;
        while (gap.len() as u32) < GAP {
            let p = piece_path(&whole, k);
            match std::fs::metadata(&p) {
                Ok(m) if m.is_file() => {
                    missing.append(&mut gap);
                    found.push((k, p, m.len()));
                }
                Ok(_) => gap.push(k),
                Err(e) if e.kind() == io::ErrorKind::NotFound => gap.push(k),
                Err(e) => return Err(e),
            }
            k += 1;
        }
        if found.is_empty() {
            return Ok(None);
        }
        Ok(Some(Pieces { whole, found, missing }))
    }

    /// What is missing, for messages: `None` when every piece up to the
    /// last found is there.
    pub fn missing_message(&self) -> Option<String> {
        let first = self.missing.first()?;
        Some(format!(
            "{} of the pieces of `{}` {} missing (`{}`{}): `pybackup repair` rebuilds them from parity volumes, \
             `pybackup salvage` gives back what the others hold",
            self.missing.len(),
            self.whole.display(),
            if self.missing.len() == 1 { "is" } else { "are" },
            piece_path(&self.whole, *first).display(),
            if self.missing.len() > 1 { ", …" } else { "" },
        ))
    }

    /// The pieces read one after another (every one must be there).
    pub fn reader(&self) -> io::Result<Chain> {
        if let Some(m) = self.missing_message() {
            return Err(io::Error::new(io::ErrorKind::NotFound, m));
        }
        let files = self.found.iter().map(|(_, p, _)| File::open(p)).collect::<io::Result<Vec<_>>>()?;
        Ok(Chain { files, i: 0 })
    }

    /// The size of every piece but the last (the writer cuts them equal),
    /// when a piece that is not the last was found.
    fn piece_size(&self) -> Option<u64> {
        let last = self.found.last()?.0;
        self.found.iter().find(|(k, _, _)| *k != last).map(|(_, _, s)| *s)
    }

    /// Writes the whole archive into `out` (empty): each piece at its
    /// place, a missing one as a hole of zeros (damage, to salvage), or,
    /// when the pieces' size cannot be told, the pieces one after another.
    pub fn assemble(&self, out: &mut File) -> io::Result<()> {
        use std::io::{Seek, SeekFrom};
        let size = self.piece_size();
        let mut end = 0u64;
        for (k, p, len) in &self.found {
            let at = size.map_or(end, |s| u64::from(k - 1) * s);
            out.seek(SeekFrom::Start(at))?;
            io::copy(&mut File::open(p)?, out)?;
            end = at + len;
        }
        out.set_len(end)
    }
}

/// Files read one after another.
pub struct Chain {
    files: Vec<File>,
    i: usize,
}

impl Read for Chain {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while let Some(f) = self.files.get_mut(self.i) {
            let n = f.read(buf)?;
            if n > 0 || buf.is_empty() {
                return Ok(n);
            }
            self.i += 1;
        }
        Ok(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn piece_names() {
        assert_eq!(piece_of(Path::new("a/b.xtar.002")), Some((PathBuf::from("a/b.xtar"), 2)));
        assert_eq!(piece_of(Path::new("b.xtar.1000")), Some((PathBuf::from("b.xtar"), 1000)));
        for no in ["b.xtar.01", "b.xtar.000", "b.tar.001", ".xtar.001", "b.xtar", "b.001.xtar"] {
            assert_eq!(piece_of(Path::new(no)), None, "{no}");
        }
        assert_eq!(piece_path(Path::new("x/b.xtar"), 7), PathBuf::from("x/b.xtar.007"));
    }

    #[test]
    fn pieces_read_as_one_and_assemble_with_holes() {
        let t = tempfile::tempdir().expect("tmp");
        let whole = t.path().join("a.xtar");
        let data: Vec<u8> = (0..2500u32).map(|i| (i % 251) as u8).collect();
        for (k, c) in data.chunks(1000).enumerate() {
            std::fs::write(piece_path(&whole, k as u32 + 1), c).expect("write");
        }
        let p = Pieces::find(&piece_path(&whole, 2)).expect("find").expect("pieces");
        assert!(p.missing.is_empty());
        let mut got = Vec::new();
        p.reader().expect("reader").read_to_end(&mut got).expect("read");
        assert_eq!(got, data);
        // `a.xtar` itself does not exist: its pieces are found from it.
        assert!(Pieces::find(&whole).expect("find").is_some());
        std::fs::remove_file(piece_path(&whole, 2)).expect("rm");
        let p = Pieces::find(&whole).expect("find").expect("pieces");
        assert_eq!(p.missing, [2]);
        assert!(p.reader().is_err());
        assert!(p.missing_message().expect("message").contains("a.xtar.002"));
        let mut out = tempfile::tempfile().expect("tmp");
        p.assemble(&mut out).expect("assemble");
        let mut back = Vec::new();
        use std::io::Seek;
        out.rewind().expect("rewind");
        out.read_to_end(&mut back).expect("read");
        assert_eq!(back.len(), data.len());
        assert_eq!(back[..1000], data[..1000]);
        assert!(back[1000..2000].iter().all(|&b| b == 0));
        assert_eq!(back[2000..], data[2000..]);
    }
}
