//! Backup sets: versioned snapshots, incremental runs, restore of any
//! snapshot, relocation, retention, interruption.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::*;

fn spec(repo: &Path, snap: &str) -> String {
    format!("{}@{snap}", repo.display())
}

/// The archives of a repository (not the copies of their records).
fn xtars(repo: &Path) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(repo.join("Archives"))
        .expect("readdir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "xtar"))
        .collect();
    v.sort();
    v
}

/// The tahoe scenario's third day: a file changed, a file turned into a
/// directory and a directory into a file.
pub(crate) fn edit(src: &Path) {
    write(src, b"change.txt", b"version 2, longer\n");
    std::fs::remove_file(src.join("becomes_dir")).expect("rm");
    write(src, b"becomes_dir/now.txt", b"now in a directory\n");
    std::fs::remove_dir_all(src.join("becomes_file")).expect("rm");
    write(src, b"becomes_file", b"now a file\n");
}

pub(crate) fn tree(src: &Path) {
    write(src, b"keep/same.txt", b"unchanged\n");
    write(src, b"keep/big.bin", &noise(400_000, 1));
    write(src, b"change.txt", b"version 1\n");
    write(src, b"becomes_dir", b"a file at first\n");
    write(src, b"becomes_file/inner.txt", b"in a directory at first\n");
    std::fs::create_dir_all(src.join("empty")).expect("mkdir");
    std::os::unix::fs::symlink("keep/same.txt", src.join("link")).expect("symlink");
    std::fs::hard_link(src.join("keep/same.txt"), src.join("hard.txt")).expect("hard link");
    write(src, b"zero", b"");
    chmod(&src.join("change.txt"), 0o600);
}

