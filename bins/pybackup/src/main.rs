//! `pybackup`: the command-line front end of the xtar crates.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod flags;
mod output;
mod protect;
mod salvage;
mod sets;
mod snapshots;
mod ui;
mod volumes;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};
use clap::{CommandFactory, Parser};

use flags::{Cli, Command, WalkArgs};
use ui::{human, Ui};

fn main() -> ExitCode {
    let args = Cli::parse();
    cli::exit("pybackup", run(args), hint)
}

/// What the user can do about an error, in terms of this program's flags
/// and commands (the libraries' messages name neither).
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    e.chain().find_map(|c| {
        if let Some(fsutil::Error::Exists { .. }) = c.downcast_ref::<fsutil::Error>() {
            return Some("use --overwrite to replace it");
        }
        if let Some(parity::Error::Exists(_)) = c.downcast_ref::<parity::Error>() {
            return Some("use --overwrite to replace it");
        }
        if let Some(x) = c.downcast_ref::<xtar::Error>() {
            return match x {
                xtar::Error::Exists { .. } => Some("use --overwrite to replace it"),
                _ => None,
            };
        }
        match c.downcast_ref::<repo::Error>()? {
            repo::Error::NoRetentionRule => {
                Some("give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly")
            }
            repo::Error::MissingArchive { .. } | repo::Error::MissingMember { .. } => {
                Some("run `pybackup check REPO` to see what the repository lacks; nothing was deleted")
            }
            repo::Error::Xtar(xtar::Error::Exists { .. }) => Some("use --overwrite to replace it"),
            _ => None,
        }
    })
}

pub(crate) use cli::code;

