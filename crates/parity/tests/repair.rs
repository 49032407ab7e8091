//! Protect, damage, repair: every repaired file byte-exact, every loss
//! beyond the redundancy reported exactly.

use std::path::{Path, PathBuf};

use parity::{protect, repair, FileState, ProtectOptions, RepairOptions};

/// Deterministic bytes that do not compress (xorshift).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn set(dir: &Path, sizes: &[usize]) -> (Vec<PathBuf>, Vec<Vec<u8>>) {
    let mut paths = Vec::new();
    let mut data = Vec::new();
    for (i, &s) in sizes.iter().enumerate() {
        let p = dir.join(format!("set.{:03}.xtar", i + 1));
        let d = noise(s, i as u64 + 1);
        std::fs::write(&p, &d).expect("write");
        paths.push(p);
        data.push(d);
    }
    (paths, data)
}

/// Overwrites the `sector`-sized sectors chosen by `pick` with junk;
/// returns their indexes.
fn damage(path: &Path, sector: usize, pick: impl Fn(usize) -> bool) -> Vec<usize> {
    let mut bytes = std::fs::read(path).expect("read");
    let mut hit = Vec::new();
    for (i, s) in bytes.chunks_mut(sector).enumerate() {
        if pick(i) {
            s.fill(0xa5);
            hit.push(i);
        }
    }
    std::fs::write(path, &bytes).expect("write");
    hit
}

#[test]
fn a_missing_volume_is_rebuilt_byte_exact() {
    let dir = tempfile::tempdir().expect("tmp");
    let (paths, data) = set(dir.path(), &[700_000, 700_000, 300_001]);
    let opts =
        ProtectOptions { redundancy: parity::Redundancy { volumes: 0, percent: 45 }, ..ProtectOptions::default() };
    let made = protect(&paths, &dir.path().join("set"), &opts).expect("protect");
    std::fs::remove_file(&paths[1]).expect("rm");
    let dry = repair(&made.parity_files, &RepairOptions { dry_run: true, ..RepairOptions::default() }).expect("check");
    assert_eq!(dry.files[1].state, FileState::Missing { repairable: true });
    assert!(!paths[1].exists(), "a dry run writes nothing");
    let r = repair(&made.parity_files, &RepairOptions::default()).expect("repair");
    assert_eq!(r.files[1].state, FileState::Rebuilt);
    assert!(r.is_complete());
    for (p, d) in paths.iter().zip(&data) {
        assert_eq!(&std::fs::read(p).expect("read"), d);
    }
}

#[test]
fn random_sector_damage_within_the_redundancy_is_repaired() {
    let dir = tempfile::tempdir().expect("tmp");
    let (paths, data) = set(dir.path(), &[3_000_000, 1_000_000]);
    let made = protect(&paths, &dir.path().join("set"), &ProtectOptions::default()).expect("protect");
    let overhead = made.parity_bytes as f64 / made.data_bytes as f64 * 100.0;
    assert!((10.0..11.0).contains(&overhead), "overhead {overhead:.2}%");
    // 5 % of the 2048-byte sectors of every file, and of the parity volume.
    for (i, p) in paths.iter().chain(&made.parity_files).enumerate() {
        let hit = damage(p, 2048, |s| (s * 37 + i * 11) % 20 == 3);
        assert!(!hit.is_empty());
    }
    let r = repair(&made.parity_files, &RepairOptions::default()).expect("repair");
    assert!(r.is_complete(), "{:?} {:?}", r.files, r.short);
    for (p, d) in paths.iter().zip(&data) {
        assert_eq!(&std::fs::read(p).expect("read"), d);
    }
    assert!(matches!(r.parity[0].state, FileState::Repaired { .. }));
    // The rebuilt parity volume is intact again.
    let again =
        repair(&made.parity_files, &RepairOptions { dry_run: true, ..RepairOptions::default() }).expect("check");
    assert!(again.files.iter().chain(&again.parity).all(|f| f.state == FileState::Intact), "{again:?}");
}

