//! `pybackup compress`: output placement, determinism, rules, errors.

use std::path::Path;

use crate::support::*;

fn small_tree(root: &Path) {
    write(root, b"a/one.txt", b"one\n");
    write(root, b"a/b/two.txt", &b"two\n".repeat(1000));
    write(root, b"c/three.bin", &[7u8; 5000]);
    std::fs::create_dir_all(root.join("empty")).expect("mkdir");
}

fn listed_paths(archive: &Path) -> Vec<String> {
    let out = run(&[os("list"), archive.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn output_is_identical_for_any_thread_count_and_run() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    small_tree(&src);
    // One file above the chunked threshold, so parallel deflate is covered.
    let big: Vec<u8> = (0..(9u32 << 20)).map(|i| (i % 251) as u8 ^ (i >> 16) as u8).collect();
    write(&src, b"big.bin", &big);
    let a1 = t.path().join("j1.xtar");
    let a2 = t.path().join("j2.xtar");
    let a3 = t.path().join("j2-again.xtar");
    compress(&src, &a1, &["-j1"]);
    compress(&src, &a2, &["-j2"]);
    compress(&src, &a3, &["-j2"]);
    let b1 = std::fs::read(&a1).expect("read");
    assert_eq!(b1, std::fs::read(&a2).expect("read"), "-j1 and -j2 differ");
    assert_eq!(b1, std::fs::read(&a3).expect("read"), "two runs differ");
}

#[test]
fn default_output_is_never_inside_the_source() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("photos");
    small_tree(&src);
    // From inside SRC: the archive goes beside SRC.
    let out = pybackup().arg("compress").arg(&src).current_dir(&src).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(t.path().join("photos.xtar").is_file());
    assert!(!src.join("photos.xtar").exists());
    // From elsewhere: the archive goes into the current directory.
    let elsewhere = t.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).expect("mkdir");
    let out = pybackup().arg("compress").arg(&src).current_dir(&elsewhere).output().expect("runs");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(elsewhere.join("photos.xtar").is_file());
}

#[test]
fn an_output_inside_the_source_is_not_archived_into_itself() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    small_tree(&src);
    let inside = src.join("self.xtar");
    compress(&src, &inside, &[]);
    assert!(!listed_paths(&inside).iter().any(|p| p.contains("self.xtar")));
    // Again, replacing it: the old archive is not archived either.
    compress(&src, &inside, &["--overwrite"]);
    assert!(!listed_paths(&inside).iter().any(|p| p.contains("self.xtar")));
}

#[test]
fn an_existing_output_is_never_overwritten_silently() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    small_tree(&src);
    let out_path = t.path().join("a.xtar");
    std::fs::write(&out_path, b"precious").expect("write");
    let out = pybackup().arg("compress").arg(&src).arg("-o").arg(&out_path).output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("refusing to overwrite"), "{}", stderr(&out));
    assert_eq!(std::fs::read(&out_path).expect("read"), b"precious");
    compress(&src, &out_path, &["--overwrite"]);
    assert_ne!(std::fs::read(&out_path).expect("read"), b"precious");
}

#[test]
fn exclude_names_and_the_longest_glob_wins() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"photos/a.jpg", b"a");
    write(&src, b"photos/private/b.jpg", b"b");
    write(&src, b"photos/x/node_modules/c", b"c");
    write(&src, b"music/d.mp3", b"d");
    write(&src, b"keep/node_modules/e", b"e");
    let archive = t.path().join("a.xtar");
    compress(
        &src,
        &archive,
        &["--include-glob", "photos/**", "--exclude-glob", "photos/private/**", "--exclude", "node_modules"],
    );
    let mut paths = listed_paths(&archive);
    paths.sort();
    assert_eq!(paths, vec![".", "photos", "photos/a.jpg", "photos/x"]);
}

#[test]
fn files_changed_while_read_are_reported() {
    // /proc files claim size 0 but have content: the archive notices.
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    std::fs::create_dir(&src).expect("mkdir");
    std::os::unix::fs::symlink("/proc/self/status", src.join("status")).expect("symlink");
    write(&src, b"fine.txt", b"fine");
    let archive = t.path().join("a.xtar");
    let out = pybackup().args(["compress", "-L"]).arg(&src).arg("-o").arg(&archive).output().expect("runs");
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("status` changed while it was read"), "{}", stderr(&out));
    let dest = t.path().join("dest");
    extract(&archive, &dest);
    assert_eq!(std::fs::read(dest.join("fine.txt")).expect("read"), b"fine");
}

/// Runs the binary as an unprivileged user when the tests run as root, so
/// that mode 000 really makes a file unreadable.
fn unprivileged(args: &[&std::ffi::OsStr]) -> Option<std::process::Output> {
    let bin = assert_cmd::cargo::cargo_bin("pybackup");
    let is_root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    cmd.arg("--no-progress").args(args);
    cmd.output().ok()
}

#[test]
fn unreadable_files_are_named_and_the_rest_is_archived() {
    let t = tempfile::tempdir().expect("tmp");
    chmod(t.path(), 0o777);
    let src = t.path().join("src");
    write(&src, b"ok.txt", b"ok");
    let secret = write(&src, b"secret.txt", b"secret");
    std::fs::create_dir(src.join("locked")).expect("mkdir");
    write(&src, b"locked/inside", b"x");
    chmod(&secret, 0o000);
    chmod(&src.join("locked"), 0o000);
    let archive = t.path().join("a.xtar");
    let Some(out) = unprivileged(&[os("compress"), src.as_os_str(), os("-o"), archive.as_os_str()]) else {
        panic!("setpriv is needed to drop privileges for this test");
    };
    chmod(&src.join("locked"), 0o755);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("secret.txt"), "{err}");
    assert!(err.contains("locked"), "{err}");
    let paths = listed_paths(&archive);
    assert!(paths.contains(&"ok.txt".to_string()), "{paths:?}");
    assert!(!paths.contains(&"secret.txt".to_string()), "{paths:?}");
}

