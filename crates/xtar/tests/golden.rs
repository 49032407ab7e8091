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

/// Version 4: version 3 encrypted to the recipient of `V4_KEY`, a test
/// key checked in beside it (it protects nothing else).
const V4: &str = "tests/golden/v4-sealed.xtar";
const V4_KEY: &str = "tests/golden/v4-sealed.key";

/// Version 5: version 3 with zstd frames and a trained dictionary (the
/// tree of `build` and `build_samples`, zstd level 3), as the writer of
/// version 5 wrote it: read back, no longer written.
const V5: &str = "tests/golden/v5-zstd.xtar";
/// Version 6: version 5 with a dictionary of the tree's own files whose
/// copies hold it as a zstd frame (the same tree, level 3).
const V6: &str = "tests/golden/v6-zstd.xtar";

/// Versions 3, 4 and 6 as their writers made them before the entries of a
/// pack were placed against sectors (strict length order, no alignment of
/// the first pack): read back, no longer written.
const V3_LENGTH_ORDER: &str = "tests/golden/v3-length-order.xtar";
const V4_LENGTH_ORDER: &str = "tests/golden/v4-sealed-length-order.xtar";
const V6_LENGTH_ORDER: &str = "tests/golden/v6-zstd-length-order.xtar";

/// Enough small, alike files for a dictionary (versions 5 and 6).
fn build_samples(root: &Path) {
    let dir = root.join("src");
    std::fs::create_dir_all(&dir).expect("mkdir");
    for i in 0..60u32 {
        let body: String = (0..40)
            .map(|j| format!("def function_{i}_{j}(value):\n    return value * {} + {j}\n\n", i * 7 + j))
            .collect();
        let p = dir.join(format!("module_{i:02}.py"));
        std::fs::write(&p, format!("# module {i}\nimport os\nimport sys\n\n{body}")).expect("write");
        let t = FileTime::from_unix_time(1_650_000_000 + i64::from(i), 0);
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        filetime::set_file_times(&p, t, t).expect("utimes");
    }
    let t = FileTime::from_unix_time(1_650_000_000, 0);
    filetime::set_file_times(&dir, t, t).expect("utimes");
    filetime::set_file_times(
        root,
        FileTime::from_unix_time(1_000_000_000, 0),
        FileTime::from_unix_time(1_000_000_000, 0),
    )
    .expect("utimes");
}

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

fn v4_key() -> keys::RecoveryKey {
    let text = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(V4_KEY)).expect("test key");
    keys::RecoveryKey::parse(&text).expect("key")
}

fn make(root: &Path, out: &Path, version: u32) {
    let level = match version {
        6 => 3,
        3 | 4 => 6,
        _ => 0,
    };
    let recipients = if version == 4 { vec![v4_key().recipient()] } else { Vec::new() };
    let codec = if version == 6 { xtar::Codec::Zstd } else { xtar::Codec::Deflate };
    let version = version.min(3);
    let opts = CompressOptions {
        level,
        jobs: 1,
        root_label: Some(b"/golden".to_vec()),
        version,
        recipients,
        codec,
        ..Default::default()
    };
    xtar::compress_to_path(root, out, &opts, true, &Silent).expect("compress");
}

fn check_bytes(vector: &str, version: u32) {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("tree");
    build(&root, version >= 3);
    if version == 6 {
        build_samples(&root);
    }
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
fn the_writer_produces_the_golden_bytes_of_version_6() {
    check_bytes(V6, 6);
    // It has a dictionary, at both ends, that the header names.
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(V6)).expect("read");
    let names: Vec<Vec<u8>> = layout(&bytes).into_iter().map(|(n, _)| n).collect();
    let at = |n: &[u8]| names.iter().position(|m| m == n);
    let (head, tail) = (at(b".xtar-zstd.dict.gz").expect("head copy"), at(b".xtar-zstd.2.dict.gz").expect("tail copy"));
    assert!(head == 1 && tail > at(b".xtar-tree.2.tar.gz").expect("tree copy"), "{names:?}");
    // Copies 3 and 4 among the packs (one pack here: both before it).
    let pack = at(b"src/module_07.py.zst").expect("entry");
    for k in [&b".xtar-zstd.3.dict.gz"[..], b".xtar-zstd.4.dict.gz"] {
        assert!(at(k).is_some_and(|i| i > head && i < pack), "{names:?}");
    }
    assert!(names.iter().any(|n| n.ends_with(b"module_07.py.zst")), "{names:?}");
}

#[test]
fn the_version_5_golden_archive_reads_back_exactly() {
    zstd_read_back(V5);
}

#[test]
fn the_version_6_golden_archive_reads_back_exactly() {
    zstd_read_back(V6);
    // Its copies hold a frame of the tree's own files (raw content), not a
    // trained dictionary as version 5's do.
    let bytes = std::fs::read(Path::new(env!("CARGO_MANIFEST_DIR")).join(V6)).expect("read");
    let header = &bytes[512..];
    assert!(header.starts_with(b"#xtar 6\n"));
    let gz = &bytes[3 * 512..];
    assert!(gz.starts_with(&[0x1f, 0x8b]) && gz[15..].starts_with(&[0x28, 0xb5, 0x2f, 0xfd]), "a zstd frame");
}

