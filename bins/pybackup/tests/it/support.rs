//! Building trees, running the binary, comparing trees.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

/// The binary under test.
pub fn pybackup() -> Command {
    let mut c = Command::cargo_bin("pybackup").expect("binary built");
    c.arg("--no-progress");
    c
}

/// Runs the binary with `args`, returns its output.
pub fn run(args: &[&OsStr]) -> Output {
    pybackup().args(args).output().expect("runs")
}

/// Shorthand for `OsStr` arguments.
pub fn os<S: AsRef<OsStr> + ?Sized>(s: &S) -> &OsStr {
    s.as_ref()
}

/// Writes a file, creating parents.
pub fn write(root: &Path, rel: &[u8], data: &[u8]) -> PathBuf {
    let p = root.join(OsStr::from_bytes(rel));
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, data).expect("write");
    p
}

/// Sets the mode of a path.
pub fn chmod(p: &Path, mode: u32) {
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// Sets the mtime of a path (not following symlinks).
pub fn set_mtime(p: &Path, sec: i64, nsec: u32) {
    let t = filetime::FileTime::from_unix_time(sec, nsec);
    filetime::set_symlink_file_times(p, t, t).expect("utimes");
}

/// Everything about one node that a backup must keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub kind: &'static str,
    pub mode: u32,
    pub mtime: (i64, i64),
    pub content: Vec<u8>,
    /// Index of the first path with the same inode (hard links).
    pub link_group: Option<Vec<u8>>,
}

/// A snapshot of a tree: relative path → node. The root's own metadata is
/// left out unless `with_root`.
pub fn snapshot(root: &Path, with_root: bool) -> BTreeMap<Vec<u8>, Node> {
    let mut out = BTreeMap::new();
    let mut inodes: BTreeMap<(u64, u64), Vec<u8>> = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let mut names: Vec<_> = std::fs::read_dir(&dir).expect("readdir").map(|e| e.expect("entry").path()).collect();
        names.sort();
        for p in names {
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(root).expect("below root").as_os_str().as_bytes().to_vec();
            let ft = m.file_type();
            let (kind, content) = if ft.is_dir() {
                stack.push(p.clone());
                ("dir", Vec::new())
            } else if ft.is_symlink() {
                ("symlink", std::fs::read_link(&p).expect("readlink").as_os_str().as_bytes().to_vec())
            } else if ft.is_file() {
                ("file", std::fs::read(&p).expect("read"))
            } else {
                ("other", Vec::new())
            };
            let link_group = if ft.is_file() && m.nlink() > 1 {
                Some(inodes.entry((m.dev(), m.ino())).or_insert_with(|| rel.clone()).clone())
            } else {
                None
            };
            let mode = if ft.is_symlink() { 0 } else { m.mode() & 0o7777 };
            out.insert(rel, Node { kind, mode, mtime: (m.mtime(), m.mtime_nsec()), content, link_group });
        }
    }
    if with_root {
        let m = std::fs::metadata(root).expect("stat root");
        out.insert(
            Vec::new(),
            Node {
                kind: "dir",
                mode: m.mode() & 0o7777,
                mtime: (m.mtime(), m.mtime_nsec()),
                content: Vec::new(),
                link_group: None,
            },
        );
    }
    out
}

/// Asserts that two trees are identical, naming the first difference.
pub fn assert_same_tree(a: &Path, b: &Path) {
    let sa = snapshot(a, false);
    let sb = snapshot(b, false);
    for (k, v) in &sa {
        match sb.get(k) {
            None => panic!("`{}` is missing from {}", String::from_utf8_lossy(k), b.display()),
            Some(w) if w != v => {
                let show = |n: &Node| (n.kind, format!("{:o}", n.mode), n.mtime, n.content.len(), n.link_group.clone());
                panic!("`{}` differs: {:?} vs {:?}", String::from_utf8_lossy(k), show(v), show(w));
            }
            _ => {}
        }
    }
    for k in sb.keys() {
        assert!(sa.contains_key(k), "`{}` is extra in {}", String::from_utf8_lossy(k), b.display());
    }
}