#[test]
fn the_tahoe_scenario_three_snapshots_each_restorable() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    let repo = t.path().join("repo");
    tree(&src);
    let first_tree = snapshot(&src, false);

    let s1 = backup(&src, &repo, &[]);
    assert_eq!(s1["parent"], serde_json::Value::Null);
    // same.txt (hard.txt is a second name), big.bin, change.txt,
    // becomes_dir, becomes_file/inner.txt; the empty file needs no data.
    assert_eq!(s1["stored"], 5, "{s1}");

    // Unchanged: nothing is read or stored.
    let s2 = backup(&src, &repo, &[]);
    assert_eq!((s2["stored"].as_u64(), s2["hashed"].as_u64()), (Some(0), Some(0)), "{s2}");
    assert_eq!((s2["added"].as_u64(), s2["changed"].as_u64(), s2["removed"].as_u64()), (Some(0), Some(0), Some(0)));

    // Change a file, turn a file into a directory and a directory into a file.
    edit(&src);
    let third_tree = snapshot(&src, false);
    let s3 = backup(&src, &repo, &[]);
    assert_eq!(s3["parent"], s2["snapshot"]);
    assert_eq!(s3["stored"], 3, "{s3}");
    // The big file is not in the third archive: only what changed is.
    let third_archive = repo.join("Archives").join(format!("{}.xtar", s3["snapshot"].as_str().expect("name")));
    assert!(std::fs::metadata(&third_archive).expect("stat").len() < 200_000);

    let list = snapshots(&repo, &[]);
    assert_eq!(list.len(), 3);
    assert_eq!(
        list.iter().map(|s| s["snapshot"].clone()).collect::<Vec<_>>(),
        vec![s1["snapshot"].clone(), s2["snapshot"].clone(), s3["snapshot"].clone()]
    );

    // The first snapshot is unchanged and restores exactly; so does the latest.
    let r1 = t.path().join("r1");
    let out = restore(&spec(&repo, s1["snapshot"].as_str().expect("name")), &r1, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot(&r1, false), first_tree);
    let r3 = t.path().join("r3");
    let out = restore(&repo.display().to_string(), &r3, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshot(&r3, false), third_tree);

    // diff of two snapshots names the changes and exits 1.
    let out = pybackup()
        .arg("diff")
        .arg(spec(&repo, s1["snapshot"].as_str().expect("name")))
        .arg(spec(&repo, "latest"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let text = String::from_utf8_lossy(&out.stdout);
    for want in ["change.txt", "becomes_dir", "becomes_file", "becomes_dir/now.txt", "becomes_file/inner.txt"] {
        assert!(text.lines().any(|l| l.ends_with(want)), "diff misses {want}:\n{text}");
    }
    let same = pybackup()
        .arg("diff")
        .arg(spec(&repo, s1["snapshot"].as_str().expect("name")))
        .arg(spec(&repo, s2["snapshot"].as_str().expect("name")))
        .output()
        .expect("runs");
    assert_eq!(same.status.code(), Some(0), "{}", String::from_utf8_lossy(&same.stdout));

    // Every archive is a normal .xtar: verify passes, and the third one
    // extracts alone into just what changed.
    for p in xtars(&repo) {
        let v = run(&[os("verify"), p.as_os_str()]);
        assert!(v.status.success(), "{}: {}", p.display(), stderr(&v));
    }
    let alone = t.path().join("alone");
    extract(&third_archive, &alone);
    assert_eq!(std::fs::read(alone.join("change.txt")).expect("read"), b"version 2, longer\n");
    assert!(!alone.join("keep/big.bin").exists());

    let c = check(&repo, true);
    assert!(c.status.success(), "{}", stderr(&c));
}

#[test]
fn one_path_restores_from_deep_in_the_chain_and_moves_are_not_stored_again() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    let repo = t.path().join("repo");
    tree(&src);
    backup(&src, &repo, &[]);
    for i in 0..5 {
        write(&src, format!("step{i}.txt").as_bytes(), format!("step {i}\n").as_bytes());
        backup(&src, &repo, &[]);
    }
    // A moved file: same content elsewhere.
    std::fs::rename(src.join("keep/big.bin"), src.join("moved.bin")).expect("mv");
    let s = backup(&src, &repo, &[]);
    assert_eq!(s["stored"], 0, "a moved file was stored again: {s}");
    let r = t.path().join("r");
    let out = restore(&repo.display().to_string(), &r, &["moved.bin", "keep"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(r.join("moved.bin")).expect("read"), noise(400_000, 1));
    assert_eq!(std::fs::read(r.join("keep/same.txt")).expect("read"), b"unchanged\n");
    assert!(!r.join("change.txt").exists());
    // A hard link restored without its first name is a copy of its content.
    let out = restore(&repo.display().to_string(), &t.path().join("h"), &["keep/same.txt"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(t.path().join("h/keep/same.txt")).expect("read"), b"unchanged\n");
    // A path that is not in the snapshot is named, with exit 1.
    let out = restore(&repo.display().to_string(), &t.path().join("r2"), &["no/such"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("no/such"), "{}", stderr(&out));
}

#[test]
fn change_detection_uses_ctime_and_checksum_compares_content() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    let repo = t.path().join("repo");
    write(&src, b"f.txt", b"aaaa\n");
    set_mtime(&src.join("f.txt"), 1_000_000, 0);
    backup(&src, &repo, &[]);
    // Same size, mtime put back: only the ctime tells.
    write(&src, b"f.txt", b"bbbb\n");
    set_mtime(&src.join("f.txt"), 1_000_000, 0);
    let s = backup(&src, &repo, &[]);
    assert_eq!(s["stored"], 1, "{s}");
    // Touched but identical: hashed, not stored.
    set_mtime(&src.join("f.txt"), 2_000_000, 0);
    let s = backup(&src, &repo, &[]);
    assert_eq!((s["hashed"].as_u64(), s["stored"].as_u64()), (Some(1), Some(0)), "{s}");
    // --checksum reads everything and stores nothing new.
    let s = backup(&src, &repo, &["--checksum"]);
    assert_eq!((s["hashed"].as_u64(), s["stored"].as_u64()), (Some(1), Some(0)), "{s}");
    let r = t.path().join("r");
    assert!(restore(&repo.display().to_string(), &r, &[]).status.success());
    assert_eq!(std::fs::read(r.join("f.txt")).expect("read"), b"bbbb\n");
}

#[test]
fn a_copied_repository_goes_on_working() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    let repo = t.path().join("repo");
    tree(&src);
    let s1 = backup(&src, &repo, &[]);
    let first_tree = snapshot(&src, false);
    let copy = t.path().join("elsewhere/copy");
    std::fs::create_dir_all(copy.parent().expect("parent")).expect("mkdir");
    let cp = std::process::Command::new("cp").arg("-r").arg(&repo).arg(&copy).status().expect("cp");
    assert!(cp.success());
    std::fs::remove_dir_all(&repo).expect("rm original");
    write(&src, b"new.txt", b"after the move\n");
    let s2 = backup(&src, &copy, &[]);
    assert_eq!(s2["parent"], s1["snapshot"]);
    assert_eq!(s2["stored"], 1, "{s2}");
    let r1 = t.path().join("r1");
    assert!(restore(&spec(&copy, s1["snapshot"].as_str().expect("name")), &r1, &[]).status.success());
    assert_eq!(snapshot(&r1, false), first_tree);
    let r2 = t.path().join("r2");
    assert!(restore(&copy.display().to_string(), &r2, &[]).status.success());
    assert_same_tree(&src, &r2);
}

#[test]
fn forget_keeps_what_newer_snapshots_need() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    let repo = t.path().join("repo");
    tree(&src);
    let mut trees = Vec::new();
    let mut names = Vec::new();
    for i in 0..4 {
        write(&src, b"change.txt", format!("version {i}\n").as_bytes());
        if i == 2 {
            std::fs::remove_file(src.join("becomes_dir")).expect("rm");
        }
        names.push(backup(&src, &repo, &[])["snapshot"].as_str().expect("name").to_string());
        trees.push(snapshot(&src, false));
    }
    let archives_before = xtars(&repo).len();

    // Dry run: nothing changes.
    let out = pybackup().arg("forget").arg(&repo).arg("--keep-last").arg("2").arg("--dry-run").output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshots(&repo, &[]).len(), 4);
    // No rule: refused, and the binary (not the library) names the flags.
    let out = pybackup().arg("forget").arg(&repo).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("hint: give at least one of --keep-last"), "{}", stderr(&out));

    let out = pybackup().arg("forget").arg(&repo).arg("--keep-last").arg("2").output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let left: Vec<String> =
        snapshots(&repo, &[]).iter().map(|s| s["snapshot"].as_str().expect("name").to_string()).collect();
    assert_eq!(left, names[2..].to_vec());
    // The first archive held the big file the survivors need: it was
    // rewritten, not deleted; the second held only what is gone.
    let archives_after = xtars(&repo).len();
    assert_eq!(archives_after, archives_before - 1);
    let c = check(&repo, true);
    assert!(c.status.success(), "{}", stderr(&c));
    for (i, name) in names.iter().enumerate().skip(2) {
        let r = t.path().join(format!("r{i}"));
        let out = restore(&spec(&repo, name), &r, &[]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(snapshot(&r, false), trees[i], "snapshot {i}");
    }
    let out = restore(&spec(&repo, &names[0]), &t.path().join("gone"), &[]);
    assert_eq!(out.status.code(), Some(2));
    // Later backups go on from the survivors.
    let s = backup(&src, &repo, &[]);
    assert_eq!(s["stored"], 0, "{s}");
}

