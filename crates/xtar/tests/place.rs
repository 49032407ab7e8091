//! The writer places each pack's entries against 2 KiB sectors
//! (docs/format/xtar.md, A2, A5), read here from the archive's bytes
//! with a walk of its own: tar headers, then each pack's local headers.

use std::path::Path;

use xtar::{CompressOptions, ExtractOptions, Silent};

const SECTOR: u64 = 2048;

/// Sectors `[start, start + len)` touches beyond the fewest its length needs.
fn extra(start: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    ((start + len - 1) / SECTOR - start / SECTOR + 1) - len.div_ceil(SECTOR)
}

fn octal(field: &[u8]) -> u64 {
    let s = std::str::from_utf8(field).expect("ascii").trim_matches(|c: char| c == '\0' || c == ' ');
    if s.is_empty() {
        0
    } else {
        u64::from_str_radix(s, 8).expect("octal")
    }
}

fn u16_at(b: &[u8], at: usize) -> u64 {
    u64::from(u16::from_le_bytes([b[at], b[at + 1]]))
}

fn u32_at(b: &[u8], at: usize) -> u64 {
    u64::from(u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]))
}

/// Each pack of the archive: the offset of its first local header, and its
/// entries `(local header length, data length)` in the order written.
fn packs(a: &[u8]) -> Vec<(u64, Vec<(u64, u64)>)> {
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 512 <= a.len() {
        let h = &a[pos..pos + 512];
        if h.iter().all(|&b| b == 0) {
            pos += 512;
            continue;
        }
        let size = octal(&h[124..136]) as usize;
        let name = h[..100].split(|&b| b == 0).next().unwrap_or_default();
        let data = pos + 512;
        if name.starts_with(b".xtar-pack.") {
            let mut p = data;
            let mut entries = Vec::new();
            while a[p..p + 4] == *b"PK\x03\x04" {
                let head = 30 + u16_at(a, p + 26) + u16_at(a, p + 28);
                let csize = u32_at(a, p + 18);
                entries.push((head, csize));
                p += (head + csize) as usize;
            }
            out.push((data as u64, entries));
        }
        pos = data + size.div_ceil(512) * 512;
    }
    out
}

/// Boundaries inside data when `entries` are written in this order from `at`.
fn straddles(at: u64, entries: &[(u64, u64)]) -> u64 {
    let mut pos = at;
    let mut n = 0;
    for &(h, d) in entries {
        n += extra(pos + h, d);
        pos += h + d;
    }
    n
}

/// Local headers split by a sector boundary past their signature when
/// `entries` are written in this order from `at` (A2).
fn split_headers(at: u64, entries: &[(u64, u64)]) -> u64 {
    let mut pos = at;
    let mut n = 0;
    for &(h, d) in entries {
        let to_boundary = (SECTOR - pos % SECTOR) % SECTOR;
        n += u64::from((4..h).contains(&to_boundary));
        pos += h + d;
    }
    n
}

/// Files of 40 to 4,000 bytes that do not compress (a generator's bytes),
/// in a few directories.
fn build(root: &Path) {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for i in 0..900 {
        let dir = root.join(format!("d{}", i % 7));
        std::fs::create_dir_all(&dir).expect("mkdir");
        let len = 40 + next() % 3960;
        let body: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        std::fs::write(dir.join(format!("f{i}.bin")), body).expect("write");
    }
}

#[test]
fn entries_are_placed_against_sectors_and_read_back() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("tree");
    build(&root);
    let out = t.path().join("a.xtar");
    xtar::compress_to_path(&root, &out, &CompressOptions { jobs: 2, ..Default::default() }, true, &Silent)
        .expect("compress");
    let a = std::fs::read(&out).expect("read");
    let packs = packs(&a);
    assert!(!packs.is_empty());
    // The packs' region starts on a sector boundary (A5): the first pack's
    // tar header, one block before its first local header.
    assert_eq!((packs[0].0 - 512) % SECTOR, 0, "first pack at {}", packs[0].0 - 512);
    let (mut placed, mut sorted, mut placed_split, mut sorted_split) = (0, 0, 0, 0);
    for (at, entries) in &packs {
        placed += straddles(*at, entries);
        placed_split += split_headers(*at, entries);
        let mut by_length = entries.clone();
        by_length.sort_by_key(|&(h, d)| h + d);
        sorted += straddles(*at, &by_length);
        sorted_split += split_headers(*at, &by_length);
        // No entry is longer than one written after it by more than 2 KiB.
        for (i, e) in entries.iter().enumerate() {
            for f in &entries[i + 1..] {
                assert!(e.0 + e.1 <= f.0 + f.1 + SECTOR, "{e:?} before {f:?}");
            }
        }
    }
    assert!(placed * 3 < sorted * 2, "{placed} boundaries inside data placed, {sorted} in length order");
    // And hardly any inside a local header past its signature, which
    // length order leaves at random.
    assert!(placed_split * 5 <= sorted_split, "{placed_split} headers split placed, {sorted_split} in length order");
    // And it reads back whole.
    let dest = t.path().join("out");
    let report = xtar::extract(&out, &dest, &ExtractOptions::default(), &Silent).expect("extract");
    assert!(report.is_clean(), "{report:?}");
    let opts = manifest::BuildOptions { walk: walk::Options::default(), hash: true, jobs: 1 };
    let live = manifest::build(&dest, &opts, |e| panic!("{e}")).expect("manifest");
    let orig = manifest::build(&root, &opts, |e| panic!("{e}")).expect("manifest");
    assert_eq!(live.entries, orig.entries);
}
