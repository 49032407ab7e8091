//! `pybackup salvage`: damaged archives give back every file their damage
//! did not touch, bit-exact, and the report names the rest.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Output;

use serde_json::Value;

use crate::support::*;

/// A tree with stored and deflated files at several depths, an empty file,
/// a symlink, a hard link and a path longer than 256 bytes.
pub fn build_tree(src: &Path) {
    for i in 0..40u64 {
        write(src, format!("n{i:02}.bin").as_bytes(), &noise(1000 + (i as usize * 97) % 4000, i + 1));
        write(src, format!("a/t{i:02}.txt").as_bytes(), format!("line {i}\n").repeat(50 + i as usize).as_bytes());
        write(src, format!("a/b/c/n{i:02}").as_bytes(), &noise(2500, 100 + i));
    }
    write(src, b"empty", b"");
    write(src, format!("long/{}/{}", "d".repeat(120), "f".repeat(140)).as_bytes(), &noise(3000, 7));
    std::os::unix::fs::symlink("n00.bin", src.join("link")).expect("symlink");
    std::fs::hard_link(src.join("a/t01.txt"), src.join("a/hard")).expect("hard link");
    std::fs::create_dir_all(src.join("a/empty-dir")).expect("mkdir");
}

/// Every file member of an archive, found by walking the tar stream here
/// (not with the code under test): path, first byte of its header(s), end
/// of its data.
pub fn member_ranges(a: &[u8]) -> Vec<(Vec<u8>, u64, u64)> {
    let cstr = |f: &[u8]| f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())].to_vec();
    let octal =
        |f: &[u8]| cstr(f).iter().filter(|b| b.is_ascii_digit()).fold(0u64, |v, &b| v * 8 + u64::from(b - b'0'));
    let round = |n: u64| n.div_ceil(512) * 512;
    let mut out = Vec::new();
    let (mut pos, mut long, mut start) = (0usize, None::<Vec<u8>>, None::<usize>);
    while pos + 512 <= a.len() {
        let b = &a[pos..pos + 512];
        if b.iter().all(|&x| x == 0) {
            pos += 512;
            continue;
        }
        let size = octal(&b[124..136]);
        let first = start.take().unwrap_or(pos);
        if b[156] == b'L' {
            long = Some(cstr(&a[pos + 512..pos + 512 + size as usize]));
            start = Some(first);
            pos += 512 + round(size) as usize;
            continue;
        }
        let name = long.take().unwrap_or_else(|| {
            let (n, p) = (cstr(&b[..100]), cstr(&b[345..500]));
            if p.is_empty() {
                n
            } else {
                [p, b"/".to_vec(), n].concat()
            }
        });
        pos += 512;
        if name.ends_with(b".xtar") {
            continue; // step into the container
        }
        if let Some(path) = name.strip_suffix(b".zip") {
            out.push((path.to_vec(), first as u64, pos as u64 + size));
        }
        pos += round(size) as usize;
    }
    out
}

/// Every zip entry of a version 3 archive's packs, found by walking the tar
/// members and each pack's local headers here: path, first byte of its
/// local header, end of its data.
pub fn entry_ranges(a: &[u8]) -> Vec<(Vec<u8>, u64, u64)> {
    let cstr = |f: &[u8]| f[..f.iter().position(|&b| b == 0).unwrap_or(f.len())].to_vec();
    let octal =
        |f: &[u8]| cstr(f).iter().filter(|b| b.is_ascii_digit()).fold(0u64, |v, &b| v * 8 + u64::from(b - b'0'));
    let le = |b: &[u8]| b.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x));
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos + 512 <= a.len() {
        let b = &a[pos..pos + 512];
        if b.iter().all(|&x| x == 0) {
            pos += 512;
            continue;
        }
        let size = octal(&b[124..136]) as usize;
        let name = cstr(&b[..100]);
        pos += 512;
        if name.starts_with(b".xtar-pack.") {
            let (mut p, end) = (pos, pos + size);
            while p + 30 <= end && &a[p..p + 4] == b"PK\x03\x04" {
                let (n, x) = (le(&a[p + 26..p + 28]) as usize, le(&a[p + 28..p + 30]) as usize);
                let csize = le(&a[p + 18..p + 22]) as usize;
                out.push((a[p + 30..p + 30 + n].to_vec(), p as u64, (p + 30 + n + x + csize) as u64));
                p += 30 + n + x + csize;
            }
        }
        pos += size.div_ceil(512) * 512;
    }
    out
}

