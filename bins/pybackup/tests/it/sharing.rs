//! Snapshots that share what did not change (repository format 2): the
//! cost of a snapshot, no single file whose loss loses a listing, forget
//! killed at any moment, several sources and hosts in one repository, and
//! version 1 repositories.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn name_of(v: &serde_json::Value) -> String {
    v["snapshot"].as_str().expect("name").to_string()
}

fn restore(repo: &Path, snap: &str, dest: &Path, extra: &[&str]) -> Output {
    pybackup().arg("restore").arg(format!("{}@{snap}", repo.display())).arg(dest).args(extra).output().expect("runs")
}

fn size(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn copy_dir(from: &Path, to: &Path) {
    let st = std::process::Command::new("cp").arg("-a").arg(from).arg(to).status().expect("cp");
    assert!(st.success());
}

/// Where each file's content is: path → (archive, member).
type Locations = BTreeMap<Vec<u8>, (String, Vec<u8>)>;

/// Where each file's content is, in a snapshot.
fn locations(repo: &Path, snap: &str) -> Locations {
    let r = repo::Repo::open(repo).expect("open");
    r.snapshot(snap)
        .expect("listing")
        .lines
        .iter()
        .filter_map(|l| Some((l.entry.path.clone(), (l.loc.as_ref()?.archive.clone(), l.member_name()?.to_vec()))))
        .collect()
}

#[test]
fn an_unchanged_snapshot_costs_a_header_and_a_changed_one_what_changed() {
    let t = tempfile::tempdir().expect("tmp");
    let (src, repo) = (t.path().join("src"), t.path().join("repo"));
    for i in 0..3000u32 {
        write(&src, format!("d{:02}/file-{i:05}.txt", i % 40).as_bytes(), format!("content {i}\n").as_bytes());
    }
    let first = name_of(&backup(&src, &repo, &[]));
    let whole = size(&repo.join("Archives").join(format!("{first}.snapshot")));
    assert!(whole > 300_000, "the record of 3000 files is {whole} bytes");

    let second = backup(&src, &repo, &[]);
    let name = name_of(&second);
    assert_eq!(second["record"], "changes", "{second}");
    let record = size(&repo.join("Archives").join(format!("{name}.snapshot")));
    let archive = size(&repo.join("Archives").join(format!("{name}.xtar")));
    // The record of an unchanged tree is its header: at most 1 % of the
    // whole tree's record; the archive holds only the root directory and
    // the record, inside the 64 KiB tail guard of xtar.md §7.1.
    assert!(record * 100 <= whole, "unchanged: record {record} of {whole}");
    assert!(archive <= 65_536 + 16 * 512 + record, "unchanged: archive {archive}");
    assert_eq!(second["record_bytes"].as_u64(), Some(record));

    // 1 % of the files changed: the record lists those, not the tree.
    for i in (0..3000u32).step_by(100) {
        write(&src, format!("d{:02}/file-{i:05}.txt", i % 40).as_bytes(), format!("changed {i}\n").as_bytes());
    }
    let third = backup(&src, &repo, &[]);
    assert_eq!(third["changed"], 30, "{third}");
    let record = third["record_bytes"].as_u64().expect("bytes");
    assert!(record * 100 <= whole * 2 + 100_000, "1 % changed: record {record} of {whole}");
    let dest = t.path().join("restored");
    let out = restore(&repo, &name_of(&third), &dest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
}

/// A tree of small files, an empty file and directory, and a symlink.
fn base_tree(src: &Path) {
    for i in 0..8u32 {
        write(src, format!("docs/note{i}.txt").as_bytes(), format!("note {i}\n").repeat(40).as_bytes());
    }
    write(src, b"a.txt", b"a, first\n");
    write(src, b"b.txt", b"b, first\n");
    write(src, b"c.txt", b"c, first\n");
    write(src, b"big.bin", &noise(300_000, 3));
    write(src, b"empty", b"");
    std::fs::create_dir_all(src.join("hollow")).expect("mkdir");
    std::os::unix::fs::symlink("a.txt", src.join("to-a")).expect("symlink");
}

/// Six snapshots: files changed, added, removed, moved, an unchanged run.
fn six_snapshots(src: &Path, repo: &Path) -> Vec<(String, BTreeMap<Vec<u8>, Node>)> {
    let mut out = Vec::new();
    let mut step = |src: &Path| {
        let name = name_of(&backup(src, repo, &[]));
        out.push((name, snapshot(src, false)));
    };
    base_tree(src);
    step(src);
    write(src, b"a.txt", b"a, second, longer\n");
    write(src, b"new.txt", b"new in the second\n");
    step(src);
    std::fs::remove_file(src.join("b.txt")).expect("rm");
    std::fs::create_dir_all(src.join("moved")).expect("mkdir");
    std::fs::rename(src.join("big.bin"), src.join("moved/big.bin")).expect("mv");
    step(src);
    step(src); // unchanged
    write(src, b"c.txt", b"c, fifth\n");
    write(src, b"docs/note3.txt", b"note 3, rewritten\n");
    step(src);
    std::fs::remove_file(src.join("new.txt")).expect("rm");
    write(src, b"late/one.txt", b"added last\n");
    step(src);
    out
}

/// Flips a byte in the middle of the record member of an archive.
fn damage_record(archive: &Path) {
    let mut bytes = std::fs::read(archive).expect("read");
    let find = |hay: &[u8], needle: &[u8], from: usize| {
        hay[from..].windows(needle.len()).position(|w| w == needle).map(|i| i + from)
    };
    let start = find(&bytes, b"#xtar-snapshot 2\n", 0).expect("record");
    let end = find(&bytes, b"#end ", start).expect("end line");
    bytes[(start + end) / 2] ^= 0x01;
    std::fs::write(archive, bytes).expect("write");
}

#[test]
fn losing_any_one_file_of_the_repository_loses_no_listing() {
    let t = tempfile::tempdir().expect("tmp");
    let (src, repo) = (t.path().join("src"), t.path().join("repo"));
    let snaps = six_snapshots(&src, &repo);
    let names: Vec<String> = snaps.iter().map(|(n, _)| n.clone()).collect();
    let listings: Vec<Locations> = names.iter().map(|n| locations(&repo, n)).collect();
    let files: Vec<PathBuf> = {
        let mut v: Vec<PathBuf> =
            std::fs::read_dir(repo.join("Archives")).expect("readdir").map(|e| e.expect("entry").path()).collect();
        v.sort();
        v
    };
    assert_eq!(files.len(), 12, "an archive and a copy per snapshot: {files:?}");
    let originals = snapshots(&repo, &[]);
    let mut case = 0;
    for file in &files {
        let is_archive = file.extension().is_some_and(|x| x == "xtar");
        for damage in [false, true] {
            case += 1;
            let broken = t.path().join(format!("case{case}"));
            copy_dir(&repo, &broken);
            let target = broken.join("Archives").join(file.file_name().expect("name"));
            let lost_archive = match (damage, is_archive) {
                (false, _) => {
                    std::fs::remove_file(&target).expect("rm");
                    is_archive.then(|| file.file_stem().expect("stem").to_string_lossy().into_owned())
                }
                (true, true) => {
                    damage_record(&target);
                    None
                }
                (true, false) => {
                    let mut b = std::fs::read(&target).expect("read");
                    let mid = b.len() / 2;
                    b[mid] ^= 0x01;
                    std::fs::write(&target, b).expect("write");
                    None
                }
            };
            let what = format!("{} {}", if damage { "damaged" } else { "deleted" }, file.display());
            // Every snapshot is still listed, in full.
            let listed = snapshots(&broken, &[]);
            assert_eq!(listed.len(), 6, "{what}");
            for (a, b) in listed.iter().zip(&originals) {
                assert_eq!((&a["snapshot"], &a["files"], &a["bytes"]), (&b["snapshot"], &b["files"], &b["bytes"]));
            }
            // Every file whose content is elsewhere restores exactly; those
            // in a lost archive are named and absent.
            let mut lost_everywhere: BTreeSet<Vec<u8>> = BTreeSet::new();
            let mut lost_members: BTreeSet<Vec<u8>> = BTreeSet::new();
            for (i, (name, tree)) in snaps.iter().enumerate() {
                let lost: BTreeSet<Vec<u8>> = listings[i]
                    .iter()
                    .filter(|(_, (a, _))| Some(a) == lost_archive.as_ref())
                    .map(|(p, _)| p.clone())
                    .collect();
                lost_members.extend(
                    listings[i].values().filter(|(a, _)| Some(a) == lost_archive.as_ref()).map(|(_, m)| m.clone()),
                );
                let dest = t.path().join(format!("case{case}-r{i}"));
                let out = restore(&broken, name, &dest, &[]);
                assert_eq!(out.status.code(), Some(if lost.is_empty() { 0 } else { 1 }), "{what}: {}", stderr(&out));
                let mut want = tree.clone();
                want.retain(|p, _| !lost.contains(p));
                assert_eq!(snapshot(&dest, false), want, "{what}: snapshot {i}");
                for p in &lost {
                    assert!(stderr(&out).contains(&*String::from_utf8_lossy(p)), "{what}: {}", stderr(&out));
                }
                lost_everywhere.extend(lost);
            }
            // check fails, and names exactly what was lost: each stored
            // file once, by the name it is stored under.
            let c = check(&broken, false);
            assert_eq!(c.status.code(), Some(1), "{what}");
            let problems = stderr(&c);
            let listed_files: Vec<&str> = problems.lines().filter(|l| l.contains("` is in archive")).collect();
            let named: BTreeSet<String> =
                listed_files.iter().filter_map(|l| l.split('`').nth(1).map(str::to_string)).collect();
            let expected: BTreeSet<String> =
                lost_members.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
            assert_eq!(named, expected, "{what}: {problems}");
            assert!(problems.contains(&*file.file_name().expect("name").to_string_lossy()), "{what}: {problems}");
            // A backup afterwards writes the newest snapshot's missing copy
            // again, and stores again what was in a lost archive: the new
            // snapshot is whole. `migrate` writes any other lost or damaged
            // copy; then check finds nothing wrong.
            let newest_copy = !is_archive && file.file_stem() == files.last().and_then(|f| f.file_stem());
            if !damage {
                let again = backup(&src, &broken, &[]);
                assert_eq!(again["copies_written"], u64::from(newest_copy), "{what}: {again}");
                let dest = t.path().join(format!("case{case}-again"));
                let out = restore(&broken, &name_of(&again), &dest, &[]);
                assert!(out.status.success(), "{what}: {}", stderr(&out));
                assert_same_tree(&src, &dest);
            }
            if !is_archive {
                let out = pybackup().arg("migrate").arg(&broken).output().expect("runs");
                assert!(out.status.success(), "{what}: {}", stderr(&out));
                let want = format!("{} snapshot record(s) copied", u64::from(damage || !newest_copy));
                assert!(String::from_utf8_lossy(&out.stdout).contains(&want), "{what}: {want}");
                let c = check(&broken, true);
                assert!(c.status.success(), "{what}: {}", stderr(&c));
            }
        }
    }
}

/// Snapshots by name → tree, of every snapshot listed.
fn assert_listed_restore(repo: &Path, trees: &BTreeMap<String, BTreeMap<Vec<u8>, Node>>, scratch: &Path, what: &str) {
    for s in snapshots(repo, &[]) {
        let name = name_of(&s);
        let dest = scratch.join(format!("r-{name}"));
        let _ = std::fs::remove_dir_all(&dest);
        let out = restore(repo, &name, &dest, &[]);
        assert!(out.status.success(), "{what}: {name}: {}", stderr(&out));
        assert_eq!(&snapshot(&dest, false), &trees[&name], "{what}: {name}");
        std::fs::remove_dir_all(&dest).expect("rm");
    }
}

#[test]
fn a_forget_killed_at_any_moment_leaves_every_snapshot_whole() {
    let t = tempfile::tempdir().expect("tmp");
    let (src, pristine) = (t.path().join("src"), t.path().join("pristine"));
    base_tree(&src);
    let mut trees: BTreeMap<String, BTreeMap<Vec<u8>, Node>> = BTreeMap::new();
    let mut names = Vec::new();
    for i in 0..8u64 {
        // Each run changes a large file, so that forget has members to copy.
        write(&src, format!("big{}.bin", i % 3).as_bytes(), &noise(3_000_000, i + 11));
        write(&src, b"a.txt", format!("a, run {i}\n").as_bytes());
        if i == 4 {
            std::fs::remove_file(src.join("b.txt")).expect("rm");
        }
        let name = name_of(&backup(&src, &pristine, &["-1"]));
        trees.insert(name.clone(), snapshot(&src, false));
        names.push(name);
    }
    let kept: Vec<String> = names[5..].to_vec();
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    eprintln!("kill jitter seed {seed}");
    let jitter = noise(16, seed);
    let mut killed = 0;
    for round in 0..10u64 {
        let repo = t.path().join(format!("repo{round}"));
        copy_dir(&pristine, &repo);
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("pybackup"))
            .arg("-q")
            .arg("forget")
            .arg(&repo)
            .arg("--keep-last")
            .arg("3")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let at = Instant::now() + Duration::from_millis(round * 6 + u64::from(jitter[round as usize] % 6));
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if Instant::now() >= at || Instant::now() > give_up {
                let _ = child.kill();
                if !child.wait().expect("wait").success() {
                    killed += 1;
                }
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let what = format!("round {round}");
        // Whatever is listed restores exactly, and the kept ones are listed.
        let listed: Vec<String> = snapshots(&repo, &[]).iter().map(name_of).collect();
        for k in &kept {
            assert!(listed.contains(k), "{what}: {k} not listed: {listed:?}");
        }
        assert_listed_restore(&repo, &trees, t.path(), &what);
        // The only things check may find: a forgotten snapshot whose copy
        // is already gone, or a rebased record whose copy was written and
        // archive not yet (the next forget deals with both).
        let c = check(&repo, false);
        for line in stderr(&c).lines().filter(|l| !l.contains(" problems") && !l.is_empty()) {
            assert!(line.contains("the copy of its record") || line.ends_with("differ"), "{what}: {line}");
        }
        // Run again: it finishes the job.
        let out = pybackup().arg("forget").arg(&repo).arg("--keep-last").arg("3").output().expect("runs");
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        let listed: Vec<String> = snapshots(&repo, &[]).iter().map(name_of).collect();
        assert_eq!(listed, kept, "{what}");
        assert_listed_restore(&repo, &trees, t.path(), &what);
        let c = check(&repo, true);
        assert!(c.status.success(), "{what}: {}", stderr(&c));
        std::fs::remove_dir_all(&repo).expect("rm");
    }
    assert!(killed >= 3, "only {killed} forget runs were killed before they ended");
}

#[test]
fn several_sources_and_hosts_share_a_repository_without_mixing() {
    let t = tempfile::tempdir().expect("tmp");
    let (a, b, repo) = (t.path().join("a"), t.path().join("b"), t.path().join("repo"));
    write(&a, b"from-a.txt", b"source a\n");
    write(&b, b"from-b.txt", b"source b\n");
    let a1 = backup(&a, &repo, &["--host", "desk"]);
    let b1 = backup(&b, &repo, &["--host", "desk"]);
    assert!(b1["parent"].is_null(), "a snapshot of b is not a parent of b: {b1}");
    assert_eq!(b1["added"], 1, "{b1}");
    let a2 = backup(&a, &repo, &["--host", "desk"]);
    assert_eq!(a2["parent"], a1["snapshot"], "{a2}");
    assert_eq!((&a2["added"], &a2["removed"], &a2["stored"]), (&0.into(), &0.into(), &0.into()), "{a2}");
    let l1 = backup(&a, &repo, &["--host", "laptop"]);
    assert!(l1["parent"].is_null(), "another host's snapshot is not a parent: {l1}");
    // --parent chooses.
    let a3 = backup(&a, &repo, &["--host", "desk", "--parent", a1["snapshot"].as_str().expect("name")]);
    assert_eq!(a3["parent"], a1["snapshot"], "{a3}");

    assert_eq!(snapshots(&repo, &[]).len(), 5);
    assert_eq!(snapshots(&repo, &["--host", "laptop"]).len(), 1);
    let b_path = b.to_str().expect("utf8");
    let of_b = snapshots(&repo, &["--path", b_path]);
    assert_eq!(of_b.len(), 1);
    assert_eq!(of_b[0]["snapshot"], b1["snapshot"]);
    assert_eq!(of_b[0]["host"], "desk");

    // REPO alone restores the newest of all; --path the newest of b.
    let dest = t.path().join("rb");
    let out = pybackup().arg("restore").arg(&repo).arg(&dest).args(["--path", b_path]).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&b, &dest);

    // Retention is per host and source: keep-last 1 keeps one of each.
    let out = pybackup().arg("forget").arg(&repo).arg("--keep-last").arg("1").output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let left: BTreeSet<String> = snapshots(&repo, &[]).iter().map(name_of).collect();
    let want: BTreeSet<String> = [&a3, &b1, &l1].iter().map(|v| name_of(v)).collect();
    assert_eq!(left, want);
    // With --host, only that host's snapshots are considered.
    backup(&a, &repo, &["--host", "laptop"]);
    let out =
        pybackup().arg("forget").arg(&repo).args(["--keep-last", "1", "--host", "laptop"]).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshots(&repo, &["--host", "desk"]).len(), 2);
    assert_eq!(snapshots(&repo, &["--host", "laptop"]).len(), 1);
    let c = check(&repo, true);
    assert!(c.status.success(), "{}", stderr(&c));
}

