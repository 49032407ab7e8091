//! CLI tests for pyactivity: trees whose mtimes the tests set.

use std::path::Path;
use std::process::Output;

use assert_cmd::Command;

pub(crate) const HOUR: i64 = 3600;

mod browser;
mod timelines;

pub(crate) fn pyactivity() -> Command {
    Command::cargo_bin("pyactivity").expect("binary built")
}

pub(crate) fn file(root: &Path, rel: &str, size: usize, mtime: i64) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(&p, vec![b'x'; size]).expect("write");
    let t = filetime::FileTime::from_unix_time(mtime, 0);
    filetime::set_file_mtime(&p, t).expect("mtime");
}

/// Three sessions: photos (3 files, 2 days ago), notes (2 files, 50 min
/// apart, yesterday), and one old file.
pub(crate) fn tree(root: &Path, now: i64) {
    let photos = now - 48 * HOUR;
    file(root, "photos/2026-11/a.jpg", 1000, photos);
    file(root, "photos/2026-11/b.jpg", 2000, photos + 600);
    file(root, "photos/2026-11/c.jpg", 3000, photos + 1200);
    let notes = now - 24 * HOUR;
    file(root, "notes/todo.txt", 10, notes);
    file(root, "notes/done.txt", 20, notes + 50 * 60);
    file(root, "old/ancient.txt", 5, 86_400 * 365 * 10);
}

pub(crate) fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs() as i64
}

fn json_groups(o: &Output) -> Vec<serde_json::Value> {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

#[test]
fn groups_are_sessions_newest_first() {
    let t = tempfile::tempdir().expect("tmp");
    tree(t.path(), now());
    let o = pyactivity().arg(t.path()).arg("--json").output().expect("runs");
    let g = json_groups(&o);
    let counts: Vec<u64> = g.iter().map(|v| v["files"].as_u64().unwrap_or(0)).collect();
    assert_eq!(counts, vec![2, 3, 1]);
    assert!(g.iter().all(|v| v["type"] == "group"));
    assert_eq!(g[1]["bytes"], 6000);
    let top = g[1]["top_dirs"][0]["dir"].as_str().unwrap_or_default().to_string();
    assert!(top.ends_with("photos/2026-11"), "{top}");
}

#[test]
fn the_radius_decides_what_belongs_together() {
    let t = tempfile::tempdir().expect("tmp");
    tree(t.path(), now());
    // The two notes are 50 minutes apart: one group at 1h, two at 30m.
    let o = pyactivity().arg(t.path()).args(["--json", "--radius", "30m"]).output().expect("runs");
    assert_eq!(json_groups(&o).len(), 4);
    let o = pyactivity().arg(t.path()).args(["--json", "--radius", "3d"]).output().expect("runs");
    assert_eq!(json_groups(&o).len(), 2);
}

#[test]
fn since_until_min_files_and_top() {
    let t = tempfile::tempdir().expect("tmp");
    tree(t.path(), now());
    let o = pyactivity().arg(t.path()).args(["--json", "--since", "30h"]).output().expect("runs");
    assert_eq!(json_groups(&o).len(), 1);
    let o = pyactivity().arg(t.path()).args(["--json", "--until", "2000-01-01"]).output().expect("runs");
    assert_eq!(json_groups(&o).len(), 1);
    let o = pyactivity().arg(t.path()).args(["--json", "--min-files", "2"]).output().expect("runs");
    assert_eq!(json_groups(&o).len(), 2);
    let o = pyactivity().arg(t.path()).args(["--json", "--top", "1"]).output().expect("runs");
    let g = json_groups(&o);
    assert_eq!((g.len(), g[0]["files"].as_u64()), (1, Some(3)));
    let o = pyactivity().arg(t.path()).args(["--since", "next tuesday"]).output().expect("runs");
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn text_report_timeline_files_and_svg() {
    let t = tempfile::tempdir().expect("tmp");
    tree(t.path(), now());
    let svg = t.path().join("timeline.svg");
    let o = pyactivity().arg(t.path()).arg("--files").arg("--svg").arg(&svg).output().expect("runs");
    assert!(o.status.success());
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.starts_with("3 groups of activity, 6 files"), "{text}");
    assert!(text.contains("files per "), "{text}");
    assert!(text.contains("photos/2026-11/b.jpg"), "{text}");
    let svg = std::fs::read_to_string(&svg).expect("svg");
    assert!(svg.starts_with("<svg") && svg.contains("<rect"), "{svg}");
    // Axes with labels, and every group marked and numbered.
    assert!(
        svg.contains("text-anchor=\"end\">1</text>") && svg.contains("time ("),
        "a count axis and a time axis: {svg}"
    );
    let groups = String::from_utf8_lossy(&o.stdout).lines().filter(|l| l.starts_with('#')).count();
    assert!(groups >= 3, "{}", String::from_utf8_lossy(&o.stdout));
    assert_eq!(svg.matches("class=\"group\"").count(), groups, "{svg}");
    assert!(svg.contains(">#1</text>"), "{svg}");
}

#[test]
fn future_and_pre_1970_times_are_shown_as_such() {
    let t = tempfile::tempdir().expect("tmp");
    file(t.path(), "future.txt", 1, now() + 1000 * HOUR);
    file(t.path(), "past.txt", 1, -1000 * HOUR);
    let o = pyactivity().arg(t.path()).arg("--json").output().expect("runs");
    let g = json_groups(&o);
    assert_eq!(g.len(), 2);
    assert_eq!(g[0]["future"], true);
    assert_eq!(g[1]["before_1970"], true);
    let o = pyactivity().arg(t.path()).output().expect("runs");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("(in the future)") && text.contains("(before 1970)"), "{text}");
}

