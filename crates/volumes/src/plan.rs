//! The arithmetic of a volume: how much room the set's table needs in
//! every volume, and where a member goes given the room left. Pure
//! functions; the writer ([`crate::write`]) measures and asks.

use std::collections::HashMap;

use manifest::{Entry, Kind};
use xtar::format::tar::{self as tarfmt, BLOCK};
use xtar::format::{self, TAIL_GUARD};

use crate::table::{VOLUMES_MAGIC, VOLUMES_VERSION};

/// Parts smaller than this are not cut: the file starts the next volume.
pub const MIN_PART: u64 = 64 << 10;
/// Bytes kept free in every volume beyond what is counted.
pub const SLACK: u64 = BLOCK as u64;

/// Where a member goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// Whole, in the volume open now.
    Whole,
    /// Cut into parts, the first of `first` bytes filling the volume open
    /// now.
    Cut {
        /// Bytes of the first part.
        first: u64,
    },
    /// Whole or cut, but in the next volume: too little room is left
    /// here for a part worth cutting.
    NextVolume,
}

/// Where a member of `len` bytes (with the lines it adds to the index and
/// manifest) goes when `room` bytes are left in the volume open now, a
/// part costs `part_overhead` bytes besides its data, and the member may
/// be cut (`cuttable`: file members may, symlinks and records may not).
pub fn place(room: u64, len: u64, part_overhead: u64, cuttable: bool) -> Placement {
    if len <= room {
        Placement::Whole
    } else if cuttable && room >= part_overhead + MIN_PART {
        Placement::Cut { first: room - part_overhead }
    } else {
        Placement::NextVolume
    }
}

/// Bytes a tar header for `name` takes (with its long-name record when it
/// needs one): exactly what the writer writes.
pub fn header_cost(name: &[u8]) -> u64 {
    let mut v = Vec::new();
    tarfmt::write_member_header(&mut v, name, 0, 0, 0o644);
    v.len() as u64
}

/// What a part of the file at `path` costs besides its data: its header
/// and at most a block of padding.
pub fn part_overhead(path: &[u8]) -> u64 {
    header_cost(&format::part_name(path, u32::MAX)) + BLOCK as u64
}

/// What the table member costs in a volume whose table has `room` bytes.
pub fn table_cost(room: u64) -> u64 {
    header_cost(format::VOLUMES_NAME) + room.div_ceil(BLOCK as u64) * BLOCK as u64
}

fn digits(n: u64) -> u64 {
    n.max(1).ilog10() as u64 + 1
}

fn line_len(e: &Entry) -> u64 {
    let mut v = Vec::new();
    manifest::write_entry_line(&mut v, e);
    v.len() as u64
}

/// The room to reserve in every volume for the set's table, and a bound
/// on the number of volumes, for the tree `entries` (walk order, the root
/// first) recorded as `root`, in volumes of `size` bytes. Every line is
/// bounded from the walk (a file's size may grow by two digits while it
/// is read; a further name of a hard link names another path of the same
/// inode); the place columns from the bound on the number of volumes.
/// `Err(least)` when the volume size leaves no room for files: each volume
/// needs at least `least` bytes.
pub fn table_room(entries: &[walk::Entry], root: &[u8], size: u64) -> Result<(u64, u64), u64> {
    let mut longest_alias: HashMap<(u64, u64), usize> = HashMap::new();
    for e in entries.iter().filter(|e| e.kind == walk::Kind::File && e.meta.nlink > 1) {
        let l = longest_alias.entry((e.meta.dev, e.meta.ino)).or_default();
        *l = (*l).max(e.path.len());
    }
    let mut lines = 0u64;
    let mut data = 0u64;
    for e in entries {
        let mut m = Entry::from_walk(e);
        if m.kind == Kind::File {
            m.sha256 = Some([0; 32]);
            data += e.meta.size + e.meta.size / 1000 + 1024;
        }
        let mut len = line_len(&m) + 2;
        if let Some(&alias) = longest_alias.get(&(e.meta.dev, e.meta.ino)).filter(|_| m.kind == Kind::File) {
            // The hard-link form adds its target, escaped (at most 4 bytes
            // a byte), and the kind letter changes.
            len += 4 * alias as u64 + 8;
        }
        lines += len;
        data += 2048 + 4 * e.path.len() as u64 + 2 * len;
    }
    let mut head = Vec::new();
    manifest::escape_path(&mut head, root);
    let header = format!("{VOLUMES_MAGIC} {VOLUMES_VERSION}\n#set \n#volume \n#count \n#root \n").len() as u64
        + 32
        + head.len() as u64;
    let fixed_per_volume = fixed_cost(root);
    let mut d = 1;
    loop {
        // Places: every entry one volume number; every cut adds a number
        // per volume it spans (at most one cut ends in each volume).
        let entries_n = entries.len() as u64;
        let room = header + 2 * d + lines + entries_n * (d + 1) + 2 * 10u64.pow(d as u32) * (d + 1);
        // Refused as the writer would fail: no room for one part.
        let least = fixed_per_volume + table_cost(room) + MIN_PART + 4096;
        if least > size {
            return Err(least);
        }
        // Every volume but the last is filled to within a part's worth
        // (a member starts the next volume only then).
        let payload = (size - least).max(4096);
        let volumes = data.div_ceil(payload) + 1;
        if digits(2 * volumes) <= d {
            return Ok((room, volumes));
        }
        d = digits(2 * volumes);
    }
}