#[test]
fn a_fatal_write_error_leaves_no_output() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"noise.bin", &noise(400_000, 1));
    let archive = t.path().join("a.xtar");
    // A file-size limit of 64 KiB stands in for a full disk (EFBIG).
    let bin = assert_cmd::cargo::cargo_bin("pybackup");
    let script = format!(
        "trap '' XFSZ; ulimit -f 64; exec '{}' --no-progress compress '{}' -o '{}'",
        bin.display(),
        src.display(),
        archive.display()
    );
    let out = std::process::Command::new("bash").arg("-c").arg(script).output().expect("bash");
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot write"), "{}", stderr(&out));
    assert!(!archive.exists());
    let leftovers: Vec<_> = std::fs::read_dir(t.path()).expect("readdir").flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers, vec![std::ffi::OsString::from("src")], "temporary files were left behind");
}

#[test]
fn a_missing_output_directory_is_an_error() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    small_tree(&src);
    let out = run(&[os("compress"), src.as_os_str(), os("-o"), t.path().join("no/such/dir/a.xtar").as_os_str()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cannot write"), "{}", stderr(&out));
}

#[test]
fn compress_to_stdout_stages_in_the_work_dir() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    small_tree(&src);
    let work = t.path().join("work");
    std::fs::create_dir(&work).expect("mkdir");
    let out = run(&[os("compress"), src.as_os_str(), os("-o"), os("-"), os("--work-dir"), work.as_os_str()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let file = t.path().join("a.xtar");
    compress(&src, &file, &[]);
    assert_eq!(out.stdout, std::fs::read(&file).expect("read"));
    assert_eq!(std::fs::read_dir(&work).expect("readdir").count(), 0, "staging file left behind");
}

#[test]
fn incompressible_files_are_stored() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"noise.bin", &noise(200_000, 2));
    write(&src, b"text.txt", &b"compressible ".repeat(20_000));
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--format-version", "2"]);
    let launched = t.path().join("l");
    let out = run(&[os("launch"), archive.as_os_str(), launched.as_os_str()]);
    assert!(out.status.success());
    let method = |name: &str| {
        let bytes = std::fs::read(launched.join(name)).expect("member");
        u16::from_le_bytes([bytes[8], bytes[9]])
    };
    assert_eq!(method("noise.bin.zip"), 0, "noise must be stored");
    assert_eq!(method("text.txt.zip"), 8, "text must be deflated");
}

#[test]
fn one_file_system_stays_on_the_source_file_system() {
    // With -L, a link into /proc crosses into another file system.
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"local.txt", b"here");
    std::os::unix::fs::symlink("/proc/self/fdinfo", src.join("elsewhere")).expect("symlink");
    let archive = t.path().join("a.xtar");
    let out = pybackup()
        .args(["compress", "-L", "--one-file-system"])
        .arg(&src)
        .arg("-o")
        .arg(&archive)
        .output()
        .expect("runs");
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", stderr(&out));
    let paths = listed_paths(&archive);
    assert!(paths.contains(&"local.txt".to_string()), "{paths:?}");
    assert!(!paths.iter().any(|p| p.starts_with("elsewhere/")), "{paths:?}");
    // Without the flag, the walk follows the link into /proc.
    let archive2 = t.path().join("b.xtar");
    let out = pybackup().args(["compress", "-L"]).arg(&src).arg("-o").arg(&archive2).output().expect("runs");
    assert!(out.status.code().is_some_and(|c| c <= 1), "{}", stderr(&out));
    assert!(listed_paths(&archive2).iter().any(|p| p.starts_with("elsewhere/")));
}

#[test]
fn changed_within_takes_recent_files_with_their_directories() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"new/fresh.txt", b"fresh");
    let old = write(&src, b"old/stale.txt", b"stale");
    write(&src, b"new/older.txt", b"older");
    set_mtime(&old, 1_000_000_000, 0);
    set_mtime(&src.join("new/older.txt"), 1_000_000_000, 0);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &["--changed-within", "2d"]);
    let mut paths = listed_paths(&archive);
    paths.sort();
    assert_eq!(paths, vec![".", "new", "new/fresh.txt"]);
}

#[test]
fn files_from_takes_listed_paths_and_warns_about_others() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    write(&src, b"a/one.txt", b"1");
    write(&src, b"a/two.txt", b"2");
    write(&src, b"b/sub/three.txt", b"3");
    write(&src, b"c/four.txt", b"4");
    let outside = write(t.path(), b"outside.txt", b"x");
    let list = t.path().join("list.txt");
    let listed = format!(
        "{}\n{}\n{}\n{}\n",
        src.join("a/two.txt").display(),
        src.join("b").display(),
        outside.display(),
        src.join("missing").display()
    );
    std::fs::write(&list, listed).expect("write");
    let archive = t.path().join("a.xtar");
    let out =
        run(&[os("compress"), src.as_os_str(), os("--files-from"), list.as_os_str(), os("-o"), archive.as_os_str()]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("is not inside"), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let mut paths = listed_paths(&archive);
    paths.sort();
    assert_eq!(paths, vec![".", "a", "a/two.txt", "b", "b/sub", "b/sub/three.txt"]);
}
