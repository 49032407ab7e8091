//! A directory on an SSH server, through SFTP: `sftp://[USER@]HOST[:PORT]/PATH`.
//!
//! The connection is the system's `ssh` run as `ssh -s HOST sftp`, so the
//! user's keys, agent, `~/.ssh/config` (host aliases, `ProxyJump`) and
//! `known_hosts` work as they do for `ssh` itself: an unknown or changed
//! host key is refused by `ssh`, and the error says so.
//! `PYBACKUP_SSH_COMMAND` replaces `ssh` (run by `sh`, the way git runs
//! `GIT_SSH_COMMAND`: `ssh -F my_config -i my_key`, for example).
//!
//! Objects are written under a temporary name beside their final one and
//! renamed into place, so a cut connection leaves no part of a file under
//! an object's name. A replacement uses the `posix-rename@openssh.com`
//! extension when the server has it (one atomic step); on a server without
//! it (plain SFTP v3 rename refuses an existing target), the old object is
//! first renamed aside, the new one renamed in, the old one removed. A new
//! object that must not replace one (`put_from_new`) is hard-linked into
//! place where the server offers `hardlink@openssh.com` (a link refuses an
//! existing name), else checked for just before. So the store needs no
//! rename over an existing file, no hard link, no symbolic link and no
//! change of modification time; it uses the first two when offered.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use openssh_sftp_client::error::SftpErrorKind;
use openssh_sftp_client::{Sftp, SftpOptions};
use tokio::io::AsyncReadExt;

use crate::{check_name, redacted, Error, Object, Result, Store};

/// Where an SFTP store is. Holds no secret: keys are `ssh`'s business.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SftpConfig {
    /// The user, when the URL names one (else `ssh` chooses).
    pub user: Option<String>,
    /// The host (an `~/.ssh/config` alias works).
    pub host: String,
    /// The port, when the URL names one.
    pub port: Option<u16>,
    /// The directory on the server: absolute, or relative to the login
    /// directory (a URL path starting `/~/`).
    pub root: String,
    /// What runs instead of `ssh` (`PYBACKUP_SSH_COMMAND`), by `sh`.
    pub ssh_command: Option<String>,
}

