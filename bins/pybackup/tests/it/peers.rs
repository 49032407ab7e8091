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
    crate::sets::edit(&src);
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
    // One archive, verified and salvaged by its URL.
    let archive = format!("{}/Archives/{}.xtar", peer.url, s1["snapshot"].as_str().expect("name"));
    peer.ok(&cache, &[os("verify"), os(&archive)]);
    let salvaged = t.join("salvaged");
    peer.ok(&cache, &[os("salvage"), os(&archive), salvaged.as_os_str()]);
    assert_eq!(
        Some(std::fs::read(salvaged.join("keep/big.bin")).expect("read")),
        first_tree.get(&b"keep/big.bin"[..]).map(|n| n.content.clone())
    );
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
    // The peer holds an ordinary repository, with no temporary left; it
    // copies to a disk, and a disk repository copies to the peer.
    let c = check(&peer.disk, true);
    assert!(c.status.success(), "{}", stderr(&c));
    let disk = t.join("disk");
    peer.ok(&cache, &[os("copy"), os(&peer.url), disk.as_os_str()]);
    assert_eq!(snapshots(&disk, &[]).len(), 3);
    let again = format!("{}-again", peer.url);
    peer.ok(&cache, &[os("copy"), disk.as_os_str(), os(&again)]);
    let r = t.join("r-again");
    peer.ok(&cache, &[os("restore"), os(&again), r.as_os_str()]);
    assert_eq!(snapshot(&r, false), third_tree);
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

/// The friend scenario: A pushes his folders, encrypted, to B's disk over
/// SFTP, with no key on A's machine for the backups; B's disk holds no
/// readable name or content, and B checks what he stores without any key;
/// A's machine is wiped; A pulls everything, then a part, back with the
/// recovery key `init` printed, alone.
#[test]
fn the_friend_scenario_push_encrypted_over_sftp_wipe_pull_with_the_printed_recovery_key() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = sftp_peer(&t.path().join("b"), SftpServer::Full);
    let a = t.path().join("a");
    let (src, cache, keys) = (a.join("home"), a.join("cache"), a.join("keys"));
    std::fs::create_dir_all(&keys).expect("mkdir");
    crate::fidelity::rich_tree(&src);
    for i in 0..30 {
        write(
            &src,
            format!("letters/to-friend-{i:02}.txt").as_bytes(),
            format!("private letter number {i}\n").as_bytes(),
        );
    }
    let pass = keys.join("pass");
    std::fs::write(&pass, "only A knows this passphrase\n").expect("write");
    let out = peer.ok(
        &cache,
        &[
            os("init"),
            os(&peer.url),
            os("--encrypt"),
            os("--owner-key"),
            keys.join("own.key").as_os_str(),
            os("--passphrase-file"),
            pass.as_os_str(),
        ],
    );
    let printed = String::from_utf8(out.stdout).expect("utf8");
    assert!(printed.contains("AGE-SECRET-KEY-1"), "the recovery key is printed: {printed}");

    // Daily pushes need no key (the passphrase is not given).
    let first = peer.backup(&cache, &src);
    assert!(first["stored"].as_u64().unwrap_or(0) > 30, "{first}");
    write(&src, b"letters/to-friend-03.txt", b"private letter number 3, rewritten the next day\n");
    let second = peer.backup(&cache, &src);
    assert_eq!(second["stored"].as_u64(), Some(1), "{second}");

    // B's disk: no name, no content, not the passphrase, not the key.
    let disk = everything(&peer.disk);
    let mut hidden = needles(&src);
    hidden.push(b"only A knows this passphrase".to_vec());
    hidden.extend(printed.lines().filter(|l| l.starts_with("AGE-SECRET-KEY-")).map(|l| l.as_bytes().to_vec()));
    let shown: Vec<String> = hidden
        .iter()
        .filter(|n| disk.windows(n.len()).any(|w| w == &n[..]))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(shown.is_empty(), "B's disk shows {shown:?}");
    assert!(hidden.len() > 40, "{} needles", hidden.len());
    // B checks what he stores, on his own disk, with no key at all.
    let b_cache = t.path().join("b-cache");
    let out = pybackup()
        .env("PYBACKUP_CACHE_DIR", &b_cache)
        .arg("check")
        .arg(&peer.disk)
        .arg("--read-data")
        .output()
        .expect("runs");
    assert!(out.status.success(), "B's keyless check: {}", stderr(&out));
    // And the check notices damage B's disk took (one byte of an archive).
    let archive = std::fs::read_dir(peer.disk.join("Archives"))
        .expect("readdir")
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "xtar"))
        .expect("an archive");
    let mut bytes = std::fs::read(&archive).expect("read");
    let at = pack_middle(&bytes);
    bytes[at] ^= 0x40;
    std::fs::write(&archive, &bytes).expect("write");
    let out = pybackup()
        .env("PYBACKUP_CACHE_DIR", &b_cache)
        .arg("check")
        .arg(&peer.disk)
        .arg("--read-data")
        .output()
        .expect("runs");
    assert!(
        !out.status.success(),
        "damage must be found without a key: {} {}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    bytes[at] ^= 0x40;
    std::fs::write(&archive, &bytes).expect("write");

    // A's machine is wiped: the tree, the cache, the owner key, the
    // passphrase. What A has left is the printed recovery key, typed back.
    let before = snapshot(&src, false);
    std::fs::remove_dir_all(&a).expect("wipe");
    let new = t.path().join("new-machine");
    std::fs::create_dir_all(&new).expect("mkdir");
    let typed = new.join("recovery.txt");
    std::fs::write(&typed, &printed).expect("write");
    let home = new.join("home");
    peer.ok(&new.join("cache"), &[os("restore"), os(&peer.url), home.as_os_str(), os("-i"), typed.as_os_str()]);
    assert_eq!(snapshot(&home, false), before, "every file back exactly");
    // A part: the first day's letters only.
    let part = new.join("part");
    let day1 = format!("{}@{}", peer.url, first["snapshot"].as_str().expect("name"));
    peer.ok(
        &new.join("cache"),
        &[os("restore"), os(&day1), part.as_os_str(), os("letters"), os("-i"), typed.as_os_str()],
    );
    let got = snapshot(&part, false);
    assert_eq!(got.keys().filter(|k| k.starts_with(b"letters/")).count(), 30);
    assert!(got.keys().all(|k| k.starts_with(b"letters")), "{:?}", got.keys().collect::<Vec<_>>());
    assert_eq!(std::fs::read(part.join("letters/to-friend-03.txt")).expect("read"), b"private letter number 3\n");
    // Without a key, nothing comes back, and the message says why.
    let out = peer.run(&new.join("cache"), &[os("restore"), os(&peer.url), new.join("nokey").as_os_str()]);
    assert!(!out.status.success());
    assert!(!new.join("nokey").exists() || std::fs::read_dir(new.join("nokey")).expect("dir").next().is_none());
}

