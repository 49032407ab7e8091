//! Groups files by *when* they changed.
//!
//! Records (time, size, path) are sorted by time, and a new group starts
//! wherever the gap between two neighbours is larger than the radius: files
//! that "changed at about the same time" end up together. A [`Group`] knows
//! its span, file count, bytes, and the directories that hold most of its
//! files, which is what tells a person what the session was.
//!
//! Records are kept compactly (28 bytes each plus the path bytes in one
//! arena), so a million files take well under 150 bytes per file.
//!
//! ```
//! use activity::Records;
//!
//! let hour = 3_600_000_000_000; // nanoseconds
//! let mut r = Records::default();
//! r.push(0, 10, b"photos/a.jpg");
//! r.push(hour / 2, 20, b"photos/b.jpg");
//! r.push(10 * hour, 5, b"notes/todo.txt");
//! let groups = r.cluster(hour);
//! assert_eq!(groups.len(), 2);
//! assert_eq!((groups[0].files, groups[0].bytes), (2, 30));
//! assert_eq!(groups[0].top_dirs(&r, 1)[0].dir, b"photos");
//! ```

use std::collections::HashMap;
use std::ops::Range;

/// One file: when it changed (nanoseconds since the epoch, may be
/// negative), its size, and where its path sits in the arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Record {
    time: i64,
    size: u64,
    path_at: u64,
    path_len: u32,
    /// Which times of the file this event is ([`MTIME`], [`ATIME`],
    /// [`CTIME`], [`BIRTH`]); 0 when only one time is recorded.
    what: u8,
}

/// The event is the file's modification.
pub const MTIME: u8 = 1;
/// The event is the file's last access.
pub const ATIME: u8 = 2;
/// The event is the file's status change.
pub const CTIME: u8 = 4;
/// The event is the file's birth.
pub const BIRTH: u8 = 8;

/// `macb` flags as mactime writes them: `m.c.`, `.a..`, …
pub fn macb(what: u8) -> [u8; 4] {
    let f = |bit: u8, c: u8| if what & bit != 0 { c } else { b'.' };
    [f(MTIME, b'm'), f(ATIME, b'a'), f(CTIME, b'c'), f(BIRTH, b'b')]
}

/// The records of a scan.
#[derive(Debug, Clone, Default)]
pub struct Records {
    records: Vec<Record>,
    arena: Vec<u8>,
    sorted: bool,
}

impl Records {
    /// Adds a file.
    pub fn push(&mut self, time_ns: i64, size: u64, path: &[u8]) {
        let path_at = self.arena.len() as u64;
        self.arena.extend_from_slice(path);
        self.records.push(Record { time: time_ns, size, path_at, path_len: path.len() as u32, what: 0 });
        self.sorted = false;
    }

    /// Adds the events of one file, one per distinct time among `times`
    /// (time and which-flags), as mactime does: times that are equal make
    /// one event with their flags together. The path is stored once.
    pub fn push_events(&mut self, times: &[(i64, u8)], size: u64, path: &[u8]) {
        let path_at = self.arena.len() as u64;
        self.arena.extend_from_slice(path);
        let mut merged: Vec<(i64, u8)> = Vec::with_capacity(4);
        for &(t, w) in times {
            match merged.iter_mut().find(|m| m.0 == t) {
                Some(m) => m.1 |= w,
                None => merged.push((t, w)),
            }
        }
        for (time, what) in merged {
            self.records.push(Record { time, size, path_at, path_len: path.len() as u32, what });
        }
        self.sorted = false;
    }

    /// Which times of its file the `i`-th record is (0: the one time asked
    /// for).
    pub fn what(&self, i: usize) -> u8 {
        self.records[i].what
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Bytes of memory the records use (for the memory budget).
    pub fn memory(&self) -> usize {
        self.records.capacity() * std::mem::size_of::<Record>() + self.arena.capacity()
    }

    /// The `i`-th record in time order (after [`Records::cluster`]):
    /// (time, size, path).
    pub fn get(&self, i: usize) -> (i64, u64, &[u8]) {
        let r = &self.records[i];
        (r.time, r.size, &self.arena[r.path_at as usize..r.path_at as usize + r.path_len as usize])
    }

    /// Sorts by time (then path, for a stable order) and splits wherever
    /// the gap between neighbours exceeds `radius_ns`. A gap of exactly the
    /// radius keeps the two files together. Groups come oldest first.
    pub fn cluster(&mut self, radius_ns: i64) -> Vec<Group> {
        if !self.sorted {
            let arena = &self.arena;
            let path = |r: &Record| &arena[r.path_at as usize..r.path_at as usize + r.path_len as usize];
            self.records.sort_unstable_by(|a, b| a.time.cmp(&b.time).then_with(|| path(a).cmp(path(b))));
            self.sorted = true;
        }
        let mut groups = Vec::new();
        let mut start = 0;
        for i in 1..=self.records.len() {
            let split =
                i == self.records.len() || self.records[i].time.saturating_sub(self.records[i - 1].time) > radius_ns;
            if split {
                let members = start..i;
                let bytes = self.records[members.clone()].iter().map(|r| r.size).sum();
                groups.push(Group {
                    number: groups.len() as u64 + 1,
                    start: self.records[start].time,
                    end: self.records[i - 1].time,
                    files: (i - start) as u64,
                    bytes,
                    members,
                });
                start = i;
            }
        }
        groups
    }
}

/// Files that changed at about the same time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    /// Its number, from 1 for the oldest group of the scan.
    pub number: u64,
    /// Time of the oldest change, nanoseconds since the epoch.
    pub start: i64,
    /// Time of the newest change.
    pub end: i64,
    /// Number of files.
    pub files: u64,
    /// Their total size.
    pub bytes: u64,
    /// Their positions in the time-sorted records.
    pub members: Range<usize>,
}