impl SftpConfig {
    /// `sftp://[USER@]HOST[:PORT]/PATH`: `PATH` is absolute on the server;
    /// `/~/PATH` is relative to the login directory. Passwords are refused
    /// (use keys).
    pub fn from_url(url: &str) -> Result<SftpConfig> {
        let bad = |reason: &str| Error::BadUrl { url: redacted(url), reason: reason.to_string() };
        let rest = url.strip_prefix("sftp://").ok_or_else(|| bad("expected sftp://"))?;
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        let (user, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        if user.is_some_and(|u| u.contains(':')) {
            return Err(bad("a password in the URL: sftp repositories sign in with ssh keys (and the agent)"));
        }
        if user.is_some_and(|u| u.is_empty() || u.starts_with('-')) {
            return Err(bad("an empty user, or one starting with `-`"));
        }
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6.split_once(']').ok_or_else(|| bad("an IPv6 address without its `]`"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() || host.starts_with('-') {
            return Err(bad("expected sftp://[USER@]HOST[:PORT]/PATH"));
        }
        let port = match port {
            Some(p) => Some(p.parse::<u16>().map_err(|_| bad("the port is not a number"))?),
            None => None,
        };
        let path = path.trim_end_matches('/');
        let root = match path.strip_prefix('~') {
            Some(rel) if rel.is_empty() || rel.starts_with('/') => rel.trim_start_matches('/').to_string(),
            _ => format!("/{path}"),
        };
        let ssh_command = std::env::var("PYBACKUP_SSH_COMMAND").ok().filter(|c| !c.trim().is_empty());
        Ok(SftpConfig { user: user.map(str::to_string), host: host.to_string(), port, root, ssh_command })
    }

    /// The URL, as messages print it.
    pub fn describe(&self) -> String {
        let user = self.user.as_ref().map(|u| format!("{u}@")).unwrap_or_default();
        let host = if self.host.contains(':') { format!("[{}]", self.host) } else { self.host.clone() };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        let path = if self.root.starts_with('/') { self.root.clone() } else { format!("/~/{}", self.root) };
        format!("sftp://{user}{host}{port}{}", path.trim_end_matches('/'))
    }
}

/// One `ssh` process speaking SFTP.
struct Conn {
    sftp: Sftp,
    child: Mutex<Option<tokio::process::Child>>,
    /// What `ssh` said on its standard error (the last 64 KiB).
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl Conn {
    /// Runs `ssh` and starts SFTP; `Err` says why not, in words.
    async fn open(config: &SftpConfig) -> std::result::Result<Conn, String> {
        let mut args: Vec<String> = Vec::new();
        if let Some(p) = config.port {
            args.extend(["-p".into(), p.to_string()]);
        }
        if let Some(u) = &config.user {
            args.extend(["-l".into(), u.clone()]);
        }
        // Keep-alives: a dead connection is noticed within a minute.
        args.extend(["-o", "ServerAliveInterval=15", "-o", "ServerAliveCountMax=4", "-s", "--"].map(String::from));
        args.extend([config.host.clone(), "sftp".into()]);
        let mut cmd = match &config.ssh_command {
            Some(c) => {
                let mut cmd = tokio::process::Command::new("sh");
                cmd.arg("-c").arg(format!("{c} \"$@\"")).arg("pybackup-ssh").args(&args);
                cmd
            }
            None => {
                let mut cmd = tokio::process::Command::new("ssh");
                cmd.args(&args);
                cmd
            }
        };
        cmd.stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let mut child = cmd.spawn().map_err(|e| format!("cannot run ssh: {e}"))?;
        let (Some(stdin), Some(stdout), Some(mut err)) = (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("ssh without its pipes".into());
        };
        let said = stderr.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok(n) = err.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                if let Ok(mut s) = said.lock() {
                    s.extend_from_slice(&buf[..n]);
                    let over = s.len().saturating_sub(64 << 10);
                    s.drain(..over);
                }
            }
        });
        let options = SftpOptions::new().flush_interval(std::time::Duration::ZERO);
        match Sftp::new(stdin, stdout, options).await {
            Ok(sftp) => Ok(Conn { sftp, child: Mutex::new(Some(child)), stderr }),
            Err(e) => {
                // ssh refused, or the server runs no SFTP: say why.
                let status = tokio::time::timeout(std::time::Duration::from_secs(10), child.wait())
                    .await
                    .ok()
                    .and_then(|r| r.ok());
                let said = String::from_utf8_lossy(&stderr.lock().map(|s| s.clone()).unwrap_or_default()).into_owned();
                Err(ssh_failure(&config.host, &said, status, &e.to_string()))
            }
        }
    }

    /// What `ssh` said, trimmed.
    fn said(&self) -> String {
        self.stderr.lock().map(|s| String::from_utf8_lossy(&s).trim().to_string()).unwrap_or_default()
    }

    /// Ends the `ssh` process.
    async fn close(&self) {
        let child = self.child.lock().ok().and_then(|mut c| c.take());
        if let Some(mut child) = child {
            let _ = child.start_kill();
            let _ = tokio::time::timeout(std::time::Duration::from_secs(5), child.wait()).await;
        }
    }
}

/// Whether an error is the connection's (it went, or never answered), not
/// an answer of the server: then connecting again may get past it.
fn lost(e: &openssh_sftp_client::Error) -> bool {
    !matches!(e, openssh_sftp_client::Error::SftpError(..))
}

/// How many times an operation is taken up again on a new connection.
const RETRIES: u32 = 3;

/// A store in a directory of an SSH server, through an `ssh` connection,
/// made again when it drops (up to [`RETRIES`] times an operation, after 1,
/// 2 and 4 s): reads, listings and small writes are done again; a large
/// upload goes on from the piece that was in flight, into the same
/// temporary file.
pub struct SftpStore {
    config: SftpConfig,
    conn: Mutex<Arc<Conn>>,
    rt: tokio::runtime::Runtime,
    root: PathBuf,
    describe: String,
    posix_rename: bool,
    hardlink: bool,
    /// Directories known to exist.
    dirs: Mutex<HashSet<PathBuf>>,
    /// The process's limits when it was opened.
    upload: Option<Arc<crate::limit::Rate>>,
    download: Option<Arc<crate::limit::Rate>>,
    /// Connections made again so far.
    reconnects: std::sync::atomic::AtomicU64,
}

/// The bytes of one SFTP read or write request (OpenSSH's limit is 255 KiB).
const PIECE: usize = 255 << 10;
/// Requests in flight at once in a large read.
const IN_FLIGHT: usize = 16;

type SftpResult<T> = std::result::Result<T, openssh_sftp_client::Error>;

impl SftpStore {
    /// Connects: runs `ssh`, starts SFTP, and gives a clear error when
    /// `ssh` refuses (an unknown or changed host key, no key accepted).
    pub fn connect(config: SftpConfig) -> Result<SftpStore> {
        let describe = config.describe();
        let fail =
            |message: String| Error::Op { store: describe.clone(), op: "connect to", name: String::new(), message };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| fail(e.to_string()))?;
        let conn = rt.block_on(Conn::open(&config)).map_err(fail)?;
        let (posix_rename, hardlink) = (conn.sftp.support_posix_rename(), conn.sftp.support_hardlink());
        Ok(SftpStore {
            root: PathBuf::from(&config.root),
            config,
            conn: Mutex::new(Arc::new(conn)),
            rt,
            describe,
            posix_rename,
            hardlink,
            dirs: Mutex::new(HashSet::new()),
            upload: crate::limit::upload(),
            download: crate::limit::download(),
            reconnects: Default::default(),
        })
    }

