//! Format version 3: what it keeps, and what stock readers make of it.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;

use crate::support::*;

const V3: &[&str] = &["--format-version", "3"];

/// Asserts that every regular file of `src` (but those in `except`, and
/// with `data_only` empty files and hard-linked ones, which the tree tar
/// holds) is in `out` with the same content; `who` names the reader.
pub(crate) fn files_back(src: &Path, out: &Path, except: &[&[u8]], data_only: bool, who: &str) {
    let got = snapshot(out, false);
    for (path, node) in snapshot(src, false) {
        let wanted = node.kind == "file" && (!data_only || (!node.content.is_empty() && node.link_group.is_none()));
        if wanted && !except.contains(&&path[..]) {
            let g = got.get(&path).map(|g| &g.content);
            assert_eq!(g, Some(&node.content), "{who}: `{}`", String::from_utf8_lossy(&path));
        }
    }
}

/// The `sh` block of docs/format/xtar.md under `heading` (its recipe, as
/// the spec gives it), with the archive and the output directory as `$1`
/// and `$2`: the tests run the spec's own text.
pub(crate) fn spec_recipe(heading: &str) -> String {
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/format/xtar.md");
    let spec = std::fs::read_to_string(&spec).expect("docs/format/xtar.md");
    let block = spec
        .split(heading)
        .nth(1)
        .and_then(|s| s.split("```sh\n").nth(1))
        .and_then(|b| b.split("\n```").next())
        .unwrap_or_else(|| panic!("the sh block of xtar.md {heading}"));
    format!("set -u\narchive=$1 out=$2\n{block}\n")
}

/// The recipe of docs/format/xtar.md §A8 (version 3): GNU tar and
/// Info-ZIP unzip (and zip -FF, then bsdtar, for a pack whose central
/// directory is damaged).
fn recipe() -> String {
    spec_recipe("## A8. ")
}

/// The same with bsdtar alone (libarchive reads tar, zip and gzip).
const BSDTAR: &str = r#"
set -eu
archive=$1 out=$2 stage=$2.stage
mkdir -p "$stage" "$out"
bsdtar -xf "$archive" -C "$stage"
for z in "$stage"/.xtar-pack.*.zip; do bsdtar -xf "$z" -C "$out"; done
bsdtar -xf "$stage/.xtar-tree.tar.gz" -C "$out"
rm -rf "$stage"
"#;

/// The same with Python's standard library only.
const PYTHON: &str = r#"
import io, os, sys, tarfile, zipfile
archive, out = sys.argv[1], sys.argv[2]
os.makedirs(out)
with tarfile.open(archive) as t:
    for m in t.getmembers():
        if m.name.startswith(".xtar-pack."):
            with zipfile.ZipFile(io.BytesIO(t.extractfile(m).read())) as z:
                for info in z.infolist():
                    # Names without the UTF-8 flag are raw bytes, which
                    # zipfile decodes as cp437: encode them back.
                    raw = info.filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")
                    path = os.path.join(os.fsencode(out), raw)
                    os.makedirs(os.path.dirname(path), exist_ok=True)
                    with open(path, "wb") as f:
                        f.write(z.read(info))
                    os.chmod(path, (info.external_attr >> 16) & 0o7777)
    tree = t.extractfile(".xtar-tree.tar.gz").read()
with tarfile.open(fileobj=io.BytesIO(tree), mode="r:gz") as tt:
    if hasattr(tarfile, "fully_trusted_filter"):
        tt.extractall(out, filter="fully_trusted")
    else:
        tt.extractall(out)
"#;

pub(crate) fn have(tool: &str, arg: &str) -> bool {
    Command::new(tool).arg(arg).output().is_ok_and(|o| o.status.success())
}

/// A tree with files of many sizes, empty files and directories, links,
/// odd names and a file large enough for the chunked path.
pub(crate) fn tree(src: &Path) {
    crate::fidelity::rich_tree(src);
    let big: Vec<u8> =
        (0..33u32 << 20).map(|i| b"0123456789abcdef\n"[(i % 17) as usize] ^ ((i >> 16) as u8 & 3)).collect();
    write(src, b"big/over-32-mib.txt", &big);
}