/// A directory and how much of a group it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirShare {
    /// The directory (the parent of the files), raw bytes.
    pub dir: Vec<u8>,
    /// Files of the group directly in it.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Group {
    /// The `n` directories that hold most of the group's files (ties by
    /// bytes, then by name).
    pub fn top_dirs(&self, records: &Records, n: usize) -> Vec<DirShare> {
        let mut by_dir: HashMap<&[u8], (u64, u64)> = HashMap::new();
        for i in self.members.clone() {
            let (_, size, path) = records.get(i);
            let dir = match path.iter().rposition(|&b| b == b'/') {
                Some(k) => &path[..k],
                None => &path[..0],
            };
            let e = by_dir.entry(dir).or_default();
            e.0 += 1;
            e.1 += size;
        }
        let mut v: Vec<DirShare> =
            by_dir.into_iter().map(|(d, (files, bytes))| DirShare { dir: d.to_vec(), files, bytes }).collect();
        v.sort_by(|a, b| b.files.cmp(&a.files).then(b.bytes.cmp(&a.bytes)).then_with(|| a.dir.cmp(&b.dir)));
        v.truncate(n);
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const H: i64 = 3_600_000_000_000;

    fn cluster(times: &[i64], radius: i64) -> Vec<(i64, i64, u64)> {
        let mut r = Records::default();
        for (i, &t) in times.iter().enumerate() {
            r.push(t, 1, format!("f{i}").as_bytes());
        }
        r.cluster(radius).into_iter().map(|g| (g.start, g.end, g.files)).collect()
    }

    #[test]
    fn a_gap_of_exactly_the_radius_stays_together() {
        assert_eq!(cluster(&[0, H], H), vec![(0, H, 2)]);
        assert_eq!(cluster(&[0, H + 1], H), vec![(0, 0, 1), (H + 1, H + 1, 1)]);
    }

    #[test]
    fn single_files_identical_times_and_unsorted_input() {
        assert_eq!(cluster(&[], H), vec![]);
        assert_eq!(cluster(&[5], H), vec![(5, 5, 1)]);
        assert_eq!(cluster(&[7, 7, 7], 0), vec![(7, 7, 3)]);
        assert_eq!(cluster(&[10 * H, 0, 10 * H + 5, 1], H), vec![(0, 1, 2), (10 * H, 10 * H + 5, 2)]);
    }

    #[test]
    fn before_1970_and_far_future() {
        assert_eq!(cluster(&[-5 * H, -5 * H + 1, i64::MAX, i64::MIN], H).len(), 4 - 1);
    }

    #[test]
    fn records_are_small() {
        assert!(std::mem::size_of::<Record>() <= 32);
    }

    #[test]
    fn events_of_equal_times_merge_and_share_one_path() {
        let mut r = Records::default();
        r.push_events(&[(5, MTIME), (9, ATIME), (5, CTIME), (1, BIRTH)], 10, b"f");
        assert_eq!(r.len(), 3);
        assert_eq!(r.arena.len(), 1);
        r.cluster(0);
        let got: Vec<(i64, [u8; 4])> = (0..r.len()).map(|i| (r.get(i).0, macb(r.what(i)))).collect();
        assert_eq!(got, vec![(1, *b"...b"), (5, *b"m.c."), (9, *b".a..")]);
    }

    #[test]
    fn busiest_directories_first() {
        let mut r = Records::default();
        r.push(0, 1, b"a/x");
        r.push(1, 1, b"b/x");
        r.push(2, 1, b"b/y");
        r.push(3, 100, b"top");
        let g = r.cluster(H);
        let dirs: Vec<Vec<u8>> = g[0].top_dirs(&r, 2).into_iter().map(|d| d.dir).collect();
        assert_eq!(dirs, vec![b"b".to_vec(), b"".to_vec()]);
    }

    proptest! {
        #[test]
        fn groups_partition_and_neighbours_are_apart(
            times in proptest::collection::vec(-1_000_000i64..1_000_000, 0..300),
            radius in 0i64..50_000,
        ) {
            let mut r = Records::default();
            for (i, &t) in times.iter().enumerate() {
                r.push(t, i as u64, b"p");
            }
            let groups = r.cluster(radius);
            prop_assert_eq!(groups.iter().map(|g| g.files).sum::<u64>(), times.len() as u64);
            for g in &groups {
                // Inside a group no gap exceeds the radius.
                for i in g.members.start + 1..g.members.end {
                    prop_assert!(r.get(i).0 - r.get(i - 1).0 <= radius);
                }
                prop_assert!(g.start <= g.end);
            }
            for w in groups.windows(2) {
                prop_assert!(w[1].start - w[0].end > radius);
            }
        }
    }
}