/// The trees of `fixtures/make-repo-v1.sh`, stage 1 and 2, and a third.
fn v1_tree(root: &Path, stage: u32) {
    let file = |rel: &[u8], data: &[u8], mtime: i64| {
        let p = write(root, rel, data);
        chmod(&p, 0o644);
        set_mtime(&p, mtime, 0);
    };
    file(b"hello.txt", b"hello, version 1\n", 1_700_000_000);
    file(b"docs/readme.md", b"# readme\n", 1_700_000_100);
    file(b"docs/old.txt", b"old\n", 1_700_000_200);
    file(b"data.bin", &(0..5000u32).map(|i| (i * 7 % 251) as u8).collect::<Vec<_>>(), 1_700_000_300);
    let mut docs_mtime = 1_700_000_400;
    if stage >= 2 {
        file(b"hello.txt", b"hello, version 2\n", 1_700_100_000);
        std::fs::remove_file(root.join("docs/old.txt")).expect("rm");
        file(b"new.txt", b"new\n", 1_700_100_100);
        docs_mtime = 1_700_100_200;
    }
    if stage >= 3 {
        file(b"docs/third.txt", b"written after the migration\n", 1_700_200_000);
        docs_mtime = 1_700_200_100;
    }
    chmod(&root.join("docs"), 0o755);
    set_mtime(&root.join("docs"), docs_mtime, 0);
}