/// A name, its kind, its content and its hard-link group.
type Shape = (Vec<u8>, &'static str, Vec<u8>, Option<Vec<u8>>);

/// Names, kinds, contents and hard-link groups of a tree.
fn shape(root: &Path) -> Vec<Shape> {
    snapshot(root, false).into_iter().map(|(k, v)| (k, v.kind, v.content, v.link_group)).collect()
}

/// Asserts that two shapes are equal, naming the first difference. With
/// `plain_only`, names that are not UTF-8 or hold control characters are
/// left out: Info-ZIP `unzip` translates the names of entries without the
/// UTF-8 flag from CP437 and drops control characters (the format's recipe
/// says so; the manifest keeps the exact bytes).
pub(crate) fn same_shape(want: &Path, got: &Path, who: &str, plain_only: bool) {
    let keep = |e: &Shape| !plain_only || std::str::from_utf8(&e.0).is_ok_and(|s| !s.chars().any(char::is_control));
    let a: Vec<_> = shape(want).into_iter().filter(keep).collect();
    let b: std::collections::BTreeMap<Vec<u8>, _> = shape(got).into_iter().map(|e| (e.0.clone(), e)).collect();
    let show = |e: &Shape| {
        format!(
            "{} {} ({} bytes, link group {:?})",
            String::from_utf8_lossy(&e.0),
            e.1,
            e.2.len(),
            e.3.as_deref().map(String::from_utf8_lossy)
        )
    };
    for x in &a {
        match b.get(&x.0) {
            Some(y) => assert!(x == y, "{who}: {} != {}", show(x), show(y)),
            None => panic!("{who}: {} is missing", show(x)),
        }
    }
    if !plain_only {
        assert_eq!(a.len(), b.len(), "{who}: entry counts differ");
    }
}

pub(crate) fn run_recipe(shell: &str, program: &str, archive: &Path, out: &Path) {
    let res = Command::new(shell).arg("-c").arg(program).arg(shell).arg(archive).arg(out).output().expect(shell);
    assert!(res.status.success(), "{shell} recipe failed: {}", String::from_utf8_lossy(&res.stderr));
}

#[test]
fn every_kind_of_entry_round_trips_through_extract() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, V3);
    let dest = t.path().join("dest");
    extract(&archive, &dest);
    assert_same_tree(&src, &dest);
    let v = run(&[os("verify"), archive.as_os_str()]);
    assert!(v.status.success(), "{}", stderr(&v));
}

#[test]
fn gnu_tar_and_unzip_recover_every_name_and_hard_link() {
    assert!(have("unzip", "-v"), "Info-ZIP unzip is needed (.ci/run installs it)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, V3);
    let out = t.path().join("out");
    run_recipe("sh", &recipe(), &archive, &out);
    same_shape(&src, &out, "GNU tar + unzip", true);
    modes_mtimes_and_hard_links(&src, &out);
}

/// Permission bits and mtimes to the second come back from the stock
/// recipe too (`unzip` drops setuid, setgid and sticky bits unless given
/// -K), and the hard link of [`tree`] as a link.
pub(crate) fn modes_mtimes_and_hard_links(src: &Path, out: &Path) {
    let restored = snapshot(out, false);
    for (path, node) in snapshot(src, false) {
        let Some(got) = restored.get(&path) else { continue };
        if node.kind != "symlink" {
            assert_eq!(node.mode & 0o777, got.mode & 0o777, "mode of {}", String::from_utf8_lossy(&path));
        }
        if node.kind == "file" && node.mtime.0 >= 0 {
            assert_eq!(node.mtime.0, got.mtime.0, "mtime of {}", String::from_utf8_lossy(&path));
        }
    }
    let a = std::fs::metadata(out.join("plain.txt")).expect("stat");
    let b = std::fs::metadata(out.join("long/hard-other-dir")).expect("stat");
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3));
}