#[test]
fn a_backup_killed_at_any_moment_leaves_a_consistent_repository_and_resumes() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    let repo = t.path().join("repo");
    write(&src, b"seed.txt", b"the first snapshot\n");
    backup(&src, &repo, &[]);
    let first_tree = snapshot(&src, false);
    // Text that deflate works hard on, so that the run takes a while.
    for i in 0..48u64 {
        let text: Vec<u8> =
            noise(400_000, i + 7).iter().map(|b| if b % 7 == 0 { b' ' } else { b'a' + b % 16 }).collect();
        write(&src, format!("d{}/f{i}.txt", i % 6).as_bytes(), &text);
    }
    let archives = repo.join("Archives");
    // (complete archives, temporary files) in Archives.
    let count = || {
        let names: Vec<String> = std::fs::read_dir(&archives)
            .map(|r| r.filter_map(Result::ok).map(|e| e.file_name().to_string_lossy().into_owned()).collect())
            .unwrap_or_default();
        let temp = names.iter().filter(|n| n.starts_with('.')).count();
        (names.len() - temp, temp)
    };
    let mut resumed = 0u64;
    let mut kills = 0;
    // Random jitter after each kill point, so that kills land anywhere in
    // the next checkpoint: while compressing, syncing or renaming.
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
    let jitter = noise(16, seed);
    eprintln!("kill jitter seed {seed}");
    // Kill points, by progress: while the first checkpoint is being
    // written (k = 0), or once k more checkpoints are complete.
    for (round, k) in [0usize, 1, 2, 0, 1, 3].into_iter().enumerate() {
        let (base, _) = count();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("pybackup"))
            .arg("-q")
            .arg("-j2")
            .arg("backup")
            .arg(&src)
            .arg(&repo)
            .arg("--checkpoint")
            .arg("1M")
            .arg("-9")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let give_up = Instant::now() + Duration::from_secs(120);
        let killed = loop {
            if child.try_wait().expect("wait").is_some() {
                break false;
            }
            let (done, temp) = count();
            let reached = if k == 0 { temp > 0 && done == base } else { done >= base + k };
            if reached || Instant::now() > give_up {
                std::thread::sleep(Duration::from_millis(u64::from(jitter[round] % 20)));
                let _ = child.kill();
                let _ = child.wait();
                break true;
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        // Consistent after every kill: the first snapshot restores exactly.
        // check may find one thing only: a snapshot whose archive was
        // renamed into place and the copy of its record not yet written
        // (the next backup writes it).
        let c = check(&repo, false);
        for line in stderr(&c).lines().filter(|l| !l.contains(" problems") && !l.is_empty()) {
            assert!(line.contains("the copy of its record"), "round {round}: {line}");
        }
        let r = t.path().join(format!("r{round}"));
        let first = snapshots(&repo, &[])[0]["snapshot"].as_str().expect("name").to_string();
        let out = restore(&spec(&repo, &first), &r, &[]);
        assert!(out.status.success(), "round {round}: {}", stderr(&out));
        assert_eq!(snapshot(&r, false), first_tree, "round {round}");
        if !killed {
            break;
        }
        kills += 1;
    }
    assert!(kills >= 4, "only {kills} runs were killed before they ended");
    // The next run finishes the job, reusing what the killed runs stored.
    let s = backup(&src, &repo, &["--checkpoint", "1M", "-9"]);
    resumed += s["resumed"].as_u64().unwrap_or(0);
    assert!(resumed > 0, "nothing was reused: {s}");
    assert!(s["stored"].as_u64().unwrap_or(0) >= resumed);
    let r = t.path().join("final");
    let out = restore(&repo.display().to_string(), &r, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &r);
    let c = check(&repo, true);
    assert!(c.status.success(), "{}", stderr(&c));
    // No temporary file is left.
    let stray: Vec<_> = std::fs::read_dir(&archives)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(stray.is_empty(), "{stray:?}");
}

