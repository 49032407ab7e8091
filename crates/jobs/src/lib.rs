//! Backups that run by themselves: named jobs in a TOML config file, the
//! state of their past runs, and the timer units that run them.
//!
//! A job's keys are the options of `pybackup backup` with the same names
//! and meanings (`exclude-glob`, `checkpoint`, `level`, …), plus its
//! sources, its repository, a retention policy (`keep-last`, … as
//! `pybackup forget` takes them), a schedule and when to warn. Every
//! error in the file names the file, the line and the column, and what
//! was expected; unknown keys are errors.
//!
//! ```
//! let text = "[jobs.home]\nsources = [\"/home/me\"]\nrepository = \"/mnt/backup\"\nschedule = \"daily\"\n";
//! let c = jobs::Config::parse(text, std::path::Path::new("config.toml")).unwrap();
//! let home = &c.jobs["home"];
//! assert_eq!(home.warn_after().unwrap(), Some(std::time::Duration::from_secs(2 * 86_400)));
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

pub mod schedule;
pub mod state;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The config file says something wrong, at a place.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Config {
        /// The file.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column (characters), from 1.
        column: usize,
        /// What is wrong, and what was expected.
        message: String,
    },
    /// A file that cannot be read or written.
    #[error("`{}`: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A state file that is not what this program writes.
    #[error("`{}` is not a state file of pybackup: {message}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Writing a file in place.
    #[error(transparent)]
    Write(#[from] fsutil::Error),
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The config file: named jobs.
#[derive(Debug, Clone)]
pub struct Config {
    /// The file it was read from (for messages and for the units).
    pub path: PathBuf,
    /// Jobs by name.
    pub jobs: BTreeMap<String, Job>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    jobs: BTreeMap<Spanned<String>, RawJob>,
}

/// One job, as the file says it; see the crate documentation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
struct RawJob {
    sources: Spanned<Vec<Spanned<String>>>,
    repository: Spanned<String>,
    #[serde(default)]
    exclude: Vec<Spanned<String>>,
    #[serde(default)]
    exclude_glob: Vec<String>,
    #[serde(default)]
    include_glob: Vec<String>,
    #[serde(default)]
    one_file_system: bool,
    #[serde(default)]
    follow_symlinks: bool,
    level: Option<Spanned<i64>>,
    #[serde(default)]
    checksum: bool,
    #[serde(default)]
    json: bool,
    checkpoint: Option<Spanned<String>>,
    limit_upload: Option<Spanned<String>>,
    limit_download: Option<Spanned<String>>,
    host: Option<String>,
    parent: Option<String>,
    keep_last: Option<usize>,
    keep_daily: Option<usize>,
    keep_weekly: Option<usize>,
    keep_monthly: Option<usize>,
    schedule: Option<Spanned<String>>,
    warn_after: Option<Spanned<String>>,
    check_every: Option<u32>,
    #[serde(default)]
    identity: Vec<String>,
    passphrase_file: Option<String>,
}

/// One job, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Job {
    /// Its name (letters, digits, `-` and `_`).
    pub name: String,
    /// The directories it backs up, each a snapshot of its own.
    pub sources: Vec<PathBuf>,
    /// Where.
    pub repository: String,
    /// As `backup --exclude`.
    pub exclude: Vec<String>,
    /// As `backup --exclude-glob`.
    pub exclude_glob: Vec<String>,
    /// As `backup --include-glob`.
    pub include_glob: Vec<String>,
    /// As `backup --one-file-system`.
    pub one_file_system: bool,
    /// As `backup --follow-symlinks`.
    pub follow_symlinks: bool,
    /// As `backup --level`.
    pub level: Option<u32>,
    /// As `backup --checksum`.
    pub checksum: bool,
    /// As `backup --json`: each backup's summary as one JSON object.
    pub json: bool,
    /// As `backup --checkpoint`, in bytes.
    pub checkpoint: Option<u64>,
    /// As `--limit-upload`, in bytes a second.
    pub limit_upload: Option<u64>,
    /// As `--limit-download`, in bytes a second.
    pub limit_download: Option<u64>,
    /// As `backup --host`.
    pub host: Option<String>,
    /// As `backup --parent`.
    pub parent: Option<String>,
    /// The retention policy, as `forget` takes it (all 0: none).
    pub keep: Keep,
    /// When it runs: `hourly`, `daily`, `weekly`, `monthly`, or a systemd
    /// calendar expression.
    pub schedule: Option<String>,
    /// When its last success is older than this, `status` warns.
    warn_after: Option<Duration>,
    /// A quick `check` after every this many runs (0: never).
    pub check_every: u32,
    /// As `forget -i` and `check -i`: keys to an encrypted repository, for
    /// retention (a backup needs none; without keys, `check` checks what
    /// it can without them).
    pub identity: Vec<PathBuf>,
    /// As `--passphrase-file`, for a key protected by a passphrase.
    pub passphrase_file: Option<PathBuf>,
}

