//! Encrypted repositories (`docs/format/repository.md` §9): a keyring in
//! the repository and in every archive, archives of format version 4
//! encrypted to the keyring's master key, records as age files, and a
//! cache of this machine's own records so that a backup needs no secret.

use std::path::{Path, PathBuf};

use sha2::Digest;

use crate::{io_err, Error, Result};

/// The keyring of an encrypted repository, at its top.
pub const KEYRING: &str = "keyring";
/// The member that holds a copy of the keyring in every archive.
pub const ARCHIVE_KEYRING: &[u8] = b".xtar-keyring";
/// The member that holds an archive's record, as an age file.
pub const SEALED_RECORD: &[u8] = b".xtar-snapshot.age";
/// The first line of a cached record: the length of the sealed record it
/// was made with (all that is compared: no download is needed).
const CACHE_LINE: &str = "#sealed ";

/// What an encrypted repository's readers and writers hold.
pub(crate) struct Sealing {
    pub(crate) keyring: keys::Keyring,
    /// The master key, when a way in was given.
    pub(crate) master: Option<keys::RecoveryKey>,
    /// Where this machine keeps the records it wrote (plain text).
    pub(crate) cache: Option<PathBuf>,
}

impl Sealing {
    /// The keyring `text` of the repository at `root`, opened with the first
    /// of `ids` that is a way in (or the master key itself). Keys given
    /// that open nothing are an error: better now than after a long walk.
    pub(crate) fn new(root: &Path, text: &str, ids: &[keys::RecoveryKey], cache: Option<PathBuf>) -> Result<Sealing> {
        let keyring = keys::Keyring::parse(text).map_err(|e| Error::Keyring { path: root.join(KEYRING), source: e })?;
        let mut master = None;
        for id in ids {
            if id.recipient() == keyring.recipient {
                let copy = keys::RecoveryKey::parse(&id.to_identity_string())
                    .map_err(|e| Error::Keyring { path: root.join(KEYRING), source: e })?;
                master = Some(copy);
                break;
            }
            match keyring.open(id) {
                Ok(m) => {
                    master = Some(m);
                    break;
                }
                Err(keys::Error::NoWayIn) => continue,
                Err(e) => return Err(Error::Keyring { path: root.join(KEYRING), source: e }),
            }
        }
        if master.is_none() && !ids.is_empty() {
            return Err(Error::WrongKey { repo: root.to_path_buf() });
        }
        let cache = cache.map(|c| c.join(repo_id(&keyring)));
        Ok(Sealing { keyring, master, cache })
    }

    /// A record's text, sealed to the master key.
    pub(crate) fn seal(&self, text: &[u8]) -> Result<Vec<u8>> {
        keys::encrypt_to(&self.keyring.recipient, text)
            .map_err(|source| Error::Keyring { path: KEYRING.into(), source })
    }

    /// Like [`Sealing::seal`], for a text that is the first `len` bytes of
    /// a file: the sealed record in a temporary file, and its length.
    pub(crate) fn seal_file(&self, text: &std::fs::File, len: u64) -> Result<(std::fs::File, u64)> {
        use std::io::{Seek, Write};
        let tmp = || std::env::temp_dir();
        let mut from = text;
        from.seek(std::io::SeekFrom::Start(0)).map_err(crate::io_err(tmp()))?;
        let mut out = std::io::BufWriter::new(tempfile::tempfile().map_err(crate::io_err(tmp()))?);
        keys::encrypt_stream_to(&self.keyring.recipient, &mut std::io::Read::take(from, len), &mut out)
            .map_err(|source| Error::Keyring { path: KEYRING.into(), source })?;
        out.flush().map_err(crate::io_err(tmp()))?;
        let mut f = out.into_inner().map_err(|e| crate::io_err(tmp())(e.into_error()))?;
        let sealed_len = f.stream_position().map_err(crate::io_err(tmp()))?;
        Ok((f, sealed_len))
    }

    /// A sealed record opened with the master key (`None` without it).
    pub(crate) fn open(&self, name: &str, sealed: &[u8]) -> Option<Result<Vec<u8>>> {
        let master = self.master.as_ref()?;
        Some(keys::decrypt_with(master, sealed).map(|t| t.to_vec()).map_err(|e| Error::Record {
            archive: name.to_string(),
            line: 1,
            message: format!("its sealed record does not open: {e}"),
        }))
    }

    /// The cached text of the record of `name`, if this machine wrote it
    /// and the sealed record the repository holds now is `sealed_len`
    /// bytes long, as the one the text was made from: a record `forget`
    /// sealed again (or turned into a data archive's) is not trusted, and
    /// the next run reads, or stores, what it must.
    pub(crate) fn cached(&self, name: &str, sealed_len: Option<u64>) -> Option<Vec<u8>> {
        let (path, start) = self.cached_file(name, sealed_len)?;
        let bytes = std::fs::read(path).ok()?;
        bytes.get(start as usize..).map(<[u8]>::to_vec)
    }