/// What every volume holds besides its entries and its table: the header,
/// the root's container lines and index, the manifest's header, the tail
/// guard (which also covers the manifest's padding and the end blocks)
/// and the slack.
pub fn fixed_cost(root: &[u8]) -> u64 {
    let block = BLOCK as u64;
    let root = 4 * root.len() as u64;
    (2 * block + 64 + root) + (2 * block + 64 + 200) + (2 * block + 64 + root) + TAIL_GUARD + block + SLACK
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn members_go_whole_cut_or_to_the_next_volume() {
        let oh = 1024;
        assert_eq!(place(1000, 1000, oh, true), Placement::Whole);
        assert_eq!(place(1000, 1000, oh, false), Placement::Whole);
        // A large member with room for a part worth cutting: cut.
        let room = MIN_PART + oh + 10;
        assert_eq!(place(room, 10 * MIN_PART, oh, true), Placement::Cut { first: MIN_PART + 10 });
        // Too little room for a part: the next volume.
        assert_eq!(place(MIN_PART + oh - 1, 10 * MIN_PART, oh, true), Placement::NextVolume);
        // Symlinks and records are never cut.
        assert_eq!(place(room, room + 1, oh, false), Placement::NextVolume);
        // A member larger than any volume is cut in every volume it spans.
        assert_eq!(place(room, u64::MAX, oh, true), Placement::Cut { first: MIN_PART + 10 });
    }

    #[test]
    fn headers_cost_what_the_writer_writes() {
        assert_eq!(header_cost(b"a.zip"), 512);
        // A name past 100 bytes takes a long-name record: header, data
        // block(s), header.
        assert_eq!(header_cost(&[b'x'; 150]), 1536);
        assert_eq!(table_cost(1), 1024);
        assert_eq!(table_cost(512), 1024);
        assert_eq!(table_cost(513), 1536);
    }

    fn entry(path: &str, kind: walk::Kind, size: u64) -> walk::Entry {
        walk::Entry {
            path: path.as_bytes().to_vec(),
            kind,
            meta: walk::Meta { size, nlink: 1, ino: path.len() as u64, mode: 0o644, ..Default::default() },
            link_target: None,
        }
    }

    #[test]
    fn the_table_room_bounds_the_table_of_a_finished_set() {
        let mut es = vec![entry("", walk::Kind::Dir, 0), entry("d", walk::Kind::Dir, 0)];
        for i in 0..200 {
            es.push(entry(&format!("d/file-{i:04}.txt"), walk::Kind::File, 1 << 20));
        }
        let (room, volumes) = table_room(&es, b"/src", 8 << 20).unwrap();
        // 200 MiB of files in 8 MiB volumes: at least 25 volumes.
        assert!(volumes >= 26, "{volumes}");
        // The table as the writer makes it, with the widest places.
        let mut t = crate::Table {
            set_id: "0".repeat(32),
            volume: volumes as u32,
            count: volumes as u32,
            root: b"/src".to_vec(),
            entries: Vec::new(),
        };
        for e in &es {
            let mut m = Entry::from_walk(e);
            if m.kind == Kind::File {
                m.sha256 = Some([0xab; 32]);
                m.size += 99; // grew while read
            }
            let v = volumes as u32;
            let place = if m.kind == Kind::Dir { crate::Place::None } else { crate::Place::Parts(vec![v - 1, v]) };
            t.entries.push((place, m));
        }
        let body = t.body();
        let text = t.to_text(&body, volumes as u32);
        assert!((text.len() as u64) <= room, "{} > {room}", text.len());
        // And not wildly more.
        assert!(room < 3 * text.len() as u64, "{room} for {}", text.len());
    }

    #[test]
    fn volumes_too_small_for_their_own_metadata_are_refused() {
        let es = vec![entry("", walk::Kind::Dir, 0), entry("f", walk::Kind::File, 10)];
        let least = table_room(&es, b"/src", 100 << 10).unwrap_err();
        assert!(least > 100 << 10, "{least}");
        assert!(table_room(&es, b"/src", least).is_ok());
    }
}
