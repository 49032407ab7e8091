//! Where repositories live: one small storage interface, [`Store`], on a
//! local directory ([`Local`]), an S3-compatible object store ([`S3`]) or
//! a WebDAV share ([`Dal::webdav`]), the last two through Apache OpenDAL,
//! so that the repository code does not know which it talks to. Every
//! implementation passes the same [`conformance`] suite.
//!
//! The interface is what object stores can all do: whole objects published
//! at once (a reader sees the old object or the new one, never a part),
//! ranged reads, listing, deletion. Nothing else is asked of a store: no
//! rename, no links, no modification times.
//!
//! Credentials never come from a URL: `s3://BUCKET/PREFIX` names the place,
//! and the endpoint, region and keys come from the environment (`AWS_*`,
//! [`S3Config::from_env`]). [`Store::describe`] is what messages print.

use std::path::PathBuf;

pub mod conformance;
mod dav;
pub mod limit;
mod sftp;
pub use sftp::{SftpConfig, SftpStore};
#[cfg(feature = "testing")]
pub mod testing;

/// What can go wrong.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A URL that names no store this code knows.
    #[error("`{url}` is not a repository location: {reason}")]
    BadUrl {
        /// The URL (without credentials: URLs never hold them).
        url: String,
        /// Why.
        reason: String,
    },
    /// A setting missing from the environment.
    #[error("{store}: {variable} is not set (see the S3 section of the README)")]
    MissingSetting {
        /// The store.
        store: String,
        /// The environment variable.
        variable: &'static str,
    },
    /// An object asked for that is not there.
    #[error("{store}: no object `{name}`")]
    NotFound {
        /// The store.
        store: String,
        /// The object.
        name: String,
    },
    /// An object that is there already, where a new one was to be made.
    #[error("{store}: `{name}` exists already (not replaced)")]
    Exists {
        /// The store.
        store: String,
        /// The object.
        name: String,
    },
    /// A name that is not a relative path of plain components.
    #[error("{store}: bad object name `{name}`")]
    BadName {
        /// The store.
        store: String,
        /// The name.
        name: String,
    },
    /// An operation that failed.
    #[error("{store}: cannot {op} `{name}`: {message}")]
    Op {
        /// The store.
        store: String,
        /// What was done.
        op: &'static str,
        /// The object.
        name: String,
        /// The cause, as the store said it.
        message: String,
    },
}

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An object, as listed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Object {
    /// Its name: a relative path with `/` between components.
    pub name: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A place that holds named objects.
pub trait Store: Send + Sync {
    /// The store, for messages: its URL, never with credentials.
    fn describe(&self) -> String;
    /// Every object whose name starts with `prefix`, sorted by name.
    fn list(&self, prefix: &str) -> Result<Vec<Object>>;
    /// The size of an object, or `None` when there is none of that name.
    fn size(&self, name: &str) -> Result<Option<u64>>;
    /// `len` bytes of an object from `offset` (fewer at its end).
    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>>;
    /// A whole object.
    fn read(&self, name: &str) -> Result<Vec<u8>>;
    /// Publishes `data` under `name`, replacing what was there: readers see
    /// the old object or the new one, never a part.
    fn put(&self, name: &str, data: &[u8]) -> Result<()>;
    /// Publishes the `len` bytes `data` gives under `name`, as [`put`]
    /// does, without holding them in memory (a multipart upload, or a
    /// temporary file renamed). Fewer bytes than `len` is an error, and
    /// nothing is published.
    ///
    /// [`put`]: Store::put
    fn put_from(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()>;
    /// Publishes as [`put_from`] does, but only where no object `name` is:
    /// else [`Error::Exists`], and nothing is replaced. Atomic where the
    /// store can refuse by itself (a directory; SFTP with hard links; a
    /// WebDAV MOVE without overwriting); elsewhere (S3) a check just
    /// before, which the repository's lock makes enough.
    ///
    /// [`put_from`]: Store::put_from
    fn put_from_new(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()> {
        if self.size(name)?.is_some() {
            return Err(Error::Exists { store: self.describe(), name: name.to_string() });
        }
        self.put_from(name, data, len)
    }
    /// Removes an object (nothing happens when there is none).
    fn delete(&self, name: &str) -> Result<()>;
}

/// The bytes moved per request when objects are streamed.
pub const CHUNK: usize = 8 << 20;

/// A reader of a whole object, by ranged reads of [`CHUNK`] bytes: an
/// object of any size is copied without being held in memory.
pub struct ObjectReader<'s> {
    store: &'s dyn Store,
    name: String,
    pos: u64,
    len: u64,
    buf: Vec<u8>,
    at: usize,
}

impl<'s> ObjectReader<'s> {
    /// Reads object `name`, `len` bytes long (as listed).
    pub fn new(store: &'s dyn Store, name: &str, len: u64) -> ObjectReader<'s> {
        ObjectReader { store, name: name.to_string(), pos: 0, len, buf: Vec::new(), at: 0 }
    }
}

impl std::io::Read for ObjectReader<'_> {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        if self.at >= self.buf.len() {
            if self.pos >= self.len {
                return Ok(0);
            }
            let want = (self.len - self.pos).min(CHUNK as u64);
            self.buf = self.store.read_range(&self.name, self.pos, want).map_err(std::io::Error::other)?;
            self.at = 0;
            if self.buf.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    format!("`{}` ends at byte {} of {}", self.name, self.pos, self.len),
                ));
            }
            self.pos += self.buf.len() as u64;
        }
        let n = out.len().min(self.buf.len() - self.at);
        out[..n].copy_from_slice(&self.buf[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

/// The temporary name `name` is written under before it is moved into
/// place: `.BASE.NONCE[EXTRA].partial` beside it, which listings skip.
fn temp_name(name: &str, extra: &str) -> String {
    let nonce = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let p = fsutil::PARTIAL_SUFFIX;
    match name.rsplit_once('/') {
        Some((dir, base)) => format!("{dir}/.{base}.{nonce:08x}{extra}{p}"),
        None => format!(".{name}.{nonce:08x}{extra}{p}"),
    }
}

/// Checks an object name: relative, plain components, no `.`/`..`, and
/// none of the characters some stores cannot carry in a name or a URL
/// path: control characters, `?`, `#`, `\`.
fn check_name(store: &str, name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('/')
        && !name.chars().any(|c| c.is_control() || matches!(c, '?' | '#' | '\\'))
        && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    if ok {
        Ok(())
    } else {
        Err(Error::BadName { store: store.to_string(), name: name.to_string() })
    }
}

/// Opens the store a location names: `s3://BUCKET[/PREFIX]` (settings from
/// the environment), or a local directory.
pub fn open(location: &str) -> Result<Box<dyn Store>> {
    if let Some(rest) = location.strip_prefix("s3://") {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() || bucket.contains('@') || bucket.contains(':') {
            return Err(Error::BadUrl {
                url: redacted(location),
                reason: "expected s3://BUCKET/PREFIX (credentials and endpoints come from the environment, never \
                         from the URL)"
                    .into(),
            });
        }
        let config = S3Config::from_env(bucket, prefix.trim_end_matches('/'))?;
        return Ok(Box::new(S3::new(config)?));
    }
    if location.starts_with("sftp://") {
        return Ok(Box::new(SftpStore::connect(SftpConfig::from_url(location)?)?));
    }
    if location.starts_with("webdav://") || location.starts_with("webdavs://") {
        return Ok(Box::new(Dal::webdav(WebDavConfig::from_url(location)?)?));
    }
    if let Some((scheme, _)) = location.split_once("://") {
        return Err(Error::BadUrl { url: redacted(location), reason: format!("unknown scheme `{scheme}`") });
    }
    Ok(Box::new(Local::new(location)))
}

/// The value of `key` in section `[section]` of an INI text (the AWS
/// tools' files): `key = value`, spaces around `=` ignored, `#` and `;`
/// comment lines skipped.
fn ini_value(text: &str, section: &str, key: &str) -> Option<String> {
    let mut inside = false;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            inside = name.trim() == section;
            continue;
        }
        if inside {
            if let Some((k, v)) = line.split_once('=') {
                if k.trim() == key {
                    return Some(v.trim().to_string()).filter(|v| !v.is_empty());
                }
            }
        }
    }
    None
}