/// The offset of the middle of an archive's first pack member (encrypted
/// file data), found by walking its tar headers.
fn pack_middle(archive: &[u8]) -> usize {
    let mut at = 0;
    while at + 512 <= archive.len() {
        let h = &archive[at..at + 512];
        let name = String::from_utf8_lossy(&h[..100]).trim_end_matches('\0').to_string();
        let size = usize::from_str_radix(String::from_utf8_lossy(&h[124..136]).trim_matches(['\0', ' ']), 8)
            .unwrap_or_else(|_| panic!("no tar header at {at}"));
        if name.starts_with(".xtar-pack.") {
            return at + 512 + size / 2;
        }
        at += 512 + size.div_ceil(512) * 512;
    }
    panic!("no pack member")
}

/// Bytes of every file under `dir`, temporaries included.
fn bytes_under(dir: &Path) -> u64 {
    let mut n = 0;
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        match e.file_type() {
            Ok(t) if t.is_dir() => n += bytes_under(&e.path()),
            Ok(_) => n += e.metadata().map(|m| m.len()).unwrap_or(0),
            _ => {}
        }
    }
    n
}

/// `--limit-upload` and `--limit-download` hold: a backup of 3 MiB of
/// noise at 1 MiB/s takes about 3 s, and the peer's disk never grows by
/// much more than the rate in any second (no burst fills the line); a
/// restore at 1 MiB/s takes about 3 s too.
fn limits_hold(peer: &Peer, t: &Path) {
    use std::time::{Duration, Instant};
    const RATE: u64 = 1 << 20;
    let (src, cache) = (t.join("src"), t.join("cache"));
    write(&src, b"noise.bin", &noise(3 << 20, 7));
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (disk, stop) = (peer.disk.clone(), stop.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            // Each sample: when its measure began, when it ended, and the
            // bytes; a stall of this thread then widens the window it is
            // judged over instead of squeezing one second's bound onto
            // more time.
            let mut samples = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let before = start.elapsed();
                let n = bytes_under(&disk);
                samples.push((before, start.elapsed(), n));
                std::thread::sleep(Duration::from_millis(20));
            }
            samples
        })
    };
    let started = Instant::now();
    peer.ok(&cache, &[os("--limit-upload"), os("1M"), os("backup"), src.as_os_str(), os(&peer.url)]);
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let samples = watcher.join().expect("watcher");
    let sent = bytes_under(&peer.disk);
    assert!(sent > 3 << 20, "{sent} bytes on the peer");
    // The first piece goes at once; the rest at the rate.
    let least = Duration::from_secs_f64((sent - (256 << 10)) as f64 / RATE as f64 * 0.9);
    assert!(took >= least, "{sent} bytes sent in {took:?} at 1 MiB/s (at least {least:?})");
    // In any second, at most the rate, one piece, and what the server may
    // have held back in its socket while it was not scheduled (half a
    // second's worth: CI saw 1,474,560 bytes land in one second on a
    // loaded 2-core machine); a temporary may be rewritten under its final
    // name: count growth only. Without pacing the whole 3 MiB body lands
    // at once, far above this bound.
    let mut worst = 0u64;
    for (i, (began, _, n)) in samples.iter().enumerate() {
        for (_, ended, m) in &samples[i..] {
            if *ended - *began > Duration::from_secs(1) {
                break;
            }
            worst = worst.max(m.saturating_sub(*n));
        }
    }
    assert!(worst <= RATE * 3 / 2 + (300 << 10), "{worst} bytes reached the peer within one second at 1 MiB/s");
    assert!(samples.len() > 50, "{} samples", samples.len());

    let started = Instant::now();
    let dest = t.join("restored");
    peer.ok(&cache, &[os("--limit-download"), os("1M"), os("restore"), os(&peer.url), dest.as_os_str()]);
    let took = started.elapsed();
    let least = Duration::from_secs_f64(((3 << 20) - (256 << 10)) as f64 / RATE as f64 * 0.9);
    assert!(took >= least, "3 MiB restored in {took:?} at 1 MiB/s (at least {least:?})");
    assert_same_tree(&src, &dest);
}

