//! Repositories on a friend's disk and on a WebDAV share (issue 18): SFTP
//! to Debian's OpenSSH server (a chrooted user; keys and known_hosts made
//! by the test; once with a server that refuses links, time changes and
//! renames over existing files) and WsgiDAV, all on 127.0.0.1. The tahoe
//! scenario and a kill-and-resume run through each; the friend scenario
//! end to end.

use std::path::{Path, PathBuf};
use std::process::Output;

use store::testing::{sshd, wsgidav, SftpServer};

use crate::support::*;

/// A peer's store: its URL, the environment that reaches it, and where
/// its files are on this machine (to grep them, or to look at them as the
/// peer would).
struct Peer {
    url: String,
    env: Vec<(&'static str, String)>,
    disk: PathBuf,
    _server: Box<dyn std::any::Any>,
}

fn sftp_peer(dir: &Path, kind: SftpServer) -> Peer {
    let s = sshd(dir, kind);
    Peer { url: format!("{}/repo", s.url), env: s.env(), disk: s.jail.join("data/repo"), _server: Box::new(s) }
}

fn webdav_peer(dir: &Path) -> Peer {
    let (server, url) = wsgidav(dir);
    Peer { url: format!("{url}repo"), env: Vec::new(), disk: dir.join("share/repo"), _server: Box::new(server) }
}

impl Peer {
    fn cmd(&self, cache: &Path) -> assert_cmd::Command {
        let mut c = pybackup();
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c.env("PYBACKUP_CACHE_DIR", cache);
        c
    }

    fn run(&self, cache: &Path, args: &[&std::ffi::OsStr]) -> Output {
        self.cmd(cache).args(args).output().expect("runs")
    }

    fn ok(&self, cache: &Path, args: &[&std::ffi::OsStr]) -> Output {
        let out = self.run(cache, args);
        assert!(out.status.success(), "{:?} on {}: {}", args, self.url, stderr(&out));
        out
    }

    fn backup(&self, cache: &Path, src: &Path) -> serde_json::Value {
        let out = self.ok(cache, &[os("backup"), src.as_os_str(), os(&self.url), os("--json")]);
        serde_json::from_slice(&out.stdout).expect("json")
    }

    fn at(&self, snap: &serde_json::Value) -> String {
        format!("{}@{}", self.url, snap["snapshot"].as_str().expect("name"))
    }
}

/// The tahoe-backup scenario of `sets.rs`, on a peer's store: three
/// snapshots (a tree, unchanged, then edits that turn files into
/// directories and back), each restored exactly from the peer, a diff,
/// a full check, a partial pull, and what the peer holds is a plain
/// repository.
fn tahoe_scenario(peer: &Peer, t: &Path) {
    let (src, cache) = (t.join("src"), t.join("cache"));
    crate::sets::tree(&src);
    let first_tree = snapshot(&src, false);
    let s1 = peer.backup(&cache, &src);
    assert_eq!((s1["parent"].clone(), s1["stored"].as_u64()), (serde_json::Value::Null, Some(5)), "{s1}");
    let s2 = peer.backup(&cache, &src);
    assert_eq!((s2["stored"].as_u64(), s2["hashed"].as_u64()), (Some(0), Some(0)), "{s2}");
    write(&src, b"change.txt", b"version 2, longer\n");
    std::fs::remove_file(src.join("becomes_dir")).expect("rm");
    write(&src, b"becomes_dir/now.txt", b"now in a directory\n");
    std::fs::remove_dir_all(src.join("becomes_file")).expect("rm");
    write(&src, b"becomes_file", b"now a file\n");
    let third_tree = snapshot(&src, false);
    let s3 = peer.backup(&cache, &src);
    assert_eq!((s3["parent"].clone(), s3["stored"].as_u64()), (s2["snapshot"].clone(), Some(3)), "{s3}");

    let out = peer.ok(&cache, &[os("snapshots"), os(&peer.url), os("--json")]);
    let names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("json")["snapshot"].as_str().expect("n").into())
        .collect();
    assert_eq!(names.len(), 3);
    let r1 = t.join("r1");
    peer.ok(&cache, &[os("restore"), os(&peer.at(&s1)), r1.as_os_str()]);
    assert_eq!(snapshot(&r1, false), first_tree);
    let r3 = t.join("r3");
    peer.ok(&cache, &[os("restore"), os(&peer.url), r3.as_os_str()]);
    assert_eq!(snapshot(&r3, false), third_tree);
    let diff = peer.run(&cache, &[os("diff"), os(&peer.at(&s1)), os(&peer.at(&s3))]);
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let text = String::from_utf8_lossy(&diff.stdout);
    for want in ["change.txt", "becomes_dir/now.txt", "becomes_file/inner.txt"] {
        assert!(text.lines().any(|l| l.ends_with(want)), "diff misses {want}:\n{text}");
    }
    peer.ok(&cache, &[os("check"), os(&peer.url), os("--read-data")]);
    // Pull back a part: chosen paths, then rules.
    let part = t.join("part");
    peer.ok(&cache, &[os("restore"), os(&peer.at(&s1)), part.as_os_str(), os("keep"), os("change.txt")]);
    let got = snapshot(&part, false);
    assert!(got.keys().all(|k| k.starts_with(b"keep") || k == b"change.txt"), "{:?}", got.keys());
    assert_eq!(got.get(&b"keep/big.bin"[..]), first_tree.get(&b"keep/big.bin"[..]));
    assert_eq!(std::fs::read(part.join("change.txt")).expect("read"), b"version 1\n");
    let ruled = t.join("ruled");
    peer.ok(&cache, &[os("restore"), os(&peer.url), ruled.as_os_str(), os("--exclude-glob"), os("*.bin")]);
    assert!(!ruled.join("keep/big.bin").exists() && ruled.join("keep/same.txt").is_file());
    // The peer holds an ordinary repository, with no temporary left.
    let c = check(&peer.disk, true);
    assert!(c.status.success(), "{}", stderr(&c));
    let left: Vec<Vec<u8>> = snapshot(&peer.disk, false).into_keys().filter(|k| k.ends_with(b".partial")).collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_tahoe_scenario_on_a_friends_disk_over_sftp() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = sftp_peer(&t.path().join("server"), SftpServer::Full);
    tahoe_scenario(&peer, t.path());
}