/// `url` with whatever stands before an `@` in its authority replaced by
/// `***`: a URL someone put credentials in is never printed with them.
fn redacted(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let (authority, path) = rest.split_once('/').map_or((rest, None), |(a, p)| (a, Some(p)));
    let authority = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_string(),
    };
    match path {
        Some(p) => format!("{scheme}://{authority}/{p}"),
        None => format!("{scheme}://{authority}"),
    }
}

/// An object read at offsets ([`fsutil::Source`]) by ranged reads of
/// whole blocks of [`BLOCK`] bytes, the last [`BLOCKS`] of them kept: a
/// reader that reads one file of a large archive fetches the blocks it
/// touches and nothing else.
pub struct RemoteObject {
    store: std::sync::Arc<dyn Store>,
    name: String,
    size: u64,
    blocks: std::sync::Mutex<std::collections::VecDeque<(u64, std::sync::Arc<Vec<u8>>)>>,
    fetched: std::sync::atomic::AtomicU64,
}

/// The unit of [`RemoteObject`]'s reads.
pub const BLOCK: u64 = 64 << 10;
/// How many blocks a [`RemoteObject`] keeps.
pub const BLOCKS: usize = 64;

impl RemoteObject {
    /// Object `name` of `store`, `size` bytes long (as listed).
    pub fn new(store: std::sync::Arc<dyn Store>, name: &str, size: u64) -> RemoteObject {
        RemoteObject { store, name: name.to_string(), size, blocks: Default::default(), fetched: Default::default() }
    }

