//! The SFTP store against Debian's OpenSSH server on 127.0.0.1 (a chrooted
//! user, keys and known_hosts made by the test): the conformance suite on a
//! full server and on one that refuses links, time changes and
//! posix-rename; a changed host key is refused with a clear message.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use store::testing::{sshd, SftpServer};
use store::Store;

#[test]
fn an_sftp_server_conforms() {
    let t = tempfile::tempdir().expect("tmp");
    let s = sshd(t.path(), SftpServer::Full);
    let store = s.store("repo");
    assert!(store.replaces_atomically());
    assert_eq!(store.describe(), format!("{}/repo", s.url));
    store::conformance::run(&store, "conformance").unwrap_or_else(|e| panic!("{e}"));
    // Objects are files under the jail's /data; nothing temporary is left.
    let left: Vec<_> = walk(&s.jail.join("data"));
    assert!(left.iter().all(|p| !p.ends_with(".partial")), "{left:?}");
}

/// The server refuses every request of `store::testing::FORBIDDEN` (checked
/// with OpenSSH's own `sftp` client), and the store still conforms: it
/// needs no hard link, symbolic link, time change, or rename over an
/// existing file.
#[test]
fn a_server_that_forbids_links_times_and_replacing_renames_still_conforms() {
    let t = tempfile::tempdir().expect("tmp");
    let s = sshd(t.path(), SftpServer::Forbidding);
    std::fs::write(s.jail.join("data/a"), b"a").unwrap();
    std::fs::write(s.jail.join("data/b"), b"b").unwrap();
    // Each refused: a symlink, a hard link, a mode change (setstat), a
    // rename over an existing file (posix-rename).
    for (what, cmd) in [
        ("symlink", "ln -s /data/a /data/s"),
        ("hard link", "ln /data/a /data/h"),
        ("setstat", "chmod 600 /data/a"),
        ("rename over an existing file", "rename /data/a /data/b"),
    ] {
        let out = sftp_batch(&s, cmd);
        assert!(!out.0, "the forbidding server allowed a {what}: {}", out.1);
    }
    assert_eq!(std::fs::read(s.jail.join("data/b")).unwrap(), b"b");
    // And allows what a store needs: a plain rename to a new name.
    assert!(sftp_batch(&s, "rename /data/a /data/c").0);
    std::fs::remove_file(s.jail.join("data/b")).unwrap();
    std::fs::remove_file(s.jail.join("data/c")).unwrap();

    let store = s.store("repo");
    assert!(!store.replaces_atomically());
    store::conformance::run(&store, "conformance").unwrap_or_else(|e| panic!("{e}"));
    let left: Vec<_> = walk(&s.jail.join("data"));
    assert!(left.iter().all(|p| !p.ends_with(".partial")), "{left:?}");
}

#[test]
fn a_changed_host_key_is_refused_with_a_clear_message() {
    let t = tempfile::tempdir().expect("tmp");
    let s = sshd(t.path(), SftpServer::Full);
    // The recorded key is another one now.
    let other = t.path().join("other_host_key");
    let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", ""]).arg("-f").arg(&other).status().unwrap();
    assert!(ok.success());
    let known = s.dir.join("known_hosts");
    let line = std::fs::read_to_string(&known).unwrap();
    let host = line.split_whitespace().next().unwrap().to_string();
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    let mut f = other_pub.split_whitespace();
    std::fs::write(&known, format!("{host} {} {}\n", f.next().unwrap(), f.next().unwrap())).unwrap();
    let mut c = store::SftpConfig::from_url(&format!("{}/repo", s.url)).unwrap();
    c.ssh_command = Some(s.ssh_command.clone());
    let e = store::SftpStore::connect(c).err().expect("a changed host key must be refused").to_string();
    assert!(e.contains("host key of 127.0.0.1 has changed"), "{e}");
    assert!(e.contains(&s.url), "the message names the store: {e}");
    // Nothing was written.
    assert!(walk(&s.jail.join("data")).is_empty());
}

/// Runs one command through OpenSSH's `sftp` client (batch mode):
/// whether it succeeded, and what it said.
fn sftp_batch(s: &store::testing::Sshd, cmd: &str) -> (bool, String) {
    let port = s.url.rsplit(':').next().unwrap().split('/').next().unwrap();
    let user = s.url.trim_start_matches("sftp://").split('@').next().unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo '{cmd}' | sftp -b - -S ssh -P {port} -o 'IdentityFile={d}/id_ed25519' -o IdentitiesOnly=yes \
             -o 'UserKnownHostsFile={d}/known_hosts' -o StrictHostKeyChecking=yes -o BatchMode=yes -F /dev/null \
             {user}@127.0.0.1",
            d = s.dir.display()
        ))
        .output()
        .expect("sftp");
    (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn walk(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out
}

/// A connection that drops is made again: operations after it succeed,
/// and an upload cut in the middle goes on from the piece in flight
/// (the `ssh` process is killed twice, once between operations and once
/// half-way through a 24 MiB upload).
#[test]
fn a_dropped_connection_is_made_again_and_an_upload_goes_on() {
    let t = tempfile::tempdir().expect("tmp");
    let s = sshd(t.path(), SftpServer::Full);
    let store = s.store("repo");
    store.put("a", b"first").expect("put");
    let kill = || {
        // Only the ssh client of this test (its key's path is in its command line).
        let pattern = format!("^ssh -F /dev/null -i {}/id_ed25519", s.dir.display());
        let st = Command::new("pkill").arg("-f").arg(&pattern).status().expect("pkill");
        assert!(st.success(), "no ssh process matched {pattern}");
    };
    kill();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(store.read("a").expect("read after the drop"), b"first");
    assert_eq!(store.reconnects(), 1);

    /// Gives `data`, killing the connection once after `at` bytes.
    struct Cutting<'a, F: Fn()> {
        data: &'a [u8],
        pos: usize,
        at: usize,
        cut: Option<F>,
    }
    impl<F: Fn()> std::io::Read for Cutting<'_, F> {
        fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
            if self.pos >= self.at {
                if let Some(cut) = self.cut.take() {
                    cut();
                    std::thread::sleep(std::time::Duration::from_millis(200));
                }
            }
            let n = out.len().min(self.data.len() - self.pos).min(1 << 20);
            out[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
            self.pos += n;
            Ok(n)
        }
    }
    let big: Vec<u8> = (0..24u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    let mut r = Cutting { data: &big, pos: 0, at: 12 << 20, cut: Some(kill) };
    store.put_from("big", &mut r, big.len() as u64).expect("an upload across a dropped connection");
    assert_eq!(store.reconnects(), 2);
    assert_eq!(store.read("big").expect("read"), big);
    assert_eq!(std::fs::read(s.jail.join("data/repo/big")).expect("on the server"), big);
    assert!(walk(&s.jail.join("data")).iter().all(|p| !p.ends_with(".partial")));
}