#[test]
fn bsdtar_and_python_recover_every_name_and_hard_link() {
    assert!(have("bsdtar", "--version"), "bsdtar is needed (.ci/run installs libarchive-tools)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, V3);
    let out = t.path().join("bsdtar");
    run_recipe("sh", BSDTAR, &archive, &out);
    same_shape(&src, &out, "bsdtar", false);
    let out = t.path().join("python");
    let res = Command::new("python3").arg("-c").arg(PYTHON).arg(&archive).arg(&out).output().expect("python3");
    assert!(res.status.success(), "python: {}", String::from_utf8_lossy(&res.stderr));
    same_shape(&src, &out, "python", false);
}

/// The same with 7-Zip alone (`7zz`, Debian's `7zip`): `-snh` and `-snl`
/// make its tar reader restore hard links and symlinks.
const SEVEN_ZIP: &str = r#"
set -eu
archive=$1 out=$2 stage=$2.stage
mkdir -p "$stage" "$out"
7zz x -y -bd -bso0 -o"$stage" "$archive"
for z in "$stage"/.xtar-pack.*.zip; do 7zz x -y -bd -bso0 -o"$out" "$z"; done
7zz x -y -bd -bso0 -o"$stage" "$stage/.xtar-tree.tar.gz"
7zz x -y -bd -bso0 -snh -snl -o"$out" "$stage/.xtar-tree.tar" || true
rm -rf "$stage"
"#;

#[test]
fn seven_zip_recovers_every_file_and_hard_link() {
    assert!(have("7zz", "i"), "7-Zip is needed (.ci/run installs Debian's 7zip)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, V3);
    let out = t.path().join("7z");
    run_recipe("sh", SEVEN_ZIP, &archive, &out);
    // 7-Zip refuses every symlink whose target is absolute or holds `..`
    // ("dangerous link path") and, like unzip, translates names that are
    // not UTF-8: everything else comes back, hard links as links.
    let got = snapshot(&out, false);
    for (path, node) in snapshot(&src, false) {
        let plain = std::str::from_utf8(&path).is_ok_and(|s| !s.chars().any(char::is_control));
        let dangerous = node.content.starts_with(b"/") || node.content.windows(2).any(|w| w == b"..");
        if !plain || (node.kind == "symlink" && dangerous) {
            continue;
        }
        let g = got.get(&path).unwrap_or_else(|| panic!("7-Zip: `{}` is missing", String::from_utf8_lossy(&path)));
        assert_eq!((node.kind, &node.content), (g.kind, &g.content), "7-Zip: `{}`", String::from_utf8_lossy(&path));
    }
    let a = std::fs::metadata(out.join("plain.txt")).expect("stat");
    let b = std::fs::metadata(out.join("long/hard-other-dir")).expect("stat");
    assert_eq!((a.ino(), a.nlink()), (b.ino(), 3), "7-Zip: hard links");
}

#[test]
fn the_stock_recipe_survives_head_and_tail_damage() {
    assert!(have("unzip", "-v"), "Info-ZIP unzip is needed (.ci/run installs it)");
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    crate::salvage::build_tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, V3);
    let source = snapshot(&src, false);
    for (name, damaged) in damaged_ends(&archive, t.path()) {
        let out = t.path().join(name);
        // tar reports the damage and exits 2; the recipe goes on.
        let _ = Command::new("sh").arg("-c").arg(recipe()).arg("sh").arg(&damaged).arg(&out).output().expect("sh");
        let got = snapshot(&out, false);
        // The guards keep both ends free of packs: every file with data
        // comes back. The tail holds the tree tar, so there links and
        // empty files are lost to stock tools (pybackup has them in the
        // manifest).
        for (path, node) in &source {
            let has_data = node.kind == "file" && !node.content.is_empty() && node.link_group.is_none();
            if name == "head" || has_data {
                let g = got.get(path).map(|g| (g.kind, &g.content));
                assert_eq!(g, Some((node.kind, &node.content)), "{name}: `{}`", String::from_utf8_lossy(path));
            }
        }
    }
}

#[test]
fn small_files_come_first_and_the_largest_last() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    for i in 0..300usize {
        // Sizes in a scrambled order of names.
        let n = (i * 7919) % 300;
        write(&src, format!("d{}/f{i:03}", i % 7).as_bytes(), &noise(100 + n * 50, i as u64 + 1));
    }
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, V3);
    // Read the packs with the zip crate, in archive order.
    let mut packs: Vec<Vec<u64>> = Vec::new();
    let mut ar = tar::Archive::new(std::fs::File::open(&archive).expect("open"));
    for e in ar.entries().expect("tar") {
        let mut e = e.expect("entry");
        if !e.path_bytes().starts_with(b".xtar-pack.") {
            continue;
        }
        let mut z = Vec::new();
        std::io::Read::read_to_end(&mut e, &mut z).expect("read");
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(z)).expect("zip");
        packs.push((0..zip.len()).map(|k| zip.by_index(k).expect("entry").compressed_size()).collect());
    }
    assert_eq!(packs.iter().map(Vec::len).sum::<usize>(), 300);
    // Packs are cut in length order; inside one, entries are placed
    // against sectors, none more than 2 KiB longer than one after it (A2;
    // the names here are all as long).
    assert!(packs.len() > 1, "{packs:?}");
    for w in packs.windows(2) {
        assert!(w[0].iter().max() <= w[1].iter().min(), "packs not ascending: {packs:?}");
    }
    for sizes in &packs {
        for (i, a) in sizes.iter().enumerate() {
            assert!(sizes[i + 1..].iter().all(|b| *a <= b + 2048), "{a} too early: {sizes:?}");
        }
    }
}

