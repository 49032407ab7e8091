//! Everything the format promises to keep round-trips exactly.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use crate::support::*;

/// A tree with every kind of thing a backup must keep.
pub(crate) fn rich_tree(root: &Path) {
    write(root, b"plain.txt", b"hello\n");
    write(root, b"empty", b"");
    std::fs::create_dir_all(root.join("empty-dir/nested-empty")).expect("mkdir");
    // Every one of the 12 mode bits.
    for (name, mode) in [("suid", 0o4755), ("sgid", 0o2750), ("sticky-file", 0o1644), ("ro", 0o400), ("none", 0o000)] {
        let p = write(root, format!("modes/{name}").as_bytes(), name.as_bytes());
        chmod(&p, mode);
    }
    std::fs::create_dir(root.join("modes/sticky-dir")).expect("mkdir");
    chmod(&root.join("modes/sticky-dir"), 0o1777);
    // Names: Unicode, not UTF-8, control characters, our own suffixes.
    write(root, "names/caf\u{e9} \u{1f600}.txt".as_bytes(), b"unicode");
    write(root, b"names/latin1-\xe9\xff", b"not utf-8");
    write(root, b"names/tab\there\nnewline\\back", b"controls");
    write(root, b"names/x.zip", b"a file named like a member");
    write(root, b"names/.xtar-index", b"a file named like an index");
    write(root, b"names/d.xtar/inner", b"a directory named like a container");
    // A path longer than 255 bytes, and 64 levels of nesting.
    let long_name = "n".repeat(200);
    write(root, format!("long/{long_name}/{long_name}/file").as_bytes(), b"long path");
    let deep: Vec<String> = (0..64).map(|i| format!("d{i}")).collect();
    write(root, format!("{}/bottom", deep.join("/")).as_bytes(), b"deep");
    // Links.
    std::os::unix::fs::symlink("../plain.txt", root.join("names/rel-link")).expect("symlink");
    std::os::unix::fs::symlink("/nonexistent/target", root.join("dangling")).expect("symlink");
    std::fs::hard_link(root.join("plain.txt"), root.join("hard-same-dir")).expect("link");
    std::fs::hard_link(root.join("plain.txt"), root.join("long/hard-other-dir")).expect("link");
    // A compressible file big enough for the chunked parallel path (> 8 MiB).
    let big: Vec<u8> = (0..9u32 << 20).map(|i| b"abcdefgh\n"[(i % 9) as usize] ^ ((i >> 12) as u8 & 1)).collect();
    write(root, b"big/chunked.txt", &big);
    // Mtimes with nanoseconds, before 1970, and far in the future; set last.
    set_mtime(&root.join("plain.txt"), 1_600_000_000, 123_456_789);
    set_mtime(&root.join("empty"), -86_400 * 365, 999_999_999);
    set_mtime(&root.join("names/rel-link"), 1_500_000_000, 5);
    set_mtime(&root.join("big/chunked.txt"), 4_102_444_800, 1);
    set_mtime(&root.join("empty-dir/nested-empty"), 1_234_567_890, 42);
    set_mtime(&root.join("empty-dir"), 1_234_567_891, 43);
}

#[test]
fn every_kind_of_entry_round_trips_through_extract() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    rich_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let dest = t.path().join("dest");
    extract(&archive, &dest);
    assert_same_tree(&src, &dest);
}

