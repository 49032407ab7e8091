//! Crash safety: SIGKILL at any moment never leaves a partial archive under
//! the final name and never touches the source; an interrupted extract
//! re-run with --overwrite completes.

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

fn tree(src: &Path) {
    for i in 0..48u64 {
        write(src, format!("d{}/noise{i}.bin", i % 4).as_bytes(), &noise(600_000, i + 1));
        write(src, format!("d{}/text{i}.txt", i % 3).as_bytes(), format!("line {i}\n").repeat(80_000).as_bytes());
    }
    std::fs::create_dir_all(src.join("empty")).expect("mkdir");
}

fn spawn(args: &[&std::ffi::OsStr]) -> Child {
    std::process::Command::new(assert_cmd::cargo::cargo_bin("pybackup"))
        .arg("--no-progress")
        .arg("-q")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn")
}

/// Kills `child` after `delay` unless it ended first; says whether it was
/// still running when killed.
fn kill_after(mut child: Child, delay: Duration) -> bool {
    let until = Instant::now() + delay;
    while Instant::now() < until {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let running = child.try_wait().expect("wait").is_none();
    let _ = child.kill(); // SIGKILL
    let _ = child.wait();
    running
}

/// Deterministic delays spread over `full`, from 0 to 0.95 × `full`.
fn delays(n: u32, full: Duration) -> impl Iterator<Item = Duration> {
    (0..n).map(move |i| full.mul_f64(f64::from((i * 37) % n) / f64::from(n) * 0.95))
}

#[test]
fn sigkill_during_compress_never_leaves_a_partial_archive() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let before = snapshot(&src, true);
    let out_dir = t.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");

    let t0 = Instant::now();
    compress(&src, &out_dir.join("reference.xtar"), &["-j2"]);
    let full = t0.elapsed();

    let mut killed = 0;
    for (i, delay) in delays(32, full).enumerate() {
        let out = out_dir.join(format!("a{i}.xtar"));
        let child = spawn(&[os("-j2"), os("compress"), src.as_os_str(), os("-o"), out.as_os_str()]);
        killed += u32::from(kill_after(child, delay));
        if out.exists() {
            let v = run(&[os("verify"), out.as_os_str()]);
            assert!(v.status.success(), "run {i}: an archive under the final name fails verify: {}", stderr(&v));
        }
    }
    assert!(killed >= 20, "only {killed} of 32 runs were killed mid-way (each took about {full:?})");
    assert_eq!(snapshot(&src, true), before, "the source tree changed");

    // A later run to a name whose earlier run was killed succeeds, and
    // removes the temporary file that run left.
    let out = out_dir.join("again.xtar");
    let child = spawn(&[os("compress"), src.as_os_str(), os("-o"), out.as_os_str()]);
    kill_after(child, full / 3);
    compress(&src, &out, &[]);
    let leftovers: Vec<_> = std::fs::read_dir(&out_dir)
        .expect("readdir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".again.xtar."))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(run(&[os("verify"), out.as_os_str()]).status.success());
}

#[test]
fn an_interrupted_extract_rerun_with_overwrite_completes() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let archive = t.path().join("a.xtar");
    compress(&src, &archive, &[]);
    let t0 = Instant::now();
    extract(&archive, &t.path().join("reference"));
    let full = t0.elapsed();

    let mut killed = 0;
    for (i, delay) in delays(10, full).enumerate() {
        let dest = t.path().join(format!("x{i}"));
        let child = spawn(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
        killed += u32::from(kill_after(child, delay));
        let out = run(&[os("extract"), os("--overwrite"), archive.as_os_str(), dest.as_os_str()]);
        assert!(out.status.success(), "run {i}: {}", stderr(&out));
        // Same tree, and no temporary file left behind.
        assert_same_tree(&src, &dest);
    }
    assert!(killed >= 5, "only {killed} of 10 extracts were killed mid-way (each took about {full:?})");
}