#[test]
fn check_spreads_a_full_read_over_parts() {
    let t = tempfile::tempdir().expect("tmp");
    let (src, repo) = (t.path().join("src"), t.path().join("repo"));
    for i in 0..5u64 {
        write(&src, format!("f{i}.bin").as_bytes(), &noise(50_000, 2 * i + 1));
        backup(&src, &repo, &[]);
    }
    let archives = xtars(&repo);
    assert_eq!(archives.len(), 5);
    let read_of = |arg: &str| {
        let out = pybackup().arg("check").arg(&repo).args(["--read-data-subset", arg]).output().expect("runs");
        let e = stderr(&out);
        let n: u64 = e
            .split("those of ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{arg}: {e}"));
        (out.status.code(), n)
    };
    // Five parts read every archive once.
    let parts: Vec<(Option<i32>, u64)> = (1..=5).map(|k| read_of(&format!("{k}/5"))).collect();
    assert!(parts.iter().all(|(c, n)| *c == Some(0) && *n == 1), "{parts:?}");
    assert_eq!(read_of("10%"), (Some(0), 1));
    assert_eq!(read_of("100%"), (Some(0), 5));
    // A flipped byte in the data of the third archive: the part that
    // reads it finds it, the others do not read it.
    let victim = &archives[2];
    let mut bytes = std::fs::read(victim).expect("read");
    let at = bytes.windows(4).position(|w| w == b"PK\x03\x04").expect("a zip entry") + 200;
    bytes[at] ^= 0x55;
    std::fs::write(victim, &bytes).expect("write");
    let codes: Vec<Option<i32>> = (1..=5).map(|k| read_of(&format!("{k}/5")).0).collect();
    assert_eq!(codes.iter().filter(|c| **c == Some(1)).count(), 1, "{codes:?}");
    assert_eq!(codes[2], Some(1), "part 3 reads the third archive: {codes:?}");
    for bad in ["0/5", "6/5", "1/0", "0%", "101%", "half"] {
        let out = pybackup().arg("check").arg(&repo).args(["--read-data-subset", bad]).output().expect("runs");
        assert_eq!(out.status.code(), Some(2), "{bad}");
    }
}