    /// Bytes fetched from the store so far.
    pub fn fetched(&self) -> u64 {
        self.fetched.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn block(&self, k: u64, want_to: u64) -> std::io::Result<std::sync::Arc<Vec<u8>>> {
        if let Ok(blocks) = self.blocks.lock() {
            if let Some((_, b)) = blocks.iter().find(|(n, _)| *n == k) {
                return Ok(b.clone());
            }
        }
        // Fetch from block k through the block holding `want_to - 1`, in
        // one request: a long read is one request, not one per block.
        let last = want_to.saturating_sub(1).max(k * BLOCK) / BLOCK;
        let (from, to) = (k * BLOCK, ((last + 1) * BLOCK).min(self.size));
        let bytes = self.store.read_range(&self.name, from, to - from).map_err(std::io::Error::other)?;
        self.fetched.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        let mut first = None;
        if let Ok(mut blocks) = self.blocks.lock() {
            for (i, chunk) in bytes.chunks(BLOCK as usize).enumerate() {
                let b = std::sync::Arc::new(chunk.to_vec());
                if i == 0 {
                    first = Some(b.clone());
                }
                blocks.push_back((k + i as u64, b));
                while blocks.len() > BLOCKS {
                    blocks.pop_front();
                }
            }
        }
        first.ok_or_else(|| std::io::Error::from(std::io::ErrorKind::UnexpectedEof))
    }
}

impl fsutil::Source for RemoteObject {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<usize> {
        if offset >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let k = offset / BLOCK;
        let want_to = (offset + buf.len() as u64).min(self.size);
        let b = self.block(k, want_to)?;
        let at = (offset - k * BLOCK) as usize;
        let n = buf.len().min(b.len().saturating_sub(at));
        buf[..n].copy_from_slice(&b[at..at + n]);
        Ok(n)
    }
    fn size(&self) -> std::io::Result<u64> {
        Ok(self.size)
    }
}

/// A local directory.
pub struct Local {
    root: PathBuf,
}

impl Local {
    /// The store in directory `root` (created when something is put).
    pub fn new(root: impl Into<PathBuf>) -> Local {
        Local { root: root.into() }
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        check_name(&self.describe(), name)?;
        Ok(self.root.join(name))
    }

    fn op_err(&self, op: &'static str, name: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
        let name = name.to_string();
        move |e| Error::Op { store: self.describe(), op, name, message: e.to_string() }
    }
}

impl Store for Local {
    fn describe(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self, prefix: &str) -> Result<Vec<Object>> {
        let mut out = Vec::new();
        let mut stack = vec![self.root.clone()];
        while let Some(dir) = stack.pop() {
            let rd = match std::fs::read_dir(&dir) {
                Ok(rd) => rd,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(self.op_err("list", &dir.display().to_string())(e)),
            };
            for e in rd {
                let e = e.map_err(self.op_err("list", prefix))?;
                let ft = e.file_type().map_err(self.op_err("list", prefix))?;
                let path = e.path();
                if ft.is_dir() {
                    stack.push(path);
                    continue;
                }
                let Ok(rel) = path.strip_prefix(&self.root) else { continue };
                let Some(name) = rel.to_str().map(str::to_string) else { continue };
                // Temporaries of writes under way are not objects.
                if !ft.is_file() || fsutil::partial_target(e.file_name().as_encoded_bytes()).is_some() {
                    continue;
                }
                if name.starts_with(prefix) {
                    let size = e.metadata().map_err(self.op_err("list", &name))?.len();
                    out.push(Object { name, size });
                }
            }
        }
        out.sort();
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        match std::fs::metadata(self.path(name)?) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.op_err("stat", name)(e)),
        }
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        use std::io::{Read, Seek};
        let mut f = std::fs::File::open(self.path(name)?).map_err(|e| self.not_found_or(e, "read", name))?;
        f.seek(std::io::SeekFrom::Start(offset)).map_err(self.op_err("read", name))?;
        let mut out = Vec::new();
        f.take(len).read_to_end(&mut out).map_err(self.op_err("read", name))?;
        Ok(out)
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        std::fs::read(self.path(name)?).map_err(|e| self.not_found_or(e, "read", name))
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        let path = self.path(name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(self.op_err("write", name))?;
        }
        fsutil::write_bytes(&path, data, true).map_err(|e| Error::Op {
            store: self.describe(),
            op: "write",
            name: name.to_string(),
            message: e.to_string(),
        })
    }

    fn put_from(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()> {
        self.write_from(name, data, len, true)
    }

    fn put_from_new(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()> {
        self.write_from(name, data, len, false)
    }

    fn delete(&self, name: &str) -> Result<()> {
        match std::fs::remove_file(self.path(name)?) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(self.op_err("delete", name)(e)),
            _ => Ok(()),
        }
    }
}