#[test]
fn print0_feeds_pybackup_files_from() {
    let t = tempfile::tempdir().expect("tmp");
    let src = t.path().join("src");
    tree(&src, now());
    let o = pyactivity().arg(&src).args(["--print0", "--since", "36h"]).output().expect("runs");
    assert!(o.status.success());
    let listed: Vec<&[u8]> = o.stdout.split(|&b| b == 0).filter(|p| !p.is_empty()).collect();
    assert_eq!(listed.len(), 2);
    let pybackup = std::env::var("CARGO_BIN_EXE_pybackup")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| assert_cmd::cargo::cargo_bin("pybackup"));
    let archive = t.path().join("recent.xtar");
    let mut child = std::process::Command::new(&pybackup)
        .args(["--no-progress", "compress"])
        .arg(&src)
        .args(["--files-from", "-", "--null", "-o"])
        .arg(&archive)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("pybackup built (cargo test --workspace builds it)");
    use std::io::Write;
    child.stdin.take().expect("stdin").write_all(&o.stdout).expect("pipe");
    assert!(child.wait().expect("wait").success());
    let list = std::process::Command::new(&pybackup).arg("list").arg(&archive).output().expect("list");
    let names: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| l.split_whitespace().last().unwrap_or_default().to_string())
        .collect();
    assert_eq!(names, vec![".", "notes", "notes/done.txt", "notes/todo.txt"]);
}

#[test]
fn unreadable_directories_warn_and_exit_1() {
    let t = tempfile::tempdir().expect("tmp");
    tree(t.path(), now());
    let locked = t.path().join("locked");
    std::fs::create_dir(&locked).expect("mkdir");
    std::fs::set_permissions(t.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).expect("chmod");
    let bin = assert_cmd::cargo::cargo_bin("pyactivity");
    let is_root = std::process::Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false);
    let mut cmd = if is_root {
        let mut c = std::process::Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups"]).arg(&bin);
        c
    } else {
        std::process::Command::new(&bin)
    };
    let o = cmd.arg(t.path()).arg("--json").output().expect("runs");
    std::fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(String::from_utf8_lossy(&o.stderr).contains("locked"));
    assert_eq!(json_groups_any(&o).len(), 3);
}

fn json_groups_any(o: &Output) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).expect("json")).collect()
}

#[test]
fn symlink_loops_do_not_hang() {
    let t = tempfile::tempdir().expect("tmp");
    file(t.path(), "a/f", 1, now());
    std::os::unix::fs::symlink("..", t.path().join("a/up")).expect("symlink");
    let o =
        pyactivity().arg(t.path()).arg("--json").timeout(std::time::Duration::from_secs(20)).output().expect("runs");
    assert_eq!(json_groups(&o).len(), 1);
}
