//! `pybackup run`: the jobs of the config file, each a backup of its
//! sources, then retention, then now and then a quick check. The same
//! code as `pybackup backup`, `forget` and `check`, given the job's keys.

use std::process::ExitCode;

use crate::cmd::config::{expand, load, now, select, state_path};
use crate::cmd::*;
use crate::ui::Ui;

/// `pybackup backup` flags for `source` of `job`, the command line's
/// flags overriding the job's keys.
pub fn backup_args(job: &jobs::Job, source: &std::path::Path, a: &RunArgs) -> BackupArgs {
    let walk_given = !a.walk.exclude.is_empty()
        || !a.walk.exclude_glob.is_empty()
        || !a.walk.include_glob.is_empty()
        || a.walk.one_file_system
        || a.walk.follow_symlinks;
    let walk = if walk_given {
        a.walk.clone()
    } else {
        WalkArgs {
            exclude: job.exclude.clone(),
            exclude_glob: job.exclude_glob.clone(),
            include_glob: job.include_glob.clone(),
            one_file_system: job.one_file_system,
            follow_symlinks: job.follow_symlinks,
        }
    };
    BackupArgs {
        src: expand(source),
        repo: expand(std::path::Path::new(&job.repository)),
        checksum: a.checksum || job.checksum,
        checkpoint: a.checkpoint.or(job.checkpoint),
        json: a.json || job.json,
        host: a.host.clone().or_else(|| job.host.clone()),
        parent: a.parent.clone().or_else(|| job.parent.clone()),
        level: LevelArgs { level: a.level.given().or(job.level), ..Default::default() },
        walk,
        open: OpenArgs::default(),
    }
}

/// The keys a job gives `forget` and `check` (`identity`, `passphrase-file`).
fn job_keys(job: &jobs::Job) -> OpenArgs {
    OpenArgs {
        identities: job.identity.iter().map(|p| expand(p)).collect(),
        passphrase: PassphraseArgs { passphrase_file: job.passphrase_file.as_deref().map(expand) },
    }
}

/// One job: every source backed up, then retention, then maybe a check.
/// `Ok(messages)`: the snapshots made; `Err`: why it failed.
fn run_job(job: &jobs::Job, a: &RunArgs, runs: u64, threads: usize, g: &Global) -> Result<(String, bool), String> {
    let mut made = Vec::new();
    let mut clean = true;
    // Its limits, unless the command line gives others.
    store::limit::set_limits(g.limit_upload.or(job.limit_upload), g.limit_download.or(job.limit_download));
    for source in &job.sources {
        let args = backup_args(job, source, a);
        let ui = Ui::new(g.quiet, g.no_progress, "backup");
        let r = crate::cmd::backup::run(&args, threads, &ui)
            .map_err(|e| format!("backup of `{}`: {e:#}", source.display()))?;
        clean &= r == ExitCode::SUCCESS;
        made.push(format!("`{}`", args.src.display()));
        if job.keep.any() {
            let f = ForgetArgs {
                repo: args.repo.clone(),
                filter: FilterArgs { host: args.host.clone(), path: Some(args.src.clone()) },
                keep_last: job.keep.last,
                keep_daily: job.keep.daily,
                keep_weekly: job.keep.weekly,
                keep_monthly: job.keep.monthly,
                dry_run: false,
                open: job_keys(job),
            };
            let r = crate::cmd::forget::run(&f, &Ui::new(true, true, "forget"))
                .map_err(|e| format!("forget in `{}`: {e:#}", f.repo.display()))?;
            clean &= r == ExitCode::SUCCESS;
        }
    }
    if job.check_every > 0 && (runs + 1).is_multiple_of(u64::from(job.check_every)) {
        let c = CheckArgs {
            repo: expand(std::path::Path::new(&job.repository)),
            read_data: false,
            read_data_subset: None,
            open: job_keys(job),
        };
        let r = crate::cmd::check::run(&c, &Ui::new(g.quiet, true, "check"))
            .map_err(|e| format!("check of `{}`: {e:#}", c.repo.display()))?;
        if r != ExitCode::SUCCESS {
            return Err(format!("check of `{}` found problems (see above)", c.repo.display()));
        }
    }
    Ok((format!("backed up {}", made.join(", ")), clean))
}

/// `pybackup run`.
pub fn run(a: &RunArgs, threads: usize, g: &Global) -> anyhow::Result<ExitCode> {
    let cfg = load(&a.config)?;
    let chosen = select(&cfg, &a.names)?;
    let state = state_path(&a.state)?;
    let mut failed = Vec::new();
    let mut warned = Vec::new();
    for job in chosen {
        let runs = jobs::state::State::load(&state).map(|s| s.jobs.get(&job.name).map_or(0, |j| j.runs)).unwrap_or(0);
        let result = run_job(job, a, runs, threads, g);
        let t = now();
        let r = jobs::state::State::update(&state, &job.name, |s| {
            s.runs += 1;
            match &result {
                Ok((m, _)) => s.last_success = Some(jobs::state::Event { time: t, message: m.clone() }),
                Err(m) => s.last_failure = Some(jobs::state::Event { time: t, message: m.clone() }),
            }
        });
        if let Err(e) = r {
            eprintln!("pybackup: warning: job {}: cannot record the run: {}", job.name, cli::error_chain(&e));
        }
        match result {
            Ok((_, true)) => {}
            Ok((_, false)) => warned.push(job.name.clone()),
            Err(m) => {
                eprintln!("pybackup: job {} failed: {m}", job.name);
                failed.push(job.name.clone());
            }
        }
    }
    if !g.quiet || !failed.is_empty() {
        let mut parts = Vec::new();
        if !failed.is_empty() {
            parts.push(format!("failed: {}", failed.join(", ")));
        }
        if !warned.is_empty() {
            parts.push(format!("done with warnings: {}", warned.join(", ")));
        }
        if parts.is_empty() {
            parts.push("every job done".into());
        }
        eprintln!("pybackup: run: {}", parts.join("; "));
    }
    Ok(code(failed.is_empty() && warned.is_empty()))
}
