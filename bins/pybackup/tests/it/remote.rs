//! Repositories on S3-compatible stores (a Garage cluster and `rclone
//! serve s3`, started by the tests on 127.0.0.1): `copy` from a disk to
//! the cloud, from one bucket to another and back, incremental and
//! checked, while backups go on.

use std::path::Path;
use std::process::Output;

use store::testing::{garage, rclone, Server};
use store::S3Config;

use crate::support::*;

/// `pybackup ARGS` pointed at the server of `c`.
fn with_s3(c: &S3Config, args: &[&std::ffi::OsStr]) -> Output {
    let mut cmd = pybackup();
    for (k, v) in store::testing::env(c) {
        cmd.env(k, v);
    }
    cmd.args(args).output().expect("runs")
}

/// `pybackup copy SRC DST --json`, which must succeed: its summary.
fn copy(c: &S3Config, from: &str, to: &str) -> serde_json::Value {
    let out = with_s3(c, &[os("copy"), os(from), os(to), os("--json")]);
    assert!(out.status.success(), "copy {from} {to}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn count(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no `{k}` in {v}"))
}

fn disk_to_cloud_and_back(start: fn(&Path) -> (Server, S3Config)) {
    let t = tempfile::tempdir().expect("tmp");
    let (_server, c) = start(&t.path().join("server"));
    let (src, disk) = (t.path().join("src"), t.path().join("disk-repo"));
    crate::fidelity::rich_tree(&src);
    backup(&src, &disk, &[]);
    write(&src, b"plain.txt", b"changed after the first backup\n");
    backup(&src, &disk, &[]);

    // The first backup went to an external disk; now it moves to the cloud.
    let disk_s = disk.display().to_string();
    let first = copy(&c, &disk_s, "s3://test/repo");
    assert!(count(&first, "copied") >= 5, "{first}");
    assert_eq!(count(&first, "skipped"), 0);
    let again = copy(&c, &disk_s, "s3://test/repo");
    assert_eq!((count(&again, "copied"), count(&again, "bytes")), (0, 0), "nothing new: {again}");

    // Backups go on into the disk; the next copy sends what is new only.
    write(&src, b"names/x.zip", b"a third version\n");
    let third = backup(&src, &disk, &[]);
    let next = copy(&c, &disk_s, "s3://test/repo");
    // The new archive, its record's copy, and Latest.
    assert_eq!(count(&next, "copied"), 3, "{next}");
    assert!(count(&next, "bytes") < count(&first, "bytes"), "{next} {first}");

    // Read where it is: list, restore, diff and check the copy in the
    // store without bringing it back.
    let out = with_s3(&c, &[os("snapshots"), os("s3://test/repo"), os("--json")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let listed: Vec<serde_json::Value> = out
        .stdout
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).expect("json"))
        .collect();
    assert_eq!(listed.len(), 3);
    let name = |i: usize| listed[i]["snapshot"].as_str().expect("name").to_string();
    let spec = format!("s3://test/repo@{}", name(2));
    let dest = t.path().join("from-s3");
    let out = with_s3(&c, &[os("restore"), os(&spec), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
    let one = t.path().join("one-from-s3");
    let spec0 = format!("s3://test/repo@{}", name(0));
    let out = with_s3(&c, &[os("restore"), os(&spec0), one.as_os_str(), os("plain.txt")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(std::fs::read(one.join("plain.txt")).expect("read"), b"changed after the first backup\n");
    let out = with_s3(&c, &[os("diff"), os(&spec0), os(&spec)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("plain.txt"));
    let out = with_s3(&c, &[os("check"), os("s3://test/repo"), os("--read-data")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // A copy of a record lost in the store is written again there.
    let s3 = store_at(&c, "repo");
    let lost = format!("Archives/{}.snapshot", name(1));
    {
        use store::Store;
        s3.delete(&lost).expect("delete");
        let out = with_s3(&c, &[os("check"), os("s3://test/repo")]);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let out = with_s3(&c, &[os("migrate"), os("s3://test/repo")]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(s3.size(&lost).expect("size").is_some(), "migrate wrote the copy again");
    }
    assert_eq!(copy(&c, &disk_s, "s3://test/repo")["copied"], 0);

    // To another place in the cloud, and back to a disk: every snapshot
    // restores exactly, and check reads every file.
    copy(&c, "s3://test/repo", "s3://test/elsewhere");
    let back = t.path().join("back");
    copy(&c, "s3://test/elsewhere", &back.display().to_string());
    let out =
        restore(&format!("{}@{}", back.display(), third["snapshot"].as_str().expect("name")), &t.path().join("r"), &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &t.path().join("r"));
    let c2 = check(&back, true);
    assert!(c2.status.success(), "{}", stderr(&c2));
    assert_eq!(snapshots(&back, &[]).len(), 3);

    // Forget at the source: the next copy removes what the source dropped.
    let out = pybackup().arg("forget").arg(&disk).args(["--keep-last", "1"]).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let pruned = copy(&c, &disk_s, "s3://test/repo");
    assert!(count(&pruned, "removed") >= 2, "{pruned}");
    let back2 = t.path().join("back2");
    copy(&c, "s3://test/repo", &back2.display().to_string());
    assert_eq!(snapshots(&back2, &[]).len(), 1);
    let c3 = check(&back2, true);
    assert!(c3.status.success(), "{}", stderr(&c3));

    // Another repository is never copied over.
    let other = t.path().join("other-repo");
    backup(&src, &other, &[]);
    let out = with_s3(&c, &[os("copy"), other.as_os_str(), os("s3://test/repo")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("another repository"), "{}", stderr(&out));
}

#[test]
fn copy_moves_a_repository_to_garage_and_back() {
    disk_to_cloud_and_back(garage);
}

#[test]
fn copy_moves_a_repository_to_rclone_s3_and_back() {
    disk_to_cloud_and_back(rclone);
}

#[test]
fn an_encrypted_repository_copies_as_opaque_objects() {
    let t = tempfile::tempdir().expect("tmp");
    let (_server, c) = garage(&t.path().join("server"));
    let (src, repo) = (t.path().join("src"), t.path().join("repo"));
    crate::fidelity::rich_tree(&src);
    let key = t.path().join("rec.key");
    let out =
        pybackup().arg("init").arg(&repo).arg("--encrypt").arg("--recovery-key").arg(&key).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let b = pybackup().env("PYBACKUP_CACHE_DIR", t.path().join("cache")).arg("backup").arg(&src).arg(&repo).output();
    assert!(b.expect("runs").status.success());
    copy(&c, &repo.display().to_string(), "s3://test/sealed");
    // Restored and checked where it is: with the key, and, by whoever
    // stores it, without.
    let there = t.path().join("from-s3");
    let out = with_s3(&c, &[os("restore"), os("s3://test/sealed"), there.as_os_str(), os("-i"), key.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &there);
    let mut keyless = vec![os("check"), os("s3://test/sealed")];
    let out = with_s3(&c, &keyless);
    assert!(out.status.success(), "{}", stderr(&out));
    keyless.extend([os("-i"), key.as_os_str(), os("--read-data")]);
    let out = with_s3(&c, &keyless);
    assert!(out.status.success(), "{}", stderr(&out));
    // Made in the store, backed up into it with no key (the second run
    // from this machine's cache), restored with the key.
    let key2 = t.path().join("rec2.key");
    let out =
        with_s3(&c, &[os("init"), os("s3://test/sealed2"), os("--encrypt"), os("--recovery-key"), key2.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let cache = t.path().join("cache2");
    let run = |args: &[&std::ffi::OsStr]| {
        let mut cmd = pybackup();
        for (k, v) in store::testing::env(&c) {
            cmd.env(k, v);
        }
        cmd.env("PYBACKUP_CACHE_DIR", &cache).args(args).output().expect("runs")
    };
    for round in 0..2 {
        let out = run(&[os("backup"), src.as_os_str(), os("s3://test/sealed2"), os("--json")]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(round == 1, count(&v, "stored") == 0, "round {round}: {v}");
    }
    // A way in added in the store opens what was there before.
    let friend = t.path().join("friend.key");
    let out = run(&[
        os("key"),
        os("add"),
        os("s3://test/sealed2"),
        os("--label"),
        os("friend"),
        os("--new-key"),
        friend.as_os_str(),
        os("-i"),
        key2.as_os_str(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let by_friend = t.path().join("by-friend");
    let out = run(&[os("restore"), os("s3://test/sealed2"), by_friend.as_os_str(), os("-i"), friend.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &by_friend);
    let there2 = t.path().join("from-s3-2");
    let out = run(&[os("restore"), os("s3://test/sealed2"), there2.as_os_str(), os("-i"), key2.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &there2);
    let out = run(&[os("check"), os("s3://test/sealed2")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let back = t.path().join("back");
    copy(&c, "s3://test/sealed", &back.display().to_string());
    let out = pybackup().arg("restore").arg(&back).arg(t.path().join("r")).arg("-i").arg(&key).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &t.path().join("r"));
}

#[test]
fn a_url_with_credentials_is_refused_and_not_printed() {
    let out =
        pybackup().args(["copy", "/nonexistent", "s3://AKIAEXAMPLE:sekrit@bucket/prefix"]).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    let e = stderr(&out);
    assert!(e.contains("credentials and endpoints come from the environment"), "{e}");
    assert!(!e.contains("sekrit"), "{e}");
}

/// `pybackup backup SRC s3://… --json`, which must succeed: its summary.
fn backup_s3(c: &S3Config, src: &Path, url: &str) -> serde_json::Value {
    let out = with_s3(c, &[os("backup"), src.as_os_str(), os(url), os("--json")]);
    assert!(out.status.success(), "backup into {url}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("json")
}

fn backs_up_into_the_store(start: fn(&Path) -> (Server, S3Config)) {
    let t = tempfile::tempdir().expect("tmp");
    let (_server, c) = start(&t.path().join("server"));
    let src = t.path().join("src");
    crate::fidelity::rich_tree(&src);
    let first = backup_s3(&c, &src, "s3://test/direct");
    assert!(count(&first, "stored") > 10, "{first}");
    let unchanged = backup_s3(&c, &src, "s3://test/direct");
    assert_eq!(count(&unchanged, "stored"), 0, "{unchanged}");
    assert_eq!(count(&unchanged, "hashed"), 0, "an unchanged run reads no file: {unchanged}");
    write(&src, b"plain.txt", b"changed in the third run\n");
    let third = backup_s3(&c, &src, "s3://test/direct");
    assert_eq!(count(&third, "stored"), 1, "{third}");
    // One archive of it, verified and salvaged by its URL.
    let url = format!("s3://test/direct/Archives/{}.xtar", first["snapshot"].as_str().expect("name"));
    let out = with_s3(&c, &[os("verify"), os(&url)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let salvaged = t.path().join("salvaged");
    let out = with_s3(&c, &[os("salvage"), os(&url), salvaged.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(salvaged.join("big/chunked.txt").is_file());
    let dest = t.path().join("restored");
    let out = with_s3(&c, &[os("restore"), os("s3://test/direct"), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
    let out = with_s3(&c, &[os("check"), os("s3://test/direct"), os("--read-data")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // The same repository, copied to a disk, is an ordinary one.
    let disk = t.path().join("disk");
    copy(&c, "s3://test/direct", &disk.display().to_string());
    assert_eq!(snapshots(&disk, &[]).len(), 3);
    let c2 = check(&disk, true);
    assert!(c2.status.success(), "{}", stderr(&c2));
    // Retention in the store: the first archive holds what the kept
    // snapshot needs, and is rewritten there; the second goes.
    let out = with_s3(&c, &[os("forget"), os("s3://test/direct"), os("--keep-last"), os("1")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = with_s3(&c, &[os("snapshots"), os("s3://test/direct"), os("--json")]);
    assert_eq!(out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 1);
    let dest = t.path().join("after-forget");
    let out = with_s3(&c, &[os("restore"), os("s3://test/direct"), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
    let out = with_s3(&c, &[os("check"), os("s3://test/direct"), os("--read-data")]);
    assert!(out.status.success(), "{}", stderr(&out));

    // A lock object of a live run stops a second run, naming it; one whose
    // run died (not refreshed for long) is broken.
    let s3 = store_at(&c, "direct");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    use store::Store;
    let lock = |t: u64| format!("pybackup lock\nhost elsewhere\npid 1\ntime {t}\n").into_bytes();
    s3.put("locks/other-run", &lock(now)).expect("put");
    let out = with_s3(&c, &[os("backup"), src.as_os_str(), os("s3://test/direct")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let e = stderr(&out);
    assert!(e.contains("locked by another pybackup run") && e.contains("elsewhere"), "{e}");
    s3.put("locks/other-run", &lock(now - 3600)).expect("put");
    backup_s3(&c, &src, "s3://test/direct");
    assert!(s3.list("locks/").expect("list").is_empty(), "locks left behind");
}

#[test]
fn backups_go_straight_into_garage() {
    backs_up_into_the_store(garage);
}

#[test]
fn backups_go_straight_into_rclone_s3() {
    backs_up_into_the_store(rclone);
}

#[test]
fn a_backup_into_garage_killed_mid_way_resumes_and_sends_only_what_is_missing() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    use store::Store;
    let t = tempfile::tempdir().expect("tmp");
    let (_server, c) = garage(&t.path().join("server"));
    let src = t.path().join("src");
    text_tree(&src);
    let s3 = store_at(&c, "killed");
    let archives = |s3: &store::S3| -> Vec<store::Object> {
        s3.list("Archives/").unwrap_or_default().into_iter().filter(|o| o.name.ends_with(".xtar")).collect()
    };
    let mut child = spawn_backup(&c, &src, "s3://test/killed", Stdio::null());
    let give_up = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        if child.try_wait().expect("wait").is_some() {
            break false;
        }
        if archives(&s3).len() >= 3 || Instant::now() > give_up {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(killed, "the run was killed mid-way");
    let before: Vec<store::Object> = archives(&s3);
    let sent_before: u64 = before.iter().map(|o| o.size).sum();
    // The killed run's lock object is still there: the next run breaks it
    // only when it is stale. Rewrite it as stale (a run that died minutes
    // ago), as time would.
    for o in s3.list("locks/").expect("list") {
        s3.put(&o.name, b"pybackup lock\nhost killed\npid 1\ntime 0\n").expect("put");
    }
    let v = backup_s3(&c, &src, "s3://test/killed");
    assert!(count(&v, "resumed") > 0, "what the killed run uploaded is reused: {v}");
    let total: u64 = archives(&s3).iter().map(|o| o.size).sum();
    let largest = archives(&s3).iter().map(|o| o.size).max().unwrap_or(0);
    let sent_after = count(&v, "bytes_written");
    assert!(
        sent_before + sent_after <= total + largest,
        "sent {sent_before} + {sent_after} for {total} bytes of archives (largest {largest})"
    );
    let dest = t.path().join("restored");
    let out = with_s3(&c, &[os("restore"), os("s3://test/killed"), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
}

#[test]
fn a_backup_into_a_three_node_garage_cluster_completes_with_a_node_stopped_mid_way() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    use store::Store;
    let t = tempfile::tempdir().expect("tmp");
    let (mut servers, c) = store::testing::garage_cluster(&t.path().join("cluster"), 3);
    let src = t.path().join("src");
    text_tree(&src);
    let s3 = store_at(&c, "ha");
    let child = spawn_backup(&c, &src, "s3://test/ha", Stdio::piped());
    // Node 2 stops once the first archive is in.
    let give_up = Instant::now() + Duration::from_secs(120);
    while s3.list("Archives/").unwrap_or_default().iter().all(|o| !o.name.ends_with(".xtar")) {
        assert!(Instant::now() < give_up, "no archive appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    let node = servers.remove(2);
    drop(node);
    let count_archives = || s3.list("Archives/").expect("list").iter().filter(|o| o.name.ends_with(".xtar")).count();
    let at_stop = count_archives();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "the backup with a node down: {}", String::from_utf8_lossy(&out.stderr));
    let archives = count_archives();
    assert!(archives > at_stop + 2, "the backup went on after the node stopped ({at_stop} then {archives} archives)");
    let dest = t.path().join("restored");
    let out = with_s3(&c, &[os("restore"), os("s3://test/ha"), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
    let out = with_s3(&c, &[os("check"), os("s3://test/ha"), os("--read-data")]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// 40 files of 400 KB of text that deflate works hard on (at `-9`).
pub(crate) fn text_tree(src: &Path) {
    for i in 0..40u64 {
        let text: Vec<u8> =
            noise(400_000, 2 * i + 1).iter().map(|b| if b % 7 == 0 { b' ' } else { b'a' + b % 16 }).collect();
        write(src, format!("d{}/f{i}.txt", i % 5).as_bytes(), &text);
    }
}

/// The store of `c`'s server under `prefix` of bucket `test`.
fn store_at(c: &S3Config, prefix: &str) -> store::S3 {
    let secret = store::testing::env(c).into_iter().find(|(k, _)| *k == "AWS_SECRET_ACCESS_KEY").expect("secret").1;
    store::S3::new(S3Config::new("test", prefix, c.endpoint.as_deref(), &c.region, &c.access_key_id, &secret))
        .expect("store")
}

/// `pybackup backup SRC URL --checkpoint 1M -9`, started in the background.
fn spawn_backup(c: &S3Config, src: &Path, url: &str, stderr: std::process::Stdio) -> std::process::Child {
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pybackup"));
    for (k, v) in store::testing::env(c) {
        cmd.env(k, v);
    }
    cmd.args(["-q", "-j2", "backup"])
        .arg(src)
        .args([url, "--checkpoint", "1M", "-9"])
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()
        .expect("spawn")
}

#[test]
fn two_backups_at_once_into_garage_one_stops_naming_the_other() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    use store::Store;
    let t = tempfile::tempdir().expect("tmp");
    let (_server, c) = garage(&t.path().join("server"));
    let src = t.path().join("src");
    text_tree(&src);
    let s3 = store_at(&c, "both");
    let first = spawn_backup(&c, &src, "s3://test/both", Stdio::piped());
    let give_up = Instant::now() + Duration::from_secs(60);
    while s3.list("locks/").unwrap_or_default().is_empty() {
        assert!(Instant::now() < give_up, "the first run took no lock");
        std::thread::sleep(Duration::from_millis(2));
    }
    let out = with_s3(&c, &[os("backup"), src.as_os_str(), os("s3://test/both")]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("locked by another pybackup run"), "{}", stderr(&out));
    let done = first.wait_with_output().expect("wait");
    assert!(done.status.success(), "{}", String::from_utf8_lossy(&done.stderr));
    // Nothing is corrupted: the snapshot restores exactly, and the lock is gone.
    let dest = t.path().join("restored");
    let out = with_s3(&c, &[os("restore"), os("s3://test/both"), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
    assert!(s3.list("locks/").expect("list").is_empty());
}

#[test]
fn backups_go_straight_into_a_webdav_share() {
    let t = tempfile::tempdir().expect("tmp");
    let (_server, url) = store::testing::wsgidav(&t.path().join("server"));
    let repo = format!("{url}repo");
    let src = t.path().join("src");
    crate::fidelity::rich_tree(&src);
    let run = |args: &[&std::ffi::OsStr]| pybackup().args(args).output().expect("runs");
    for round in 0..2 {
        let out = run(&[os("backup"), src.as_os_str(), os(&repo), os("--json")]);
        assert!(out.status.success(), "{}", stderr(&out));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
        assert_eq!(round == 1, count(&v, "stored") == 0, "round {round}: {v}");
    }
    let dest = t.path().join("restored");
    let out = run(&[os("restore"), os(&repo), dest.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &dest);
    let out = run(&[os("check"), os(&repo), os("--read-data")]);
    assert!(out.status.success(), "{}", stderr(&out));
    // What the share holds is a plain repository: no temporary is left.
    let share = t.path().join("server/share/repo");
    let c = check(&share, true);
    assert!(c.status.success(), "{}", stderr(&c));
    let names: Vec<String> =
        snapshot(&share, false).into_keys().map(|k| String::from_utf8_lossy(&k).into_owned()).collect();
    assert!(names.iter().all(|n| !n.ends_with(".partial")), "{names:?}");
}

/// `--limit-upload` and `--limit-download` hold with an S3 store too: the
/// request bodies are produced at the rate, the responses read at it.
#[test]
fn upload_and_download_limits_hold_with_garage() {
    use std::time::{Duration, Instant};
    let t = tempfile::tempdir().expect("tmp");
    let (_server, c) = garage(&t.path().join("server"));
    let src = t.path().join("src");
    write(&src, b"noise.bin", &noise(3 << 20, 9));
    let least = Duration::from_secs_f64(((3 << 20) - (256 << 10)) as f64 / f64::from(1 << 20) * 0.9);
    let started = Instant::now();
    let out = with_s3(&c, &[os("--limit-upload"), os("1M"), os("backup"), src.as_os_str(), os("s3://test/slow")]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took >= least, "3 MiB sent in {took:?} at 1 MiB/s (at least {least:?})");
    let dest = t.path().join("restored");
    let started = Instant::now();
    let out = with_s3(&c, &[os("--limit-download"), os("1M"), os("restore"), os("s3://test/slow"), dest.as_os_str()]);
    let took = started.elapsed();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(took >= least, "3 MiB restored in {took:?} at 1 MiB/s (at least {least:?})");
    assert_same_tree(&src, &dest);
    // Unlimited, the same takes a fraction of that (the limit is what slowed it).
    let started = Instant::now();
    let again = t.path().join("again");
    let out = with_s3(&c, &[os("restore"), os("s3://test/slow"), again.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(started.elapsed() < took, "unlimited {:?}, limited {took:?}", started.elapsed());
}
