//! Jobs: a config file of named jobs, `run`, `status`, `schedule`,
//! `init-config` and `config check`.

use std::path::{Path, PathBuf};
use std::process::Output;

use crate::support::*;

/// A home of its own for each test: config, state and units go there.
struct Home {
    t: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        let h = Home { t: tempfile::tempdir().expect("tmp") };
        std::fs::create_dir_all(h.path("home")).expect("mkdir");
        h
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.t.path().join(rel)
    }

    fn config(&self) -> PathBuf {
        self.path("home/.config/pybackup/config.toml")
    }

    fn write_config(&self, text: &str) {
        std::fs::create_dir_all(self.config().parent().expect("dir")).expect("mkdir");
        std::fs::write(self.config(), text).expect("write");
    }

    /// `pybackup ARGS` with this home, and `now` as the clock when given.
    fn run(&self, args: &[&str], now: Option<i64>) -> Output {
        let mut c = pybackup();
        c.env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("home/.config"))
            .env("XDG_STATE_HOME", self.path("home/.local/state"))
            .args(args);
        match now {
            Some(t) => c.env("PYBACKUP_NOW", t.to_string()),
            None => c.env_remove("PYBACKUP_NOW"),
        };
        c.output().expect("runs")
    }
}

fn tree(src: &Path) {
    write(src, b"a.txt", b"alpha\n");
    write(src, b"b.log", b"a log\n");
    write(src, b"c.tmp", b"temporary\n");
    write(src, b"sub/d.txt", b"delta\n");
    write(src, b"sub/.cache/e", b"cached\n");
}

