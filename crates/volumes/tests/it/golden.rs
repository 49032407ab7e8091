//! Golden test vectors of volume sets: the exact bytes of a small set,
//! checked in under `tests/golden/` (docs/format/volumes.md). Where the
//! writer cuts volumes is its own choice, pinned here; regenerate with
//! `VOLUMES_BLESS=1 cargo test -p volumes --test it golden` after a change
//! to it. The sets of earlier writers stay, and must keep reading back.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;
use xtar::{CompressOptions, ExtractOptions, Silent};

/// A tree with fixed names, contents, modes and times.
fn build(root: &Path) {
    let set = |p: &Path, mode: u32, sec: i64, nsec: u32| {
        if !p.is_symlink() {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
        }
        let t = FileTime::from_unix_time(sec, nsec);
        filetime::set_symlink_file_times(p, t, t).expect("utimes");
    };
    std::fs::create_dir_all(root.join("dir/empty")).expect("mkdir");
    std::fs::write(root.join("hello.txt"), b"hello, world\n").expect("write");
    std::fs::write(root.join("dir/data.bin"), (0u8..=255).cycle().take(3000).collect::<Vec<_>>()).expect("write");
    std::fs::write(root.join("dir/empty.txt"), b"").expect("write");
    std::fs::write(root.join("#hash name"), b"escaped\n").expect("write");
    std::os::unix::fs::symlink("../hello.txt", root.join("dir/link")).expect("symlink");
    set(&root.join("hello.txt"), 0o644, 1_700_000_000, 123_456_789);
    set(&root.join("dir/data.bin"), 0o4755, 1_600_000_000, 1);
    set(&root.join("dir/empty.txt"), 0o600, 1_500_000_000, 0);
    set(&root.join("#hash name"), 0o640, 1_400_000_000, 999_999_999);
    set(&root.join("dir/link"), 0o777, 1_300_000_000, 5);
    set(&root.join("dir/empty"), 0o700, 1_200_000_000, 0);
    set(&root.join("dir"), 0o755, 1_100_000_000, 0);
    set(root, 0o755, 1_000_000_000, 0);
}

/// The golden volume set: the same tree plus 150,000 bytes that do not
/// compress, cut into volumes of 160 KiB (docs/format/volumes.md).
const SET_BASE: &str = "tests/golden/v2-set";
/// The same set as the writer before one-pass writing cut it (volumes
/// staged whole, then copied): readers keep reading it.
const STAGED_BASE: &str = "tests/golden/v2-set-staged";
const SET_VOLUME: u64 = 160 << 10;

fn build_set(root: &Path) {
    build(root);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..150_000)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(root.join("dir/noise.bin"), noise).expect("write");
    let t = FileTime::from_unix_time(1_650_000_000, 0);
    filetime::set_file_times(root.join("dir/noise.bin"), t, t).expect("utimes");
    filetime::set_file_times(
        root.join("dir"),
        FileTime::from_unix_time(1_100_000_000, 0),
        FileTime::from_unix_time(1_100_000_000, 0),
    )
    .expect("utimes");
}

#[test]
fn the_volume_writer_produces_the_golden_bytes() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("tree");
    build_set(&root);
    let base = t.path().join("set");
    let opts = CompressOptions { level: 0, jobs: 1, root_label: Some(b"/golden".to_vec()), ..Default::default() };
    let vopts = volumes::VolumeOptions { size: SET_VOLUME, overwrite: false };
    let s = volumes::compress_volumes(&root, &base, &opts, &vopts, &Silent).expect("volumes");
    assert!(s.volumes.len() >= 2 && s.split_files == 1, "{s:?}");
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(SET_BASE);
    for (k, (path, len)) in s.volumes.iter().enumerate() {
        assert!(*len <= SET_VOLUME);
        let got = std::fs::read(path).expect("read");
        let vector = volumes::volume_path(&golden, k as u32 + 1);
        if std::env::var_os("VOLUMES_BLESS").is_some() {
            std::fs::write(&vector, &got).expect("bless");
        }
        let want = std::fs::read(&vector).expect("golden volume present");
        if got != want {
            let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
            panic!("volume {} differs from {} at offset {at}", k + 1, vector.display());
        }
    }
    assert!(!volumes::volume_path(&golden, s.volumes.len() as u32 + 1).exists());
}

#[test]
fn the_golden_volume_set_reads_back_exactly() {
    reads_back_exactly(SET_BASE);
}

#[test]
fn the_set_of_the_staging_writer_still_reads_back_exactly() {
    reads_back_exactly(STAGED_BASE);
}

fn reads_back_exactly(base: &str) {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join(base);
    let set = volumes::open_set(&[volumes::volume_path(&golden, 2)]).expect("open");
    assert!(set.missing().is_empty());
    let t = tempfile::tempdir().expect("tmp");
    let dest = t.path().join("out");
    let r = volumes::extract_set(&set, Some(&dest), &ExtractOptions::default(), &Silent).expect("extract");
    assert!(r.report.is_clean(), "{r:?}");
    let root = t.path().join("tree");
    build_set(&root);
    let opts = manifest::BuildOptions { walk: walk::Options::default(), hash: true, jobs: 1 };
    let live = manifest::build(&dest, &opts, |e| panic!("{e}")).expect("manifest");
    let orig = manifest::build(&root, &opts, |e| panic!("{e}")).expect("manifest");
    assert_eq!(live.entries, orig.entries);
}
