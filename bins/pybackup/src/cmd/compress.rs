//! `pybackup compress`: a tree into one archive, a stream or a volume set, with recovery data when asked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context};

use crate::cmd::*;
use crate::ui::{human, Ui};

/// `pybackup compress`.
pub fn run(a: &CompressArgs, g: &Global) -> anyhow::Result<ExitCode> {
    let ui = Ui::new(g.quiet, g.no_progress, "compress");
    let select = selection(a, &ui)?;
    let zstd = a.codec == Some(CodecArg::Zstd);
    if zstd {
        if a.level.given().is_some() {
            bail!("--level is deflate's; with --codec zstd give --zstd-level (1 to 22)");
        }
        if a.format_version.is_some() || a.volume_size.is_some() {
            bail!("--codec zstd writes format version 6, as a single file: drop --format-version and --volume-size");
        }
        if !a.encrypt.recipients.is_empty() || !a.encrypt.recipients_files.is_empty() {
            bail!("zstd archives are not encrypted (format version 6 has no encrypted form): drop --codec zstd or the recipients");
        }
    } else if a.zstd_level.is_some() {
        bail!("--zstd-level needs --codec zstd");
    }
    let opts = xtar::CompressOptions {
        level: if zstd { a.zstd_level.unwrap_or(xtar::codec::DEFAULT_LEVEL) } else { a.level.value() },
        codec: if zstd { xtar::Codec::Zstd } else { xtar::Codec::Deflate },
        jobs: jobs(g),
        walk: a.walk.options()?,
        skip_inodes: Vec::new(),
        select,
        root_label: None,
        version: a.format_version.unwrap_or(xtar::format::PACKED_VERSION),
        spill_dir: a.work_dir.clone(),
        recipients: crate::cmd::key::recipients(&a.encrypt)?,
    };
    if !opts.recipients.is_empty() && a.format_version == Some(2) {
        bail!("encrypted archives are written in format version 4 (version 3, encrypted): drop --format-version 2");
    }
    if a.format_version == Some(3) && a.volume_size.is_some() && opts.recipients.is_empty() {
        bail!("volume sets are written in format version 2; drop --format-version 3 or --volume-size");
    }
    let ways_in = opts.recipients.iter().collect::<std::collections::HashSet<_>>().len();
    if ways_in == 1 {
        ui.say(
            "pybackup: note: encrypted to one key only: if that key (or its passphrase) is lost, so is the archive; \
             give a second recipient kept apart, such as a printed recovery key (`pybackup key new`, and \
             `key split` for shares of it)",
        );
    }
    let started = Instant::now();
    let mut stdout = None;
    let output = match a.output.as_deref() {
        Some(p) if p == Path::new("-") => {
            if a.redundancy.is_some() || a.volume_size.is_some() {
                bail!("--redundancy and --volume-size need an output file, not standard output");
            }
            let work_dir = a.work_dir.clone().unwrap_or_else(std::env::temp_dir);
            ::volumes::Output::Stream { to: stdout.insert(std::io::stdout().lock()), work_dir }
        }
        out => {
            let out = match out {
                Some(p) => p.to_path_buf(),
                None => default_output(&a.src)?,
            };
            match a.volume_size {
                Some(size) => ::volumes::Output::Volumes { base: ::volumes::set_base(&out), size },
                None => ::volumes::Output::File(out),
            }
        }
    };
    let encrypted = !opts.recipients.is_empty();
    let job = ::volumes::Job { output, opts, overwrite: a.overwrite, redundancy: a.redundancy };
    let done =
        ::volumes::compress(&a.src, job, &ui).with_context(|| format!("cannot compress `{}`", a.src.display()))?;
    ui.finish();
    if let (Some(p), Some(r)) = (&done.protected, a.redundancy) {
        if !ui.quiet() {
            say_protected(p, r, &ui, started.elapsed().as_secs_f64());
        }
    }
    let out_name = match done.files.as_slice() {
        [] => "standard output".to_string(),
        [(one, _)] if a.volume_size.is_none() => format!("`{}`", one.display()),
        files if encrypted => format!(
            "{} pieces `{}` … `{}` of one encrypted archive",
            files.len(),
            files[0].0.display(),
            files[files.len() - 1].0.display()
        ),
        files => format!(
            "{} volumes `{}` … `{}` ({} split files)",
            files.len(),
            files[0].0.display(),
            files[files.len() - 1].0.display(),
            done.split_files
        ),
    };
    let summary = &done.summary;
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

/// The selection asked for with --files-from or --changed-within.
fn selection(a: &CompressArgs, ui: &Ui) -> anyhow::Result<Option<xtar::Select>> {
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
    let (select, skipped) = xtar::Select::from_list(&a.src, &cwd, &bytes, if a.null { b'\0' } else { b'\n' });
    for (p, why) in skipped {
        ui.say_warning(&match why {
            xtar::ListSkip::Missing => format!("`{}` from the list does not exist; skipped", p.display()),
            _ => format!("`{}` from the list is not inside `{}`; skipped", p.display(), a.src.display()),
        });
    }
    Ok(Some(select))
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
