//! The chores both binaries share, as ripgrep's `grep-cli` holds its
//! binary's: human sizes and durations, the walk flags and their
//! validation, and the end of `main` (exit codes, the error chain printed
//! once, a broken pipe that ends quietly). This crate serves the binaries
//! only: it is the one library that writes to stderr, and only from
//! [`exit`].

use std::process::ExitCode;

use anyhow::bail;
use clap::Args;

/// `1.5 MiB`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 6] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

pub use fsutil::parse_size;

/// A transfer rate in bytes a second: a bare number is KiB/s (as restic's
/// `--limit-upload`), or a size with its unit (`500K`, `2M`, `1MB`) a
/// second.
pub fn parse_rate(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let rate = if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
        t.parse::<u64>().ok().and_then(|n| n.checked_mul(1024)).ok_or_else(|| format!("`{s}` is too large"))?
    } else {
        parse_size(t).map_err(|_| format!("`{s}` is not a rate like 1024 (KiB/s), 500K or 2M"))?
    };
    if rate == 0 {
        return Err(format!("`{s}`: a rate of 0 would never finish"));
    }
    Ok(rate)
}

/// A duration as people write it (`30m`, `12h`, `2d`), for clap.
pub fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("`{s}` is not a duration like 30m, 12h or 2d: {e}"))
}

/// An error and its sources on one line.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

/// Ends `main`: the result's exit code; on error, the whole chain once
/// (`NAME: error: …`) and the binary's hint for it, then exit code 2. A
/// broken pipe (the reader of stdout went away) ends quietly with 0.
pub fn exit(
    name: &str,
    result: anyhow::Result<ExitCode>,
    hint: impl Fn(&anyhow::Error) -> Option<&'static str>,
) -> ExitCode {
    match result {
        Ok(code) => code,
        Err(e) => {
            if e.chain().any(|c| {
                c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            }) {
                return ExitCode::SUCCESS;
            }
            eprintln!("{name}: error: {e:#}");
            if let Some(h) = hint(&e) {
                eprintln!("{name}: hint: {h}");
            }
            ExitCode::from(2)
        }
    }
}

/// 0 when clean, 1 when something was skipped, damaged or different.
pub fn code(clean: bool) -> ExitCode {
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// Which entries of the tree to take.
#[derive(Debug, Args, Clone, Default)]
pub struct WalkArgs {
    /// Skip every file or directory with exactly this name, at any depth.
    #[arg(long, value_name = "NAME")]
    pub exclude: Vec<String>,
    /// Skip paths matching this glob. A pattern without `/` matches names at
    /// any depth (`*.pyc`); with `/` it matches the path from the root
    /// (`build/**`). When several rules match, the longest pattern wins.
    #[arg(long, value_name = "PATTERN")]
    pub exclude_glob: Vec<String>,
    /// Keep only paths matching this glob (and the directories above them).
    /// Combine with --exclude-glob: the longest matching pattern wins, so
    /// `--include-glob 'photos/**' --exclude-glob 'photos/private/**'` keeps
    /// photos except the private ones.
    #[arg(long, value_name = "PATTERN")]
    pub include_glob: Vec<String>,
    /// Do not descend into directories on other file systems.
    #[arg(short = 'x', long)]
    pub one_file_system: bool,
    /// Follow symbolic links and take what they point to (default: links
    /// as links).
    #[arg(short = 'L', long)]
    pub follow_symlinks: bool,
}

impl WalkArgs {
    /// The walk options, every glob checked.
    pub fn options(&self) -> anyhow::Result<walk::Options> {
        Ok(walk::Options {
            follow_links: self.follow_symlinks,
            one_file_system: self.one_file_system,
            rules: rule_set(&self.exclude, &self.exclude_glob, &self.include_glob)?,
        })
    }
}

/// The rules of `--exclude`, `--exclude-glob` and `--include-glob`, every
/// name and glob checked (backup's walk and restore decide with them).
pub fn rule_set(exclude: &[String], exclude_glob: &[String], include_glob: &[String]) -> anyhow::Result<walk::RuleSet> {
    let mut rules = walk::Rules::default();
    for n in exclude {
        if n.is_empty() || n.contains('/') {
            bail!("--exclude takes a file or directory name without `/`, got `{n}` (use --exclude-glob for paths)");
        }
        rules.exclude_name(n);
    }
    for g in exclude_glob {
        rules.exclude_glob(g.clone());
    }
    for g in include_glob {
        rules.include_glob(g.clone());
    }
    Ok(rules.build()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_durations() {
        assert_eq!(human(1023), "1023 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(5 << 30), "5.0 GiB");
        assert_eq!(parse_duration("2d"), Ok(std::time::Duration::from_secs(2 * 86_400)));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_rate("1024"), Ok(1 << 20));
        assert_eq!(parse_rate("500K"), Ok(500 << 10));
        assert_eq!(parse_rate("2M"), Ok(2 << 20));
        assert!(parse_rate("0").is_err() && parse_rate("fast").is_err() && parse_rate("").is_err());
    }

    #[test]
    fn exclude_names_have_no_slash() {
        let a = WalkArgs { exclude: vec!["a/b".into()], ..Default::default() };
        assert!(a.options().is_err());
        let a = WalkArgs { exclude: vec!["__pycache__".into()], ..Default::default() };
        assert!(a.options().is_ok());
    }
}
