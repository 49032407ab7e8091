//! Recovery keys and their shares, checked against Debian's `age` tool:
//! a file encrypted with `age` to a recovery key's public key opens with
//! the key put back together from any 2 of its 3 shares.

use std::path::Path;
use std::process::Command;

use crate::support::*;

fn age(args: &[&std::ffi::OsStr]) -> std::process::Output {
    let out = Command::new("age").args(args).output().expect("the `age` tool (Debian package age) must be installed");
    assert!(out.status.success(), "age {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out
}

/// Runs a command on a pseudo-terminal (where age and pybackup ask for
/// passphrases), answering each prompt that mentions a passphrase with
/// `answer`; its exit code. Bounded: gives up after 60 s.
fn on_terminal(cmd: &[&std::ffi::OsStr], answer: &str) -> i32 {
    const DRIVER: &str = r#"
import os, pty, sys, time
answer = sys.argv[1].encode() + b"\n"
pid, fd = pty.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
seen, deadline = b"", time.time() + 60
while time.time() < deadline:
    try:
        data = os.read(fd, 1024)
    except OSError:
        break
    if not data:
        break
    seen += data
    if b"passphrase" in seen.lower().split(b"\n")[-1]:
        os.write(fd, answer)
        seen += b"\n"
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"#;
    let st = Command::new("python3").arg("-c").arg(DRIVER).arg(answer).args(cmd).status().expect("python3");
    st.code().unwrap_or(-1)
}

fn public_key(key_file: &Path) -> String {
    let text = std::fs::read_to_string(key_file).expect("key file");
    text.lines().find_map(|l| l.strip_prefix("# public key: ")).expect("public key comment").to_string()
}

#[test]
fn any_two_of_three_shares_open_what_age_encrypted_to_the_key() {
    let t = tempfile::tempdir().expect("tmp");
    let p = |n: &str| t.path().join(n);
    let secret = b"the months of work that must not be lost\n".repeat(100);
    std::fs::write(p("secret.txt"), &secret).expect("write");

    // Two keys: one made by pybackup, one by age-keygen.
    let out = pybackup().arg("key").arg("new").arg("-o").arg(p("ours.key")).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let st = Command::new("age-keygen").arg("-o").arg(p("theirs.key")).output().expect("age-keygen");
    assert!(st.status.success());
    for which in ["ours", "theirs"] {
        let key = p(&format!("{which}.key"));
        let recipient = public_key(&key);
        age(&[os("-r"), os(&recipient), os("-o"), p(&format!("{which}.age")).as_os_str(), p("secret.txt").as_os_str()]);
        let out = pybackup().args(["key", "split", "-k", "2", "-n", "3"]).arg(&key).output().expect("runs");
        assert!(out.status.success(), "{}", stderr(&out));
        let text = String::from_utf8(out.stdout).expect("utf8");
        assert!(!text.contains("AGE-SECRET-KEY"), "shares never show the key");
        let shares: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(shares.len(), 3);
        for (i, j) in [(0, 1), (0, 2), (1, 2)] {
            let input = p(&format!("{which}-{i}{j}.shares"));
            std::fs::write(&input, format!("{}\n{}\n", shares[j], shares[i])).expect("write");
            let key_back = p(&format!("{which}-{i}{j}.key"));
            let out = pybackup().arg("key").arg("combine").arg(&input).arg("-o").arg(&key_back).output().expect("runs");
            assert!(out.status.success(), "{}", stderr(&out));
            let mode = std::fs::metadata(&key_back).expect("key").permissions();
            assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
            let plain = age(&[os("-d"), os("-i"), key_back.as_os_str(), p(&format!("{which}.age")).as_os_str()]);
            assert_eq!(plain.stdout, secret, "{which}: shares {i} and {j}");
        }
        // One share alone: refused, nothing written.
        let one = p(&format!("{which}-one.shares"));
        std::fs::write(&one, shares[1]).expect("write");
        let out = pybackup().arg("key").arg("combine").arg(&one).arg("-o").arg(p("never.key")).output().expect("runs");
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("needs 2"), "{}", stderr(&out));
        assert!(!p("never.key").exists());
        // A mistyped share: named by its line.
        let typo = shares[2].replacen("-", "-0", 1);
        let bad = p(&format!("{which}-bad.shares"));
        std::fs::write(&bad, format!("# mine\n{}\n{typo}\n", shares[0])).expect("write");
        let out = pybackup().arg("key").arg("combine").arg(&bad).output().expect("runs");
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("share line 3"), "{}", stderr(&out));
    }
    // The owner's key, protected by a passphrase: Debian's age opens it
    // (asking on the terminal), and so do split and combine.
    std::fs::write(p("pass"), "a long passphrase, typed\n").expect("write");
    let out = pybackup()
        .args(["key", "new", "--protect", "--passphrase-file"])
        .arg(p("pass"))
        .arg("-o")
        .arg(p("owner.age"))
        .output()
        .expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let owner = stderr(&out).trim().rsplit(' ').next().expect("public key").to_string();
    assert!(owner.starts_with("age1"), "{owner}");
    let bytes = std::fs::read(p("owner.age")).expect("read");
    assert!(bytes.starts_with(b"age-encryption.org/v1") && !String::from_utf8_lossy(&bytes).contains("AGE-SECRET"));
    age(&[os("-r"), os(&owner), os("-o"), p("owner-secret.age").as_os_str(), p("secret.txt").as_os_str()]);
    let code = on_terminal(
        &[
            os("age"),
            os("-d"),
            os("-i"),
            p("owner.age").as_os_str(),
            os("-o"),
            p("owner-plain.txt").as_os_str(),
            p("owner-secret.age").as_os_str(),
        ],
        "a long passphrase, typed",
    );
    assert_eq!(code, 0);
    assert_eq!(std::fs::read(p("owner-plain.txt")).expect("read"), secret);
    // pybackup asks on the terminal too (it fails without one); with the
    // wrong passphrase from a file: exit 2, nothing printed.
    let bin = assert_cmd::cargo::cargo_bin("pybackup");
    let code = on_terminal(
        &[bin.as_os_str(), os("key"), os("split"), os("-k"), os("2"), os("-n"), os("2"), p("owner.age").as_os_str()],
        "a long passphrase, typed",
    );
    assert_eq!(code, 0, "split, the passphrase typed on the terminal");
    let out = pybackup()
        .args(["key", "split", "-k", "2", "-n", "2", "--passphrase-file"])
        .arg(p("secret.txt"))
        .arg(p("owner.age"))
        .output()
        .expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("passphrase does not open"), "{}", stderr(&out));
    assert!(out.stdout.is_empty(), "nothing printed with a wrong passphrase");

    // An existing key file is never replaced.
    let out = pybackup().arg("key").arg("new").arg("-o").arg(p("ours.key")).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(public_key(&p("ours.key")), public_key(&p("ours-01.key")));
}

