//! Encrypted repositories (docs/format/repository.md §9): backups that
//! need no secret, restores with each way in, nothing readable in the
//! repository, the keyring, forget and check, wrong keys, the stock tools.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::*;

/// A scratch directory with the keys of an encrypted repository (the
/// owner's protected by a passphrase, the recovery key, two of three
/// shares of it), the repository, a source tree and this machine's cache.
struct Setup {
    t: tempfile::TempDir,
}

impl Setup {
    fn new() -> Setup {
        let s = Setup { t: tempfile::tempdir().expect("tmp") };
        std::fs::create_dir(s.keys()).expect("mkdir");
        std::fs::write(s.key("pass"), "correct horse battery staple\n").expect("write");
        let out = s
            .cmd()
            .args(["init", "--encrypt", "--owner-key"])
            .arg(s.key("own.key"))
            .arg("--recovery-key")
            .arg(s.key("rec.key"))
            .arg("--passphrase-file")
            .arg(s.key("pass"))
            .arg(s.repo())
            .output()
            .expect("runs");
        assert!(out.status.success(), "init: {}", stderr(&out));
        let out = pybackup().args(["key", "split", "-k", "2", "-n", "3"]).arg(s.key("rec.key")).output().expect("runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).expect("utf8");
        let shares: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        std::fs::write(s.key("two.shares"), format!("{}\n{}\n", shares[2], shares[0])).expect("write");
        crate::fidelity::rich_tree(&s.src());
        for i in 0..40 {
            write(&s.src(), format!("many/file-{i:02}.txt").as_bytes(), format!("small file {i} of many\n").as_bytes());
        }
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.t.path().join(name)
    }
    fn keys(&self) -> PathBuf {
        self.path("keys")
    }
    fn key(&self, name: &str) -> PathBuf {
        self.keys().join(name)
    }
    fn repo(&self) -> PathBuf {
        self.path("repo")
    }
    fn src(&self) -> PathBuf {
        self.path("src")
    }

    /// The binary, with this machine's cache in the scratch directory.
    fn cmd(&self) -> assert_cmd::Command {
        let mut c = pybackup();
        c.env("PYBACKUP_CACHE_DIR", self.path("cache"));
        c
    }

    /// A backup with no key at all: its JSON summary.
    fn backup(&self) -> serde_json::Value {
        let out = self.cmd().arg("backup").arg(self.src()).arg(self.repo()).arg("--json").output().expect("runs");
        assert!(out.status.success(), "backup: {}", stderr(&out));
        serde_json::from_slice(&out.stdout).expect("json")
    }

    /// `pybackup VERB ARGS... -i KEY...` (with the passphrase file).
    fn keyed(&self, verb: &str, args: &[&Path], keys: &[&str]) -> Output {
        let mut c = self.cmd();
        c.arg(verb).args(args).arg("--passphrase-file").arg(self.key("pass"));
        for k in keys {
            c.arg("-i").arg(self.key(k));
        }
        c.output().expect("runs")
    }

    /// Restores `snapshot` with `keys` into a new directory `dest`.
    fn restore(&self, snapshot: &str, dest: &str, keys: &[&str]) -> Output {
        let spec = PathBuf::from(format!("{}@{snapshot}", self.repo().display()));
        self.keyed("restore", &[&spec, &self.path(dest)], keys)
    }
}

fn summary_u64(v: &serde_json::Value, k: &str) -> u64 {
    v[k].as_u64().unwrap_or_else(|| panic!("no `{k}` in {v}"))
}

#[test]
fn backups_need_no_secret_and_every_way_in_restores_every_snapshot() {
    let s = Setup::new();
    // The machine that backs up holds no secret: the key files are away.
    std::fs::rename(s.keys(), s.path("away")).expect("rename");
    let mut states: Vec<(String, BTreeMap<Vec<u8>, Node>)> = Vec::new();
    let first = s.backup();
    states.push((first["snapshot"].as_str().expect("name").into(), snapshot(&s.src(), false)));
    assert!(summary_u64(&first, "stored") > 40, "{first}");

    // Incremental: one file changed, one added, one removed.
    write(&s.src(), b"many/file-03.txt", b"changed content of file 3\n");
    write(&s.src(), b"many/new.txt", b"a new file\n");
    std::fs::remove_file(s.src().join("many/file-07.txt")).expect("rm");
    let second = s.backup();
    assert_eq!(second["parent"], first["snapshot"], "the second run compares with the first");
    assert_eq!(summary_u64(&second, "stored"), 2, "only what changed is stored: {second}");
    assert_eq!(summary_u64(&second, "hashed"), 2, "unchanged files are not even read: {second}");
    assert_eq!(summary_u64(&second, "removed"), 1);
    states.push((second["snapshot"].as_str().expect("name").into(), snapshot(&s.src(), false)));

    // Unchanged: nothing stored, a small archive.
    let third = s.backup();
    assert_eq!(summary_u64(&third, "stored"), 0, "{third}");
    let bytes = summary_u64(&third, "bytes_written") + summary_u64(&third, "record_bytes");
    assert!(bytes < 120_000, "an unchanged snapshot costs {bytes} bytes");
    states.push((third["snapshot"].as_str().expect("name").into(), snapshot(&s.src(), false)));

    // Nothing lists or restores without a way in.
    std::fs::remove_dir_all(s.path("cache")).expect("rm cache");
    let out = s.restore("latest", "no-key", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("encrypted"), "{}", stderr(&out));
    assert!(!s.path("no-key").exists());

    // A lost cache: the next run still works (it stores everything again).
    write(&s.src(), b"many/after-cache-loss.txt", b"written after the cache was lost\n");
    let fourth = s.backup();
    assert!(fourth["parent"].is_null(), "no parent is known without the cache: {fourth}");
    assert_eq!(summary_u64(&fourth, "stored"), summary_u64(&first, "stored") + 1, "{fourth}");
    states.push((fourth["snapshot"].as_str().expect("name").into(), snapshot(&s.src(), false)));

    // The keys come back: every snapshot, with each way in.
    std::fs::rename(s.path("away"), s.keys()).expect("rename");
    for (i, (name, want)) in states.iter().enumerate() {
        for (j, keys) in [&["own.key"][..], &["rec.key"], &["two.shares"]].iter().enumerate() {
            let dest = format!("out-{i}-{j}");
            let out = s.restore(name, &dest, keys);
            assert!(out.status.success(), "restore {name} with {keys:?}: {}", stderr(&out));
            let got = snapshot(&s.path(&dest), false);
            assert!(got == *want, "snapshot {name} restored with {keys:?} differs from the tree it was taken of");
        }
    }
    let out = s.keyed("check", &[&s.repo(), Path::new("--read-data")], &["rec.key"]);
    assert!(out.status.success(), "check: {}", stderr(&out));
}

#[test]
fn an_encrypted_repository_holds_no_name_and_no_content() {
    let s = Setup::new();
    s.backup();
    write(&s.src(), b"many/file-01.txt", b"a second version of file 1, long enough to sample\n");
    s.backup();
    let needles = needles(&s.src());
    let repo_bytes = everything(&s.repo());
    let shown: Vec<String> = needles
        .iter()
        .filter(|n| repo_bytes.windows(n.len()).any(|w| w == &n[..]))
        .map(|n| String::from_utf8_lossy(n).into_owned())
        .collect();
    assert!(shown.is_empty(), "the encrypted repository shows {shown:?}");
    // The same search finds the names in an unencrypted repository (its
    // contents are deflated): the test can fail.
    let plain = s.path("plain-repo");
    backup(&s.src(), &plain, &[]);
    let plain_bytes = everything(&plain);
    let names: Vec<&Vec<u8>> = needles.iter().filter(|n| n.len() >= 6 && !n.contains(&b' ')).collect();
    let found = names.iter().filter(|n| plain_bytes.windows(n.len()).any(|w| w == &n[..])).count();
    assert!(found > 40, "only {found} of {} needles found in the plain repository", names.len());
}

#[test]
fn adding_and_removing_ways_in_rewrites_only_the_keyring() {
    let s = Setup::new();
    let first = s.backup();
    let name = first["snapshot"].as_str().expect("name").to_string();
    let archives = |s: &Setup| -> BTreeMap<Vec<u8>, Node> { snapshot(&s.repo().join("Archives"), false) };
    let before = archives(&s);

    let out = s.keyed("key", &[Path::new("add"), &s.repo(), Path::new("--label=friend"), Path::new("--new-key")], &[]);
    assert!(!out.status.success(), "adding a way in without a key must fail");
    let new_key = s.key("friend.key");
    let out = s.keyed(
        "key",
        &[Path::new("add"), &s.repo(), Path::new("--label=friend"), Path::new("--new-key"), &new_key],
        &["two.shares"],
    );
    assert!(out.status.success(), "key add: {}", stderr(&out));
    assert!(archives(&s) == before, "adding a way in rewrote an archive");
    let out = s.restore(&name, "by-friend", &["friend.key"]);
    assert!(out.status.success(), "the new way opens the old archives: {}", stderr(&out));
    assert_same_tree(&s.src(), &s.path("by-friend"));

    // Removing needs a key of a way that stays.
    let remove = |label: &str, keys: &[&str]| {
        s.keyed("key", &[Path::new("remove"), &s.repo(), Path::new(&format!("--label={label}"))], keys)
    };
    let out = remove("owner", &["own.key"]);
    assert!(!out.status.success(), "removing the way of the only key given must fail");
    let out = remove("owner", &["friend.key"]);
    assert!(out.status.success(), "key remove: {}", stderr(&out));
    assert!(archives(&s) == before, "removing a way in rewrote an archive");
    let list = s.cmd().args(["key", "list"]).arg(s.repo()).output().expect("runs");
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    assert!(listed.contains("friend\t") && listed.contains("recovery\t") && !listed.contains("owner\t"), "{listed}");

    let out = s.restore(&name, "by-owner", &["own.key"]);
    assert_eq!(out.status.code(), Some(2), "a removed way no longer opens: {}", stderr(&out));
    assert!(!s.path("by-owner").exists());
    for (keys, dest) in [(&["rec.key"][..], "by-recovery"), (&["two.shares"], "by-shares")] {
        let out = s.restore(&name, dest, keys);
        assert!(out.status.success(), "{keys:?}: {}", stderr(&out));
        assert_same_tree(&s.src(), &s.path(dest));
    }
}

#[test]
fn a_wrong_key_is_one_line_and_writes_nothing() {
    let s = Setup::new();
    s.backup();
    let out = pybackup().args(["key", "new", "-o"]).arg(s.key("stranger.key")).output().expect("runs");
    assert!(out.status.success());
    let out = s.restore("latest", "dest", &["stranger.key"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).trim().lines().count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("none of the keys given"), "{}", stderr(&out));
    assert!(!s.path("dest").exists());
    std::fs::write(s.key("pass"), "not the passphrase\n").expect("write");
    let out = s.restore("latest", "dest", &["own.key"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(!s.path("dest").exists());
}

#[test]
fn forget_and_check_work_on_an_encrypted_repository_with_a_key_only() {
    let s = Setup::new();
    s.backup();
    for i in 0..3 {
        write(&s.src(), b"many/file-05.txt", format!("version {i} of file 5\n").as_bytes());
        std::fs::remove_file(s.src().join(format!("many/file-1{i}.txt"))).expect("rm");
        s.backup();
    }
    let out = s.cmd().args(["forget", "--keep-last", "1"]).arg(s.repo()).output().expect("runs");
    assert_eq!(out.status.code(), Some(2), "forget without a key: {}", stderr(&out));
    assert!(stderr(&out).contains("needs a key"), "{}", stderr(&out));
    let out = s.keyed("forget", &[&s.repo(), Path::new("--keep-last"), Path::new("1")], &["rec.key"]);
    assert!(out.status.success(), "forget: {}", stderr(&out));
    let out = s.keyed("snapshots", &[&s.repo(), Path::new("--json")], &["rec.key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.split(|&b| b == b'\n').filter(|l| !l.is_empty()).count(), 1);
    let out = s.keyed("check", &[&s.repo(), Path::new("--read-data")], &["own.key"]);
    assert!(out.status.success(), "check after forget: {} {}", stderr(&out), String::from_utf8_lossy(&out.stdout));
    let out = s.restore("latest", "after-forget", &["two.shares"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&s.src(), &s.path("after-forget"));
    // The next backup, with no key, still builds on what is left.
    write(&s.src(), b"many/file-20.txt", b"after forget\n");
    let next = s.backup();
    assert_eq!(summary_u64(&next, "stored"), 1, "{next}");
}

#[test]
fn a_lost_keyring_file_comes_back_from_an_archive() {
    let s = Setup::new();
    s.backup();
    std::fs::remove_file(s.repo().join("keyring")).expect("rm");
    let out = s.restore("latest", "dest", &["rec.key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&s.src(), &s.path("dest"));
    assert!(s.repo().join("keyring").is_file(), "the keyring file is written again from an archive's copy");
    // And the next backup is encrypted as well.
    write(&s.src(), b"many/file-01.txt", b"changed\n");
    s.backup();
    let out =
        s.cmd().args(["snapshots"]).arg(s.repo()).arg("--json").env("PYBACKUP_CACHE_DIR", s.path("none")).output();
    let out = out.expect("runs");
    assert!(String::from_utf8_lossy(&out.stdout).trim().is_empty(), "listed without a key");
}

#[test]
fn debian_age_gnu_tar_and_unzip_open_an_encrypted_repository() {
    let s = Setup::new();
    let first = s.backup();
    let name = first["snapshot"].as_str().expect("name");
    // The recovery key opens the master key's way in: the keyring's block
    // after the `way recovery` line is an armored age file.
    let script = r#"
repo=$1 key=$2 out=$3
awk '/^way recovery /{on=1; next} on{print} /^-----END AGE ENCRYPTED FILE-----/{if(on) exit}' "$repo/keyring" |
    age -d -i "$key" > "$out.master"
"#;
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .arg("bash")
        .arg(s.repo())
        .arg(s.key("rec.key"))
        .arg(s.path("x"))
        .output()
        .expect("bash");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let master = s.path("x.master");
    // The record: an age file.
    let out = Command::new("age")
        .arg("-d")
        .arg("-i")
        .arg(&master)
        .arg(s.repo().join(format!("Archives/{name}.snapshot")))
        .output()
        .expect("age");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.stdout.starts_with(b"#xtar-snapshot 2\n"), "{}", String::from_utf8_lossy(&out.stdout[..40]));
    // The archive: the recipe of xtar.md §A10 with the master key.
    let archive = s.repo().join(format!("Archives/{name}.xtar"));
    let out = Command::new("bash")
        .arg("-c")
        .arg(crate::encrypt::RECIPE)
        .arg("bash")
        .arg(&archive)
        .arg(s.path("stock"))
        .arg(&master)
        .output()
        .expect("bash");
    assert!(out.status.success(), "recipe: {}", String::from_utf8_lossy(&out.stderr));
    // A repository's archive holds the files whose content its run
    // stored (one name of each hard-linked group) and the directories
    // above them; the rest of the snapshot is in the record.
    let (want, got) = (snapshot(&s.src(), false), snapshot(&s.path("stock"), false));
    let stored: Vec<&Vec<u8>> = want
        .iter()
        .filter(|(p, n)| n.kind == "file" && !n.content.is_empty() && n.link_group.as_ref().is_none_or(|g| g == *p))
        .map(|(p, _)| p)
        .collect();
    let files: Vec<&Vec<u8>> = got.iter().filter(|(_, n)| n.kind == "file").map(|(p, _)| p).collect();
    assert_eq!(stored, files, "the files the stock tools give back");
    for p in files {
        assert_eq!(want[p].content, got[p].content, "{}", String::from_utf8_lossy(p));
    }
}

#[test]
fn whoever_stores_it_checks_an_encrypted_repository_without_a_key() {
    let s = Setup::new();
    s.backup();
    write(&s.src(), b"many/file-02.txt", b"changed\n");
    let second = s.backup();
    // Another machine: no key, no cache.
    let check = |s: &Setup| s.cmd().arg("check").arg(s.repo()).env("PYBACKUP_CACHE_DIR", s.path("elsewhere")).output();
    let out = check(&s).expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("no problems"), "{}", stderr(&out));
    // A flipped byte inside an encrypted file's bytes is found and placed.
    let archive = s.repo().join(format!("Archives/{}.xtar", second["snapshot"].as_str().expect("name")));
    let mut bytes = std::fs::read(&archive).expect("read");
    let entries = crate::encrypt::pack_entries(&bytes);
    let (_, _, data, len) = entries.first().cloned().expect("an entry");
    bytes[data + len / 2] ^= 0x20;
    std::fs::write(&archive, &bytes).expect("write");
    let out = check(&s).expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("do not match their CRC-32"), "{}", stderr(&out));
    // A lost copy of a record is named.
    std::fs::remove_file(s.repo().join(format!("Archives/{}.snapshot", second["snapshot"].as_str().expect("name"))))
        .expect("rm");
    let out = check(&s).expect("runs");
    assert!(stderr(&out).contains("is missing; `pybackup migrate` writes it again"), "{}", stderr(&out));
}

#[test]
fn a_backup_killed_mid_way_resumes_without_a_key() {
    use std::process::Stdio;
    use std::time::{Duration, Instant};
    let s = Setup::new();
    s.backup();
    for i in 0..40u64 {
        let text: Vec<u8> =
            noise(400_000, i + 7).iter().map(|b| if b % 7 == 0 { b' ' } else { b'a' + b % 16 }).collect();
        write(&s.src(), format!("work/d{}/f{i}.txt", i % 5).as_bytes(), &text);
    }
    let archives = s.repo().join("Archives");
    let done = || {
        std::fs::read_dir(&archives)
            .map(|r| r.filter_map(Result::ok).filter(|e| e.file_name().to_string_lossy().ends_with(".xtar")).count())
            .unwrap_or(0)
    };
    let mut kills = 0;
    for k in [2usize, 2] {
        let base = done();
        let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("pybackup"))
            .env("PYBACKUP_CACHE_DIR", s.path("cache"))
            .args(["-q", "-j2", "backup"])
            .arg(s.src())
            .arg(s.repo())
            .args(["--checkpoint", "1M", "-9"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let give_up = Instant::now() + Duration::from_secs(120);
        loop {
            if child.try_wait().expect("wait").is_some() {
                break;
            }
            if done() >= base + k || Instant::now() > give_up {
                let _ = child.kill();
                let _ = child.wait();
                kills += 1;
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    assert_eq!(kills, 2, "both runs were killed mid-way");
    // The next run, with no key, goes on from the checkpoints.
    let out = s.cmd().arg("backup").arg(s.src()).arg(s.repo()).args(["--json", "--checkpoint", "1M", "-9"]).output();
    let out = out.expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert!(summary_u64(&v, "resumed") >= 4, "what the killed runs stored is reused: {v}");
    let out = s.restore("latest", "resumed", &["rec.key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_same_tree(&s.src(), &s.path("resumed"));
    let out = s.keyed("check", &[&s.repo(), Path::new("--read-data")], &["rec.key"]);
    assert!(out.status.success(), "{}", stderr(&out));
}
