//! `pyactivity`: groups the files of a tree by when they changed.

mod report;
mod timeline;

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Parser, ValueEnum};

/// Shows what has been happening on a disk: files that changed at about the
/// same time (within the radius of each other) form one group of activity.
///
/// Exit status: 0 success; 1 some directories or files could not be read
/// (each is named on stderr); 2 error.
#[derive(Debug, Parser)]
#[command(name = "pyactivity", version, max_term_width = 100)]
pub struct Cli {
    /// Trees to scan [default: the current directory].
    pub paths: Vec<PathBuf>,
    /// Files further apart in time than this start a new group (`30m`, `1h`,
    /// `2d`).
    #[arg(long, default_value = "1h", value_parser = cli::parse_duration)]
    pub radius: std::time::Duration,
    /// Only files changed since this: a duration back from now (`7d`) or a
    /// date (`2026-11-01`, `2026-11-01 14:30`, RFC 3339).
    #[arg(long, value_name = "WHEN")]
    pub since: Option<String>,
    /// Only files changed until this (same forms as --since).
    #[arg(long, value_name = "WHEN")]
    pub until: Option<String>,
    /// Which time of each file to use.
    #[arg(long, value_enum, default_value_t = TimeField::Mtime)]
    pub time: TimeField,
    /// Which files to scan.
    #[command(flatten)]
    pub walk: cli::WalkArgs,
    /// Hide groups with fewer files than this.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub min_files: u64,
    /// Show only the N groups with the most files (still newest first).
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// List every file of each group.
    #[arg(long)]
    pub files: bool,
    /// Print JSON Lines (one object per group, with a `type` field).
    #[arg(long, conflicts_with = "print0")]
    pub json: bool,
    /// Print the files of the shown groups, NUL-separated, for
    /// `pybackup compress SRC --files-from - --null`.
    #[arg(long)]
    pub print0: bool,
    /// Also write the timeline as an SVG image.
    #[arg(long, value_name = "FILE")]
    pub svg: Option<PathBuf>,
    /// Do not print the timeline.
    #[arg(long)]
    pub no_timeline: bool,
    /// Print nothing but errors and warnings on stderr.
    #[arg(short, long)]
    pub quiet: bool,
}

/// Which timestamp of a file to group by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TimeField {
    /// Last modification of the content.
    Mtime,
    /// Last change of the content or the metadata.
    Ctime,
    /// Last access.
    Atime,
}

/// A point in time from `7d` (ago), a date, or a date and time (local time
/// zone), or RFC 3339; nanoseconds since the epoch.
pub fn parse_when(s: &str, now: jiff::Timestamp) -> anyhow::Result<i64> {
    if let Ok(d) = humantime::parse_duration(s) {
        let d = jiff::SignedDuration::try_from(d).context("duration too long")?;
        return Ok(now.checked_sub(d).context("too far back")?.as_nanosecond() as i64);
    }
    if let Ok(t) = s.parse::<jiff::Timestamp>() {
        return Ok(t.as_nanosecond() as i64);
    }
    let tz = jiff::tz::TimeZone::system();
    if let Ok(dt) = s.replace(' ', "T").parse::<jiff::civil::DateTime>() {
        return Ok(dt.to_zoned(tz)?.timestamp().as_nanosecond() as i64);
    }
    if let Ok(d) = s.parse::<jiff::civil::Date>() {
        return Ok(d.to_zoned(tz)?.timestamp().as_nanosecond() as i64);
    }
    bail!("`{s}` is neither a duration (7d) nor a date (2026-11-01, 2026-11-01 14:30)")
}

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::exit("pyactivity", run(args), |_| None)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let now = jiff::Timestamp::now();
    let since = cli.since.as_deref().map(|s| parse_when(s, now)).transpose()?;
    let until = cli.until.as_deref().map(|s| parse_when(s, now)).transpose()?;
    let opts = cli.walk.options()?;
    let roots = if cli.paths.is_empty() { vec![PathBuf::from(".")] } else { cli.paths.clone() };

    let mut records = activity::Records::default();
    let mut warnings = 0u64;
    for root in &roots {
        let prefix = root.as_os_str().as_bytes().to_vec();
        walk::walk(
            root,
            &opts,
            |e| {
                if e.kind != walk::Kind::File {
                    return;
                }
                let (sec, nsec) = match cli.time {
                    TimeField::Mtime => (e.meta.mtime, e.meta.mtime_nsec),
                    TimeField::Ctime => (e.meta.ctime, e.meta.ctime_nsec),
                    TimeField::Atime => (e.meta.atime, e.meta.atime_nsec),
                };
                let t = sec.saturating_mul(1_000_000_000).saturating_add(i64::from(nsec));
                if since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u) {
                    return;
                }
                let mut path = prefix.clone();
                if !path.ends_with(b"/") {
                    path.push(b'/');
                }
                path.extend_from_slice(&e.path);
                records.push(t, e.meta.size, &path);
            },
            |err| {
                warnings += 1;
                eprintln!("pyactivity: warning: {}", cli::error_chain(&err));
            },
        )
        .with_context(|| format!("cannot scan `{}`", root.display()))?;
    }

    let radius = i64::try_from(cli.radius.as_nanos()).unwrap_or(i64::MAX);
    let mut groups = records.cluster(radius);
    groups.retain(|g| g.files >= cli.min_files);
    if let Some(n) = cli.top {
        groups.sort_by(|a, b| b.files.cmp(&a.files).then(b.end.cmp(&a.end)));
        groups.truncate(n);
    }
    groups.sort_by_key(|g| std::cmp::Reverse(g.end));

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let now_ns = now.as_nanosecond() as i64;
    if cli.print0 {
        for g in &groups {
            for i in g.members.clone() {
                out.write_all(records.get(i).2)?;
                out.write_all(b"\0")?;
            }
        }
    } else if cli.json {
        report::json(&mut out, &records, &groups, cli.files, now_ns)?;
    } else if !cli.quiet {
        report::text(&mut out, &records, &groups, &roots, &cli, now_ns)?;
    }
    out.flush()?;
    if let Some(svg) = &cli.svg {
        let tl = timeline::Timeline::of(&records, &groups, 96);
        std::fs::write(svg, tl.svg()).with_context(|| format!("cannot write `{}`", svg.display()))?;
    }
    Ok(if warnings == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