#[test]
fn upload_and_download_limits_hold_over_sftp() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = sftp_peer(&t.path().join("server"), SftpServer::Full);
    limits_hold(&peer, t.path());
}

#[test]
fn upload_and_download_limits_hold_on_a_webdav_share() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = webdav_peer(&t.path().join("server"));
    limits_hold(&peer, t.path());
}

/// A WebDAV server with a short timeout (Apache, `RequestReadTimeout
/// body=3`: a request body that takes over 3 s is cut off with 408) and
/// files of 50 and 64 MB sent at 8 MiB/s: with objects sent in parts of 8
/// MiB (1 s each) the backup completes and restores exactly; sent whole
/// (parts of 1 GiB), the same backup fails, as the server cuts off the
/// upload: the timeout is real.
#[test]
fn files_of_50_mb_and_more_reach_a_webdav_server_with_a_short_timeout() {
    let t = tempfile::tempdir().expect("tmp");
    let a = store::testing::apache_webdav(3);
    let src = t.path().join("src");
    write(&src, b"video/one.bin", &noise(50 << 20, 11));
    write(&src, b"video/two.bin", &noise(64 << 20, 12));
    write(&src, b"notes.txt", b"small\n");
    let peer = Peer {
        url: format!("{}whole", a.url),
        env: vec![("PYBACKUP_WEBDAV_PART_SIZE", "1G".into())],
        disk: a.share.join("whole"),
        _server: Box::new(()),
    };
    let out =
        peer.run(&t.path().join("c1"), &[os("--limit-upload"), os("8M"), os("backup"), src.as_os_str(), os(&peer.url)]);
    assert!(!out.status.success(), "sent whole at 8 MiB/s, a 50 MB archive outlasts the server's 3 s");
    let said = stderr(&out);
    assert!(said.contains("408") || said.to_lowercase().contains("timeout"), "{said}");

    let peer =
        Peer { url: format!("{}parts", a.url), env: Vec::new(), disk: a.share.join("parts"), _server: Box::new(()) };
    let cache = t.path().join("c2");
    let v: serde_json::Value = serde_json::from_slice(
        &peer
            .ok(&cache, &[os("--limit-upload"), os("8M"), os("backup"), src.as_os_str(), os(&peer.url), os("--json")])
            .stdout,
    )
    .expect("json");
    assert_eq!(v["stored"].as_u64(), Some(3), "{v}");
    // On the share: every file at most a part.
    let mut largest = 0;
    let mut parts = 0;
    for (p, node) in snapshot(&peer.disk, false) {
        largest = largest.max(node.content.len());
        parts += usize::from(p.ends_with(b"/part-000000"));
    }
    assert!(largest <= 8 << 20, "a file of {largest} bytes on the share");
    assert!(parts >= 1, "the large archives are parted");
    let dest = t.path().join("restored");
    peer.ok(&cache, &[os("restore"), os(&peer.url), dest.as_os_str()]);
    assert_same_tree(&src, &dest);
    peer.ok(&cache, &[os("check"), os(&peer.url), os("--read-data")]);
    // The share's own directory, read on the server's machine (parted
    // archives are read as their parts, joined): checked and restored.
    let c = check(&peer.disk, true);
    assert!(c.status.success(), "{}", stderr(&c));
    let on_server = t.path().join("on-server");
    let out = restore(&peer.disk.display().to_string(), &on_server, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &on_server);
    // `copy` to a disk joins the parts: a plain repository there.
    let disk = t.path().join("disk");
    peer.ok(&cache, &[os("copy"), os(&peer.url), disk.as_os_str()]);
    let c = check(&disk, true);
    assert!(c.status.success(), "{}", stderr(&c));
    let from_disk = t.path().join("from-disk");
    let out = restore(&disk.display().to_string(), &from_disk, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&src, &from_disk);
    drop(a);
}