#[test]
fn every_kind_of_entry_round_trips_through_launch_and_expand() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    rich_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let launched = t.path().join("launched");
    let out = run(&[os("launch"), archive.as_os_str(), launched.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Members are zips and indexes under their full paths.
    assert!(launched.join("empty.zip").is_file());
    assert!(launched.join(OsStr::from_bytes(b"names/latin1-\xe9\xff.zip")).is_file());
    assert!(launched.join("empty-dir/nested-empty/.xtar-index").is_file());
    let dest = t.path().join("dest");
    let out = run(&[os("expand"), launched.as_os_str(), os("-C"), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
}

#[test]
fn special_files_are_reported_not_stored() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"f", b"x");
    let fifo = src.join("pipe");
    let status = std::process::Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success());
    let archive = t.path().join("a.xtar");
    let out = compress(&src, &archive, &[]);
    assert!(stderr(&out).contains("pipe` is a fifo"), "{}", stderr(&out));
    let list = run(&[os("list"), archive.as_os_str()]);
    assert!(String::from_utf8_lossy(&list.stdout).lines().any(|l| l.starts_with('p') && l.ends_with(" pipe")));
    let dest = t.path().join("dest");
    extract(&archive, &dest);
    assert!(!dest.join("pipe").exists());
    assert_eq!(std::fs::read(dest.join("f")).expect("f"), b"x");
}

/// A sparse file of 4 GiB and a bit: zip64 on write, and a sparse restore,
/// keep this test cheap in time and disk.
#[test]
fn file_over_4_gib_round_trips() {
    use sha2_like::digest_file;
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    let big = src.join("big.img");
    {
        let f = std::fs::File::create(&big).expect("create");
        let size = (4u64 << 30) + 12_345;
        f.set_len(size).expect("set_len");
        use std::os::unix::fs::FileExt;
        f.write_all_at(b"start", 0).expect("write");
        f.write_all_at(b"middle", 3 << 30).expect("write");
        f.write_all_at(b"end", size - 3).expect("write");
    }
    set_mtime(&big, 1_700_000_000, 7);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["-1"]);
    let dest = t.path().join("dest");
    extract(&archive, &dest);
    let restored = dest.join("big.img");
    assert_eq!(std::fs::metadata(&restored).expect("stat").len(), (4u64 << 30) + 12_345);
    assert_eq!(digest_file(&restored), digest_file(&big));
    let a = snapshot_meta(&big);
    assert_eq!(snapshot_meta(&restored), a);
}

fn snapshot_meta(p: &Path) -> (u32, i64, i64) {
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(p).expect("stat");
    (m.mode() & 0o7777, m.mtime(), m.mtime_nsec())
}

/// Streaming SHA-256 of a file via `sha256sum` (the test must not hold
/// 4 GiB in memory).
mod sha2_like {
    use std::path::Path;

    pub fn digest_file(p: &Path) -> String {
        let out = std::process::Command::new("sha256sum").arg(p).output().expect("sha256sum");
        String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_string()
    }
}

mod random_trees {
    use proptest::prelude::*;

    use crate::support::*;

    fn name() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            "[a-zA-Z0-9._-]{1,12}".prop_map(String::into_bytes),
            proptest::collection::vec(1u8..=255, 1..40)
                .prop_map(|v| v.into_iter().filter(|&b| b != b'/').collect::<Vec<u8>>()),
            Just(vec![b'L'; 250]),
        ]
        .prop_filter("valid name", |n| !n.is_empty() && n != b"." && n != b"..")
    }

    fn tree() -> impl Strategy<Value = Vec<(Vec<Vec<u8>>, Vec<u8>)>> {
        proptest::collection::vec(
            (proptest::collection::vec(name(), 1..4), proptest::collection::vec(any::<u8>(), 0..300)),
            1..12,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
        #[test]
        fn random_trees_round_trip(files in tree()) {
            let t = tempfile::tempdir().expect("tmp");
            let src = t.path().join("src");
            std::fs::create_dir(&src).expect("mkdir");
            for (parts, data) in &files {
                let rel = parts.join(&b'/');
                // Skip paths that collide with an existing file or directory.
                let p = src.join(std::ffi::OsStr::from_bytes(&rel));
                if p.ancestors().skip(1).any(|a| a.is_file()) || p.exists() {
                    continue;
                }
                write(&src, &rel, data);
            }
            let archive = t.path().join("a.xtar");
            compress(&src, &archive, &[]);
            let dest = t.path().join("dest");
            extract(&archive, &dest);
            assert_same_tree(&src, &dest);
        }
    }

    use std::os::unix::ffi::OsStrExt;
}