impl Local {
    /// Writes `len` bytes of `data` to a temporary file renamed to `name`
    /// (over an existing one only if `overwrite`).
    fn write_from(&self, name: &str, data: &mut dyn std::io::Read, len: u64, overwrite: bool) -> Result<()> {
        let path = self.path(name)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(self.op_err("write", name))?;
        }
        let fail = |e: &dyn std::fmt::Display| Error::Op {
            store: self.describe(),
            op: "write",
            name: name.to_string(),
            message: e.to_string(),
        };
        if !overwrite && path.symlink_metadata().is_ok() {
            return Err(Error::Exists { store: self.describe(), name: name.to_string() });
        }
        fsutil::write_new(&path, overwrite, |file, out| -> std::result::Result<(), fsutil::Error> {
            let io = |source: std::io::Error| fsutil::Error::Write { path: out.to_path_buf(), source };
            let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
            let n = std::io::copy(&mut std::io::Read::take(data, len), &mut w).map_err(io)?;
            std::io::Write::flush(&mut w).map_err(io)?;
            if n != len {
                let e = std::io::Error::new(std::io::ErrorKind::UnexpectedEof, format!("{n} of {len} bytes given"));
                return Err(io(e));
            }
            Ok(())
        })
        .map_err(|e| match e {
            fsutil::Error::Exists { .. } => Error::Exists { store: self.describe(), name: name.to_string() },
            e => fail(&e),
        })
    }

    fn not_found_or(&self, e: std::io::Error, op: &'static str, name: &str) -> Error {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::NotFound { store: self.describe(), name: name.to_string() }
        } else {
            self.op_err(op, name)(e)
        }
    }
}

/// Where an S3 store is and how to sign in; never printed whole.
#[derive(Clone)]
pub struct S3Config {
    /// The bucket.
    pub bucket: String,
    /// The prefix inside it (no leading or trailing `/`; empty for the root).
    pub prefix: String,
    /// The endpoint URL (`https://s3.amazonaws.com` when not set).
    pub endpoint: Option<String>,
    /// The region.
    pub region: String,
    /// The access key id.
    pub access_key_id: String,
    /// The secret access key.
    secret_access_key: String,
}

impl std::fmt::Debug for S3Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        write!(
            f,
            "S3Config(s3://{}/{}, endpoint {:?}, region {})",
            self.bucket, self.prefix, self.endpoint, self.region
        )
    }
}

