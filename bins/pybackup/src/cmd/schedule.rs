//! `pybackup schedule`: systemd user timers that run jobs, or the crontab
//! line where systemd is absent. Units are written; nothing is enabled
//! unless asked.

use std::path::Path;
use std::process::{Command, ExitCode};

use anyhow::{bail, Context};

use crate::cmd::config::load;
use crate::cmd::*;

/// Whether systemd runs this machine (as `sd_booted()` tells).
fn systemd_here() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn systemctl(args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("systemctl").arg("--user").args(args).status().context("cannot run systemctl")?;
    anyhow::ensure!(st.success(), "`systemctl --user {}` failed", args.join(" "));
    Ok(())
}

/// `pybackup schedule ...`.
pub fn run(c: &ScheduleCommand) -> anyhow::Result<ExitCode> {
    let dir = jobs::schedule::unit_dir().context("HOME is not set: no place for user units")?;
    match c {
        ScheduleCommand::Install { name, config, enable, cron, systemd } => {
            let cfg = load(config)?;
            let job = crate::cmd::config::select(&cfg, std::slice::from_ref(name))?[0];
            let Some(schedule) = &job.schedule else {
                bail!("job {name} has no `schedule` in `{}`", cfg.path.display());
            };
            let exe = std::env::current_exe().context("cannot find this program's path")?;
            let config_path = std::path::absolute(&cfg.path).context("cannot make the config's path absolute")?;
            if *cron || !(*systemd || systemd_here()) {
                let Some(line) = jobs::schedule::cron_line(name, schedule, &exe, &config_path) else {
                    bail!("systemd is not running here, and cron cannot take the calendar expression `{schedule}`");
                };
                println!("{line}");
                eprintln!("pybackup: add this line to your crontab (`crontab -e`); nothing was written");
                return Ok(code(true));
            }
            std::fs::create_dir_all(&dir).with_context(|| format!("cannot create `{}`", dir.display()))?;
            let unit = jobs::schedule::unit_name(name);
            for (ext, text) in [
                ("service", jobs::schedule::service_unit(name, &exe, &config_path)),
                ("timer", jobs::schedule::timer_unit(name, schedule)),
            ] {
                let p = dir.join(format!("{unit}.{ext}"));
                fsutil::write_new(&p, true, |f, p| {
                    use std::io::Write;
                    let mut f: &std::fs::File = f;
                    f.write_all(text.as_bytes())
                        .map_err(|source| fsutil::Error::Write { path: p.to_path_buf(), source })
                })?;
                eprintln!("pybackup: wrote `{}`", p.display());
            }
            if *enable {
                systemctl(&["daemon-reload"])?;
                systemctl(&["enable", "--now", &format!("{unit}.timer")])?;
                eprintln!("pybackup: enabled and started {unit}.timer");
            } else {
                eprintln!(
                    "pybackup: nothing is enabled yet; to start it: systemctl --user daemon-reload && systemctl --user enable --now {unit}.timer"
                );
            }
            Ok(code(true))
        }
        ScheduleCommand::Remove { name } => {
            let unit = jobs::schedule::unit_name(name);
            let files = [dir.join(format!("{unit}.timer")), dir.join(format!("{unit}.service"))];
            if !files.iter().any(|f| f.exists()) {
                bail!("no units of job {name} in `{}`", dir.display());
            }
            if systemd_here() {
                // It may not be enabled; removing the files is what matters.
                let _ = systemctl(&["disable", "--now", &format!("{unit}.timer")]);
            }
            for f in &files {
                match std::fs::remove_file(f) {
                    Ok(()) => eprintln!("pybackup: removed `{}`", f.display()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e).with_context(|| format!("cannot remove `{}`", f.display())),
                }
            }
            if systemd_here() {
                let _ = systemctl(&["daemon-reload"]);
            }
            Ok(code(true))
        }
        ScheduleCommand::List => {
            let mut found = Vec::new();
            if let Ok(rd) = std::fs::read_dir(&dir) {
                for e in rd.flatten() {
                    let n = e.file_name().to_string_lossy().into_owned();
                    if let Some(job) = n.strip_prefix("pybackup-").and_then(|s| s.strip_suffix(".timer")) {
                        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                        let when = text.lines().find_map(|l| l.strip_prefix("OnCalendar=")).unwrap_or("?").to_string();
                        found.push((job.to_string(), when));
                    }
                }
            }
            found.sort();
            for (job, when) in &found {
                println!("{job}\t{when}\t{}", dir.join(format!("pybackup-{job}.timer")).display());
            }
            if found.is_empty() {
                eprintln!("pybackup: no timers of pybackup in `{}`", dir.display());
            }
            Ok(code(true))
        }
    }
}