    /// Like [`Sealing::cached`]: the file that holds the cached text, and
    /// where the text starts in it.
    pub(crate) fn cached_file(&self, name: &str, sealed_len: Option<u64>) -> Option<(std::path::PathBuf, u64)> {
        use std::io::{BufRead, Read};
        let path = self.cache.as_ref()?.join(format!("{name}.snapshot"));
        let mut first = Vec::new();
        std::io::BufReader::new(std::fs::File::open(&path).ok()?.take(256)).read_until(b'\n', &mut first).ok()?;
        let line = std::str::from_utf8(first.strip_suffix(b"\n")?).ok()?.strip_prefix(CACHE_LINE)?;
        let len: u64 = line.split(' ').next()?.parse().ok()?;
        (Some(len) == sealed_len).then_some((path, first.len() as u64))
    }

    /// Keeps `text`, the record of `name` sealed as `sealed`, in this
    /// machine's cache. A cache that cannot be written costs the next run
    /// its parent, nothing else: the error is returned for a warning.
    pub(crate) fn keep(&self, name: &str, text: &[u8], sealed: &[u8]) -> std::io::Result<()> {
        let Some(dir) = &self.cache else { return Ok(()) };
        std::fs::create_dir_all(dir)?;
        let mut bytes = format!("{CACHE_LINE}{}\n", sealed.len()).into_bytes();
        bytes.extend_from_slice(text);
        fsutil::write_bytes(&dir.join(format!("{name}.snapshot")), &bytes, true).map_err(std::io::Error::other)?;
        set_private(dir);
        Ok(())
    }

    /// Like [`Sealing::keep`], for a text that is the first `len` bytes of
    /// a file, sealed as `sealed_len` bytes.
    pub(crate) fn keep_file(&self, name: &str, text: &std::fs::File, len: u64, sealed_len: u64) -> std::io::Result<()> {
        use std::io::{Read, Seek, Write};
        let Some(dir) = &self.cache else { return Ok(()) };
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.snapshot"));
        let mut tmp = fsutil::temp_beside(&path).map_err(std::io::Error::other)?;
        tmp.write_all(format!("{CACHE_LINE}{sealed_len}\n").as_bytes())?;
        let mut from = text;
        from.seek(std::io::SeekFrom::Start(0))?;
        std::io::copy(&mut from.take(len), tmp.as_file_mut())?;
        fsutil::persist(tmp, &path, true).map_err(std::io::Error::other)?;
        set_private(dir);
        Ok(())
    }

    /// Removes the cached record of `name` (its snapshot was forgotten).
    pub(crate) fn forget(&self, name: &str) {
        if let Some(dir) = &self.cache {
            let _ = std::fs::remove_file(dir.join(format!("{name}.snapshot")));
        }
    }
}

/// Makes `dir` readable by its owner only (the cache lists file names).
fn set_private(dir: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700));
}

/// The repository's identity: the first 16 bytes, in hex, of the SHA-256
/// of its master key's recipient. It goes with the repository wherever it
/// is copied, so a cache keyed by it follows.
pub fn repo_id(keyring: &keys::Keyring) -> String {
    hex::encode(&sha2::Sha256::digest(keyring.recipient.as_bytes())[..16])
}

/// Where caches of records go by default: `$PYBACKUP_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/pybackup`, else `~/.cache/pybackup`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let env = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
    env("PYBACKUP_CACHE_DIR")
        .or_else(|| env("XDG_CACHE_HOME").map(|d| d.join("pybackup")))
        .or_else(|| env("HOME").map(|h| h.join(".cache/pybackup")))
        .map(|d| d.join("repos"))
}

/// Makes a new encrypted repository at `root` (absent or an empty
/// directory) with `keyring`.
pub fn init_encrypted(root: &Path, keyring: &keys::Keyring) -> Result<()> {
    if crate::is_remote(root) {
        let url = root.to_str().unwrap_or_default();
        let store = store::open(url).map_err(|e| Error::Store(e.to_string()))?;
        if !store.list("").map_err(|e| Error::Store(e.to_string()))?.is_empty() {
            return Err(Error::NotEmpty { path: root.to_path_buf() });
        }
        return store.put(KEYRING, keyring.to_text().as_bytes()).map_err(|e| Error::Store(e.to_string()));
    }
    if root.exists() && std::fs::read_dir(root).map_err(io_err(root))?.next().is_some() {
        return Err(Error::NotEmpty { path: root.to_path_buf() });
    }
    let archives = root.join(crate::repository::ARCHIVES);
    std::fs::create_dir_all(&archives).map_err(io_err(&archives))?;
    write_keyring(root, keyring)
}

/// Writes the keyring of the repository at `root` (whole, then renamed).
pub fn write_keyring(root: &Path, keyring: &keys::Keyring) -> Result<()> {
    fsutil::write_bytes(&root.join(KEYRING), keyring.to_text().as_bytes(), true).map_err(|e| Error::Xtar(e.into()))
}

/// Reads member `name` of the archive `f` (named `path` in messages) by
/// walking its tar headers from the start (`None` when the walk ends
/// without it).
pub(crate) fn archive_member(f: &dyn fsutil::Source, path: &Path, name: &[u8]) -> Option<Vec<u8>> {
    let len = f.size().ok()?;
    let mut at = 0u64;
    while at + 1024 <= len {
        let (n, size, data) = xtar::read::member_at(f, path, at).ok()?;
        if n == name {
            if size > len - data {
                return None;
            }
            let mut b = vec![0u8; usize::try_from(size).ok()?];
            f.read_exact_at(&mut b, data).ok()?;
            return Some(b);
        }
        at = data + size.div_ceil(512) * 512;
    }
    None
}