/// A deterministic pseudo-random sequence (xorshift64).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Applies damage: each range is overwritten with noise; `truncate` cuts.
/// The name and extra field lengths of the zip local header at `at`.
fn local_lengths(bytes: &[u8], at: u64) -> (usize, usize) {
    let s = at as usize;
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([bytes[s + o], bytes[s + o + 1]]));
    (u16_at(26), u16_at(28))
}

/// Overwrites `n` bytes from `at` with noise of `seed`.
fn noise_over(bytes: &mut [u8], at: u64, n: usize, seed: u64) {
    let s = at as usize;
    bytes[s..s + n].copy_from_slice(&noise(n, seed));
}

fn damage(bytes: &[u8], ranges: &[(u64, u64)], truncate: Option<u64>) -> Vec<u8> {
    let mut d = bytes.to_vec();
    for (i, &(s, e)) in ranges.iter().enumerate() {
        let e = e.min(d.len() as u64);
        let n = noise((e - s) as usize, 0xdead + i as u64);
        d[s as usize..e as usize].copy_from_slice(&n);
    }
    if let Some(t) = truncate {
        d.truncate(t as usize);
    }
    d
}

struct Salvaged {
    out: Output,
    files: BTreeMap<Vec<u8>, Value>,
    summary: Value,
}

fn salvage(t: &Path, name: &str, bytes: &[u8], extra: &[&str]) -> (Salvaged, std::path::PathBuf) {
    let archive = t.join(format!("{name}.xtar"));
    std::fs::write(&archive, bytes).expect("write");
    let dest = t.join(format!("{name}.out"));
    let out =
        pybackup().arg("salvage").arg(&archive).arg(&dest).arg("--json").args(extra).output().expect("runs salvage");
    let mut files = BTreeMap::new();
    let mut summary = Value::Null;
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let v: Value = serde_json::from_str(line).expect("JSON line");
        match v["type"].as_str() {
            Some("file") => {
                files.insert(v["path"].as_str().expect("UTF-8 path").as_bytes().to_vec(), v);
            }
            Some("summary") => summary = v,
            other => panic!("unexpected line type {other:?}"),
        }
    }
    (Salvaged { out, files, summary }, dest)
}

/// Checks the promise: every file whose member was not hit is intact, every
/// file reported intact is bit-exact, and the exit code says whether all
/// came back.
fn check(src: &Path, dest: &Path, s: &Salvaged, hit: &dyn Fn(u64, u64) -> bool, ranges: &[(Vec<u8>, u64, u64)]) {
    let source = snapshot(src, false);
    let restored = snapshot(dest, false);
    for (path, start, end) in ranges {
        let state = s.files.get(path).map(|v| v["state"].as_str().unwrap_or_default().to_string());
        if !hit(*start, *end) {
            assert_eq!(
                state.as_deref(),
                Some("intact"),
                "`{}` was not hit but is {state:?}: {}",
                String::from_utf8_lossy(path),
                stderr(&s.out)
            );
        }
    }
    for (path, v) in &s.files {
        if v["state"] == "intact" {
            let (a, b) = (&source[path], restored.get(path).expect("restored file exists"));
            assert_eq!((a.kind, &a.content), (b.kind, &b.content), "`{}` differs", String::from_utf8_lossy(path));
            if a.kind == "file" && v["checked"] == "sha256" {
                assert_eq!((a.mode, a.mtime), (b.mode, b.mtime), "`{}` metadata", String::from_utf8_lossy(path));
            }
        } else {
            assert!(!restored.contains_key(path), "a file reported {} was written", v["state"]);
        }
    }
    if s.summary["names_complete"] == true {
        for (path, node) in &source {
            if node.kind != "dir" {
                assert!(s.files.contains_key(path), "`{}` is not in the report", String::from_utf8_lossy(path));
            }
        }
    }
    let all = s.files.values().all(|v| v["state"] == "intact") && s.summary["names_complete"] == true;
    assert_eq!(s.summary["complete"], all);
    assert_eq!(s.out.status.code(), Some(if all { 0 } else { 1 }), "{}", stderr(&s.out));
}

