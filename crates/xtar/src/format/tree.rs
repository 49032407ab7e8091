//! The tree tar of version 3 (`.xtar-tree.tar.gz`): every entry without
//! data, as a gzip-compressed tar (ustar headers, GNU long-name and
//! long-link records, the raw bytes of every name) that GNU tar, bsdtar, 7-Zip and Python's
//! `tarfile` extract. Directories (mode and mtime), symbolic links and
//! empty regular files in canonical order, then the further names of
//! hard links, which link to files already on disk (unzipped from the
//! packs, or created earlier in this tar). It is also the second copy of
//! these entries' lines, after the manifest; nanoseconds are in the
//! manifest only.
//!
//! The tar is cut into pieces of about [`gz::PIECE`] bytes at entry
//! boundaries, each its own gzip member, so that damage loses only the
//! entries of the members it touches.

use manifest::{Entry, Kind, Timestamp};

use super::gz;

/// Whether `e` belongs in the tree tar.
pub fn holds(e: &Entry) -> bool {
    match e.kind {
        Kind::Dir => !e.path.is_empty(),
        Kind::Symlink | Kind::HardLink => true,
        Kind::File => e.size == 0,
        // Recorded in the manifest, never stored (format contract).
        Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => false,
    }
}

/// The gzip-compressed tar of the entries of `entries` that [`holds`]
/// accepts (`entries` in canonical order).
pub fn write<'a>(entries: impl Iterator<Item = &'a Entry> + Clone) -> Vec<u8> {
    let ordered = entries
        .clone()
        .filter(|e| holds(e) && e.kind != Kind::HardLink)
        .chain(entries.filter(|e| e.kind == Kind::HardLink));
    write_in_order(ordered)
}

/// The gzip-compressed tar of `entries`, in the order given (fifos,
/// sockets and devices left out).
pub fn write_in_order<'a>(ordered: impl Iterator<Item = &'a Entry>) -> Vec<u8> {
    write_members(ordered).concat()
}

/// The gzip members of [`write_in_order`], each on its own: each holds
/// whole entries (the last one the end blocks too).
pub fn write_members<'a>(ordered: impl Iterator<Item = &'a Entry>) -> Vec<Vec<u8>> {
    write_members_sized(ordered, gz::PIECE, true)
}

/// Like [`write_members`], with pieces of about `piece` bytes of tar, and
/// the end-of-archive blocks only if `end` (a tar to be followed by
/// another one in the same stream has none).
pub fn write_members_sized<'a>(ordered: impl Iterator<Item = &'a Entry>, piece: usize, end: bool) -> Vec<Vec<u8>> {
    write_members_at(ordered, piece, end, None)
}

/// Like [`write_members_sized`], compressed at libdeflate level `level`
/// (the default for metadata when `None`).
pub fn write_members_at<'a>(
    ordered: impl Iterator<Item = &'a Entry>,
    piece: usize,
    end: bool,
    level: Option<i32>,
) -> Vec<Vec<u8>> {
    use super::tar::{write_entry_header, EntryKind, BLOCK};
    let mut tar = Vec::new();
    let mut cuts = vec![0usize];
    for e in ordered {
        let (kind, mode) = match e.kind {
            Kind::Dir => (EntryKind::Dir, e.mode),
            Kind::File => (EntryKind::Empty, e.mode),
            Kind::Symlink => (EntryKind::Symlink, 0o777),
            Kind::HardLink => (EntryKind::HardLink, e.mode),
            Kind::Fifo | Kind::Socket | Kind::CharDevice | Kind::BlockDevice => continue,
        };
        let link = e.target.as_deref().unwrap_or_default();
        write_entry_header(&mut tar, &e.path, kind, link, e.mtime.sec, mode);
        if tar.len() - cuts.last().copied().unwrap_or(0) >= piece {
            cuts.push(tar.len());
        }
    }
    if end {
        tar.resize(tar.len() + 2 * BLOCK, 0);
    }
    if cuts.last() != Some(&tar.len()) {
        cuts.push(tar.len());
    }
    let pieces: Vec<&[u8]> = cuts.windows(2).map(|w| &tar[w[0]..w[1]]).collect();
    match level {
        Some(l) => gz::members_at(&pieces, l),
        None => gz::members(&pieces),
    }
}

/// The entries of a tree tar, as far as it can be read, and whether it
/// was read whole. Paths that are not safe (absolute, `..`) are dropped.
pub fn read(bytes: &[u8]) -> (Vec<Entry>, bool) {
    let d = gz::decode(bytes);
    let mut complete = d.complete;
    let mut entries = Vec::new();
    let empty_sha: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(b"").into();
    let mut a = tar::Archive::new(&d.text[..]);
    let Ok(iter) = a.entries() else { return (entries, false) };
    for item in iter {
        let Ok(t) = item else {
            complete = false;
            break;
        };
        let path = t.path_bytes().into_owned();
        let target = t.link_name_bytes().map(|l| l.into_owned());
        let h = t.header();
        let kind = match h.entry_type() {
            tar::EntryType::Directory => Kind::Dir,
            tar::EntryType::Symlink => Kind::Symlink,
            tar::EntryType::Link => Kind::HardLink,
            tar::EntryType::Regular if h.size().unwrap_or(1) == 0 => Kind::File,
            _ => {
                complete = false;
                continue;
            }
        };
        let path = path.strip_suffix(b"/").map(<[u8]>::to_vec).unwrap_or(path);
        if super::check_member_path(&path).is_err() {
            complete = false;
            continue;
        }
        let mode = h.mode().unwrap_or(0o644) & 0o7777;
        let mtime = Timestamp::new(h.mtime().unwrap_or(0) as i64, 0);
        let sha256 = (kind == Kind::File).then_some(empty_sha);
        let target = if matches!(kind, Kind::Symlink | Kind::HardLink) { target } else { None };
        entries.push(Entry { path, kind, mode, mtime, size: 0, sha256, target });
    }
    entries.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
    (entries, complete)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn e(path: &str, kind: Kind, target: Option<&str>) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: if kind == Kind::Dir { 0o750 } else { 0o640 },
            mtime: Timestamp::new(1_700_000_000, 0),
            size: 0,
            sha256: None,
            target: target.map(|t| t.as_bytes().to_vec()),
        }
    }

    #[test]
    fn entries_round_trip_and_long_names_survive() {
        let long = format!("d/{}", "n".repeat(150));
        let mut entries = [
            e("", Kind::Dir, None),
            e("d", Kind::Dir, None),
            e(&long, Kind::Symlink, Some(&"t".repeat(140))),
            e("d/empty", Kind::File, None),
            e("d/fifo", Kind::Fifo, None),
            e("d/link", Kind::HardLink, Some("d/x")),
            e("d/sock", Kind::Socket, None),
        ];
        entries.sort_by(|a, b| manifest::cmp_paths(&a.path, &b.path));
        let z = write(entries.iter());
        let (back, complete) = read(&z);
        assert!(complete);
        let paths: Vec<String> = back.iter().map(|e| String::from_utf8_lossy(&e.path).into_owned()).collect();
        assert_eq!(paths, ["d", "d/empty", "d/link", long.as_str()]);
        let sym = back.iter().find(|e| e.kind == Kind::Symlink).unwrap();
        assert_eq!(sym.target.as_deref(), Some("t".repeat(140).as_bytes()));
        assert_eq!(back[0].mode, 0o750);
    }
}