/// The keyring opens without pybackup: a way's block, cut out of the
/// keyring's text, is an age file that Debian's `age` opens with that
/// way's key, giving the master key, which opens what was encrypted to
/// the keyring's recipient.
#[test]
fn a_keyring_opens_with_debian_age_alone() {
    let t = tempfile::tempdir().expect("tmp");
    let p = |n: &str| t.path().join(n);
    let recovery = keys::RecoveryKey::generate();
    std::fs::write(p("recovery.key"), recovery.to_keygen_file().as_bytes()).expect("write");
    let owner = keys::RecoveryKey::generate();
    let (ring, _) =
        keys::Keyring::create(&[("owner", &owner.recipient()), ("recovery", &recovery.recipient())]).expect("ring");
    let text = ring.to_text();
    let block: String = text
        .split("way recovery ")
        .nth(1)
        .and_then(|rest| rest.split_once('\n'))
        .map(|(_, armored)| armored.split_inclusive('\n').take_while(|l| !l.starts_with("way ")).collect())
        .expect("the recovery way's block");
    let block: String = block.lines().take_while(|l| !l.starts_with("#end")).map(|l| format!("{l}\n")).collect();
    std::fs::write(p("way.age"), block).expect("write");
    let master = age(&[os("-d"), os("-i"), p("recovery.key").as_os_str(), p("way.age").as_os_str()]);
    std::fs::write(p("master.key"), &master.stdout).expect("write");
    assert!(String::from_utf8_lossy(&master.stdout).contains(&format!("# public key: {}", ring.recipient)));
    std::fs::write(p("plain.txt"), b"encrypted to the keyring\n").expect("write");
    age(&[os("-r"), os(&ring.recipient), os("-o"), p("data.age").as_os_str(), p("plain.txt").as_os_str()]);
    let back = age(&[os("-d"), os("-i"), p("master.key").as_os_str(), p("data.age").as_os_str()]);
    assert_eq!(back.stdout, b"encrypted to the keyring\n");
}