#[test]
fn an_intact_archive_salvages_to_the_same_tree() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let (s, dest) = salvage(t.path(), "intact", &std::fs::read(&archive).expect("read"), &[]);
    assert_eq!(s.out.status.code(), Some(0), "{}", stderr(&s.out));
    assert_eq!(s.summary["complete"], true);
    assert_eq!(s.summary["bad_bytes"], 0);
    assert_same_tree(&src, &dest);
}

#[test]
fn every_file_not_hit_comes_back_under_each_damage_pattern() {
    damage_patterns(2);
}

#[test]
fn every_file_not_hit_comes_back_under_each_damage_pattern_in_version_3() {
    damage_patterns(3);
}

fn damage_patterns(version: u32) {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", &version.to_string()]);
    let bytes = std::fs::read(&archive).expect("read");
    let len = bytes.len() as u64;
    let ranges = if version >= 3 { entry_ranges(&bytes) } else { member_ranges(&bytes) };
    assert!(ranges.len() > 100, "{} members", ranges.len());
    let sectors = len / 2048;
    let mut rng = Rng(42);
    let mut random_sectors = |percent: u64| -> Vec<(u64, u64)> {
        let n = (sectors * percent / 100).max(1);
        (0..n)
            .map(|_| {
                let s = rng.next() % sectors * 2048;
                (s, s + 2048)
            })
            .collect()
    };
    type Pattern<'a> = (&'a str, Vec<(u64, u64)>, Option<u64>);
    let patterns: Vec<Pattern> = vec![
        ("head", vec![(0, 64 << 10)], None),
        ("tail", vec![(len - (64 << 10), len)], None),
        ("sectors-1", random_sectors(1), None),
        ("sectors-5", random_sectors(5), None),
        ("burst", vec![(len / 3, len / 3 + (40 << 10))], None),
        ("truncated", vec![], Some(len / 2 / 2048 * 2048)),
    ];
    for (name, damaged, truncate) in patterns {
        let d = damage(&bytes, &damaged, truncate);
        let cut = truncate.unwrap_or(len);
        let hit = |s: u64, e: u64| e > cut || damaged.iter().any(|&(a, b)| s < b && a < e);
        let (s, dest) = salvage(t.path(), name, &d, &[]);
        check(&src, &dest, &s, &hit, &ranges);
        let lost = ranges.iter().filter(|r| hit(r.1, r.2)).count();
        // Version 3's guards keep both ends free of packs.
        let guarded = name == "tail" || (version >= 3 && name == "head");
        // (One sector of a small version 3 archive may fall in the guard.)
        let small = version >= 3 && name == "sectors-1";
        assert!(lost > 0 || guarded || small, "{name}: the damage should hit something");
        assert!(lost == 0 || version < 3 || !guarded, "{name}: the guard should keep packs out of reach");
        if name == "head" || name == "tail" {
            // The redundant metadata names every file after head or tail
            // damage, and recreates every file without data (version 3:
            // from the manifest or from the tree tar, whichever survived).
            assert_eq!(s.summary["names_complete"], true, "{name}");
            if version >= 3 {
                for (path, node) in snapshot(&src, false) {
                    let in_pack = ranges.iter().any(|r| r.0 == path);
                    if node.kind != "dir" && !in_pack {
                        assert_eq!(s.files[&path]["state"], "intact", "{name}: {}", String::from_utf8_lossy(&path));
                    }
                }
            }
            for r in ranges.iter().filter(|r| hit(r.1, r.2)) {
                let state = s.files[&r.0]["state"].as_str().unwrap_or_default().to_string();
                assert!(state == "missing" || state == "damaged" || state == "intact", "{name}: {state}");
            }
        }
    }
}

#[test]
fn one_corrupted_member_is_named_and_kept_with_keep_damaged() {
    one_corrupted(2);
    one_corrupted(3);
}

