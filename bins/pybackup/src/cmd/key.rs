//! `pybackup key`: recovery keys and their shares.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use keys::age::secrecy::SecretString;
use zeroize::Zeroizing;

use crate::cmd::*;

pub fn run(c: &KeyCommand) -> anyhow::Result<ExitCode> {
    match c {
        KeyCommand::New { out } => {
            let key = keys::RecoveryKey::generate();
            write_key(out, &key)?;
            eprintln!("pybackup: public key: {}", key.recipient());
        }
        KeyCommand::Split { key, threshold, shares, passphrase } => {
            let bytes = read_input(key)?;
            let key = keys::RecoveryKey::open(&bytes, || ask_passphrase(passphrase, key))
                .with_context(|| format!("cannot read a key from {}", name(key)))?;
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
        KeyCommand::List { repo } => {
            let r = repo::Repo::open(repo)?;
            let ring = r.keyring().with_context(|| format!("`{}` is not encrypted", repo.display()))?;
            println!("# {}: encrypted to master key {}", repo.display(), ring.recipient);
            for w in ring.ways() {
                println!("{}\t{}", w.label, w.recipient);
            }
        }
        KeyCommand::Add { repo, label, recipient, new_key, protect, open } => {
            let keys = open_keys(open)?;
            anyhow::ensure!(!keys.is_empty(), "adding a way in needs a key that opens `{}` now (-i)", repo.display());
            let r = repo::Repo::open_keyed(repo, &keys, None)?;
            let (Some(ring), Some(master)) = (r.keyring(), r.master_key()) else {
                anyhow::bail!("`{}` is not encrypted", repo.display());
            };
            let mut ring = ring.clone();
            let made = new_key.as_ref().map(|_| keys::RecoveryKey::generate());
            let to = match (&made, recipient) {
                (Some(k), _) => k.recipient(),
                (None, Some(r)) => r.clone(),
                (None, None) => anyhow::bail!("give --recipient or --new-key"),
            };
            ring.add(master, label, &to)?;
            if let (Some(k), Some(path)) = (&made, new_key) {
                let out =
                    KeyOutArgs { output: Some(path.clone()), protect: *protect, passphrase: open.passphrase.clone() };
                write_key(&out, k)?;
            }
            r.write_keyring(&ring)?;
            eprintln!("pybackup: {}: way in `{label}` added ({to}); no archive was rewritten", repo.display());
        }
        KeyCommand::Remove { repo, label, open } => {
            let keys = open_keys(open)?;
            let r = repo::Repo::open(repo)?;
            let ring = r.keyring().with_context(|| format!("`{}` is not encrypted", repo.display()))?;
            let mut ring = ring.clone();
            ring.remove(label)?;
            // The key given must open the keyring through a way that stays.
            anyhow::ensure!(
                keys.iter().any(|k| ring.open(k).is_ok()),
                "removing `{label}` needs a key of a way in that stays (-i): nobody is locked out by mistake"
            );
            r.write_keyring(&ring)?;
            eprintln!(
                "pybackup: {}: way in `{label}` removed from the keyring (archives made before hold copies of the keyring \
                 that still have it)",
                repo.display()
            );
        }
        KeyCommand::Combine { files, out } => {
            let mut shares = Vec::new();
            for f in files {
                let bytes = read_input(f)?;
                let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
                shares.extend(keys::Share::parse_all(&text).with_context(|| format!("in {}", name(f)))?);
            }
            let key = keys::combine(&shares)?;
            write_key(out, &key)?;
            eprintln!("pybackup: put together from {} share(s): public key {}", shares.len(), key.recipient());
        }
    }
    Ok(code(true))
}

/// The keys `a` names, to open encrypted archives with: key files (a
/// passphrase asked for those protected by one) and recovery keys put
/// together from the share lines of the files that hold them.
pub fn open_keys(a: &OpenArgs) -> anyhow::Result<xtar::Keys> {
    let mut found = Vec::new();
    let mut shares = Vec::new();
    for f in &a.identities {
        let bytes = read_input(f)?;
        let text = Zeroizing::new(String::from_utf8_lossy(&bytes).into_owned());
        if text.contains(keys::SHARE_MAGIC) {
            shares.extend(keys::Share::parse_all(&text).with_context(|| format!("in {}", name(f)))?);
            continue;
        }
        let key = keys::RecoveryKey::open(&bytes, || ask_passphrase(&a.passphrase, f))
            .with_context(|| format!("cannot read a key from {}", name(f)))?;
        found.push(key);
    }
    if !shares.is_empty() {
        found.push(keys::combine(&shares).context("cannot put the key together from the shares given")?);
    }
    Ok(std::sync::Arc::new(found))
}

/// The recipients `a` names (checked), to encrypt a new archive to.
pub fn recipients(a: &EncryptArgs) -> anyhow::Result<Vec<String>> {
    let mut out = a.recipients.clone();
    for f in &a.recipients_files {
        let text = std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            anyhow::ensure!(
                !line.to_ascii_uppercase().starts_with("AGE-SECRET-KEY-"),
                "`{}` line {}: a secret key, not a recipient; give its public key (age1…)",
                f.display(),
                n + 1
            );
            out.push(line.to_string());
        }
    }
    keys::seal::parse_recipients(&out)?;
    Ok(out)
}

