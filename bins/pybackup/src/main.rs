//! `pybackup`: the command-line front end of the xtar crates. Each command
//! is a module of `cmd/`; this file parses the flags, dispatches, and turns
//! an error into its message, its hint and exit code 2.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod cmd;
mod flags;
mod output;
mod ui;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use cmd::jobs;
use flags::{Cli, Command};
use ui::Ui;

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

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let g = &cli.global;
    let jobs = jobs(g);
    store::limit::set_limits(g.limit_upload, g.limit_download);
    match cli.command {
        Command::Compress(a) => cmd::compress::run(&a, g),
        Command::Launch(a) => cmd::launch::run(&a, g),
        Command::Expand(a) => cmd::expand::run(&a, g),
        Command::Extract(a) => cmd::extract::run(&a, g),
        Command::List(a) => cmd::list::run(&a, g),
        Command::Manifest(a) => cmd::manifest::run(&a, jobs, &Ui::new(g.quiet, true, "manifest")),
        Command::Struct(c) => cmd::structure::run(&c, &Ui::new(g.quiet, true, "struct")),
        Command::Diff(a) => cmd::diff::run(&a, jobs, &Ui::new(g.quiet, true, "diff")),
        Command::Verify(a) => cmd::verify::run(&a, jobs, &Ui::new(g.quiet, g.no_progress, "verify")),
        Command::Salvage(a) => cmd::salvage::run(&a, jobs, &Ui::new(g.quiet, g.no_progress, "salvage")),
        Command::Backup(a) => cmd::backup::run(&a, jobs, &Ui::new(g.quiet, g.no_progress, "backup")),
        Command::Snapshots(a) => cmd::snapshots::run(&a),
        Command::Restore(a) => cmd::restore::run(&a, jobs, g.verbose, &Ui::new(g.quiet, g.no_progress, "restore")),
        Command::Forget(a) => cmd::forget::run(&a, &Ui::new(g.quiet, true, "forget")),
        Command::Copy(a) => cmd::copy::run(&a, &Ui::new(g.quiet, g.no_progress, "copy")),
        Command::Check(a) => cmd::check::run(&a, &Ui::new(g.quiet, true, "check")),
        Command::Migrate(a) => cmd::migrate::run(&a),
        Command::Init(a) => cmd::key::init(&a),
        Command::Key(c) => cmd::key::run(&c),
        Command::Protect(a) => cmd::protect::run(&a, &Ui::new(g.quiet, true, "protect")),
        Command::Repair(a) => cmd::repair::run(&a, &Ui::new(g.quiet, true, "repair")),
        Command::Run(a) => cmd::run::run(&a, jobs, g),
        Command::Status(a) => cmd::status::run(&a),
        Command::Schedule(c) => cmd::schedule::run(&c),
        Command::InitConfig(a) => cmd::config::init(&a),
        Command::Config(c) => cmd::config::run(&c),
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