fn zstd_read_back(vector: &str) {
    let vector = Path::new(env!("CARGO_MANIFEST_DIR")).join(vector);
    let t = tempfile::tempdir().expect("tmp");
    let dest = t.path().join("out");
    let report = xtar::extract(&vector, &dest, &ExtractOptions::default(), &Silent).expect("extract");
    assert!(report.is_clean(), "{report:?}");
    let root = t.path().join("tree");
    build(&root, true);
    build_samples(&root);
    let opts = manifest::BuildOptions { walk: walk::Options::default(), hash: true, jobs: 1 };
    let live = manifest::build(&dest, &opts, |e| panic!("{e}")).expect("manifest");
    let orig = manifest::build(&root, &opts, |e| panic!("{e}")).expect("manifest");
    assert_eq!(live.entries, orig.entries);
    let a = xtar::archive_manifest(&vector, &Silent).expect("manifest of the vector");
    assert_eq!(a.entries, orig.entries);
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

#[test]
fn archives_written_in_strict_length_order_read_back_exactly() {
    read_back(V3_LENGTH_ORDER, true);
    read_back_with(V4_LENGTH_ORDER, true, std::sync::Arc::new(vec![v4_key()]));
    zstd_read_back(V6_LENGTH_ORDER);
}

/// The members of a tar archive and the entries of its packs: names and
/// sizes, which an encrypted archive's random key leaves alone.
fn layout(bytes: &[u8]) -> Vec<(Vec<u8>, u64)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 512 <= bytes.len() && bytes[at..at + 512].iter().any(|&b| b != 0) {
        let h = &bytes[at..at + 512];
        let name = h[..100].split(|&b| b == 0).next().unwrap_or_default().to_vec();
        let size = std::str::from_utf8(&h[124..135]).ok().and_then(|s| u64::from_str_radix(s, 8).ok()).expect("size");
        let data = at + 512;
        if name.starts_with(b".xtar-pack.") {
            let mut p = data;
            while bytes[p..p + 4] == *b"PK\x03\x04" {
                let n = usize::from(u16::from_le_bytes([bytes[p + 26], bytes[p + 27]]));
                let x = usize::from(u16::from_le_bytes([bytes[p + 28], bytes[p + 29]]));
                let csize = u32::from_le_bytes(bytes[p + 18..p + 22].try_into().expect("4"));
                out.push((bytes[p + 30..p + 30 + n].to_vec(), u64::from(csize)));
                p += 30 + n + x + csize as usize;
            }
        }
        out.push((name, size));
        at = data + (size as usize).div_ceil(512) * 512;
    }
    out
}

#[test]
fn the_writer_produces_the_golden_layout_of_version_4() {
    let t = tempfile::tempdir().expect("tmp");
    let root = t.path().join("tree");
    build(&root, true);
    let out = t.path().join("a.xtar");
    make(&root, &out, 4);
    let got = std::fs::read(&out).expect("read");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(V4);
    if std::env::var_os("XTAR_BLESS").is_some() {
        std::fs::write(&path, &got).expect("bless");
    }
    let want = std::fs::read(&path).expect("golden vector present");
    assert!(got.starts_with(b".xtar-header") && got[512..].starts_with(b"#xtar 4\n#sealed age\n"));
    // age adds a stanza of random length to each header ("grease"): the
    // age header's size, and so the tail pad's, vary from run to run.
    let fixed = |b: &[u8]| -> Vec<(Vec<u8>, Option<u64>)> {
        layout(b)
            .into_iter()
            .map(|(n, s)| {
                let varies = n == b".xtar-age" || (n == b".xtar-pad" && s < 64000);
                (n, (!varies).then_some(s))
            })
            .collect()
    };
    assert_eq!(fixed(&got), fixed(&want), "members and pack entries, by name and size");
}

#[test]
fn the_version_4_golden_archive_reads_back_exactly() {
    read_back_with(V4, true, std::sync::Arc::new(vec![v4_key()]));
    // Without the key: refused.
    let vector = Path::new(env!("CARGO_MANIFEST_DIR")).join(V4);
    let t = tempfile::tempdir().expect("tmp");
    let e = xtar::extract(&vector, &t.path().join("x"), &ExtractOptions::default(), &Silent).expect_err("no key");
    assert!(e.to_string().contains("encrypted"), "{e}");
    assert!(!t.path().join("x").exists());
}

fn read_back(vector: &str, hard: bool) {
    read_back_with(vector, hard, xtar::Keys::default())
}

fn read_back_with(vector: &str, hard: bool, keys: xtar::Keys) {
    let vector = Path::new(env!("CARGO_MANIFEST_DIR")).join(vector);
    let t = tempfile::tempdir().expect("tmp");
    let dest = t.path().join("out");
    let opts = ExtractOptions { keys: keys.clone(), ..Default::default() };
    let report = xtar::extract(&vector, &dest, &opts, &Silent).expect("extract");
    assert!(report.is_clean(), "{report:?}");
    let want = tempfile::tempdir().expect("tmp");
    let root = want.path().join("tree");
    build(&root, hard);
    let a = xtar::archive_manifest_keyed(&vector, &keys, &Silent).expect("manifest of the vector");
    assert_eq!(a.root, b"/golden");
    let opts = manifest::BuildOptions { walk: walk::Options::default(), hash: true, jobs: 1 };
    let live = manifest::build(&dest, &opts, |e| panic!("{e}")).expect("manifest");
    let orig = manifest::build(&root, &opts, |e| panic!("{e}")).expect("manifest");
    assert_eq!(live.entries, orig.entries);
    assert_eq!(a.entries, orig.entries);
}