#[test]
fn damage_beyond_the_redundancy_is_reported_exactly_and_the_rest_repaired() {
    let dir = tempfile::tempdir().expect("tmp");
    // 512-byte blocks: 20,000 blocks, so 3 groups (block i in group i % 3).
    let (paths, data) = set(dir.path(), &[10_240_000]);
    let opts = ProtectOptions {
        redundancy: parity::Redundancy { volumes: 0, percent: 5 },
        block: Some(512),
        ..ProtectOptions::default()
    };
    let made = protect(&paths, &dir.path().join("set"), &opts).expect("protect");
    assert_eq!((made.layout.block, made.layout.groups), (512, 3));
    // Group 0 loses 8 % of its blocks (beyond 5 %), group 1 loses 2 %.
    let hit0 = damage(&paths[0], 512, |i| i % 3 == 0 && (i / 3) % 25 < 2);
    let hit1 = damage(&paths[0], 512, |i| i % 3 == 1 && (i / 3) % 50 == 7);
    let r = repair(&made.parity_files, &RepairOptions::default()).expect("repair");
    assert!(!r.is_complete());
    assert_eq!(r.short.len(), 1);
    assert_eq!((r.short[0].0, r.short[0].1), (0, hit0.len() as u64));
    let FileState::Damaged { left, repairable, .. } = &r.files[0].state else { panic!("{:?}", r.files[0]) };
    assert!(!repairable);
    let left_blocks: Vec<usize> =
        left.iter().flat_map(|r| (r.start as usize / 512)..(r.end as usize).div_ceil(512)).collect();
    assert_eq!(left_blocks, hit0, "exactly the blocks of the short group are left");
    // Group 1 was rebuilt in place: those blocks are right again.
    let now = std::fs::read(&paths[0]).expect("read");
    for &i in &hit1 {
        assert_eq!(&now[i * 512..(i + 1) * 512], &data[0][i * 512..(i + 1) * 512], "block {i}");
    }
    for &i in &hit0 {
        assert!(now[i * 512..(i + 1) * 512].iter().all(|&b| b == 0xa5), "untouched");
    }
}

#[test]
fn several_parity_volumes_and_passes_give_the_same_recovery() {
    let dir = tempfile::tempdir().expect("tmp");
    let (paths, data) = set(dir.path(), &[9_000_000, 9_000_000]);
    let opts = ProtectOptions {
        redundancy: parity::Redundancy { volumes: 0, percent: 80 },
        volume_size: Some(4_000_000),
        memory: 1 << 20,
        ..ProtectOptions::default()
    };
    let made = protect(&paths, &dir.path().join("set"), &opts).expect("protect");
    assert!(made.parity_files.len() >= 3 && made.passes > 1, "{} {}", made.parity_files.len(), made.passes);
    for p in &made.parity_files {
        assert!(std::fs::metadata(p).expect("meta").len() <= 4_000_000);
    }
    // A whole data volume and a whole parity volume go missing.
    std::fs::remove_file(&paths[0]).expect("rm");
    std::fs::remove_file(&made.parity_files[1]).expect("rm");
    let r = repair(&made.parity_files[..1], &RepairOptions::default()).expect("repair");
    assert!(r.is_complete(), "{:?} {:?}", r.files, r.short);
    assert_eq!(&std::fs::read(&paths[0]).expect("read"), &data[0]);
    assert_eq!(r.parity[1].state, FileState::Rebuilt);
    let again =
        repair(&made.parity_files, &RepairOptions { dry_run: true, ..RepairOptions::default() }).expect("check");
    assert!(again.files.iter().chain(&again.parity).all(|f| f.state == FileState::Intact), "{again:?}");
}

#[test]
fn junk_is_not_a_parity_volume() {
    let dir = tempfile::tempdir().expect("tmp");
    let junk = dir.path().join("x.p01.xtar-rs");
    std::fs::write(&junk, noise(100_000, 9)).expect("write");
    assert!(matches!(repair(&[junk], &RepairOptions::default()), Err(parity::Error::NoDescriptor(_))));
}

#[test]
fn checksums_lost_in_every_copy_count_as_damage_and_are_repaired() {
    let dir = tempfile::tempdir().expect("tmp");
    // 40,000 blocks in 5 groups: the 1,024 blocks of a lost table run are
    // spread over them (a single small group could not absorb them).
    let (paths, data) = set(dir.path(), &[20_480_000]);
    let opts = ProtectOptions { block: Some(512), ..ProtectOptions::default() };
    let made = protect(&paths, &dir.path().join("set"), &opts).expect("protect");
    assert_eq!(made.layout.groups, 5);
    // Destroy both copies of the table packet of entries 0..1024: find
    // every aligned packet whose type is 2 and first entry is 0.
    let pv = &made.parity_files[0];
    let mut bytes = std::fs::read(pv).expect("read");
    let mut hit = 0;
    for at in (0..bytes.len() - 40).step_by(8) {
        if &bytes[at..at + 8] == b"XTRSPK01" && bytes[at + 8] == 2 && bytes[at + 24..at + 32] == [0; 8] {
            bytes[at + 40] ^= 0xff;
            hit += 1;
        }
    }
    assert_eq!(hit, 2);
    std::fs::write(pv, &bytes).expect("write");
    damage(&paths[0], 512, |s| s < 10);
    let r = repair(&made.parity_files, &RepairOptions::default()).expect("repair");
    assert_eq!(r.unknown_checksums, 1024);
    assert!(r.is_complete(), "{r:?}");
    assert_eq!(&std::fs::read(&paths[0]).expect("read"), &data[0]);
}