fn jobs(n: Option<usize>) -> usize {
    n.filter(|&n| n > 0).unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    let jobs = jobs(g.jobs);
    match cli.command {
        Command::Compress(a) => {
            let ui = Ui::new(g.quiet, g.no_progress, "compress");
            let select = selection(&a, &ui)?;
            let opts = xtar::CompressOptions {
                level: a.level.value(),
                jobs,
                walk: walk_options(&a.walk)?,
                skip_inodes: Vec::new(),
                select,
                root_label: None,
            };
            let started = Instant::now();
            let (summary, out_name) = match a.output.as_deref() {
                Some(p) if p == Path::new("-") => {
                    if a.redundancy.is_some() || a.volume_size.is_some() {
                        bail!("--redundancy and --volume-size need an output file, not standard output");
                    }
                    let work = a.work_dir.clone().unwrap_or_else(std::env::temp_dir);
                    let stdout = std::io::stdout();
                    let mut lock = stdout.lock();
                    let s = xtar::compress_to_writer(&a.src, &mut lock, &work, &opts, &ui)?;
                    (s, "standard output".to_string())
                }
                out => {
                    let out = match out {
                        Some(p) => p.to_path_buf(),
                        None => default_output(&a.src)?,
                    };
                    if let Some(size) = a.volume_size {
                        let base = volumes::base_of_output(&out);
                        let vopts = ::volumes::VolumeOptions { size, overwrite: a.overwrite };
                        let v = ::volumes::compress_volumes(&a.src, &base, &opts, &vopts, &ui)
                            .with_context(|| format!("cannot compress `{}`", a.src.display()))?;
                        let files: Vec<PathBuf> = v.volumes.iter().map(|(p, _)| p.clone()).collect();
                        if let Some(r) = a.redundancy {
                            protect::after_compress(&files, &base, r, Some(size), a.overwrite, &ui)?;
                        }
                        let name = format!(
                            "{} volumes `{}` … `{}` ({} split files)",
                            files.len(),
                            files[0].display(),
                            files[files.len() - 1].display(),
                            v.split_files
                        );
                        (v.summary, name)
                    } else {
                        let s = xtar::compress_to_path(&a.src, &out, &opts, a.overwrite, &ui)
                            .with_context(|| format!("cannot compress `{}`", a.src.display()))?;
                        if let Some(r) = a.redundancy {
                            protect::after_compress(
                                std::slice::from_ref(&out),
                                &protect::base_of(&out),
                                r,
                                None,
                                a.overwrite,
                                &ui,
                            )?;
                        }
                        (s, format!("`{}`", out.display()))
                    }
                }
            };
            ui.finish();
            if !g.quiet {
                ui.say(&format!(
                    "pybackup: {} files, {} dirs, {} links: {} into {} ({}) in {:.1} s",
                    summary.files,
                    summary.dirs,
                    summary.links,
                    human(summary.bytes_in),
                    out_name,
                    human(summary.bytes_out),
                    started.elapsed().as_secs_f64()
                ));
            }
            Ok(code(summary.warnings == 0 && ui.warnings() == 0))
        }
        Command::Launch(a) => {
            let ui = Ui::new(g.quiet, g.no_progress, "launch");
            let r = xtar::launch(&a.archive, &a.dir, a.overwrite, &ui)
                .with_context(|| format!("cannot launch `{}`", a.archive.display()))?;
            ui.finish();
            if g.verbose {
                ui.say(&format!("pybackup: {} members written to `{}`", r.members, a.dir.display()));
            }
            Ok(code(r.problems == 0))
        }
        Command::Expand(a) => {
            let ui = Ui::new(g.quiet, g.no_progress, "expand");
            let opts = xtar::ExtractOptions { overwrite: a.overwrite, jobs, paths: Vec::new() };
            let r = xtar::expand(&a.dir, &a.dest, &opts, &ui)
                .with_context(|| format!("cannot expand `{}`", a.dir.display()))?;
            ui.finish();
            report_restore(&ui, g.verbose, &r);
            Ok(code(r.is_clean()))
        }
        Command::Extract(a) => {
            let ui = Ui::new(g.quiet, g.no_progress, "extract");
            let paths = a.paths.iter().map(|p| normalize_request(p)).collect::<anyhow::Result<Vec<_>>>()?;
            let opts = xtar::ExtractOptions { overwrite: a.overwrite, jobs, paths };
            if let Some(set) = volumes::set_of(&a.archive, a.single_volume)? {
                return volumes::extract_cmd(&set, &a.archive, &a.dest, &opts, g.verbose, &ui);
            }
            let r = xtar::extract(&a.archive, &a.dest, &opts, &ui)
                .with_context(|| format!("cannot extract `{}`", a.archive.display()))?;
            ui.finish();
            report_restore(&ui, g.verbose, &r);
            Ok(code(r.is_clean()))
        }
        Command::List(a) => {
            let ui = Ui::new(true, true, "list");
            if let Some(set) = volumes::set_of(&a.archive, a.single_volume)? {
                return volumes::list_cmd(&set, a.json, &Ui::new(g.quiet, true, "list"));
            }
            let stdout = std::io::stdout();
            let mut out = std::io::BufWriter::new(stdout.lock());
            let mut write_err: Option<std::io::Error> = None;
            let problems = xtar::list(&a.archive, &ui, |l| {
                if write_err.is_none() {
                    let r = if a.json { output::json_listed(&mut out, &l) } else { output::text_listed(&mut out, &l) };
                    write_err = r.err();
                }
            })
            .with_context(|| format!("cannot list `{}`", a.archive.display()))?;
            if let Some(e) = write_err {
                return Err(e.into());
            }
            out.flush()?;
            Ok(code(problems == 0))
        }
        Command::Manifest(a) => snapshots::manifest_cmd(&a, jobs, &Ui::new(g.quiet, true, "manifest")),
        Command::Struct(c) => snapshots::struct_cmd(&c, &Ui::new(g.quiet, true, "struct")),
        Command::Diff(a) => snapshots::diff_cmd(&a, jobs, &Ui::new(g.quiet, true, "diff")),
        Command::Verify(a) => snapshots::verify_cmd(&a, jobs, &Ui::new(g.quiet, g.no_progress, "verify")),
        Command::Salvage(a) => salvage::salvage_cmd(&a, jobs, &Ui::new(g.quiet, g.no_progress, "salvage")),
        Command::Backup(a) => sets::backup_cmd(&a, jobs, &Ui::new(g.quiet, g.no_progress, "backup")),
        Command::Snapshots(a) => sets::snapshots_cmd(&a),
        Command::Restore(a) => sets::restore_cmd(&a, jobs, g.verbose, &Ui::new(g.quiet, g.no_progress, "restore")),
        Command::Forget(a) => sets::forget_cmd(&a, &Ui::new(g.quiet, true, "forget")),
        Command::Check(a) => sets::check_cmd(&a, &Ui::new(g.quiet, true, "check")),
        Command::Protect(a) => protect::protect_cmd(&a, &Ui::new(g.quiet, true, "protect")),
        Command::Repair(a) => protect::repair_cmd(&a, &Ui::new(g.quiet, true, "repair")),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "pybackup", &mut std::io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

pub(crate) fn report_restore(ui: &Ui, verbose: bool, r: &xtar::ExtractReport) {
    if verbose || r.problems > 0 {
        ui.say(&format!(
            "pybackup: {} files ({}), {} dirs, {} links restored; {} problems",
            r.files,
            human(r.bytes),
            r.dirs,
            r.links,
            r.problems
        ));
    }
}

/// The selection asked for with --files-from or --changed-within.
fn selection(a: &flags::CompressArgs, ui: &Ui) -> anyhow::Result<Option<xtar::Select>> {
    use std::os::unix::ffi::OsStrExt;
    if let Some(d) = a.changed_within {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let t = now.saturating_sub(d);
        return Ok(Some(xtar::Select::ChangedSince(t.as_secs() as i64, t.subsec_nanos())));
    }
    let Some(list) = &a.files_from else { return Ok(None) };
    let mut bytes = Vec::new();
    if list == Path::new("-") {
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut bytes)
            .context("cannot read the list from standard input")?;
    } else {
        bytes = std::fs::read(list).with_context(|| format!("cannot read `{}`", list.display()))?;
    }
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let src_abs = lexical(&cwd.join(&a.src));
    let src_canon = a.src.canonicalize().unwrap_or_else(|_| src_abs.clone());
    let sep = if a.null { b'\0' } else { b'\n' };
    let mut set = std::collections::HashSet::new();
    for raw in bytes.split(|&b| b == sep).filter(|l| !l.is_empty()) {
        let p = lexical(&cwd.join(std::ffi::OsStr::from_bytes(raw)));
        let rel = p.strip_prefix(&src_abs).or_else(|_| p.strip_prefix(&src_canon));
        match rel {
            Ok(r) if p.symlink_metadata().is_ok() => {
                if !r.as_os_str().is_empty() {
                    set.insert(r.as_os_str().as_bytes().to_vec());
                }
            }
            Ok(_) => ui.say_warning(&format!("`{}` from the list does not exist; skipped", p.display())),
            Err(_) => {
                ui.say_warning(&format!("`{}` from the list is not inside `{}`; skipped", p.display(), a.src.display()))
            }
        }
    }
    Ok(Some(xtar::Select::Paths(set)))
}

/// `a/./b/../c` → `a/c`, without touching the file system.
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            c => out.push(c),
        }
    }
    out
}