#[test]
fn restore_takes_include_and_exclude_rules_as_backup_does() {
    let t = tempfile::tempdir().expect("tmp");
    let (src, repo) = (t.path().join("src"), t.path().join("repo"));
    for p in ["docs/a.txt", "docs/keep/b.txt", "docs/keep/c.log", "src/main.rs", "src/.cache/x", "notes.log", "top.txt"]
    {
        write(&src, p.as_bytes(), format!("content of {p}\n").as_bytes());
    }
    std::fs::hard_link(src.join("docs/a.txt"), src.join("top-link.txt")).expect("link");
    backup(&src, &repo, &[]);
    let restored = |args: &[&str], dest: &str| -> Vec<String> {
        let d = t.path().join(dest);
        let out = pybackup().arg("restore").arg(&repo).arg(&d).args(args).output().expect("runs");
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        let mut v: Vec<String> = snapshot(&d, false)
            .into_iter()
            .filter(|(_, n)| n.kind == "file")
            .map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
            .collect();
        v.sort();
        v
    };
    // Exclusions: a glob, a pattern at any depth, a name at any depth.
    let got = restored(&["--exclude-glob", "docs/**", "--exclude-glob", "*.log", "--exclude", ".cache"], "r1");
    assert_eq!(got, vec!["src/main.rs", "top-link.txt", "top.txt"], "{got:?}");
    // The hard link whose first name was left out comes back as a copy.
    assert_eq!(std::fs::read(t.path().join("r1/top-link.txt")).expect("read"), b"content of docs/a.txt\n");
    // With an include glob, only what it names; the longest rule wins.
    let got = restored(&["--include-glob", "docs/**", "--exclude-glob", "docs/keep/*.log"], "r4");
    assert_eq!(got, vec!["docs/a.txt", "docs/keep/b.txt"], "{got:?}");
    // Only what an include glob names, with the directories above it.
    let got = restored(&["--include-glob", "**/*.log"], "r2");
    assert_eq!(got, vec!["docs/keep/c.log", "notes.log"], "{got:?}");
    let out = pybackup().arg("restore").arg(&repo).arg(t.path().join("r3")).args(["--include-glob", "a[b"]).output();
    assert_eq!(out.expect("runs").status.code(), Some(2));
}
