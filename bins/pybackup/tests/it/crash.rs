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

/// Kills `child` (SIGKILL) as soon as `reached()` holds, unless it ended
/// first; says whether it was still running when killed. Kill points are
/// defined by the progress the child has made on disk, not by the clock, so
/// a slow or busy machine moves them in time but not in the work done.
fn kill_when(mut child: Child, mut reached: impl FnMut() -> bool) -> bool {
    let give_up = Instant::now() + Duration::from_secs(120);
    loop {
        if child.try_wait().expect("wait").is_some() {
            return false;
        }
        if reached() || Instant::now() > give_up {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let running = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

/// Deterministic fractions spread over [0, 0.9), in a scattered order.
fn fractions(n: u32) -> impl Iterator<Item = f64> {
    (0..n).map(move |i| f64::from((i * 37) % n) / f64::from(n) * 0.9)
}

/// Size of the largest file in `dir` whose name starts with `prefix`.
fn partial_size(dir: &Path, prefix: &str) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with(prefix))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

/// Number of regular files under `dir` (0 when it does not exist yet).
fn files_under(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else { return 0 };
    rd.filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => files_under(&e.path()),
            Ok(t) if t.is_file() => 1,
            _ => 0,
        })
        .sum()
}

#[test]
fn sigkill_during_compress_never_leaves_a_partial_archive() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src);
    let before = snapshot(&src, true);
    let out_dir = t.path().join("out");
    std::fs::create_dir(&out_dir).expect("mkdir");

    let reference = out_dir.join("reference.xtar");
    compress(&src, &reference, &["-j2"]);
    let full = std::fs::metadata(&reference).expect("stat").len();

    // Kill each run once its temporary file holds a given share of the
    // archive (share 0: at once, before or while it walks the tree).
    let mut killed = 0;
    for (i, share) in fractions(32).enumerate() {
        let out = out_dir.join(format!("a{i}.xtar"));
        let prefix = format!(".a{i}.xtar.");
        let at = (full as f64 * share) as u64;
        let child = spawn(&[os("-j2"), os("compress"), src.as_os_str(), os("-o"), out.as_os_str()]);
        killed += u32::from(kill_when(child, || at == 0 || partial_size(&out_dir, &prefix) >= at));
        if out.exists() {
            let v = run(&[os("verify"), out.as_os_str()]);
            assert!(v.status.success(), "run {i}: an archive under the final name fails verify: {}", stderr(&v));
        }
    }
    assert!(killed >= 28, "only {killed} of 32 runs were killed mid-way (archive of {full} bytes)");
    assert_eq!(snapshot(&src, true), before, "the source tree changed");

    // A later run to a name whose earlier run was killed succeeds, and
    // removes the temporary file that run left.
    let out = out_dir.join("again.xtar");
    let child = spawn(&[os("compress"), src.as_os_str(), os("-o"), out.as_os_str()]);
    kill_when(child, || partial_size(&out_dir, ".again.xtar.") >= full / 3);
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
    let full = files_under(&src);

    // Kill each run once the destination holds a given share of the files.
    let mut killed = 0;
    for (i, share) in fractions(10).enumerate() {
        let dest = t.path().join(format!("x{i}"));
        let at = (full as f64 * share) as usize;
        let child = spawn(&[os("extract"), archive.as_os_str(), dest.as_os_str()]);
        killed += u32::from(kill_when(child, || at == 0 || files_under(&dest) >= at));
        let out = run(&[os("extract"), os("--overwrite"), archive.as_os_str(), dest.as_os_str()]);
        assert!(out.status.success(), "run {i}: {}", stderr(&out));
        // Same tree, and no temporary file left behind.
        assert_same_tree(&src, &dest);
    }
    assert!(killed >= 8, "only {killed} of 10 extracts were killed mid-way ({full} files)");
}