impl S3Config {
    /// The settings of `s3://BUCKET/PREFIX` from the environment:
    /// `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY` (both needed),
    /// `AWS_ENDPOINT_URL` (S3-compatible stores), `AWS_REGION` or
    /// `AWS_DEFAULT_REGION` (default `us-east-1`).
    pub fn from_env(bucket: &str, prefix: &str) -> Result<S3Config> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let home = env("HOME").map(PathBuf::from);
        let file = |var: &str, default: &str| {
            let path = env(var).map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(default)))?;
            std::fs::read_to_string(path).ok()
        };
        let (credentials, config) =
            (file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials"), file("AWS_CONFIG_FILE", ".aws/config"));
        S3Config::from_sources(bucket, prefix, &env, credentials.as_deref(), config.as_deref())
    }

    /// [`S3Config::from_env`] from the variables `env` gives and the texts
    /// of the shared credentials and config files (`~/.aws/credentials`,
    /// `~/.aws/config`, as the AWS tools write them): a variable wins over
    /// the files; the profile is `AWS_PROFILE`, else `default`
    /// (`aws_access_key_id`, `aws_secret_access_key` in the credentials
    /// file; `region`, `endpoint_url` in the config file's `[default]` or
    /// `[profile NAME]`).
    pub fn from_sources(
        bucket: &str,
        prefix: &str,
        env: &dyn Fn(&str) -> Option<String>,
        credentials: Option<&str>,
        config: Option<&str>,
    ) -> Result<S3Config> {
        let store = format!("s3://{bucket}/{prefix}");
        let profile = env("AWS_PROFILE").unwrap_or_else(|| "default".into());
        let config_section = if profile == "default" { profile.clone() } else { format!("profile {profile}") };
        let cred = |key: &str| credentials.and_then(|t| ini_value(t, &profile, key));
        let conf = |key: &str| config.and_then(|t| ini_value(t, &config_section, key));
        let need = |var: &'static str, key: &str| {
            env(var).or_else(|| cred(key)).ok_or(Error::MissingSetting { store: store.clone(), variable: var })
        };
        Ok(S3Config {
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            endpoint: env("AWS_ENDPOINT_URL").or_else(|| conf("endpoint_url")),
            region: env("AWS_REGION")
                .or_else(|| env("AWS_DEFAULT_REGION"))
                .or_else(|| conf("region"))
                .unwrap_or_else(|| "us-east-1".into()),
            access_key_id: need("AWS_ACCESS_KEY_ID", "aws_access_key_id")?,
            secret_access_key: need("AWS_SECRET_ACCESS_KEY", "aws_secret_access_key")?,
        })
    }

    /// Settings given directly (tests, configuration files).
    pub fn new(
        bucket: &str,
        prefix: &str,
        endpoint: Option<&str>,
        region: &str,
        key_id: &str,
        secret: &str,
    ) -> S3Config {
        S3Config {
            bucket: bucket.into(),
            prefix: prefix.into(),
            endpoint: endpoint.map(str::to_string),
            region: region.into(),
            access_key_id: key_id.into(),
            secret_access_key: secret.into(),
        }
    }
}

/// A store through an Apache OpenDAL operator: an S3-compatible object
/// store (AWS, Garage, MinIO, Ceph, R2, B2…) or a WebDAV share.
pub struct Dal {
    op: opendal::Operator,
    rt: tokio::runtime::Runtime,
    describe: String,
    /// A WebDAV share: objects are written under a temporary name and
    /// moved into place (a PUT cut short may leave a part of a file
    /// behind), and those over a part are parted ([`dav`]).
    dav: Option<dav::Dav>,
}

/// A WebDAV object: a file, or a collection of parts (their sizes).
enum Form {
    File(u64),
    Parts(Vec<u64>),
}

/// An S3-compatible object store.
pub type S3 = Dal;

/// Where a WebDAV share is and how to sign in; never printed whole.
#[derive(Clone)]
pub struct WebDavConfig {
    /// `http://HOST[:PORT]` or `https://…`.
    pub endpoint: String,
    /// The directory on the share (`/` for its root).
    pub root: String,
    /// The user, if the share asks for one.
    pub username: Option<String>,
    password: Option<String>,
    /// The largest PUT: objects over it are stored as a collection of
    /// parts (`PYBACKUP_WEBDAV_PART_SIZE`, default 8 MiB).
    pub part_size: u64,
}

impl std::fmt::Debug for WebDavConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "WebDavConfig({}{}, user {:?})", self.endpoint, self.root, self.username)
    }
}

impl WebDavConfig {
    /// `webdav://HOST[:PORT]/PATH` (`webdavs://` for https); the user and
    /// password from `PYBACKUP_WEBDAV_USER` and `PYBACKUP_WEBDAV_PASSWORD`.
    pub fn from_url(url: &str) -> Result<WebDavConfig> {
        let (scheme, rest) = match url.split_once("://") {
            Some(("webdav", r)) => ("http", r),
            Some(("webdavs", r)) => ("https", r),
            _ => return Err(Error::BadUrl { url: redacted(url), reason: "expected webdav:// or webdavs://".into() }),
        };
        let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || host.contains('@') {
            return Err(Error::BadUrl {
                url: redacted(url),
                reason: "expected webdav://HOST[:PORT]/PATH (the user and password come from \
                         PYBACKUP_WEBDAV_USER and PYBACKUP_WEBDAV_PASSWORD, never from the URL)"
                    .into(),
            });
        }
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        Ok(WebDavConfig {
            endpoint: format!("{scheme}://{host}"),
            root: format!("/{}", path.trim_matches('/')),
            username: env("PYBACKUP_WEBDAV_USER"),
            password: env("PYBACKUP_WEBDAV_PASSWORD"),
            part_size: dav::part_size_from_env(url)?,
        })
    }
}