/// A retention policy.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Keep {
    /// As `forget --keep-last`.
    pub last: usize,
    /// As `forget --keep-daily`.
    pub daily: usize,
    /// As `forget --keep-weekly`.
    pub weekly: usize,
    /// As `forget --keep-monthly`.
    pub monthly: usize,
}

impl Keep {
    /// Whether any rule is set (else nothing is forgotten).
    pub fn any(&self) -> bool {
        self.last + self.daily + self.weekly + self.monthly > 0
    }
}

impl Job {
    /// When `status` warns: `warn-after`, or twice the schedule's
    /// interval; `None` for an unscheduled job without `warn-after`.
    pub fn warn_after(&self) -> Result<Option<Duration>, String> {
        if self.warn_after.is_some() {
            return Ok(self.warn_after);
        }
        Ok(self.schedule.as_deref().and_then(schedule::interval).map(|d| d * 2))
    }
}

/// The line and column (from 1, in characters) of byte `at` of `text`.
pub fn position(text: &str, at: usize) -> (usize, usize) {
    let mut at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

impl Config {
    /// The default place of the config file:
    /// `$XDG_CONFIG_HOME/pybackup/config.toml` (`~/.config/…`).
    pub fn default_path() -> Option<PathBuf> {
        config_home().map(|d| d.join("pybackup").join("config.toml"))
    }

    /// Reads and checks the file at `path`.
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::Io { path: path.to_path_buf(), source })?;
        Config::parse(&text, path)
    }

    /// Parses and checks `text`, the file at `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config> {
        let at = |span: std::ops::Range<usize>, message: String| {
            let (line, column) = position(text, span.start);
            Error::Config { path: path.to_path_buf(), line, column, message }
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let message = e.message().trim().to_string();
            at(e.span().unwrap_or(0..0), message)
        })?;
        let mut jobs = BTreeMap::new();
        for (name, j) in raw.jobs {
            let span = name.span();
            let name = name.into_inner();
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return Err(at(span, format!("job name `{name}`: expected letters, digits, `-` and `_` only")));
            }
            let job = check_job(name.clone(), j, &at)?;
            jobs.insert(name, job);
        }
        Ok(Config { path: path.to_path_buf(), jobs })
    }
}