#[test]
fn the_tahoe_scenario_on_an_sftp_server_that_refuses_links_times_and_replacing_renames() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = sftp_peer(&t.path().join("server"), SftpServer::Forbidding);
    tahoe_scenario(&peer, t.path());
    // forget replaces an archive and the record copies: still no rename
    // over an existing file is needed.
    let cache = t.path().join("cache");
    peer.ok(&cache, &[os("forget"), os(&peer.url), os("--keep-last"), os("1")]);
    peer.ok(&cache, &[os("check"), os(&peer.url), os("--read-data")]);
    let r = t.path().join("after-forget");
    peer.ok(&cache, &[os("restore"), os(&peer.url), r.as_os_str()]);
    assert_same_tree(&t.path().join("src"), &r);
}

#[test]
fn the_tahoe_scenario_on_a_webdav_share() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = webdav_peer(&t.path().join("server"));
    tahoe_scenario(&peer, t.path());
}

/// A backup killed after some archives reached the peer; the next run
/// reuses them and the snapshot restores exactly.
fn killed_and_resumed(peer: &Peer, t: &Path) {
    use std::time::{Duration, Instant};
    let (src, cache) = (t.join("src"), t.join("cache"));
    crate::remote::text_tree(&src);
    let archives = || -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = std::fs::read_dir(peer.disk.join("Archives"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "xtar"))
            .collect();
        v.sort();
        v
    };
    let mut cmd = std::process::Command::new(assert_cmd::cargo::cargo_bin("pybackup"));
    for (k, v) in &peer.env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .env("PYBACKUP_CACHE_DIR", &cache)
        .args(["-q", "-j2", "backup"])
        .arg(&src)
        .args([peer.url.as_str(), "--checkpoint", "1M", "-9"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn");
    let give_up = Instant::now() + Duration::from_secs(120);
    let killed = loop {
        if child.try_wait().expect("wait").is_some() {
            break false;
        }
        if archives().len() >= 3 || Instant::now() > give_up {
            let _ = child.kill();
            let _ = child.wait();
            break true;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    assert!(killed && !archives().is_empty(), "the run was killed mid-way, after some archives");
    // The killed run's lock is left; as time would, make it stale.
    for e in std::fs::read_dir(peer.disk.join("locks")).expect("locks").flatten() {
        std::fs::write(e.path(), b"pybackup lock\nhost killed\npid 1\ntime 0\n").expect("write");
    }
    let v = peer.backup(&cache, &src);
    assert!(v["resumed"].as_u64().unwrap_or(0) > 0, "what the killed run sent is reused: {v}");
    let dest = t.join("restored");
    peer.ok(&cache, &[os("restore"), os(&peer.url), dest.as_os_str()]);
    assert_same_tree(&src, &dest);
    let c = check(&peer.disk, true);
    assert!(c.status.success(), "{}", stderr(&c));
}

#[test]
fn a_backup_over_sftp_killed_mid_way_resumes() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = sftp_peer(&t.path().join("server"), SftpServer::Full);
    killed_and_resumed(&peer, t.path());
}

#[test]
fn a_backup_to_a_webdav_share_killed_mid_way_resumes() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = webdav_peer(&t.path().join("server"));
    killed_and_resumed(&peer, t.path());
}