impl Dal {
    /// A store on the WebDAV share of `c` (nothing is contacted yet).
    pub fn webdav(c: WebDavConfig) -> Result<Dal> {
        let describe = format!("webdav {}{}", c.endpoint, c.root);
        let err = |message: String| Error::Op { store: describe.clone(), op: "open", name: String::new(), message };
        opendal::install_default();
        let mut b = opendal::services::Webdav::default().endpoint(&c.endpoint).root(&c.root);
        if let Some(u) = &c.username {
            b = b.username(u);
        }
        if let Some(p) = &c.password {
            b = b.password(p);
        }
        Dal::with(opendal::Operator::new(b).map_err(|e| err(e.to_string()))?, describe, Some(dav::Dav::new(&c)))
    }

    fn with(op: opendal::Operator, describe: String, dav: Option<dav::Dav>) -> Result<Dal> {
        let err = |message: String| Error::Op { store: describe.clone(), op: "open", name: String::new(), message };
        let mut op =
            op.layer(opendal::layers::TimeoutLayer::new()).layer(opendal::layers::RetryLayer::new().with_max_times(4));
        if limit::upload().is_some() || limit::download().is_some() {
            let transport = opendal::HttpTransporter::new(limit::LimitedHttp::new());
            op = op.with_context(opendal::OperationContext::new().with_http_transport(transport));
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| err(e.to_string()))?;
        Ok(Dal { op, rt, describe, dav })
    }

    /// An S3 store with these settings (nothing is contacted yet).
    pub fn new(c: S3Config) -> Result<Dal> {
        let describe = format!("s3://{}/{}", c.bucket, c.prefix);
        let err = |message: String| Error::Op { store: describe.clone(), op: "open", name: String::new(), message };
        // The HTTP transport (reqwest, rustls): installed once per process.
        opendal::install_default();
        let mut b = opendal::services::S3::default()
            .bucket(&c.bucket)
            .root(&format!("/{}", c.prefix))
            .region(&c.region)
            .access_key_id(&c.access_key_id)
            .secret_access_key(&c.secret_access_key);
        if let Some(e) = &c.endpoint {
            b = b.endpoint(e);
        }
        Dal::with(opendal::Operator::new(b).map_err(|e| err(e.to_string()))?, describe, None)
    }

    fn fail(&self, op: &'static str, name: &str) -> impl FnOnce(opendal::Error) -> Error + '_ {
        let name = name.to_string();
        move |e| {
            if e.kind() == opendal::ErrorKind::NotFound {
                Error::NotFound { store: self.describe.clone(), name }
            } else {
                Error::Op { store: self.describe.clone(), op, name, message: e.to_string() }
            }
        }
    }
}

impl Dal {
    /// What object `name` of a WebDAV share is: a file, parts, or nothing.
    fn form(&self, d: &dav::Dav, name: &str) -> Result<Option<Form>> {
        if let Some(parts) = d.cached(name) {
            return Ok(Some(Form::Parts(parts)));
        }
        // A file answers the stat; else its parts, if any, are listed (an
        // error of the stat is reported if the listing finds nothing).
        let stat_error = match self.rt.block_on(self.op.stat(name)) {
            Ok(m) if m.mode().is_file() => return Ok(Some(Form::File(m.content_length()))),
            Ok(_) => None,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => None,
            Err(e) => Some(self.fail("stat", name)(e)),
        };
        let listed = self.rt.block_on(async { self.op.list(&format!("{name}/")).await });
        let entries = match listed {
            Ok(entries) => entries,
            Err(e) if e.kind() == opendal::ErrorKind::NotFound || e.kind() == opendal::ErrorKind::NotADirectory => {
                return stat_error.map_or(Ok(None), Err);
            }
            Err(e) => return Err(stat_error.unwrap_or_else(|| self.fail("list", name)(e))),
        };
        let mut parts: Vec<(String, u64)> = entries
            .iter()
            .filter_map(|e| {
                let base = e.path().trim_end_matches('/').rsplit('/').next().unwrap_or_default();
                (e.metadata().mode().is_file() && dav::is_part(base))
                    .then(|| (base.to_string(), e.metadata().content_length()))
            })
            .collect();
        if parts.is_empty() {
            return stat_error.map_or(Ok(None), Err);
        }
        parts.sort();
        for (i, (base, _)) in parts.iter().enumerate() {
            if *base != dav::part_name(i) {
                return Err(Error::Op {
                    store: self.describe(),
                    op: "read",
                    name: name.to_string(),
                    message: format!("its parts skip from {} to {base}", dav::part_name(i)),
                });
            }
        }
        let sizes: Vec<u64> = parts.into_iter().map(|(_, n)| n).collect();
        d.remember(name, sizes.clone());
        Ok(Some(Form::Parts(sizes)))
    }