fn apache_peer() -> Peer {
    let a = store::testing::apache_webdav(20);
    Peer { url: format!("{}repo", a.url), env: Vec::new(), disk: a.share.join("repo"), _server: Box::new(a) }
}

#[test]
fn the_tahoe_scenario_on_an_apache_webdav_share() {
    let t = tempfile::tempdir().expect("tmp");
    tahoe_scenario(&apache_peer(), t.path());
}

#[test]
fn upload_and_download_limits_hold_on_an_apache_webdav_share() {
    let t = tempfile::tempdir().expect("tmp");
    limits_hold(&apache_peer(), t.path());
}

/// Credentials that may write but not delete (an SFTP server that refuses
/// `remove` and `rmdir`, as an S3 key without DeleteObject): backups run
/// one after the other (a finished run's lock, which cannot be removed,
/// is marked released); `forget` fails, naming the refused removal, and
/// leaves every snapshot restorable; run where deleting is allowed (here,
/// on the disk itself), it works.
#[test]
fn backups_need_no_right_to_delete_and_forget_says_when_it_lacks_it() {
    let t = tempfile::tempdir().expect("tmp");
    let peer = sftp_peer(&t.path().join("server"), SftpServer::NoRemove);
    let (src, cache) = (t.path().join("src"), t.path().join("cache"));
    crate::sets::tree(&src);
    let first = peer.backup(&cache, &src);
    write(&src, b"change.txt", b"version 2\n");
    let second = peer.backup(&cache, &src);
    assert_eq!(second["parent"], first["snapshot"], "{second}");
    write(&src, b"change.txt", b"version 3, longer\n");
    peer.backup(&cache, &src);
    // The locks are still there (nothing may be removed), each released.
    let locks: Vec<_> = std::fs::read_dir(peer.disk.join("locks")).expect("locks").flatten().collect();
    assert_eq!(locks.len(), 3);
    for l in &locks {
        let text = std::fs::read_to_string(l.path()).expect("read");
        assert!(text.contains("released"), "{text}");
    }
    let out = peer.run(&cache, &[os("forget"), os(&peer.url), os("--keep-last"), os("1")]);
    assert!(!out.status.success(), "forget without the right to delete must fail");
    let said = stderr(&out);
    assert!(said.contains("delete") || said.contains("remove"), "{said}");
    let out = peer.ok(&cache, &[os("snapshots"), os(&peer.url), os("--json")]);
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    assert!(n >= 1, "{n} snapshots listed");
    peer.ok(&cache, &[os("check"), os(&peer.url), os("--read-data")]);
    let back = t.path().join("back");
    peer.ok(&cache, &[os("restore"), os(&peer.url), back.as_os_str()]);
    assert_same_tree(&src, &back);
    // Where deleting is allowed, retention works.
    let out = pybackup().arg("forget").arg(&peer.disk).args(["--keep-last", "1"]).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(snapshots(&peer.disk, &[]).len(), 1);
    let c = check(&peer.disk, true);
    assert!(c.status.success(), "{}", stderr(&c));
}