fn job_config(h: &Home, extra: &str) -> String {
    format!(
        "[jobs.docs]\nsources = [\"{}\"]\nrepository = \"{}\"\nexclude = [\".cache\"]\nexclude-glob = [\"*.tmp\"]\n\
         level = 9\nhost = \"box\"\n{extra}",
        h.path("src").display(),
        h.path("repo").display()
    )
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The paths a repository's latest snapshot restores.
fn restored(h: &Home, repo: &Path, name: &str) -> Vec<String> {
    let dest = h.path(name);
    let o = h.run(&["restore", &repo.display().to_string(), &dest.display().to_string()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut v: Vec<String> =
        snapshot(&dest, false).into_keys().map(|k| String::from_utf8_lossy(&k).into_owned()).collect();
    v.sort();
    v
}

#[test]
fn a_job_run_equals_the_same_backup_from_the_command_line() {
    let h = Home::new();
    tree(&h.path("src"));
    h.write_config(&job_config(&h, ""));
    let o = h.run(&["run", "docs"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let repo2 = h.path("repo2");
    let src = h.path("src").display().to_string();
    let r2 = repo2.display().to_string();
    let o = h.run(
        &["backup", &src, &r2, "--exclude", ".cache", "--exclude-glob", "*.tmp", "--level", "9", "--host", "box"],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // The same snapshot: no difference between the two, the same host,
    // source and counts, and the same files left out.
    let r1 = h.path("repo").display().to_string();
    let d = h.run(&["diff", &format!("{r1}@latest"), &format!("{r2}@latest")], None);
    assert_eq!(d.status.code(), Some(0), "{}{}", stdout(&d), stderr(&d));
    let info = |r: &str| {
        let o = h.run(&["snapshots", r, "--json"], None);
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        (v["host"].clone(), v["path"].clone(), v["files"].clone(), v["bytes"].clone())
    };
    assert_eq!(info(&r1), info(&r2));
    assert_eq!(restored(&h, &h.path("repo"), "out1"), vec!["a.txt", "b.log", "sub", "sub/d.txt"]);
    assert_eq!(restored(&h, &repo2, "out2"), restored(&h, &h.path("repo"), "out3"));
}

#[test]
fn flags_given_to_run_override_the_file() {
    let h = Home::new();
    tree(&h.path("src"));
    h.write_config(&job_config(&h, "json = true\n"));
    // The walk flags replace the job's lists: *.log out, *.tmp and .cache in.
    let o = h.run(&["run", "docs", "--exclude-glob", "*.log", "--host", "other"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    // `json = true` in the file: the summary as JSON, as `backup --json`.
    let summary: serde_json::Value = serde_json::from_slice(&o.stdout).expect("a JSON summary");
    assert!(summary["snapshot"].is_string(), "{summary}");
    assert_eq!(
        restored(&h, &h.path("repo"), "out"),
        vec!["a.txt", "c.tmp", "sub", "sub/.cache", "sub/.cache/e", "sub/d.txt"]
    );
    let o = h.run(&["snapshots", &h.path("repo").display().to_string(), "--json"], None);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["host"], "other");
}

#[test]
fn config_errors_name_the_file_line_and_column() {
    let h = Home::new();
    let base = format!("[jobs.docs]\nsources = [\"{}\"]\nrepository = \"/r\"\n", h.path("src").display());
    let cases = [
        ("an unknown key", format!("{base}exclud = [\"x\"]\n"), "4:1", "unknown field `exclud`"),
        ("a wrong type", format!("{base}level = \"nine\"\n"), "4:9", "invalid type"),
        ("a value out of range", format!("{base}level = 10\n"), "4:9", "0 to 9"),
        ("a bad size", format!("{base}checkpoint = \"lots\"\n"), "4:14", "checkpoint"),
        ("a bad schedule", format!("{base}schedule = \"now and then\"\n"), "4:12", "schedule"),
        ("a syntax error", format!("{base}keep-last = \n"), "4:", "expected"),
        ("a missing key", "[jobs.docs]\nsources = [\"/x\"]\n".to_string(), ":1:", "repository"),
    ];
    let cfg = h.config().display().to_string();
    for (what, text, place, says) in cases {
        h.write_config(&text);
        for args in [vec!["config", "check"], vec!["run"], vec!["status"]] {
            let o = h.run(&args, None);
            assert_eq!(o.status.code(), Some(2), "{what}, {args:?}: {}", stderr(&o));
            let e = stderr(&o);
            assert!(e.contains(&format!("{cfg}:")) && e.contains(place) && e.contains(says), "{what}, {args:?}: {e}");
        }
    }
    assert!(!h.path("home/.local/state").exists(), "nothing ran");
}

#[test]
fn a_failing_job_does_not_stop_the_others() {
    let h = Home::new();
    tree(&h.path("src"));
    let cfg = format!(
        "{}\n[jobs.broken]\nsources = [\"{}\"]\nrepository = \"{}\"\n",
        job_config(&h, ""),
        h.path("missing").display(),
        h.path("repo-b").display()
    );
    h.write_config(&cfg);
    let o = h.run(&["run"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    assert!(e.contains("job broken failed") && e.contains("failed: broken"), "{e}");
    // `docs` ran although `broken` came first (jobs run in name order).
    assert_eq!(restored(&h, &h.path("repo"), "out"), vec!["a.txt", "b.log", "sub", "sub/d.txt"]);
    let o = h.run(&["status", "--json"], None);
    assert_eq!(o.status.code(), Some(1), "attention needed: {}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).expect("json")).collect();
    assert_eq!(lines[0]["job"], "broken");
    assert!(lines[0]["last_success"].is_null());
    assert!(lines[0]["last_failure"]["message"].as_str().expect("message").contains("missing"));
    assert_eq!(lines[1]["job"], "docs");
    assert!(lines[1]["last_failure"].is_null());
    assert_eq!(lines[1]["snapshots"], 1);
    // An unknown job: an error naming the jobs there are.
    let o = h.run(&["run", "nope"], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("broken, docs"), "{}", stderr(&o));
}

#[test]
fn status_ages_and_warnings_against_a_fixed_clock() {
    let h = Home::new();
    tree(&h.path("src"));
    h.write_config(&job_config(&h, "schedule = \"daily\"\nkeep-last = 2\ncheck-every = 2\n"));
    let t0 = 1_900_000_000;
    for i in 0..3 {
        let o = h.run(&["run", "docs"], Some(t0 + i));
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let status = |now: i64| {
        let o = h.run(&["status", "docs", "--json"], Some(now));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
        (o.status.code(), v)
    };
    // An hour later: fine; retention kept 2 snapshots of the 3.
    let (code, v) = status(t0 + 2 + 3_600);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["last_success"]["age_seconds"], 3_600);
    assert_eq!(v["runs"], 3);
    assert_eq!(v["snapshots"], 2);
    assert_eq!(v["warn_after_seconds"], 2 * 86_400);
    assert!(v["repository_bytes"].as_u64().expect("size") > 0);
    // Two days and a second later: twice the daily interval has passed.
    let (code, v) = status(t0 + 2 + 2 * 86_400 + 1);
    assert_eq!(code, Some(1), "{v}");
    assert!(v["warnings"][0].as_str().expect("warning").contains("2 d old"), "{v}");
    // The text form says the same.
    let o = h.run(&["status"], Some(t0 + 2 + 3 * 86_400));
    assert!(stdout(&o).contains("WARNING: the last backup is 3 d old"), "{}", stdout(&o));
}

#[test]
fn timer_units_are_written_validated_listed_and_removed() {
    let h = Home::new();
    tree(&h.path("src"));
    h.write_config(&job_config(&h, "schedule = \"daily\"\n"));
    let o = h.run(&["schedule", "install", "docs", "--systemd"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("nothing is enabled"), "{}", stderr(&o));
    let dir = h.path("home/.config/systemd/user");
    let (service, timer) = (dir.join("pybackup-docs.service"), dir.join("pybackup-docs.timer"));
    let t = std::fs::read_to_string(&timer).expect("timer");
    assert!(t.contains("OnCalendar=daily") && t.contains("Persistent=true"), "{t}");
    let s = std::fs::read_to_string(&service).expect("service");
    assert!(s.contains(&format!("--config \"{}\" \"docs\"", h.config().display())), "{s}");
    // systemd's own checker accepts both (Debian's systemd package).
    let v = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&timer)
        .arg(&service)
        .output()
        .expect("systemd-analyze (apt-get install systemd) must be installed");
    assert!(v.status.success(), "systemd-analyze verify: {}", String::from_utf8_lossy(&v.stderr));
    // The checker can fail: a timer with a bad calendar is refused.
    let bad = h.path("bad.timer");
    std::fs::write(&bad, t.replace("OnCalendar=daily", "OnCalendar=now and then")).expect("write");
    let v = std::process::Command::new("systemd-analyze").arg("verify").arg(&bad).output().expect("runs");
    assert!(!v.status.success());
    let o = h.run(&["schedule", "list"], None);
    assert!(stdout(&o).starts_with("docs\tdaily\t"), "{}", stdout(&o));
    // The crontab line, for machines without systemd.
    let o = h.run(&["schedule", "install", "docs", "--cron"], None);
    assert!(stdout(&o).starts_with("@daily '") && stdout(&o).contains("' run --config '"), "{}", stdout(&o));
    let o = h.run(&["schedule", "remove", "docs"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!timer.exists() && !service.exists());
    let o = h.run(&["schedule", "remove", "docs"], None);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn init_config_writes_an_example_that_checks() {
    let h = Home::new();
    let o = h.run(&["init-config"], None);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(h.config()).expect("written");
    assert!(text.contains("[jobs.home]"));
    // Its source does not exist here: a warning (exit 1), not an error.
    let o = h.run(&["config", "check"], None);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("job home: 1 source(s)"), "{}", stdout(&o));
    // Never over an existing file.
    let o = h.run(&["init-config"], None);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(std::fs::read_to_string(h.config()).expect("kept"), text);
}

#[test]
fn a_job_into_an_encrypted_repository_backs_up_without_a_key_and_forgets_with_one() {
    let h = Home::new();
    tree(&h.path("src"));
    std::fs::write(h.path("pass"), "a passphrase for the job\n").expect("write");
    let (repo, key, pass) =
        (h.path("repo").display().to_string(), h.path("own.key").display().to_string(), h.path("pass"));
    let o = h.run(
        &["init", &repo, "--encrypt", "--owner-key", &key, "--passphrase-file", &pass.display().to_string()],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let keys = format!("identity = [\"{key}\"]\npassphrase-file = \"{}\"\n", pass.display());
    h.write_config(&job_config(&h, &format!("keep-last = 1\ncheck-every = 1\n{keys}")));
    for round in 0..3 {
        write(&h.path("src"), b"a.txt", format!("alpha, round {round}\n").as_bytes());
        let o = h.run(&["run", "docs"], None);
        assert!(o.status.success(), "run {round}: {}", stderr(&o));
    }
    let o = h.run(&["snapshots", &repo, "--json", "-i", &key, "--passphrase-file", &pass.display().to_string()], None);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().count(), 1, "keep-last = 1 kept one snapshot: {}", stdout(&o));
    // Without the keys, the job still backs up; retention then fails,
    // saying why, and the snapshots are all there.
    h.write_config(&job_config(&h, "keep-last = 1\n"));
    let o = h.run(&["run", "docs"], None);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("needs a key"), "{}", stderr(&o));
    let o = h.run(&["snapshots", &repo, "--json", "-i", &key, "--passphrase-file", &pass.display().to_string()], None);
    assert_eq!(stdout(&o).lines().count(), 2, "{}", stdout(&o));
}