    /// Publishes `len` bytes from `data` under `name` as parts: each put
    /// into a temporary collection, which is then moved into place (over
    /// what is there only if `overwrite`).
    fn put_parts(
        &self,
        d: &dav::Dav,
        name: &str,
        data: &mut dyn std::io::Read,
        len: u64,
        overwrite: bool,
    ) -> Result<()> {
        let failed = |message: String| Error::Op { store: self.describe(), op: "write", name: name.into(), message };
        let tmp = temp_name(name, "");
        let abandon = |e: Error| {
            let _ = self.rt.block_on(d.delete_collection(&tmp));
            e
        };
        let mut left = len;
        let mut i = 0;
        while left > 0 {
            let want = left.min(d.part) as usize;
            let mut buf = vec![0u8; want];
            if let Err(e) = data.read_exact(&mut buf) {
                return Err(abandon(failed(format!("{} of {len} bytes given: {e}", len - left))));
            }
            let part = format!("{tmp}/{}", dav::part_name(i));
            self.rt.block_on(self.op.write(&part, buf)).map_err(|e| abandon(self.fail("write", name)(e)))?;
            left -= want as u64;
            i += 1;
        }
        d.forget(name);
        match self.rt.block_on(d.move_to(&tmp, name, true, overwrite)) {
            Ok(true) => Ok(()),
            Ok(false) => Err(abandon(Error::Exists { store: self.describe(), name: name.into() })),
            Err(m) => Err(abandon(failed(m))),
        }
    }

    /// Publishes `data` (at most a part) under `name` on a WebDAV share: a
    /// temporary file moved into place (over a file or parts alike, only
    /// if `overwrite`).
    fn put_dav_file(&self, d: &dav::Dav, name: &str, data: &[u8], overwrite: bool) -> Result<()> {
        let tmp = temp_name(name, "");
        self.rt.block_on(self.op.write(&tmp, data.to_vec())).map_err(self.fail("write", name))?;
        d.forget(name);
        let moved = self.rt.block_on(d.move_to(&tmp, name, false, overwrite));
        if !matches!(moved, Ok(true)) {
            let _ = self.rt.block_on(self.op.delete(&tmp));
        }
        match moved {
            Ok(true) => Ok(()),
            Ok(false) => Err(Error::Exists { store: self.describe(), name: name.into() }),
            Err(message) => Err(Error::Op { store: self.describe(), op: "write", name: name.into(), message }),
        }
    }

    /// Reads exactly `len` bytes of `data` (at most a part).
    fn read_part(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<Vec<u8>> {
        let mut buf = Vec::with_capacity(len as usize);
        let got = std::io::Read::read_to_end(&mut std::io::Read::take(data, len), &mut buf).map_err(|e| Error::Op {
            store: self.describe(),
            op: "write",
            name: name.into(),
            message: e.to_string(),
        })?;
        if got as u64 != len {
            return Err(Error::Op {
                store: self.describe(),
                op: "write",
                name: name.into(),
                message: format!("{got} of {len} bytes given"),
            });
        }
        Ok(buf)
    }
}

impl Store for Dal {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn list(&self, prefix: &str) -> Result<Vec<Object>> {
        // From the directory part of the prefix down, not the whole bucket.
        let dir = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
        let entries = self
            .rt
            .block_on(async { self.op.list_with(dir).recursive(true).await })
            .map_err(self.fail("list", prefix))?;
        let mut out = Vec::new();
        let mut parted: std::collections::BTreeMap<String, u64> = Default::default();
        for e in entries {
            let meta = e.metadata();
            let path = e.path();
            // Nothing under a temporary name, or inside one (parts being
            // written).
            if !meta.mode().is_file() || path.split('/').any(|c| fsutil::partial_target(c.as_bytes()).is_some()) {
                continue;
            }
            let size = match meta.content_length() {
                0 => self.rt.block_on(self.op.stat(path)).map(|m| m.content_length()).unwrap_or(0),
                n => n,
            };
            match path.rsplit_once('/') {
                Some((object, base)) if self.dav.is_some() && dav::is_part(base) => {
                    *parted.entry(object.to_string()).or_default() += size;
                }
                _ => out.push(Object { name: path.to_string(), size }),
            }
        }
        out.extend(parted.into_iter().map(|(name, size)| Object { name, size }));
        out.retain(|o| o.name.starts_with(prefix));
        out.sort();
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        check_name(&self.describe, name)?;
        if let Some(d) = &self.dav {
            return Ok(self.form(d, name)?.map(|f| match f {
                Form::File(n) => n,
                Form::Parts(p) => p.iter().sum(),
            }));
        }
        match self.rt.block_on(self.op.stat(name)) {
            Ok(m) => Ok(Some(m.content_length())),
            Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(self.fail("stat", name)(e)),
        }
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        check_name(&self.describe, name)?;
        let absent = || Error::NotFound { store: self.describe(), name: name.into() };
        let size = match &self.dav {
            Some(d) => match self.form(d, name)?.ok_or_else(absent)? {
                Form::File(n) => n,
                Form::Parts(parts) => {
                    let end = offset.saturating_add(len).min(parts.iter().sum());
                    let mut out = Vec::new();
                    let mut start = 0u64;
                    for (i, n) in parts.iter().enumerate() {
                        let (a, b) = (start, start + n);
                        start = b;
                        if b <= offset || a >= end {
                            continue;
                        }
                        let part = format!("{name}/{}", dav::part_name(i));
                        let range = (offset.max(a) - a)..(end.min(b) - a);
                        let buf = self
                            .rt
                            .block_on(async { self.op.read_with(&part).range(range).await })
                            .map_err(self.fail("read", name))?;
                        out.extend_from_slice(&buf.to_vec());
                    }
                    return Ok(out);
                }
            },
            None => self.size(name)?.ok_or_else(absent)?,
        };
        let end = offset.saturating_add(len).min(size);
        if offset >= end {
            return Ok(Vec::new());
        }
        let buf = self
            .rt
            .block_on(async { self.op.read_with(name).range(offset..end).await })
            .map_err(self.fail("read", name))?;
        Ok(buf.to_vec())
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        check_name(&self.describe, name)?;
        if self.dav.is_some() {
            return self.read_range(name, 0, u64::MAX);
        }
        Ok(self.rt.block_on(self.op.read(name)).map_err(self.fail("read", name))?.to_vec())
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        check_name(&self.describe, name)?;
        if let Some(d) = &self.dav {
            // Over a part: parts. Else a temporary file moved into place.
            if data.len() as u64 > d.part {
                return self.put_parts(d, name, &mut &data[..], data.len() as u64, true);
            }
            return self.put_dav_file(d, name, data, true);
        }
        // One PUT (or one multipart upload, completed last): the object
        // appears whole or not at all.
        self.rt.block_on(self.op.write(name, data.to_vec())).map(|_| ()).map_err(self.fail("write", name))
    }