fn check_job(name: String, j: RawJob, at: &impl Fn(std::ops::Range<usize>, String) -> Error) -> Result<Job> {
    let sources_span = j.sources.span();
    let sources: Vec<Spanned<String>> = j.sources.into_inner();
    if sources.is_empty() {
        return Err(at(sources_span, "`sources`: expected at least one directory".into()));
    }
    for s in &sources {
        if s.get_ref().is_empty() {
            return Err(at(s.span(), "`sources`: an empty path".into()));
        }
    }
    if j.repository.get_ref().is_empty() {
        return Err(at(j.repository.span(), "`repository`: expected a path".into()));
    }
    for e in &j.exclude {
        if e.get_ref().is_empty() || e.get_ref().contains('/') {
            return Err(at(
                e.span(),
                "`exclude`: expected a file or directory name without `/` (use `exclude-glob` for paths)".into(),
            ));
        }
    }
    let level = match j.level {
        Some(l) if !(0..=9).contains(l.get_ref()) => {
            return Err(at(l.span(), format!("`level`: expected 0 to 9, got {}", l.get_ref())));
        }
        Some(l) => Some(*l.get_ref() as u32),
        None => None,
    };
    let checkpoint = match j.checkpoint {
        Some(c) => Some(cli::parse_size(c.get_ref()).map_err(|m| at(c.span(), format!("`checkpoint`: {m}")))?),
        None => None,
    };
    let rate = |r: Option<Spanned<String>>, key: &str| match r {
        Some(r) => cli::parse_rate(r.get_ref()).map(Some).map_err(|m| at(r.span(), format!("`{key}`: {m}"))),
        None => Ok(None),
    };
    let limit_upload = rate(j.limit_upload, "limit-upload")?;
    let limit_download = rate(j.limit_download, "limit-download")?;
    let warn_after = match &j.warn_after {
        Some(w) => Some(cli::parse_duration(w.get_ref()).map_err(|m| at(w.span(), format!("`warn-after`: {m}")))?),
        None => None,
    };
    if let Some(s) = &j.schedule {
        schedule::check(s.get_ref()).map_err(|m| at(s.span(), format!("`schedule`: {m}")))?;
        if schedule::interval(s.get_ref()).is_none() && warn_after.is_none() {
            return Err(at(
                s.span(),
                "`schedule`: a calendar expression needs `warn-after` too (how old a last backup may get)".into(),
            ));
        }
    }
    Ok(Job {
        name,
        sources: sources.into_iter().map(|s| PathBuf::from(s.into_inner())).collect(),
        repository: j.repository.into_inner(),
        exclude: j.exclude.into_iter().map(Spanned::into_inner).collect(),
        exclude_glob: j.exclude_glob,
        include_glob: j.include_glob,
        one_file_system: j.one_file_system,
        follow_symlinks: j.follow_symlinks,
        level,
        checksum: j.checksum,
        json: j.json,
        checkpoint,
        limit_upload,
        limit_download,
        host: j.host,
        parent: j.parent,
        keep: Keep {
            last: j.keep_last.unwrap_or(0),
            daily: j.keep_daily.unwrap_or(0),
            weekly: j.keep_weekly.unwrap_or(0),
            monthly: j.keep_monthly.unwrap_or(0),
        },
        schedule: j.schedule.map(Spanned::into_inner),
        warn_after,
        check_every: j.check_every.unwrap_or(0),
        identity: j.identity.into_iter().map(PathBuf::from).collect(),
        passphrase_file: j.passphrase_file.map(PathBuf::from),
    })
}

fn config_home() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
}

/// The example config that `pybackup init-config` writes.
pub const EXAMPLE: &str = r#"# pybackup jobs: `pybackup run` runs them all, `pybackup run NAME` one.
# Every option of `pybackup backup` is a key with the same name and meaning;
# flags given to `pybackup run` override the file.

[jobs.home]
# The directories to back up (each a snapshot of its own), and where.
sources = ["~/Documents"]
repository = "/mnt/backup/pybackup"

# What to leave out: names anywhere, and globs (the longest rule wins).
exclude = [".cache", "node_modules"]
exclude-glob = ["*.pyc", "*.tmp"]
# include-glob = ["photos/**"]
# one-file-system = true
# follow-symlinks = false

# level = 6            # deflate level, 0 to 9
# checksum = false     # compare contents (SHA-256), not size and times
# json = false         # print each backup's summary as one JSON object
# checkpoint = "1GiB"  # an interrupted run loses at most this much work
# host = "laptop"      # the machine name recorded [default: the host name]
# limit-upload = "1024"  # KiB/s (or "500K", "2M") at most to a remote repository
# limit-download = "4M"

# Retention after each run, as `pybackup forget` takes it (none: keep all).
keep-daily = 14
keep-weekly = 8
keep-monthly = 12

