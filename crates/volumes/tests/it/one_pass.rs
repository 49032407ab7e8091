//! The one-pass set writer: round trips, sizes, determinism, failures.

use std::path::{Path, PathBuf};

use volumes::{compress_volumes, extract_set, open_set, volume_path, Place, VolumeOptions};
use xtar::{CompressOptions, ExtractOptions, Silent};

fn noise(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Many small files, a file cut from memory (3 MiB, compressed whole
/// first), one streamed and cut across several volumes (9 MiB, above the
/// small-file limit), hard links, symlinks, empty directories.
fn tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/deep/er")).expect("mkdir");
    std::fs::create_dir_all(root.join("b/empty")).expect("mkdir");
    std::fs::create_dir_all(root.join("z")).expect("mkdir");
    for i in 0..300 {
        let d = ["a", "a/deep", "a/deep/er", "b", "z"][i % 5];
        std::fs::write(root.join(format!("{d}/f{i:03}.txt")), format!("file {i}\n").repeat(i * 7)).expect("write");
    }
    std::fs::write(root.join("a/medium.bin"), noise(3 << 20, 7)).expect("write");
    std::fs::write(root.join("b/large.bin"), noise(9 << 20, 11)).expect("write");
    // Large but compressible: its bound does not fit in a volume, its
    // member does (spilled, then added whole).
    std::fs::write(root.join("b/large-text.txt"), b"the same line, again and again\n".repeat(300_000)).expect("write");
    std::fs::hard_link(root.join("a/f000.txt"), root.join("z/link-same")).expect("link");
    std::fs::hard_link(root.join("a/medium.bin"), root.join("z/link-to-cut")).expect("link");
    std::os::unix::fs::symlink("../a/f005.txt", root.join("b/sym")).expect("symlink");
}

fn opts(jobs: usize) -> CompressOptions {
    CompressOptions { level: 1, jobs, root_label: Some(b"/t".to_vec()), ..Default::default() }
}

fn files_in(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn same_tree(a: &Path, b: &Path) {
    let o = manifest::BuildOptions { walk: walk::Options::default(), hash: true, jobs: 1 };
    let x = manifest::build(a, &o, |e| panic!("{e}")).expect("manifest");
    let y = manifest::build(b, &o, |e| panic!("{e}")).expect("manifest");
    assert_eq!(x.entries, y.entries);
}

#[test]
fn a_set_written_in_one_pass_round_trips_and_keeps_its_size() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let out = t.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let base = out.join("set");
    let size = 1 << 20;
    let s =
        compress_volumes(&src, &base, &opts(2), &VolumeOptions { size, overwrite: false }, &Silent).expect("volumes");
    assert!(s.volumes.len() >= 12, "{} volumes", s.volumes.len());
    assert!(s.split_files >= 2, "{s:?}");
    for (p, len) in &s.volumes {
        assert_eq!(std::fs::metadata(p).expect("volume").len(), *len);
        assert!(*len <= size, "{} is {len} bytes", p.display());
    }
    // Nothing else in the directory: no temporary file left behind.
    let names: Vec<String> = (1..=s.volumes.len() as u32)
        .map(|k| volume_path(&base, k).file_name().expect("name").to_string_lossy().into_owned())
        .collect();
    assert_eq!(files_in(&out), names);
    // Full volumes: all but the last hold at least 85 % of the size.
    for (p, len) in &s.volumes[..s.volumes.len() - 1] {
        assert!(*len >= size * 85 / 100, "{} holds only {len} bytes", p.display());
    }

    let set = open_set(&[volume_path(&base, 3)]).expect("open");
    assert_eq!(set.table.count as usize, s.volumes.len());
    let cut: Vec<&Place> = set.table.entries.iter().map(|(p, _)| p).filter(|p| matches!(p, Place::Parts(_))).collect();
    assert_eq!(cut.len() as u64, s.split_files);
    let place = |path: &[u8]| set.table.entries.iter().find(|(_, e)| e.path == path).map(|(p, _)| p.clone());
    assert!(matches!(place(b"b/large-text.txt"), Some(Place::Whole(_))), "{:?}", place(b"b/large-text.txt"));
    assert!(matches!(place(b"b/large.bin"), Some(Place::Parts(v)) if v.len() >= 9));
    assert!(matches!(place(b"a/medium.bin"), Some(Place::Parts(v)) if v.len() >= 3));
    let dest = t.path().join("dest");
    let r = extract_set(&set, Some(&dest), &ExtractOptions::default(), &Silent).expect("extract");
    assert!(r.report.is_clean(), "{r:?}");
    same_tree(&src, &dest);

    // Each volume is an archive of its own: stock readers get its whole
    // files, and a volume's own check passes.
    for (p, _) in &s.volumes {
        let v = xtar::verify(p, &xtar::ExtractOptions::default(), &Silent).expect("verify one volume");
        assert!(v.is_clean(), "{}: {v:?}", p.display());
    }
}

#[test]
fn the_same_tree_gives_the_same_volumes_whatever_the_threads() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let mut sets: Vec<Vec<Vec<u8>>> = Vec::new();
    for jobs in [1, 2, 3] {
        let base = t.path().join(format!("set{jobs}"));
        let s = compress_volumes(&src, &base, &opts(jobs), &VolumeOptions { size: 1 << 20, overwrite: false }, &Silent)
            .expect("volumes");
        sets.push(s.volumes.iter().map(|(p, _)| std::fs::read(p).expect("read")).collect());
    }
    assert_eq!(sets[0], sets[1]);
    assert_eq!(sets[0], sets[2]);
}

