//! Schedules, and the systemd user units (or the crontab line) that run a
//! job by them.
//!
//! A timer has `Persistent=true`: a run missed while the machine was off
//! happens at the next boot, as Déjà Dup's does. Units are only written;
//! nothing is enabled unless the user asks.

use std::path::{Path, PathBuf};
use std::time::Duration;

const NAMED: [(&str, u64, &str); 4] = [
    ("hourly", 3_600, "@hourly"),
    ("daily", 86_400, "@daily"),
    ("weekly", 7 * 86_400, "@weekly"),
    ("monthly", 30 * 86_400, "@monthly"),
];

/// The interval of a named schedule (`hourly`, `daily`, `weekly`,
/// `monthly`); `None` for a calendar expression.
pub fn interval(schedule: &str) -> Option<Duration> {
    NAMED.iter().find(|n| n.0 == schedule).map(|n| Duration::from_secs(n.1))
}

/// Checks a schedule: a named one, or something that looks like a systemd
/// calendar expression (digits, `*`, `-`, `:`, `/`, `,`, `.`, `~`, spaces
/// and weekday names; `systemd-analyze calendar` is the judge).
pub fn check(schedule: &str) -> Result<(), String> {
    if interval(schedule).is_some() {
        return Ok(());
    }
    let ok = !schedule.trim().is_empty()
        && schedule.chars().any(|c| c.is_ascii_digit() || c == '*')
        && schedule.chars().all(|c| c.is_ascii_alphanumeric() || " *-:/,.~".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "expected hourly, daily, weekly, monthly or a systemd calendar expression (`*-*-* 03:00`), got `{schedule}`"
        ))
    }
}

/// The unit files' base name for job `name`.
pub fn unit_name(name: &str) -> String {
    format!("pybackup-{name}")
}

/// Where systemd user units go: `$XDG_CONFIG_HOME/systemd/user`.
pub fn unit_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|d| d.join("systemd").join("user"))
}

/// One word of a command line as systemd reads `ExecStart=`: quoted, with
/// `\`, `"`, `%` and `$` escaped.
pub fn systemd_word(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '%' => out.push_str("%%"),
            '$' => out.push_str("$$"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// One word for a POSIX shell (the crontab line): single-quoted.
pub fn shell_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The service unit that runs job `name` from `config` with `exe`.
pub fn service_unit(name: &str, exe: &Path, config: &Path) -> String {
    format!(
        "# Written by `pybackup schedule install {name}`; `pybackup schedule remove {name}` removes it.\n\
         [Unit]\n\
         Description=pybackup job {name}\n\
         \n\
         [Service]\n\
         Type=oneshot\n\
         ExecStart={} run --config {} {}\n\
         Nice=10\n\
         IOSchedulingClass=idle\n",
        systemd_word(&exe.to_string_lossy()),
        systemd_word(&config.to_string_lossy()),
        systemd_word(name),
    )
}

/// The timer unit of job `name`, by `schedule`.
pub fn timer_unit(name: &str, schedule: &str) -> String {
    format!(
        "# Written by `pybackup schedule install {name}`; `pybackup schedule remove {name}` removes it.\n\
         [Unit]\n\
         Description=pybackup job {name}, {schedule}\n\
         \n\
         [Timer]\n\
         OnCalendar={schedule}\n\
         # A run missed while the machine was off happens at the next start.\n\
         Persistent=true\n\
         RandomizedDelaySec=5min\n\
         \n\
         [Install]\n\
         WantedBy=timers.target\n"
    )
}

/// The crontab line for job `name`, where systemd is absent; `None` for a
/// calendar expression (cron has no such thing).
pub fn cron_line(name: &str, schedule: &str, exe: &Path, config: &Path) -> Option<String> {
    let when = NAMED.iter().find(|n| n.0 == schedule)?.2;
    Some(format!(
        "{when} {} run --config {} {} >/dev/null 2>&1",
        shell_word(&exe.to_string_lossy()),
        shell_word(&config.to_string_lossy()),
        shell_word(name)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules() {
        assert_eq!(interval("daily"), Some(Duration::from_secs(86_400)));
        assert!(check("*-*-* 03:00").is_ok());
        assert!(check("Mon..Fri 22:30").is_ok());
        assert!(check("every full moon").is_err());
        assert!(check("").is_err());
    }

    #[test]
    fn words_are_quoted() {
        assert_eq!(systemd_word("/a b/c%d$e\"f"), "\"/a b/c%%d$$e\\\"f\"");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        let s = service_unit("home", Path::new("/usr/bin/pybackup"), Path::new("/h/.config/pybackup/config.toml"));
        assert!(s.contains("ExecStart=\"/usr/bin/pybackup\" run --config \"/h/.config/pybackup/config.toml\" \"home\""));
        assert!(timer_unit("home", "daily").contains("Persistent=true"));
        assert_eq!(
            cron_line("home", "daily", Path::new("/bin/p"), Path::new("/c")).as_deref(),
            Some("@daily '/bin/p' run --config '/c' 'home' >/dev/null 2>&1")
        );
    }
}