    /// Whether the server renames over an existing file atomically
    /// (`posix-rename@openssh.com`).
    pub fn replaces_atomically(&self) -> bool {
        self.posix_rename
    }

    /// How many times the connection was made again.
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn conn(&self) -> Arc<Conn> {
        match self.conn.lock() {
            Ok(c) => c.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Connects again after `failed` dropped (unless another thread did
    /// already), waiting 1, 2, 4 s before attempts 1, 2, 3.
    fn reconnect(&self, failed: &Arc<Conn>, attempt: u32) -> Result<()> {
        std::thread::sleep(std::time::Duration::from_secs(1 << attempt.saturating_sub(1).min(4)));
        let Ok(mut current) = self.conn.lock() else { return Ok(()) };
        if !Arc::ptr_eq(&current, failed) {
            return Ok(());
        }
        let conn = self.rt.block_on(Conn::open(&self.config)).map_err(|message| Error::Op {
            store: self.describe.clone(),
            op: "connect again to",
            name: String::new(),
            message,
        })?;
        let old = std::mem::replace(&mut *current, Arc::new(conn));
        drop(current);
        self.rt.block_on(old.close());
        self.reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        Ok(())
    }

    /// Runs `op` on the connection, again on a new one when it drops.
    fn retry<T, F, Fut>(&self, what: &'static str, name: &str, op: F) -> Result<T>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: std::future::Future<Output = SftpResult<T>>,
    {
        let mut attempt = 0;
        loop {
            let c = self.conn();
            match self.rt.block_on(op(c.clone())) {
                Ok(v) => return Ok(v),
                Err(e) if lost(&e) && attempt < RETRIES => {
                    attempt += 1;
                    self.reconnect(&c, attempt)?;
                }
                Err(e) => return Err(self.err(what, name, &c, e)),
            }
        }
    }

    fn path(&self, name: &str) -> Result<PathBuf> {
        check_name(&self.describe, name)?;
        Ok(self.root.join(name))
    }

    fn err(&self, op: &'static str, name: &str, c: &Conn, e: openssh_sftp_client::Error) -> Error {
        if matches!(e, openssh_sftp_client::Error::SftpError(SftpErrorKind::NoSuchFile, _)) {
            return Error::NotFound { store: self.describe.clone(), name: name.to_string() };
        }
        let mut message = match &e {
            openssh_sftp_client::Error::SftpError(kind, msg) => {
                let msg = msg.to_string();
                let text = msg.split("Language Tag").next().unwrap_or_default();
                let text = text.trim().trim_end_matches(',').trim_start_matches("Err Message:").trim();
                let said =
                    if text.is_empty() || text == format!("{kind:?}") { String::new() } else { format!(": {text}") };
                format!("the server said {kind:?}{said}")
            }
            other => other.to_string(),
        };
        if lost(&e) {
            // The connection went: what ssh said is the useful part.
            let said = c.said();
            if !said.is_empty() {
                message = format!("{message} (ssh: {said})");
            }
        }
        Error::Op { store: self.describe.clone(), op, name: name.to_string(), message }
    }

    /// Makes directory `dir` and those above it (up to the root) as needed.
    async fn make_dirs(&self, c: &Conn, dir: &Path) -> SftpResult<()> {
        if dir.as_os_str().is_empty() || self.dirs.lock().is_ok_and(|d| d.contains(dir)) {
            return Ok(());
        }
        let mut fs = c.sftp.fs();
        let mut at = PathBuf::new();
        for comp in dir.components() {
            at.push(comp);
            if self.dirs.lock().is_ok_and(|d| d.contains(&at)) {
                continue;
            }
            if let Err(e) = fs.create_dir(&at).await {
                // It may be there already (or made by another run).
                match fs.metadata(&at).await {
                    Ok(m) if m.file_type().is_some_and(|t| t.is_dir()) => {}
                    _ => return Err(e),
                }
            }
            if let Ok(mut d) = self.dirs.lock() {
                d.insert(at.clone());
            }
        }
        Ok(())
    }

    /// Moves the written temporary `tmp` to `path`, replacing what is
    /// there (see the module's note on servers without posix-rename).
    async fn publish(&self, c: &Conn, tmp: &Path, path: &Path, name: &str) -> SftpResult<()> {
        let mut fs = c.sftp.fs();
        if self.posix_rename {
            return fs.rename(tmp, path).await;
        }
        let first = match fs.rename(tmp, path).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if fs.metadata(path).await.is_err() {
            return Err(first);
        }
        let aside = self.root.join(crate::temp_name(name, ".old"));
        fs.rename(path, &aside).await?;
        if let Err(e) = fs.rename(tmp, path).await {
            let _ = fs.rename(&aside, path).await;
            return Err(e);
        }
        fs.remove_file(&aside).await
    }

    /// Writes `data` at offset `at` of `file`, pipelined: several requests
    /// in flight, each paced at the upload limit when it is sent.
    async fn write_at(&self, file: &openssh_sftp_client::file::File, data: &[u8], at: u64) -> SftpResult<()> {
        let mut pieces = Vec::new();
        for (i, piece) in data.chunks(PIECE).enumerate() {
            let mut f = file.clone();
            let from = at + (i * PIECE) as u64;
            let rate = self.upload.clone();
            pieces.push(async move {
                crate::limit::pace_async(rate, piece.len() as u64).await;
                tokio::io::AsyncSeekExt::seek(&mut f, std::io::SeekFrom::Start(from)).await?;
                f.write_all(piece).await
            });
            if pieces.len() == IN_FLIGHT {
                for r in futures_join(std::mem::take(&mut pieces)).await {
                    r?;
                }
            }
        }
        for r in futures_join(pieces).await {
            r?;
        }
        Ok(())
    }

    /// Writes `len` bytes of `data` under a temporary name and moves them
    /// to `name`: over what is there if `overwrite`, else only where
    /// nothing is (a hard link, which refuses an existing name, where the
    /// server has them; else a check just before). A connection that drops
    /// is made again and the upload goes on from the piece in flight.
    fn write(&self, name: &str, data: &mut dyn std::io::Read, len: u64, overwrite: bool) -> Result<()> {
        let path = self.path(name)?;
        let tmp = self.root.join(crate::temp_name(name, ""));
        let (tmp_ref, path_ref) = (&tmp, &path);
        self.retry("write", name, |c| async move {
            if let Some(dir) = path_ref.parent() {
                self.make_dirs(&c, dir).await?;
            }
            c.sftp.options().write(true).create(true).truncate(true).open(tmp_ref).await?.close().await
        })?;
        let abandon = |e: Error| {
            let c = self.conn();
            let _ = self.rt.block_on(c.sftp.fs().remove_file(&tmp));
            e
        };
        let failed = |message: String| Error::Op { store: self.describe(), op: "write", name: name.into(), message };
        let mut buf = vec![0u8; (crate::CHUNK as u64).min(len.max(1)) as usize];
        let mut at = 0u64;
        while at < len {
            let want = (len - at).min(buf.len() as u64) as usize;
            let mut got = 0;
            while got < want {
                match data.read(&mut buf[got..want]) {
                    Ok(0) => return Err(abandon(failed(format!("{} of {len} bytes given", at + got as u64)))),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(abandon(failed(format!("reading what to upload: {e}")))),
                }
            }
            let piece = &buf[..got];
            // Each piece on a fresh handle of the temporary file (opened
            // without truncating): after a reconnection it is written again
            // at its offset, and nothing before it is lost.
            self.retry("write", name, |c| async move {
                let file = c.sftp.options().write(true).open(tmp_ref).await?;
                self.write_at(&file, piece, at).await?;
                file.close().await
            })
            .map_err(abandon)?;
            at += got as u64;
        }
        let exists = || Error::Exists { store: self.describe(), name: name.to_string() };
        if overwrite {
            return self
                .retry("write", name, |c| async move {
                    match self.publish(&c, tmp_ref, path_ref, name).await {
                        // Moved by an attempt whose answer was lost.
                        Err(e) if !lost(&e) && Self::moved(&c, tmp_ref, path_ref, len).await => Ok(()),
                        other => other,
                    }
                })
                .map_err(abandon);
        }
        if self.hardlink {
            let linked = self.retry("write", name, |c| async move {
                match c.sftp.fs().hard_link(tmp_ref, path_ref).await {
                    Ok(()) => Ok(true),
                    Err(e) if lost(&e) => Err(e),
                    // Refused: there is something of that name.
                    Err(e) => match c.sftp.fs().metadata(path_ref).await {
                        Ok(_) => Ok(false),
                        Err(_) => Err(e),
                    },
                }
            });
            let c = self.conn();
            let _ = self.rt.block_on(c.sftp.fs().remove_file(&tmp));
            return match linked {
                Ok(true) => Ok(()),
                Ok(false) => Err(exists()),
                Err(e) => Err(e),
            };
        }
        if self.retry("write", name, |c| async move { Ok(c.sftp.fs().metadata(path_ref).await.is_ok()) })? {
            return Err(abandon(exists()));
        }
        self.retry("write", name, |c| async move { self.publish(&c, tmp_ref, path_ref, name).await }).map_err(abandon)
    }

    /// Whether `tmp` is gone and `path` holds `len` bytes: a move whose
    /// answer was lost with the connection.
    async fn moved(c: &Conn, tmp: &Path, path: &Path, len: u64) -> bool {
        let mut fs = c.sftp.fs();
        fs.metadata(tmp).await.is_err() && fs.metadata(path).await.is_ok_and(|m| m.len() == Some(len))
    }
}

/// Runs the futures at once, their results in order.
async fn futures_join<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futures.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// A clear message for an `ssh` that would not connect.
fn ssh_failure(host: &str, said: &str, status: Option<std::process::ExitStatus>, sftp: &str) -> String {
    let said = said.trim();
    if said.contains("REMOTE HOST IDENTIFICATION HAS CHANGED") {
        return format!(
            "the host key of {host} has changed since it was recorded in known_hosts: refused (someone may be \
             between you and the server, or the server was reinstalled: check, then remove the old key with \
             `ssh-keygen -R {host}`)"
        );
    }
    if said.contains("Host key verification failed") {
        return format!(
            "the host key of {host} is not in known_hosts, or does not match: refused (connect once with `ssh \
             {host}` to check and record it)"
        );
    }
    let status = status.map(|s| format!(" ({s})")).unwrap_or_default();
    if said.is_empty() {
        format!("ssh ended{status}; no SFTP: {sftp}")
    } else {
        let last: Vec<&str> = said.lines().rev().take(4).collect();
        let last: Vec<&str> = last.into_iter().rev().collect();
        format!("ssh ended{status}: {}", last.join(" / "))
    }
}

impl Drop for SftpStore {
    fn drop(&mut self) {
        let c = self.conn();
        self.rt.block_on(c.close());
    }
}

impl Store for SftpStore {
    fn describe(&self) -> String {
        self.describe.clone()
    }

    fn list(&self, prefix: &str) -> Result<Vec<Object>> {
        let dir = &prefix[..prefix.rfind('/').map_or(0, |i| i + 1)];
        let start = self.root.join(dir.trim_end_matches('/'));
        let (start, dir) = (&start, dir.trim_end_matches('/'));
        let mut out = self.retry("list", prefix, |c| async move {
            let mut out = Vec::new();
            let mut fs = c.sftp.fs();
            let mut stack = vec![(start.clone(), dir.to_string())];
            while let Some((path, rel)) = stack.pop() {
                let d = match fs.open_dir(&path).await {
                    Ok(d) => d,
                    Err(openssh_sftp_client::Error::SftpError(SftpErrorKind::NoSuchFile, _)) => continue,
                    Err(e) => return Err(e),
                };
                let mut entries = Box::pin(d.read_dir());
                while let Some(e) =
                    std::future::poll_fn(|cx| futures_core::Stream::poll_next(entries.as_mut(), cx)).await
                {
                    let e = e?;
                    let Some(base) = e.filename().to_str().map(str::to_string) else { continue };
                    if base == "." || base == ".." {
                        continue;
                    }
                    let name = if rel.is_empty() { base.clone() } else { format!("{rel}/{base}") };
                    let meta = e.metadata();
                    match meta.file_type() {
                        Some(t)
                            if t.is_dir() && (name.starts_with(prefix) || prefix.starts_with(&format!("{name}/"))) =>
                        {
                            stack.push((path.join(&base), name));
                        }
                        Some(t)
                            if t.is_file()
                                && name.starts_with(prefix)
                                && fsutil::partial_target(base.as_bytes()).is_none() =>
                        {
                            out.push(Object { name, size: meta.len().unwrap_or(0) });
                        }
                        _ => {}
                    }
                }
            }
            Ok(out)
        })?;
        out.sort();
        Ok(out)
    }

    fn size(&self, name: &str) -> Result<Option<u64>> {
        let path = self.path(name)?;
        let path = &path;
        self.retry("stat", name, |c| async move {
            match c.sftp.fs().metadata(path).await {
                Ok(m) if m.file_type().is_some_and(|t| t.is_file()) => Ok(Some(m.len().unwrap_or(0))),
                Ok(_) => Ok(None),
                Err(openssh_sftp_client::Error::SftpError(SftpErrorKind::NoSuchFile, _)) => Ok(None),
                Err(e) => Err(e),
            }
        })
    }

    fn read_range(&self, name: &str, offset: u64, len: u64) -> Result<Vec<u8>> {
        let path = self.path(name)?;
        let path = &path;
        let end = offset.saturating_add(len);
        self.retry("read", name, |c| async move {
            // No stat first: pieces are asked for up to `end`, and the
            // first short one (the object's end) ends the read.
            let file = c.sftp.open(path).await?;
            let mut out = Vec::new();
            let mut at = offset;
            // Requests in flight: one at first (most objects are small),
            // doubling up to IN_FLIGHT.
            let mut width = 1;
            'read: while at < end {
                let mut batch = Vec::new();
                let mut from = at;
                while from < end && batch.len() < width {
                    let n = (end - from).min(PIECE as u64);
                    let mut f = file.clone();
                    let rate = self.download.clone();
                    batch.push(async move {
                        crate::limit::pace_async(rate, n).await;
                        tokio::io::AsyncSeekExt::seek(&mut f, std::io::SeekFrom::Start(from)).await?;
                        let mut got = bytes::BytesMut::new();
                        while (got.len() as u64) < n {
                            match f.read((n - got.len() as u64) as u32, bytes::BytesMut::new()).await? {
                                Some(b) => got.extend_from_slice(&b),
                                None => break,
                            }
                        }
                        Ok::<_, openssh_sftp_client::Error>((got, n))
                    });
                    from += n;
                }
                for piece in futures_join(batch).await {
                    let (got, want) = piece?;
                    out.extend_from_slice(&got);
                    if (got.len() as u64) < want {
                        break 'read;
                    }
                }
                at = from;
                width = (width * 2).min(IN_FLIGHT);
            }
            let _ = file.close().await;
            Ok(out)
        })
    }

    fn read(&self, name: &str) -> Result<Vec<u8>> {
        self.read_range(name, 0, u64::MAX)
    }

    fn put(&self, name: &str, data: &[u8]) -> Result<()> {
        self.put_from(name, &mut &data[..], data.len() as u64)
    }

    fn put_from(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()> {
        self.write(name, data, len, true)
    }

    fn put_from_new(&self, name: &str, data: &mut dyn std::io::Read, len: u64) -> Result<()> {
        self.write(name, data, len, false)
    }

    fn delete(&self, name: &str) -> Result<()> {
        let path = self.path(name)?;
        let path = &path;
        self.retry("delete", name, |c| async move {
            match c.sftp.fs().remove_file(path).await {
                Ok(()) | Err(openssh_sftp_client::Error::SftpError(SftpErrorKind::NoSuchFile, _)) => Ok(()),
                Err(e) => Err(e),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let c = SftpConfig::from_url("sftp://ann@nas.local:2222/srv/backups/").unwrap();
        assert_eq!(
            (c.user.as_deref(), c.host.as_str(), c.port, c.root.as_str()),
            (Some("ann"), "nas.local", Some(2222), "/srv/backups")
        );
        assert_eq!(c.describe(), "sftp://ann@nas.local:2222/srv/backups");
        let c = SftpConfig::from_url("sftp://friend/~/from-ann").unwrap();
        assert_eq!(c.describe(), "sftp://friend/~/from-ann");
        assert_eq!((c.user, c.port, c.root.as_str()), (None, None, "from-ann"));
        let c = SftpConfig::from_url("sftp://[::1]:22/r").unwrap();
        assert_eq!((c.host.as_str(), c.port), ("::1", Some(22)));
        assert_eq!(c.describe(), "sftp://[::1]:22/r");
        for bad in
            ["sftp://ann:secret@host/r", "sftp://-oProxyCommand=x/r", "sftp:///r", "sftp://h:port/r", "sftp://@h/r"]
        {
            let e = SftpConfig::from_url(bad).unwrap_err().to_string();
            assert!(!e.contains("secret"), "{e}");
        }
    }
}