#[test]
fn the_spill_goes_to_the_work_dir_and_leaves_nothing() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    for i in 0..50u64 {
        write(&src, format!("f{i}").as_bytes(), &noise(5000 + i as usize * 300, i + 1));
    }
    let work = t.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let out_dir = t.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");
    let archive = out_dir.join("a.xtar");
    compress(&src, &archive, &["--work-dir", work.to_str().expect("utf-8")]);
    assert_eq!(std::fs::read_dir(&work).expect("readdir").count(), 0, "spill left in the work dir");
    let names: Vec<_> = std::fs::read_dir(&out_dir).expect("readdir").map(|e| e.expect("entry").file_name()).collect();
    assert_eq!(names, vec![std::ffi::OsString::from("a.xtar")], "only the archive beside it");
    let dest = t.path().join("dest");
    extract(&archive, &dest);
    assert_same_tree(&src, &dest);
}

/// A scratch directory, a tree of `n` small text files in three
/// directories, its version 3 archive (one pack) and the archive's bytes.
fn small_packs(n: usize) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf, Vec<u8>) {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    for i in 0..n {
        write(&src, format!("d{}/f{i:02}.txt", i % 3).as_bytes(), format!("file {i}\n").repeat(i + 1).as_bytes());
    }
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, V3);
    let bytes = std::fs::read(&archive).expect("read");
    (t, src, archive, bytes)
}

#[test]
fn bsdtar_gives_back_a_pack_whose_central_directory_zip_ff_cannot_mend() {
    // zip -FF can die on a damaged pack (a heap assertion of Info-ZIP zip,
    // seen on the lib tree with 5 % of its sectors damaged): a `zip` that
    // fails stands in for it. The recipe's bsdtar then reads the pack as
    // a stream of local headers and gives back every entry.
    assert!(have("bsdtar", "--version"), "bsdtar is needed (.ci/run installs libarchive-tools)");
    let (t, src, archive, mut bytes) = small_packs(40);
    // The first central directory record of the pack: unzip refuses it.
    let cd = bytes.windows(4).position(|w| w == b"PK\x01\x02").expect("a central directory");
    bytes[cd..cd + 4].copy_from_slice(b"XXXX");
    std::fs::write(&archive, &bytes).expect("write");
    let bin = t.path().join("bin");
    std::fs::create_dir(&bin).expect("mkdir");
    std::fs::write(bin.join("zip"), "#!/bin/sh\nexit 134\n").expect("write");
    std::fs::set_permissions(bin.join("zip"), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let out = t.path().join("out");
    let res = Command::new("sh")
        .arg("-c")
        .arg(recipe())
        .arg("sh")
        .arg(&archive)
        .arg(&out)
        .env("PATH", path)
        .output()
        .expect("sh");
    let unzip_refused = String::from_utf8_lossy(&res.stderr).contains("central");
    assert!(unzip_refused, "{}", String::from_utf8_lossy(&res.stderr));
    files_back(&src, &out, &[], false, "stock");
}

#[test]
fn the_recipe_recovers_a_pack_whose_tar_header_is_lost() {
    // tar skips a member whose header is damaged: the whole pack. The
    // recipe's zip -FF over the whole archive finds its entries by their
    // local headers.
    let (t, src, archive, mut bytes) = small_packs(30);
    let header = (0..bytes.len() / 512)
        .map(|b| b * 512)
        .find(|&h| bytes[h..].starts_with(b".xtar-pack.000001.zip\0"))
        .expect("the pack's tar header");
    bytes[header..header + 512].fill(0x55);
    std::fs::write(&archive, &bytes).expect("write");
    let out = t.path().join("out");
    let _ = Command::new("sh").arg("-c").arg(recipe()).arg("sh").arg(&archive).arg(&out).output().expect("sh");
    files_back(&src, &out, &[], false, "stock");
}
