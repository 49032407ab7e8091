//! `pyactivity`: groups the files of a tree by when they changed.

mod formats;
mod html;
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
/// Timelines for disk auditors: --bodyfile writes The Sleuth Kit's bodyfile
/// (`mactime -b FILE` reads it; in names `%`, `|` and bytes that are not
/// UTF-8 are written `%HH`, as mactime decodes them, control characters
/// `\xHH` and `\` `\\`, as mactime cannot carry them);
/// --csv one row per file with its group number (RFC 4180 quoting; in
/// paths, bytes that are not UTF-8 are `\xHH` and `\` is `\\`); --json
/// JSON Lines; --html a report to explore in a browser.
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
    /// Every time of each file: a MACB timeline (modified, accessed,
    /// changed, born), each file up to four events, as mactime makes.
    #[arg(long, conflicts_with = "time")]
    pub all_times: bool,
    /// Write every entry scanned as a TSK 3.x bodyfile to FILE (`-`:
    /// standard output), for `mactime -b FILE`.
    #[arg(long, value_name = "FILE")]
    pub bodyfile: Option<PathBuf>,
    /// Write one CSV row per file of the shown groups to FILE (`-`:
    /// standard output): group, time, time_ns, macb, size, path.
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write a self-contained HTML report to FILE: the timeline with axes,
    /// zoom and pan, the groups marked, and the files of a group on a
    /// click.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
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
    /// Birth (creation), where the file system records it.
    Birth,
}

impl TimeField {
    /// The flag of this time in a MACB string.
    pub fn flag(self) -> u8 {
        match self {
            TimeField::Mtime => activity::MTIME,
            TimeField::Atime => activity::ATIME,
            TimeField::Ctime => activity::CTIME,
            TimeField::Birth => activity::BIRTH,
        }
    }
}

/// A writer for FILE, or standard output for `-`.
fn output(p: &std::path::Path) -> anyhow::Result<Box<dyn Write>> {
    if p == std::path::Path::new("-") {
        return Ok(Box::new(std::io::BufWriter::with_capacity(1 << 16, std::io::stdout())));
    }
    let f = std::fs::File::create(p).with_context(|| format!("cannot write `{}`", p.display()))?;
    Ok(Box::new(std::io::BufWriter::with_capacity(1 << 16, f)))
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

/// The files of `groups`, one row each, in time order.
fn write_csv(w: &mut dyn Write, r: &activity::Records, groups: &[activity::Group], cli: &Cli) -> std::io::Result<()> {
    writeln!(w, "group,time,time_ns,macb,size,path")?;
    let mut shown: Vec<&activity::Group> = groups.iter().collect();
    shown.sort_by_key(|g| g.start);
    for g in shown {
        for i in g.members.clone() {
            let (t, size, p) = r.get(i);
            let what = if cli.all_times { r.what(i) } else { cli.time.flag() };
            let time = match jiff::Timestamp::from_nanosecond(i128::from(t)) {
                Ok(ts) => ts.to_string(),
                Err(_) => String::new(),
            };
            writeln!(
                w,
                "{},{},{},{},{},{}",
                g.number,
                time,
                t,
                String::from_utf8_lossy(&activity::macb(what)),
                size,
                formats::csv_field(&formats::csv_path(p))
            )?;
        }
    }
    Ok(())
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
    let mut body = cli.bodyfile.as_deref().map(output).transpose()?;
    let mut body_buf: Vec<u8> = Vec::with_capacity(1 << 16);
    let mut body_err: Option<std::io::Error> = None;
    let mut no_birth = 0u64;
    let in_range = |t: i64| !(since.is_some_and(|s| t < s) || until.is_some_and(|u| t > u));
    let ns = |sec: i64, nsec: u32| sec.saturating_mul(1_000_000_000).saturating_add(i64::from(nsec));
    for root in &roots {
        let prefix = root.as_os_str().as_bytes().to_vec();
        let mut path = prefix.clone();
        walk::walk(
            root,
            &opts,
            |e| {
                let m = &e.meta;
                // One buffer for every path, not an allocation each.
                path.truncate(prefix.len());
                if !e.path.is_empty() {
                    if !path.ends_with(b"/") {
                        path.push(b'/');
                    }
                    path.extend_from_slice(&e.path);
                }
                let mut times = [
                    (ns(m.mtime, m.mtime_nsec), activity::MTIME),
                    (ns(m.atime, m.atime_nsec), activity::ATIME),
                    (ns(m.ctime, m.ctime_nsec), activity::CTIME),
                    (0, 0),
                ];
                let mut n_times = 3;
                if let Some((s, n)) = m.birth {
                    times[3] = (ns(s, n), activity::BIRTH);
                    n_times = 4;
                }
                let times = &mut times[..n_times];
                if let Some(w) = body.as_mut() {
                    if body_err.is_none() && times.iter().any(|t| in_range(t.0)) {
                        formats::body_line(&mut body_buf, &path, e.kind, m);
                        if body_buf.len() >= 1 << 16 {
                            body_err = w.write_all(&body_buf).err();
                            body_buf.clear();
                        }
                    }
                }
                if e.kind != walk::Kind::File {
                    return;
                }
                if cli.all_times {
                    let kept: Vec<(i64, u8)> = times.iter().copied().filter(|t| in_range(t.0)).collect();
                    if !kept.is_empty() {
                        records.push_events(&kept, m.size, &path);
                    }
                    return;
                }
                let Some(&(t, _)) = times.iter().find(|t| t.1 == cli.time.flag()) else {
                    no_birth += 1;
                    return;
                };
                if in_range(t) {
                    records.push(t, m.size, &path);
                }
            },
            |err| {
                warnings += 1;
                eprintln!("pyactivity: warning: {}", cli::error_chain(&err));
            },
        )
        .with_context(|| format!("cannot scan `{}`", root.display()))?;
    }
    if let Some(mut w) = body.take() {
        if let Some(e) = body_err {
            return Err(e).context("cannot write the bodyfile");
        }
        w.write_all(&body_buf).and_then(|()| w.flush()).context("cannot write the bodyfile")?;
    }
    if no_birth > 0 {
        warnings += 1;
        eprintln!("pyactivity: warning: {no_birth} files have no birth time on their file system; left out");
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
        std::fs::write(svg, tl.svg(&records, &groups)).with_context(|| format!("cannot write `{}`", svg.display()))?;
    }
    if let Some(csv) = &cli.csv {
        let mut w = output(csv)?;
        write_csv(&mut w, &records, &groups, &cli).and_then(|()| w.flush()).context("cannot write the CSV")?;
    }
    if let Some(p) = &cli.html {
        let page = html::page(&records, &groups, &roots, &cli, now_ns);
        std::fs::write(p, page).with_context(|| format!("cannot write `{}`", p.display()))?;
    }
    Ok(if warnings == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
