//! `pybackup key`: recovery keys and their shares.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use zeroize::Zeroizing;

use crate::cmd::*;

pub fn run(c: &KeyCommand) -> anyhow::Result<ExitCode> {
    match c {
        KeyCommand::New { output } => {
            let key = keys::RecoveryKey::generate();
            write_secret(output.as_deref(), &key.to_keygen_file())?;
            eprintln!("pybackup: public key: {}", key.recipient());
        }
        KeyCommand::Split { key, threshold, shares } => {
            let text = read_input(key)?;
            let key =
                keys::RecoveryKey::parse(&text).with_context(|| format!("cannot read a key from {}", name(key)))?;
            let made = keys::split(&key, *threshold, *shares)?;
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "# pybackup shares of the recovery key with public key {}: any {threshold} of these {shares} give it back \
                 (`pybackup key combine`); give each to a different person or place.",
                key.recipient()
            )?;
            for s in &made {
                writeln!(out, "{}", s.to_line())?;
            }
        }
        KeyCommand::Combine { files, output } => {
            let mut shares = Vec::new();
            for f in files {
                let text = read_input(f)?;
                shares.extend(keys::Share::parse_all(&text).with_context(|| format!("in {}", name(f)))?);
            }
            let key = keys::combine(&shares)?;
            write_secret(output.as_deref(), &key.to_keygen_file())?;
            eprintln!("pybackup: put together from {} share(s): public key {}", shares.len(), key.recipient());
        }
    }
    Ok(code(true))
}

fn name(p: &Path) -> String {
    if p == Path::new("-") {
        "standard input".into()
    } else {
        format!("`{}`", p.display())
    }
}

/// The text of a file, or of standard input for `-` (kept in memory that
/// is zeroed when dropped: it may hold a secret).
fn read_input(p: &PathBuf) -> anyhow::Result<Zeroizing<String>> {
    let mut text = Zeroizing::new(String::new());
    if p == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).context("cannot read standard input")?;
    } else {
        std::fs::File::open(p)
            .and_then(|mut f| f.read_to_string(&mut text))
            .with_context(|| format!("cannot read `{}`", p.display()))?;
    }
    Ok(text)
}

/// Writes a secret to a new file readable by its owner only (never over an
/// existing one), or to standard output.
fn write_secret(out: Option<&Path>, text: &str) -> anyhow::Result<()> {
    match out {
        None => std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write to standard output"),
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot create `{}` (an existing file is never replaced)", p.display()))?;
            f.write_all(text.as_bytes())
                .and_then(|()| f.sync_all())
                .with_context(|| format!("cannot write `{}`", p.display()))
        }
    }
}