fn one_corrupted(version: u32) {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", &version.to_string()]);
    let mut bytes = std::fs::read(&archive).expect("read");
    let ranges = if version >= 3 { entry_ranges(&bytes) } else { member_ranges(&bytes) };
    let (_, start, end) = ranges.into_iter().find(|r| r.0 == b"a/b/c/n07").expect("member of a/b/c/n07");
    let at = ((start + end) / 2) as usize;
    bytes[at] ^= 0x55;
    let (s, dest) = salvage(t.path(), "one", &bytes, &["--keep-damaged"]);
    assert_eq!(s.out.status.code(), Some(1));
    let bad: Vec<_> = s.files.iter().filter(|(_, v)| v["state"] != "intact").map(|(k, _)| k.clone()).collect();
    assert_eq!(bad, vec![b"a/b/c/n07".to_vec()]);
    assert!(s.files[&b"a/b/c/n07".to_vec()]["detail"].as_str().unwrap_or_default().contains("CRC"));
    // The file is stored (noise): the kept copy differs in that one byte.
    let kept = std::fs::read(dest.join("a/b/c/n07.damaged")).expect("kept copy");
    let orig = std::fs::read(src.join("a/b/c/n07")).expect("source");
    assert_eq!(kept.len(), orig.len());
    assert_eq!(kept.iter().zip(&orig).filter(|(a, b)| a != b).count(), 1);
    assert!(!dest.join("a/b/c/n07").exists());
}

#[test]
fn a_member_whose_tar_header_is_gone_is_found_by_its_zip_header() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let mut bytes = std::fs::read(&archive).expect("read");
    let (_, start, _) = member_ranges(&bytes).into_iter().find(|r| r.0 == b"a/b/c/n03").expect("member");
    // Only the 512-byte tar header is destroyed; the zip starts right after.
    let n = noise(512, 99);
    bytes[start as usize..start as usize + 512].copy_from_slice(&n);
    let (s, dest) = salvage(t.path(), "nohdr", &bytes, &[]);
    assert_eq!(s.files[&b"a/b/c/n03".to_vec()]["state"], "intact", "{}", stderr(&s.out));
    assert_eq!(s.summary["found_by_zip_header"], 1);
    assert_eq!(std::fs::read(dest.join("a/b/c/n03")).expect("read"), std::fs::read(src.join("a/b/c/n03")).expect("r"));
    assert_eq!(s.out.status.code(), Some(0));
}

/// Version 3: a pack whose tar header is gone is found by its end record;
/// with its central directory gone too, its entries are found by their
/// local headers, and taken because the manifest expects them.
#[test]
fn a_pack_without_its_tar_header_or_central_directory_is_found_by_its_entries() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let bytes = std::fs::read(&archive).expect("read");
    let ranges = entry_ranges(&bytes);
    let first = ranges.iter().map(|r| r.1).min().expect("entries");
    let last_end = ranges.iter().filter(|r| r.1 < first + (2 << 20)).map(|r| r.2).max().expect("end");
    // The first pack's tar header is the 512 bytes before its first entry.
    let mut d = bytes.clone();
    d[first as usize - 512..first as usize].copy_from_slice(&noise(512, 7));
    let (s, _) = salvage(t.path(), "nohdr", &d, &[]);
    assert_eq!(s.out.status.code(), Some(0), "{}", stderr(&s.out));
    assert_eq!(s.summary["found_by_zip_header"], 0);
    // Now the central directory of that pack too (just after its entries).
    d[last_end as usize..last_end as usize + 256].copy_from_slice(&noise(256, 8));
    let (s, dest) = salvage(t.path(), "nocd", &d, &[]);
    assert_eq!(s.out.status.code(), Some(0), "{}", stderr(&s.out));
    assert!(s.summary["found_by_zip_header"].as_u64().unwrap_or(0) > 0);
    assert_same_tree(&src, &dest);
}

/// Version 3: cutting off the last X % of an archive loses at most X % of
/// its files, whatever the order of names and sizes in the tree.
#[test]
fn cutting_the_end_costs_few_files() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    // Many small files in the directory that sorts last, few large ones
    // in the first: the order that made version 2 lose most files.
    for i in 0..20u64 {
        write(&src, format!("a-big/{i:02}").as_bytes(), &noise(40_000 + i as usize * 1000, i + 1));
    }
    for i in 0..400u64 {
        write(&src, format!("z-small/{i:03}").as_bytes(), &noise(200 + (i as usize * 37) % 900, 100 + i));
    }
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let bytes = std::fs::read(&archive).expect("read");
    let total = 420.0;
    for lost in [5u64, 20, 50] {
        let cut = bytes.len() as u64 * (100 - lost) / 100;
        let (s, _) = salvage(t.path(), &format!("cut{lost}"), &bytes[..cut as usize], &[]);
        let intact = s.files.values().filter(|v| v["state"] == "intact").count() as f64;
        let need = (total * (100 - lost) as f64 / 100.0).ceil() - 1.0;
        assert!(intact >= need, "cut {lost}%: {intact} intact, need {need}");
    }
}

