//! `pybackup migrate`: a repository brought to the current format.

use std::process::ExitCode;

use anyhow::Context;

use crate::cmd::*;

pub fn run(a: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let keys = crate::cmd::key::open_keys(&a.open)?;
    let written = repo::migrate(&a.repo, &keys).with_context(|| format!("cannot migrate `{}`", a.repo.display()))?;
    println!(
        "pybackup: {}: {} snapshot record(s) copied beside their archives; the repository is at format version {}",
        a.repo.display(),
        written.len(),
        repo::REPOSITORY_VERSION
    );
    Ok(code(true))
}