# When it runs (`pybackup schedule install home` writes a systemd timer):
# hourly, daily, weekly, monthly, or a systemd calendar expression.
schedule = "daily"
# `pybackup status` warns when the last success is older than this
# [default: twice the schedule's interval].
# warn-after = "2d"
# A quick `pybackup check` of the repository after every N runs.
check-every = 7

# An encrypted repository (`pybackup init REPO --encrypt`): backups need no
# key; retention does. A key for `forget` (and a full `check`):
# identity = ["~/.config/pybackup/owner.key"]
# passphrase-file = "~/.config/pybackup/owner.pass"   # for a protected key
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> (usize, usize, String) {
        match Config::parse(text, Path::new("c.toml")) {
            Err(Error::Config { line, column, message, .. }) => (line, column, message),
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn the_example_parses() {
        let c = Config::parse(EXAMPLE, Path::new("example.toml")).unwrap();
        let j = &c.jobs["home"];
        assert_eq!(j.keep, Keep { last: 0, daily: 14, weekly: 8, monthly: 12 });
        assert_eq!(j.check_every, 7);
        assert_eq!(j.warn_after().unwrap(), Some(Duration::from_secs(2 * 86_400)));
    }

    #[test]
    fn each_kind_of_error_names_its_line_and_column() {
        let base = "[jobs.a]\nsources = [\"/x\"]\nrepository = \"/r\"\n";
        // Syntax.
        assert_eq!(err("[jobs.a\n").0, 1);
        // An unknown key: named, at its place.
        let (l, c, m) = err(&format!("{base}exclude-globs = [\"*.o\"]\n"));
        assert_eq!((l, c), (4, 1), "{m}");
        assert!(m.contains("exclude-globs") && m.contains("exclude-glob"), "{m}");
        // A wrong type.
        let (l, c, m) = err(&format!("{base}level = \"high\"\n"));
        assert_eq!((l, c), (4, 9), "{m}");
        // A value out of range, a bad size, a bad duration, a bad schedule.
        let (l, c, m) = err(&format!("{base}level = 12\n"));
        assert_eq!((l, c), (4, 9));
        assert!(m.contains("0 to 9"), "{m}");
        let (l, _, m) = err(&format!("{base}\ncheckpoint = \"1 parsec\"\n"));
        assert_eq!(l, 5);
        let (l, _, lm) = err(&format!("{base}limit-upload = \"fast\"\n"));
        assert_eq!(l, 4);
        assert!(lm.contains("limit-upload"), "{lm}");
        let c = Config::parse(&format!("{base}limit-upload = \"512K\"\n"), Path::new("x.toml")).unwrap();
        assert_eq!((c.jobs["a"].limit_upload, c.jobs["a"].limit_download), (Some(512 << 10), None));
        assert!(m.contains("checkpoint"), "{m}");
        let (_, _, m) = err(&format!("{base}warn-after = \"soon\"\n"));
        assert!(m.contains("warn-after"), "{m}");
        let (_, _, m) = err(&format!("{base}schedule = \"every full moon\"\n"));
        assert!(m.contains("schedule"), "{m}");
        // A missing key, a bad job name, an exclude with a slash.
        let (l, _, m) = err("[jobs.a]\nsources = [\"/x\"]\n");
        assert!(m.contains("repository") && l >= 1, "{m}");
        let (l, c, _) = err("[jobs.\"a b\"]\nsources = [\"/x\"]\nrepository = \"/r\"\n");
        assert_eq!((l, c), (1, 7));
        let (l, c, _) = err(&format!("{base}exclude = [\"a/b\"]\n"));
        assert_eq!((l, c), (4, 12));
        // Sources: none.
        let (l, c, _) = err("[jobs.a]\nsources = []\nrepository = \"/r\"\n");
        assert_eq!((l, c), (2, 11));
    }

    #[test]
    fn positions_count_characters() {
        assert_eq!(position("ab\ncdé f", 8), (2, 5));
        assert_eq!(position("", 0), (1, 1));
    }
}