#[test]
fn salvage_refuses_what_is_not_an_xtar_and_unknown_versions() {
    let t = tempfile::tempdir().expect("tmp");
    let junk = t.path().join("junk");
    std::fs::write(&junk, noise(100_000, 5)).expect("write");
    let out = run(&[os("salvage"), junk.as_os_str(), t.path().join("o1").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no xtar member"), "{}", stderr(&out));

    let src = t.path().join("src");
    write(&src, b"f", b"x");
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let mut bytes = std::fs::read(&archive).expect("read");
    // Make the header say version 9 and fix the tar checksum it does not cover.
    let at = bytes.windows(8).position(|w| w == b"#xtar 3\n").expect("header text");
    bytes[at + 6] = b'9';
    std::fs::write(&archive, &bytes).expect("write");
    let out = run(&[os("salvage"), archive.as_os_str(), t.path().join("o2").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("version 9"), "{}", stderr(&out));
    assert!(!t.path().join("o2/f").exists());
}

/// Version 3: with the head of the archive destroyed (the manifest's tar
/// header and its first pieces), the rest of the manifest is found by its
/// gzip headers, and files whose lines were lost (the first of three
/// pieces) hold no file descriptor while they wait: a run with 256 file
/// descriptors restores all 1,500 files.
#[test]
fn a_lost_manifest_head_costs_no_file_and_no_descriptors() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    for i in 0..1500u64 {
        write(&src, format!("d{}/f{i:04}", i % 13).as_bytes(), &noise(300 + (i as usize * 53) % 3000, i + 1));
    }
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let mut bytes = std::fs::read(&archive).expect("read");
    // The header, the manifest's tar header and its first bytes.
    bytes[..2000].copy_from_slice(&noise(2000, 9));
    let damaged = t.path().join("head.xtar");
    std::fs::write(&damaged, &bytes).expect("write");
    let dest = t.path().join("out");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(r#"ulimit -n 256 && exec "$0" salvage --json "$1" "$2""#)
        .arg(env!("CARGO_BIN_EXE_pybackup"))
        .arg(&damaged)
        .arg(&dest)
        .output()
        .expect("sh");
    let text = String::from_utf8_lossy(&out.stdout);
    let summary: Value = serde_json::from_str(text.lines().last().expect("summary")).expect("JSON");
    assert_eq!(summary["intact"], 1500, "{}", stderr(&out));
    assert_eq!(summary["manifest_complete"], false);
    // The manifest's lines that survived checked most files by SHA-256.
    let by_sha = text.lines().filter(|l| l.contains(r#""checked":"sha256""#)).count();
    assert!((500..1500).contains(&by_sha), "{by_sha} files checked by SHA-256");
    // Contents and names all back (the directories whose lines were lost
    // have their mtimes to the second, from the tree tar).
    let (a, b) = (snapshot(&src, false), snapshot(&dest, false));
    let shape =
        |m: &BTreeMap<Vec<u8>, Node>| m.iter().map(|(k, v)| (k.clone(), v.kind, v.content.clone())).collect::<Vec<_>>();
    assert!(shape(&a) == shape(&b), "the salvaged tree differs");
}

/// A scratch directory, the tree of `build_tree`, and the bytes of its
/// version 3 archive with the whole manifest member (header and data: it
/// ends where the tree tar's header starts) overwritten, and where each
/// entry is.
#[allow(clippy::type_complexity)]
fn archive_without_manifest() -> (tempfile::TempDir, Vec<u8>, Vec<(Vec<u8>, u64, u64)>) {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let mut bytes = std::fs::read(&archive).expect("read");
    let ranges = entry_ranges(&bytes);
    let manifest_at = 1024usize;
    let tree_at = bytes.windows(18).position(|w| w == b".xtar-tree.tar.gz\0").expect("tree tar header");
    let n = tree_at - manifest_at;
    bytes[manifest_at..tree_at].copy_from_slice(&noise(n, 1));
    (t, bytes, ranges)
}

/// Version 3: with the manifest lost, a pack's end record destroyed and
/// the local header of one of its first entries damaged (so that walking
/// the entries stops there), the entries after it are found through the
/// central directory records that still read, and it is named (its data
/// is damaged too: with whole data it would come back through its record,
/// `entries_whose_local_header_and_manifest_line_are_lost_come_back_by_their_crc`).
#[test]
fn entries_after_damage_are_found_through_what_is_left_of_the_central_directory() {
    let (t, mut bytes, ranges) = archive_without_manifest();
    let first = ranges.iter().map(|r| r.1).min().expect("entries");
    let eocd = bytes.windows(4).rposition(|w| w == b"PK\x05\x06").expect("end record");
    bytes[eocd..eocd + 22].copy_from_slice(&noise(22, 2));
    let victim = ranges.iter().filter(|r| r.1 > first).min_by_key(|r| r.1).expect("entry").clone();
    let mid = victim.1 as usize + 1;
    bytes[mid] ^= 0xff; // its `PK\3\4` signature
    let (name, extra) = local_lengths(&bytes, victim.1);
    let last = victim.1 as usize + 30 + name + extra;
    bytes[last] ^= 0xff; // and its first byte of data
    let (s, _) = salvage(t.path(), "cd", &bytes, &[]);
    let hit = |a: u64, b: u64| a <= mid as u64 && mid < b as usize;
    for (path, a, b) in &ranges {
        let state = s.files.get(path).map(|v| v["state"].as_str().unwrap_or_default().to_string());
        if !hit(*a, *b) {
            assert_eq!(state.as_deref(), Some("intact"), "`{}`: {}", String::from_utf8_lossy(path), stderr(&s.out));
        }
    }
    let v = s.files.get(&victim.0).map(|v| v["state"].clone());
    assert!(v.as_ref().is_some_and(|v| v != "intact"), "`{}`: {v:?}", String::from_utf8_lossy(&victim.0));
}

#[test]
fn entries_past_damage_with_no_record_and_no_manifest_line_are_found_by_their_chain() {
    // A pack's central directory records all lost (its end record kept),
    // the manifest lost, and one entry's local header damaged: the walk
    // from the pack's start stops there, and the entries after it are
    // known only by their signatures. Each is taken because it ends where
    // the next one, or the central directory, starts.
    let (t, mut bytes, ranges) = archive_without_manifest();
    let eocd = bytes.windows(4).rposition(|w| w == b"PK\x05\x06").expect("end record");
    let cd_size = u32::from_le_bytes(bytes[eocd + 12..eocd + 16].try_into().expect("4 bytes")) as usize;
    let cd = eocd - cd_size;
    bytes[cd..eocd].copy_from_slice(&noise(cd_size, 2));
    // The entries of that last pack, and one in their middle.
    let pack_at = (0..cd / 512).rev().map(|b| b * 512).find(|&h| bytes[h..].starts_with(b".xtar-pack.")).expect("pack");
    let mut pack: Vec<_> = ranges.iter().filter(|r| r.1 > pack_at as u64 && r.2 <= cd as u64).cloned().collect();
    pack.sort_by_key(|r| r.1);
    assert!(pack.len() >= 8, "{} entries in the last pack", pack.len());
    // A second damaged entry three further: the two between end where no
    // known entry starts, and are taken because their lengths lie between
    // those of the entries before and after them (packs are by length).
    let victims = [pack[pack.len() / 2].1, pack[pack.len() / 2 + 3].1];
    for v in victims {
        bytes[v as usize + 1] ^= 0xff;
    }
    let (s, _) = salvage(t.path(), "chain", &bytes, &[]);
    for (path, a, _) in &pack {
        let state = s.files.get(path).map(|v| v["state"].as_str().unwrap_or_default().to_string());
        if !victims.contains(a) {
            assert_eq!(state.as_deref(), Some("intact"), "`{}`: {}", String::from_utf8_lossy(path), stderr(&s.out));
        }
    }
}

/// Version 3 and 6: an entry whose local header alone is damaged (its
/// central directory record and the manifest whole) comes back, bit for
/// bit and with its metadata: its data is where the record says. One
/// whose data is damaged too does not.
#[test]
fn entries_whose_local_header_alone_is_damaged_come_back_through_the_central_directory() {
    for codec in [&[][..], &["--codec", "zstd"][..]] {
        let t = tempfile::tempdir().expect("tmp");
        let src = t.path().join("src");
        build_tree(&src);
        let archive = t.path().join("a.xtar");
        compress(&src, &archive, codec);
        let mut bytes = std::fs::read(&archive).expect("read");
        // Entries of zstd frames are named `PATH.zst`.
        let ranges: Vec<_> = entry_ranges(&bytes)
            .into_iter()
            .map(|(n, a, b)| (n.strip_suffix(b".zst").map_or(n.clone(), <[u8]>::to_vec), a, b))
            .collect();
        let mut by_start: Vec<_> = ranges.iter().filter(|r| r.2 - r.1 > 80).cloned().collect();
        by_start.sort_by_key(|r| r.1);
        assert!(by_start.len() >= 12, "{} entries", by_start.len());
        let victims = [&by_start[3], &by_start[4], &by_start[by_start.len() - 2]];
        for (i, (_, start, _)) in victims.iter().enumerate() {
            let (name, extra) = local_lengths(&bytes, *start);
            noise_over(&mut bytes, *start, 30 + name + extra, 40 + i as u64);
        }
        // The second one loses a byte of its data as well.
        let data_hit = victims[1].2 - 1;
        bytes[data_hit as usize] ^= 0x5a;
        let (s, dest) = salvage(t.path(), "headers", &bytes, &[]);
        check(&src, &dest, &s, &|a, b| a <= data_hit && data_hit < b, &ranges);
        for (i, v) in victims.iter().enumerate() {
            let state = s.files.get(&v.0).map(|v| v["state"].as_str().unwrap_or_default().to_string());
            let want = if i == 1 { None } else { Some("intact") };
            assert_eq!(
                state.as_deref().filter(|s| *s == "intact"),
                want,
                "{codec:?} `{}`",
                String::from_utf8_lossy(&v.0)
            );
        }
    }
}

/// Version 3: an entry whose local header does not read and whose
/// manifest line is lost too comes back through its central directory
/// record when the header's name still ends as the record's does (a sector
/// boundary inside the header, its first part hit): the local header
/// rebuilt with the record's MS-DOS time, its data checked by the record's
/// CRC-32, its mtime the record's, to the even second. One whose name was
/// hit as well is not taken: nothing would vouch for the record's name.
#[test]
fn entries_whose_local_header_and_manifest_line_are_lost_come_back_by_their_crc() {
    let (t, mut bytes, ranges) = archive_without_manifest();
    let mut by_start: Vec<_> = ranges.iter().filter(|r| r.2 - r.1 > 80).cloned().collect();
    by_start.sort_by_key(|r| r.1);
    assert!(by_start.len() >= 12, "{} entries", by_start.len());
    let victims = [&by_start[3], &by_start[5], &by_start[by_start.len() - 2]];
    for (i, (_, start, _)) in victims.iter().enumerate() {
        // The fixed fields; for the second, the name too.
        let n = if i == 1 { 30 + local_lengths(&bytes, *start).0 } else { 30 };
        noise_over(&mut bytes, *start, n, 60 + i as u64);
    }
    let (s, dest) = salvage(t.path(), "headers-no-manifest", &bytes, &[]);
    let source = snapshot(&t.path().join("src"), false);
    let restored = snapshot(&dest, false);
    for (i, v) in victims.iter().enumerate() {
        let name = String::from_utf8_lossy(&v.0);
        let state = s.files.get(&v.0).map(|v| v["state"].clone());
        if i == 1 {
            assert!(!restored.contains_key(&v.0), "`{name}` restored");
            continue;
        }
        assert_eq!(state.as_ref().and_then(|s| s.as_str()), Some("intact"), "`{name}`: {}", stderr(&s.out));
        let (a, b) = (&source[&v.0], restored.get(&v.0).expect("restored"));
        assert_eq!(a.content, b.content, "`{name}`");
        assert!((a.mtime.0 - b.mtime.0).abs() <= 2, "`{name}`: mtime {:?} against {:?}", b.mtime, a.mtime);
    }
    // Nothing was restored under a name the source does not have.
    for path in restored.keys() {
        assert!(source.contains_key(path), "`{}` restored", String::from_utf8_lossy(path));
    }
}