#[test]
fn losing_a_volume_names_exactly_the_files_on_it() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let base = t.path().join("set");
    let s = compress_volumes(&src, &base, &opts(2), &VolumeOptions { size: 1 << 20, overwrite: false }, &Silent)
        .expect("volumes");
    let gone = 4u32;
    std::fs::remove_file(volume_path(&base, gone)).expect("rm");
    let set = open_set(&[volume_path(&base, 1)]).expect("open");
    assert_eq!(set.missing(), vec![gone]);
    let expected: Vec<Vec<u8>> = set
        .table
        .entries
        .iter()
        .filter(|(p, e)| e.kind == manifest::Kind::File && e.size > 0 && p.volumes().contains(&gone))
        .map(|(_, e)| e.path.clone())
        .collect();
    assert!(!expected.is_empty());
    let dest = t.path().join("dest");
    let r = extract_set(&set, Some(&dest), &ExtractOptions::default(), &Silent).expect("extract");
    let mut lost: Vec<Vec<u8>> = r.lost.iter().map(|(p, _)| p.clone()).collect();
    lost.sort();
    let mut want = expected.clone();
    want.sort();
    assert_eq!(lost, want);
    // Everything else came back.
    for (p, e) in &set.table.entries {
        if e.kind == manifest::Kind::File && !p.volumes().contains(&gone) {
            let rel = PathBuf::from(String::from_utf8_lossy(&e.path).into_owned());
            assert_eq!(std::fs::read(dest.join(&rel)).ok(), std::fs::read(src.join(&rel)).ok(), "{}", rel.display());
        }
    }
    assert!(s.volumes.len() as u32 > gone);
}

#[test]
fn a_volume_size_too_small_is_refused_and_leaves_nothing() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let out = t.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let e = compress_volumes(
        &src,
        &out.join("set"),
        &opts(2),
        &VolumeOptions { size: 90 << 10, overwrite: false },
        &Silent,
    )
    .expect_err("too small");
    assert!(e.to_string().contains("too small"), "{e}");
    assert!(files_in(&out).is_empty(), "{:?}", files_in(&out));
}

#[test]
fn an_existing_volume_is_not_replaced_unless_asked() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    std::fs::create_dir_all(&src).expect("mkdir");
    std::fs::write(src.join("x"), b"x").expect("write");
    let base = t.path().join("set");
    std::fs::write(volume_path(&base, 1), b"precious").expect("write");
    let v = VolumeOptions { size: 1 << 20, overwrite: false };
    assert!(compress_volumes(&src, &base, &opts(1), &v, &Silent).is_err());
    assert_eq!(std::fs::read(volume_path(&base, 1)).expect("read"), b"precious");
    let v = VolumeOptions { overwrite: true, ..v };
    compress_volumes(&src, &base, &opts(1), &v, &Silent).expect("overwrite");
    assert_ne!(std::fs::read(volume_path(&base, 1)).expect("read"), b"precious");
}

#[test]
fn a_later_volume_in_the_way_stops_the_set_and_leaves_nothing_of_it() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let out = t.path().join("out");
    std::fs::create_dir(&out).expect("mkdir");
    let base = out.join("set");
    // Volume 2 of an unrelated set is in the way: found only once the set
    // is written, after volume 1 was.
    std::fs::write(volume_path(&base, 2), b"someone else's").expect("write");
    let e = compress_volumes(&src, &base, &opts(2), &VolumeOptions { size: 1 << 20, overwrite: false }, &Silent)
        .expect_err("refused");
    assert!(e.to_string().contains("set.002.xtar"), "{e}");
    assert_eq!(files_in(&out), vec!["set.002.xtar".to_string()]);
    assert_eq!(std::fs::read(volume_path(&base, 2)).expect("read"), b"someone else's");
}
