//! Manifests, diff, verify and struct store/expand.

use std::path::Path;

use crate::support::*;

fn tree(root: &Path) {
    write(root, b"keep.txt", b"unchanged\n");
    write(root, b"edit.txt", b"before\n");
    write(root, b"gone.txt", b"removed later\n");
    write(root, b"move-me.bin", &noise(5000, 3));
    write(root, b"file-becomes-dir", b"a file for now");
    write(root, b"dir-becomes-file/inner", b"inside");
    write(root, b"chmod.txt", b"mode changes");
    write(root, "odd/caf\u{e9}\tname\n#x".as_bytes(), b"odd");
    write(root, b"odd/\xff\xfe", b"not utf-8");
    write(root, b"#leading-hash", b"hash");
    // A hard link whose names sort differently in path order and in archive
    // order (files of a directory come before its subdirectories).
    write(root, b"h/b/y.txt", b"linked");
    std::fs::hard_link(root.join("h/b/y.txt"), root.join("h/z.txt")).expect("link");
    std::fs::create_dir_all(root.join("empty/dir")).expect("mkdir");
    std::os::unix::fs::symlink("keep.txt", root.join("link")).expect("symlink");
}

fn out_text(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn the_manifest_of_a_tree_and_of_its_archive_are_byte_identical() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let m = t.path().join("tree.manifest");
    let o = run(&[os("manifest"), src.as_os_str(), os("-o"), m.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let launched = t.path().join("l");
    assert!(run(&[os("launch"), archive.as_os_str(), launched.as_os_str()]).status.success());
    let from_tree = std::fs::read(&m).expect("read");
    let from_archive = std::fs::read(launched.join(".xtar-manifest")).expect("read");
    assert_eq!(String::from_utf8_lossy(&from_tree), String::from_utf8_lossy(&from_archive));
    assert_eq!(from_tree, from_archive);
    // And the diff agrees, whichever form each side takes.
    for (a, b) in [(&src, &archive), (&m, &src), (&archive, &m)] {
        let o = run(&[os("diff"), a.as_os_str(), b.as_os_str()]);
        assert_eq!(o.status.code(), Some(0), "{}{}", out_text(&o), stderr(&o));
    }
}

#[test]
fn diff_names_every_kind_of_change() {
    let t = tempfile::tempdir().expect("tmp");
    let a = t.path().join("a");
    tree(&a);
    let old = t.path().join("old.xtar");
    compress(&a, &old, &[]);
    // The tahoe-backup scenario: edit, remove, move, file <-> dir, chmod, add.
    write(&a, b"edit.txt", b"after, and longer\n");
    std::fs::remove_file(a.join("gone.txt")).expect("rm");
    std::fs::create_dir(a.join("sub")).expect("mkdir");
    std::fs::rename(a.join("move-me.bin"), a.join("sub/moved.bin")).expect("mv");
    std::fs::remove_file(a.join("file-becomes-dir")).expect("rm");
    write(&a, b"file-becomes-dir/now", b"x");
    std::fs::remove_dir_all(a.join("dir-becomes-file")).expect("rm");
    write(&a, b"dir-becomes-file", b"now a file");
    chmod(&a.join("chmod.txt"), 0o600);
    write(&a, b"added.txt", b"new");
    let o = run(&[os("diff"), old.as_os_str(), a.as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = out_text(&o);
    let find = |word: &str, path: &str| text.lines().any(|l| l.starts_with(word) && l.ends_with(path));
    assert!(find("modified", " edit.txt"), "{text}");
    assert!(find("removed", " gone.txt"), "{text}");
    assert!(find("moved", " move-me.bin -> sub/moved.bin"), "{text}");
    assert!(find("type-changed", " file-becomes-dir"), "{text}");
    assert!(find("type-changed", " dir-becomes-file"), "{text}");
    assert!(find("metadata", " chmod.txt"), "{text}");
    assert!(find("added", " added.txt"), "{text}");
    assert!(find("added", " file-becomes-dir/now"), "{text}");
    assert!(find("removed", " dir-becomes-file/inner"), "{text}");
    assert!(!text.contains("keep.txt"), "{text}");
    // The same as JSON Lines.
    let o = run(&[os("diff"), os("--json"), old.as_os_str(), a.as_os_str()]);
    let types: Vec<(String, String)> = out_text(&o)
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            (v["type"].as_str().unwrap_or_default().to_string(), v["path"].to_string())
        })
        .collect();
    assert!(types.contains(&("moved".into(), "\"sub/moved.bin\"".into())), "{types:?}");
    assert!(types.contains(&("type-changed".into(), "\"dir-becomes-file\"".into())), "{types:?}");
}

#[test]
fn diff_filters_and_exit_codes() {
    let t = tempfile::tempdir().expect("tmp");
    let a = t.path().join("a");
    let b = t.path().join("b");
    tree(&a);
    tree(&b);
    // Same content, but a fresh copy has fresh mtimes: align them first.
    let m = t.path().join("a.manifest");
    assert!(run(&[os("manifest"), a.as_os_str(), os("-o"), m.as_os_str()]).status.success());
    write(&b, b"odd/new", b"only under odd");
    write(&b, b"cache/junk", b"excluded");
    let o = run(&[os("diff"), m.as_os_str(), b.as_os_str(), os("odd"), os("--exclude"), os("cache")]);
    let text = out_text(&o);
    assert_eq!(o.status.code(), Some(1));
    assert!(text.lines().all(|l| l.ends_with("odd") || l.contains(" odd/")), "{text}");
    assert!(text.contains("odd/new"), "{text}");
    let o = run(&[os("diff"), a.as_os_str(), a.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", out_text(&o));
    let o = run(&[os("diff"), a.as_os_str(), t.path().join("missing").as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn verify_names_exactly_the_damaged_file() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"one.txt", &b"first file ".repeat(300));
    write(&src, b"dir/two.txt", &b"second file ".repeat(300));
    write(&src, b"dir/three.txt", &b"third file ".repeat(300));
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let o = run(&[os("verify"), archive.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mut bytes = std::fs::read(&archive).expect("read");
    let at = bytes
        .windows(13)
        .enumerate()
        .find(|(i, w)| *w == b"dir/three.txt" && bytes[i - 30..i - 26] == *b"PK\x03\x04")
        .map(|(i, _)| i)
        .expect("local header of dir/three.txt");
    bytes[at + 13 + 9 + 5] ^= 0xff;
    std::fs::write(&archive, &bytes).expect("write");
    let o = run(&[os("verify"), archive.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    let named: Vec<&str> = err.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(named.len(), 1, "{err}");
    assert!(named[0].contains("member `dir/three.txt`"), "{err}");
}

#[test]
fn verify_against_a_live_tree() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let o = run(&[os("verify"), archive.as_os_str(), os("--against"), src.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", out_text(&o), stderr(&o));
    write(&src, b"edit.txt", b"changed since the backup\n");
    let o = run(&[os("verify"), archive.as_os_str(), os("--against"), src.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(out_text(&o).lines().any(|l| l.starts_with("modified") && l.ends_with(" edit.txt")), "{}", out_text(&o));
}

#[test]
fn struct_store_and_expand_recreate_every_directory() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"a/b/file", b"contents are not part of the structure");
    std::fs::create_dir_all(src.join("a/empty/deeper")).expect("mkdir");
    std::fs::create_dir_all(src.join("odd \u{e9}")).expect("mkdir");
    chmod(&src.join("a/empty"), 0o700);
    set_mtime(&src.join("a/empty/deeper"), 1_000_000_000, 123);
    set_mtime(&src.join("a/empty"), 1_000_000_001, 456);
    let file = t.path().join("struct.txt");
    assert!(run(&[os("struct"), os("store"), src.as_os_str(), file.as_os_str()]).status.success());
    let dest = t.path().join("dest");
    let o = run(&[os("struct"), os("expand"), dest.as_os_str(), file.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let a = snapshot(&src, false);
    let b = snapshot(&dest, false);
    let dirs = |s: &std::collections::BTreeMap<Vec<u8>, Node>| {
        s.iter().filter(|(_, n)| n.kind == "dir").map(|(k, n)| (k.clone(), n.mode, n.mtime)).collect::<Vec<_>>()
    };
    assert_eq!(dirs(&a), dirs(&b));
    assert!(!dest.join("a/b/file").exists());
}

#[test]
fn a_hostile_manifest_gives_an_error_with_its_line() {
    let t = tempfile::tempdir().expect("tmp");
    let file = t.path().join("bad.manifest");
    std::fs::write(
        &file,
        "#xtar-manifest 1\n#root /x\n.\td\t0755\t0.000000000\t0\t-\t-\n../etc\td\t0755\t0.000000000\t0\t-\t-\n",
    )
    .expect("write");
    let o = run(&[os("struct"), os("expand"), t.path().join("d").as_os_str(), file.as_os_str()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("line 4"), "{}", stderr(&o));
    assert!(!t.path().join("etc").exists());
}
