//! Golden test vectors: the exact bytes of a small archive in each format
//! version the writers produce, checked in under `tests/golden/`. Any
//! change to the bytes on disk must update the spec, the version and these
//! files together (docs/format/xtar.md, "Versioning"). Regenerate with
//! `XTAR_BLESS=1 cargo test -p xtar --test golden` after such a change.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use filetime::FileTime;
use xtar::{CompressOptions, ExtractOptions, Silent};

/// Version 2, nested layout, stored (level 0).
const V2: &str = "tests/golden/v2-stored.xtar";
/// Version 3, packs, deflated with libdeflate (level 6), with a hard link.
const V3: &str = "tests/golden/v3.xtar";

/// A tree with fixed names, contents, modes and times; with `hard`, a
/// second name of `hello.txt` too.
fn build(root: &Path, hard: bool) {
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
    if hard {
        std::fs::hard_link(root.join("hello.txt"), root.join("dir/hello-again.txt")).expect("link");
        set(&root.join("dir"), 0o755, 1_100_000_000, 0);
    }
    set(root, 0o755, 1_000_000_000, 0);
}

fn make(root: &Path, out: &Path, version: u32) {
    let level = if version >= 3 { 6 } else { 0 };
    let opts = CompressOptions { level, jobs: 1, root_label: Some(b"/golden".to_vec()), version, ..Default::default() };
    xtar::compress_to_path(root, out, &opts, true, &Silent).expect("compress");
}

fn check_bytes(vector: &str, version: u32) {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("tree");
    build(&root, version >= 3);
    let out = t.path().join("a.xtar");
    make(&root, &out, version);
    let got = std::fs::read(&out).expect("read");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(vector);
    if std::env::var_os("XTAR_BLESS").is_some() {
        std::fs::write(&path, &got).expect("bless");
    }
    let want = std::fs::read(&path).expect("golden vector present");
    if got != want {
        let at = got.iter().zip(&want).position(|(a, b)| a != b).unwrap_or(got.len().min(want.len()));
        panic!("archive bytes differ from {vector} at offset {at} (lengths {} and {})", got.len(), want.len());
    }
}

#[test]
fn the_writer_produces_the_golden_bytes() {
    check_bytes(V2, 2);
}

#[test]
fn the_writer_produces_the_golden_bytes_of_version_3() {
    check_bytes(V3, 3);
}

#[test]
fn the_golden_archive_reads_back_exactly() {
    read_back(V2, false);
}

#[test]
fn the_version_3_golden_archive_reads_back_exactly() {
    read_back(V3, true);
    // The hard link comes back as a link.
    let vector = Path::new(env!("CARGO_MANIFEST_DIR")).join(V3);
    let t = tempfile::tempdir().expect("tmp");
    xtar::extract(&vector, t.path(), &ExtractOptions { overwrite: true, ..Default::default() }, &Silent)
        .expect("extract");
    use std::os::unix::fs::MetadataExt;
    let a = std::fs::metadata(t.path().join("hello.txt")).expect("stat");
    let b = std::fs::metadata(t.path().join("dir/hello-again.txt")).expect("stat");
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 2));
}

fn read_back(vector: &str, hard: bool) {
    let vector = Path::new(env!("CARGO_MANIFEST_DIR")).join(vector);
    let t = tempfile::tempdir().expect("tmp");
    let dest = t.path().join("out");
    let report = xtar::extract(&vector, &dest, &ExtractOptions::default(), &Silent).expect("extract");
    assert!(report.is_clean(), "{report:?}");
    let want = tempfile::tempdir().expect("tmp");
    let root = want.path().join("tree");
    build(&root, hard);
    let a = xtar::archive_manifest(&vector, &Silent).expect("manifest of the vector");
    assert_eq!(a.root, b"/golden");
    let opts = manifest::BuildOptions { walk: walk::Options::default(), hash: true, jobs: 1 };
    let live = manifest::build(&dest, &opts, |e| panic!("{e}")).expect("manifest");
    let orig = manifest::build(&root, &opts, |e| panic!("{e}")).expect("manifest");
    assert_eq!(live.entries, orig.entries);
    assert_eq!(a.entries, orig.entries);
}