/// Writes a key as `out` says: plain, or protected by a new passphrase.
fn write_key(out: &KeyOutArgs, key: &keys::RecoveryKey) -> anyhow::Result<()> {
    if out.protect {
        let pass = new_passphrase(&out.passphrase)?;
        write_secret(out.output.as_deref(), &key.to_protected_file(&pass)?)
    } else {
        write_secret(out.output.as_deref(), key.to_keygen_file().as_bytes())
    }
}

/// The passphrase of an existing key file: from `--passphrase-file`, or
/// asked on the terminal.
fn ask_passphrase(a: &PassphraseArgs, file: &Path) -> keys::Result<SecretString> {
    read_passphrase(a, &format!("passphrase of {}: ", name(file)), false)
        .map_err(|e| keys::Error::NoPassphrase(format!("{e:#}")))
}

/// A passphrase for a new key file: from `--passphrase-file`, or asked
/// twice on the terminal.
fn new_passphrase(a: &PassphraseArgs) -> anyhow::Result<SecretString> {
    read_passphrase(a, "passphrase for the new key file: ", true)
}

fn read_passphrase(a: &PassphraseArgs, prompt: &str, twice: bool) -> anyhow::Result<SecretString> {
    let pass = match &a.passphrase_file {
        Some(f) => {
            let text =
                Zeroizing::new(std::fs::read_to_string(f).with_context(|| format!("cannot read `{}`", f.display()))?);
            Zeroizing::new(text.lines().next().unwrap_or_default().to_string())
        }
        None => {
            let first = Zeroizing::new(
                rpassword::prompt_password(prompt)
                    .context("no passphrase: give --passphrase-file, or run where a terminal can ask")?,
            );
            if twice {
                let again = Zeroizing::new(rpassword::prompt_password("the same passphrase again: ")?);
                anyhow::ensure!(*first == *again, "the two passphrases differ; nothing was written");
            }
            first
        }
    };
    anyhow::ensure!(!pass.is_empty(), "an empty passphrase protects nothing; nothing was written");
    Ok(SecretString::from(pass.to_string()))
}

fn name(p: &Path) -> String {
    if p == Path::new("-") {
        "standard input".into()
    } else {
        format!("`{}`", p.display())
    }
}

/// The bytes of a file, or of standard input for `-` (kept in memory that
/// is zeroed when dropped: they may hold a secret).
fn read_input(p: &PathBuf) -> anyhow::Result<Zeroizing<Vec<u8>>> {
    let mut bytes = Zeroizing::new(Vec::new());
    if p == Path::new("-") {
        std::io::stdin().read_to_end(&mut bytes).context("cannot read standard input")?;
    } else {
        std::fs::File::open(p)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .with_context(|| format!("cannot read `{}`", p.display()))?;
    }
    Ok(bytes)
}