    fn put_from(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()> {
        check_name(&self.describe, name)?;
        // A multipart upload in chunks, completed last: until `close`, no
        // object of this name appears (an aborted one leaves none). The
        // reading happens outside the runtime: `data` may itself read from
        // a store (a copy from one bucket to another).
        if let Some(d) = &self.dav {
            if len > d.part {
                return self.put_parts(d, name, data, len, true);
            }
            let buf = self.read_part(name, data, len)?;
            return self.put_dav_file(d, name, &buf, true);
        }
        let mut w = self
            .rt
            .block_on(async { self.op.writer_with(name).chunk(CHUNK).await })
            .map_err(self.fail("write", name))?;
        let failed = |message: String| Error::Op { store: self.describe(), op: "write", name: name.into(), message };
        let mut left = len;
        while left > 0 {
            let want = left.min(CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let mut got = 0;
            let mut problem = None;
            while got < want && problem.is_none() {
                match data.read(&mut buf[got..]) {
                    Ok(0) => problem = Some(format!("{} of {len} bytes given", len - left + got as u64)),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => problem = Some(format!("reading what to upload: {e}")),
                }
            }
            if let Some(message) = problem {
                let _ = self.rt.block_on(w.abort());
                return Err(failed(message));
            }
            self.rt.block_on(w.write(buf)).map_err(self.fail("write", name))?;
            left -= got as u64;
        }
        self.rt.block_on(w.close()).map(|_| ()).map_err(self.fail("write", name))
    }

    fn put_from_new(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()> {
        check_name(&self.describe, name)?;
        match &self.dav {
            Some(d) if len > d.part => self.put_parts(d, name, data, len, false),
            Some(d) => {
                let buf = self.read_part(name, data, len)?;
                self.put_dav_file(d, name, &buf, false)
            }
            None => {
                if self.size(name)?.is_some() {
                    return Err(Error::Exists { store: self.describe(), name: name.to_string() });
                }
                self.put_from(name, data, len)
            }
        }
    }

    fn delete(&self, name: &str) -> Result<()> {
        check_name(&self.describe, name)?;
        if let Some(d) = &self.dav {
            // Read afresh (not from the remembered parts): it may be a file now.
            d.forget(name);
            if let Some(Form::Parts(_)) = self.form(d, name)? {
                d.forget(name);
                return self.rt.block_on(d.delete_collection(name)).map_err(|m| Error::Op {
                    store: self.describe(),
                    op: "delete",
                    name: name.into(),
                    message: m,
                });
            }
        }
        self.rt.block_on(self.op.delete(name)).map_err(self.fail("delete", name))
    }
}