/// Turns the walk flags into walk options, checking every glob.
pub(crate) fn walk_options(a: &WalkArgs) -> anyhow::Result<walk::Options> {
    a.options()
}

/// NAME.xtar in the current directory, or beside SRC when the current
/// directory is inside SRC, so that the archive never lands in its source.
fn default_output(src: &Path) -> anyhow::Result<PathBuf> {
    let src_abs = src.canonicalize().with_context(|| format!("cannot read `{}`", src.display()))?;
    let name = match src_abs.file_name() {
        Some(n) => n.to_os_string(),
        None => bail!("cannot name the archive of `{}`; give one with -o", src.display()),
    };
    let cwd = std::env::current_dir().context("cannot read the current directory")?;
    let cwd = cwd.canonicalize().unwrap_or(cwd);
    let dir = if cwd.starts_with(&src_abs) {
        match src_abs.parent() {
            Some(p) => p.to_path_buf(),
            None => bail!("the current directory is inside `{}`; give the output with -o", src.display()),
        }
    } else {
        cwd
    };
    let mut file = name;
    file.push(".xtar");
    Ok(dir.join(file))
}

/// A path asked for on the command line, as the archive spells it.
pub(crate) fn normalize_request(p: &Path) -> anyhow::Result<Vec<u8>> {
    use std::os::unix::ffi::OsStrExt;
    let mut parts: Vec<&[u8]> = Vec::new();
    for c in p.components() {
        match c {
            std::path::Component::Normal(n) => parts.push(n.as_bytes()),
            std::path::Component::CurDir => {}
            _ => bail!("`{}`: give paths relative to the archive root, without `..`", p.display()),
        }
    }
    if parts.is_empty() {
        bail!("`{}` names no path inside the archive", p.display());
    }
    Ok(parts.join(&b'/'))
}