/// Writes a secret to a new file readable by its owner only (never over an
/// existing one), or to standard output.
fn write_secret(out: Option<&Path>, text: &[u8]) -> anyhow::Result<()> {
    match out {
        None => std::io::stdout().lock().write_all(text).context("cannot write to standard output"),
        Some(p) => {
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(p)
                .with_context(|| format!("cannot create `{}` (an existing file is never replaced)", p.display()))?;
            f.write_all(text).and_then(|()| f.sync_all()).with_context(|| format!("cannot write `{}`", p.display()))
        }
    }
}

/// `pybackup init`: a new repository, encrypted or not.
pub fn init(a: &InitArgs) -> anyhow::Result<ExitCode> {
    if !a.encrypt {
        repo::Repo::init(&a.repo).with_context(|| format!("cannot make a repository at `{}`", a.repo.display()))?;
        eprintln!("pybackup: {}: repository made (not encrypted)", a.repo.display());
        return Ok(code(true));
    }
    anyhow::ensure!(
        repo::is_remote(&a.repo)
            || !a.repo.exists()
            || std::fs::read_dir(&a.repo).map(|mut d| d.next().is_none()).unwrap_or(false),
        "`{}` exists and is not empty; an encrypted repository starts empty",
        a.repo.display()
    );
    let mut ways: Vec<(String, String)> = Vec::new();
    if let Some(path) = &a.owner_key {
        let key = if path.exists() {
            let bytes = read_input(path)?;
            keys::RecoveryKey::open(&bytes, || ask_passphrase(&a.passphrase, path))
                .with_context(|| format!("cannot read a key from {}", name(path)))?
        } else {
            let key = keys::RecoveryKey::generate();
            let out = KeyOutArgs { output: Some(path.clone()), protect: true, passphrase: a.passphrase.clone() };
            write_key(&out, &key)?;
            eprintln!("pybackup: owner key written to `{}`, protected by your passphrase", path.display());
            key
        };
        ways.push(("owner".into(), key.recipient()));
    }
    let recovery = keys::RecoveryKey::generate();
    ways.push(("recovery".into(), recovery.recipient()));
    for (n, r) in a.recipients.iter().enumerate() {
        let (label, to) = match r.split_once('=') {
            Some((l, t)) => (l.to_string(), t.to_string()),
            None => (format!("recipient-{}", n + 1), r.clone()),
        };
        ways.push((label, to));
    }
    let refs: Vec<(&str, &str)> = ways.iter().map(|(l, r)| (l.as_str(), r.as_str())).collect();
    let (ring, _master) = keys::Keyring::create(&refs)?;
    // The recovery key is written (or printed) before the repository
    // exists: a repository no key opens is never made.
    match &a.recovery_key {
        Some(path) => {
            write_secret(Some(path), recovery.to_keygen_file().as_bytes())?;
            eprintln!(
                "pybackup: recovery key written to `{}`: print it, keep it apart, delete the file",
                path.display()
            );
        }
        None => {
            write_secret(None, recovery.to_keygen_file().as_bytes())?;
            eprintln!(
                "pybackup: above is the recovery key: print it and keep it apart; with it alone the backups open"
            );
        }
    }
    repo::init_encrypted(&a.repo, &ring)
        .with_context(|| format!("cannot make a repository at `{}`", a.repo.display()))?;
    eprintln!(
        "pybackup: {}: encrypted repository made; ways in: {}. Backups need no key; `pybackup key split` makes shares \
         of the recovery key",
        a.repo.display(),
        ring.ways().iter().map(|w| w.label.as_str()).collect::<Vec<_>>().join(", ")
    );
    Ok(code(true))
}