/// Compresses `src` into `archive`, asserting success.
pub fn compress(src: &Path, archive: &Path, extra: &[&str]) -> Output {
    let out = pybackup().arg("compress").arg(src).arg("-o").arg(archive).args(extra).output().expect("runs");
    assert!(out.status.success(), "compress failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Extracts `archive` into `dest`, asserting success.
pub fn extract(archive: &Path, dest: &Path) -> Output {
    let out = pybackup().arg("extract").arg(archive).arg(dest).output().expect("runs");
    assert!(out.status.success(), "extract failed: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// The stderr of an output as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Bytes that do not compress (xorshift64).
pub fn noise(n: usize, seed: u64) -> Vec<u8> {
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

/// `pybackup backup SRC REPO --json EXTRA...`, which must succeed: its summary.
pub fn backup(src: &Path, repo: &Path, extra: &[&str]) -> serde_json::Value {
    let out = pybackup().arg("backup").arg(src).arg(repo).arg("--json").args(extra).output().expect("runs");
    assert!(out.status.success(), "backup failed: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json summary")
}

/// `pybackup snapshots REPO --json EXTRA...`: one object per snapshot.
pub fn snapshots(repo: &Path, extra: &[&str]) -> Vec<serde_json::Value> {
    let out = pybackup().arg("snapshots").arg(repo).arg("--json").args(extra).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    out.stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect()
}

/// `pybackup restore SPEC DEST EXTRA...`.
pub fn restore(spec: &str, dest: &Path, extra: &[&str]) -> Output {
    pybackup().arg("restore").arg(spec).arg(dest).args(extra).output().expect("runs")
}

/// `pybackup check REPO [--read-data]`.
pub fn check(repo: &Path, read_data: bool) -> Output {
    let mut c = pybackup();
    c.arg("check").arg(repo);
    if read_data {
        c.arg("--read-data");
    }
    c.output().expect("runs")
}

/// Every byte under `root`, file names included: what the peer can read.
pub fn everything(root: &Path) -> Vec<u8> {
    let mut all = Vec::new();
    for (p, node) in snapshot(root, false) {
        all.extend_from_slice(&p);
        all.push(b'\n');
        all.extend_from_slice(&node.content);
    }
    all
}

/// The needles of a tree: its path, every name of 6 bytes or more, link
/// targets, 16 bytes from the middle of every file of 16 bytes or more.
pub fn needles(src: &Path) -> Vec<Vec<u8>> {
    let mut needles: Vec<Vec<u8>> = vec![src.canonicalize().expect("canon").as_os_str().as_encoded_bytes().to_vec()];
    for (path, node) in snapshot(src, false) {
        needles.extend(path.split(|&b| b == b'/').filter(|c| c.len() >= 6).map(<[u8]>::to_vec));
        if node.kind == "symlink" && node.content.len() >= 6 {
            needles.push(node.content.clone());
        }
        if node.kind == "file" && node.content.len() >= 16 {
            let mid = node.content.len() / 2 - 8;
            needles.push(node.content[mid..mid + 16].to_vec());
        }
    }
    needles.sort();
    needles.dedup();
    needles
}

/// Copies of `archive`, in `dir`, with its first and with its last 64 KiB
/// overwritten with noise: `("head", path)` and `("tail", path)`.
pub fn damaged_ends(archive: &Path, dir: &Path) -> Vec<(&'static str, PathBuf)> {
    let bytes = std::fs::read(archive).expect("read");
    let len = bytes.len();
    [("head", 0..64 << 10), ("tail", len - (64 << 10)..len)]
        .into_iter()
        .map(|(name, range)| {
            let mut d = bytes.clone();
            d[range].copy_from_slice(&noise(64 << 10, 3));
            let damaged = dir.join(format!("{name}.xtar"));
            std::fs::write(&damaged, &d).expect("write");
            (name, damaged)
        })
        .collect()
}
