//! A version 2 archive can be recovered with stock tools only, following
//! the recipe in docs/format/xtar.md §9, and other readers accept what we
//! write (version 3: `v3.rs`).

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn have(tool: &str) -> bool {
    Command::new(tool).arg("--version").output().is_ok_and(|o| o.status.success())
        || Command::new(tool).arg("-v").output().is_ok()
}

/// The recipe from the spec's "recovering without pybackup" section.
const RECIPE: &str = r#"
set -u
archive=$1 out=$2 stage=$2.stage
mkdir -p "$stage" "$out"
tar -i -xf "$archive" -C "$stage"
while [ -n "$(find "$stage" -name '*.xtar' -type f -print -quit)" ]; do
    find "$stage" -name '*.xtar' -type f -exec sh -c 'tar -i -xf "$1" -C "$2"; rm -f -- "$1"' sh {} "$stage" \;
done
(cd "$stage" && find . -type d -exec mkdir -p "$out/{}" \;)
find "$stage" -name '*.zip' -type f -exec unzip -q -o -d "$out" {} \;
rm -rf "$stage"
"#;

#[test]
fn stock_tar_and_unzip_recover_every_file() {
    assert!(have("unzip"), "Info-ZIP unzip is needed (.ci/run installs it)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"top.txt", b"top\n");
    write(&src, b"a/b/c/deep.txt", &b"deep ".repeat(5000));
    write(&src, b"a/x.zip", b"a file that looks like a member");
    write(&src, "unicode/\u{e9}t\u{e9}.txt".as_bytes(), b"utf-8 name");
    write(&src, format!("long/{}/f", "p".repeat(150)).as_bytes(), b"long path");
    std::fs::create_dir_all(src.join("empty/dir")).expect("mkdir");
    std::os::unix::fs::symlink("../top.txt", src.join("a/link")).expect("symlink");
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let out = t.path().join("out");
    let res = Command::new("sh").arg("-c").arg(RECIPE).arg("sh").arg(&archive).arg(&out).output().expect("sh");
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    let a = snapshot(&src, false);
    let b = snapshot(&out, false);
    assert_eq!(
        a.iter().map(|(k, v)| (k.clone(), v.kind, v.content.clone())).collect::<Vec<_>>(),
        b.iter().map(|(k, v)| (k.clone(), v.kind, v.content.clone())).collect::<Vec<_>>()
    );
}

#[test]
fn the_stock_recipe_survives_head_and_tail_damage() {
    use crate::salvage::{build_tree, member_ranges};
    assert!(have("unzip"), "Info-ZIP unzip is needed (.ci/run installs it)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let bytes = std::fs::read(&archive).expect("read");
    let len = bytes.len();
    let source = snapshot(&src, false);
    for (name, range) in [("head", 0..64 << 10), ("tail", len - (64 << 10)..len)] {
        let mut d = bytes.clone();
        d[range.clone()].copy_from_slice(&noise(64 << 10, 3));
        let damaged = t.path().join(format!("{name}.xtar"));
        std::fs::write(&damaged, &d).expect("write");
        let out = t.path().join(name);
        let res = Command::new("sh").arg("-c").arg(RECIPE).arg("sh").arg(&damaged).arg(&out).output().expect("sh");
        assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
        let got = snapshot(&out, false);
        let mut lost = 0;
        for (path, start, end) in member_ranges(&bytes) {
            let hit = (start as usize) < range.end && range.start < end as usize;
            if hit {
                lost += 1;
                continue;
            }
            let (a, b) = (&source[&path], got.get(&path));
            assert_eq!(
                Some((a.kind, &a.content)),
                b.map(|b| (b.kind, &b.content)),
                "{name}: `{}` was not hit",
                String::from_utf8_lossy(&path)
            );
        }
        assert!(lost > 0 || name == "tail", "{name}");
    }
}

#[test]
fn gnu_tar_lists_every_top_level_member() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"f", b"x");
    write(&src, b"d/g", b"y");
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let out = Command::new("tar").arg("-tf").arg(&archive).output().expect("tar");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect();
    assert_eq!(names, vec![".xtar-header", "f.zip", ".xtar-index", "d.xtar", ".xtar-manifest", ".xtar-pad"]);
}

#[test]
fn the_zip_crate_reads_launched_members() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"dir/file.txt", &b"zip crate interop\n".repeat(100));
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let launched = t.path().join("l");
    assert!(run(&[os("launch"), archive.as_os_str(), launched.as_os_str()]).status.success());
    let f = std::fs::File::open(launched.join("dir/file.txt.zip")).expect("member");
    let mut z = zip::ZipArchive::new(f).expect("zip reads it");
    assert_eq!(z.len(), 1);
    let mut e = z.by_index(0).expect("entry");
    assert_eq!(e.name(), "dir/file.txt");
    let mut s = String::new();
    std::io::Read::read_to_string(&mut e, &mut s).expect("inflate");
    assert_eq!(s, "zip crate interop\n".repeat(100));
    let _ = Path::new("");
}