#[test]
fn a_version_1_repository_is_read_restored_and_backed_up_into() {
    let t = tempfile::tempdir().expect("tmp");
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/repo-v1");
    let repo = t.path().join("repo");
    copy_dir(&fixture, &repo);
    let listed = snapshots(&repo, &[]);
    assert_eq!(listed.len(), 2);
    let names: Vec<String> = listed.iter().map(name_of).collect();
    for (stage, name) in (1..=2).zip(&names) {
        let want = t.path().join(format!("want{stage}"));
        v1_tree(&want, stage);
        let dest = t.path().join(format!("got{stage}"));
        let out = restore(&repo, name, &dest, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(snapshot(&dest, false), snapshot(&want, false), "stage {stage}");
    }
    // One path from deep in a version 1 snapshot.
    let dest = t.path().join("one");
    let out = restore(&repo, &names[0], &dest, &["docs/old.txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(dest.join("docs/old.txt")).expect("read"), b"old\n");

    // Backed up into: the copies are written first (the migration), and
    // the new record lists what changed since the version 1 snapshot.
    let src = t.path().join("src");
    v1_tree(&src, 3);
    let s = backup(&src, &repo, &["--parent", "latest"]);
    assert_eq!(s["copies_written"], 2, "{s}");
    assert_eq!(s["parent"].as_str(), Some(names[1].as_str()), "{s}");
    // The same content as stage 2 plus one file (every line differs in
    // ctime and inode here, a new tree: the record is whole, as it should).
    assert_eq!((&s["added"], &s["changed"], &s["removed"]), (&1.into(), &0.into(), &0.into()), "{s}");
    let again = backup(&src, &repo, &[]);
    assert_eq!((&again["record"], &again["copies_written"]), (&"changes".into(), &0.into()), "{again}");
    for n in &names {
        assert!(repo.join("Archives").join(format!("{n}.snapshot")).is_file(), "{n}");
    }
    let dest = t.path().join("got3");
    let out = restore(&repo, &name_of(&s), &dest, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot(&dest, false), snapshot(&src, false));
    let c = check(&repo, true);
    assert!(c.status.success(), "{}", stderr(&c));

    // `migrate` alone does the same, once.
    let other = t.path().join("other");
    copy_dir(&fixture, &other);
    for expected in ["2 snapshot record(s) copied", "0 snapshot record(s) copied"] {
        let out = pybackup().arg("migrate").arg(&other).output().expect("runs");
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected), "{}", String::from_utf8_lossy(&out.stdout));
    }
    let c = check(&other, true);
    assert!(c.status.success(), "{}", stderr(&c));
    // And the fixture itself was not touched.
    assert!(!fixture.join("Archives").join(format!("{}.snapshot", names[0])).exists());
}
