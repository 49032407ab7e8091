//! The repository's lock: an flock on a disk; in an object store, a lock
//! object that its run refreshes, which other runs respect until it is
//! stale (repository.md §12).

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::{Error, Result};

/// Where lock objects go.
const LOCKS: &str = "locks/";
/// A live run rewrites its lock object this often...
const REFRESH: Duration = Duration::from_secs(60);
/// ...so one not rewritten for this long belongs to a run that died.
const STALE: Duration = Duration::from_secs(5 * 60);

/// A held lock, released when dropped.
pub enum Lock {
    /// An flock on `REPO/lock` (the kernel releases it if the process dies).
    Local(std::fs::File),
    /// A lock object in a store.
    Remote(RemoteLock),
}

/// A lock object, refreshed by a thread while held.
pub struct RemoteLock {
    store: Arc<dyn store::Store>,
    name: String,
    host: String,
    stop: Arc<AtomicBool>,
    refresher: Option<std::thread::JoinHandle<()>>,
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn text(host: &str) -> Vec<u8> {
    format!("pybackup lock\nhost {host}\npid {}\ntime {}\n", std::process::id(), now()).into_bytes()
}

/// What a lock becomes when its run ends and the store will not delete it
/// (credentials that may write but not delete): a lock that says it was
/// last refreshed at time 0, which every run takes for stale.
fn released(host: &str) -> Vec<u8> {
    format!("pybackup lock\nhost {host}\npid {}\ntime 0\nreleased\n", std::process::id()).into_bytes()
}

/// Removes lock object `name`, or, where the store refuses deletion,
/// marks it released.
fn release(store: &dyn store::Store, name: &str, host: &str) {
    if store.delete(name).is_err() {
        let _ = store.put(name, &released(host));
    }
}

/// The time a lock object says it was last refreshed, and its host.
fn parse(bytes: &[u8]) -> Option<(u64, String)> {
    let t = String::from_utf8_lossy(bytes);
    let time = t.lines().find_map(|l| l.strip_prefix("time "))?.trim().parse().ok()?;
    let host = t.lines().find_map(|l| l.strip_prefix("host ")).unwrap_or("?").to_string();
    Some((time, host))
}

impl Lock {
    /// Takes the lock of the repository in `store` (`label` names it): a
    /// lock object is written, then the others are listed; a fresh one of
    /// another run means that run holds the repository (ours is removed,
    /// and the error names it); a stale one (its run died) is removed.
    pub fn remote(store: Arc<dyn store::Store>, label: &Path) -> Result<Lock> {
        let store_err = |e: store::Error| Error::Store(e.to_string());
        let host = String::from_utf8_lossy(&crate::host_name()).into_owned();
        let nonce: u64 = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos().into());
        let name =
            format!("{LOCKS}{}-{}-{nonce:09}", crate::repository::time_name(SystemTime::now()), std::process::id());
        store.put(&name, &text(&host)).map_err(store_err)?;
        for o in store.list(LOCKS).map_err(store_err)? {
            if o.name == name {
                continue;
            }
            let Ok(bytes) = store.read(&o.name) else { continue };
            match parse(&bytes) {
                Some((t, other)) if now().saturating_sub(t) < STALE.as_secs() => {
                    release(store.as_ref(), &name, &host);
                    return Err(Error::LockedRemote {
                        repo: label.to_path_buf(),
                        holder: format!("{} (host {other}, refreshed {} s ago)", o.name, now().saturating_sub(t)),
                    });
                }
                // Stale: its run stopped refreshing it long ago (or it was
                // released where deletion is refused: then it stays).
                _ => {
                    let _ = store.delete(&o.name);
                }
            }
        }
        let stop = Arc::new(AtomicBool::new(false));
        let refresher = {
            let (store, name, stop, host) = (store.clone(), name.clone(), stop.clone(), host.clone());
            std::thread::spawn(move || {
                let mut waited = Duration::ZERO;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(200));
                    waited += Duration::from_millis(200);
                    if waited >= REFRESH {
                        waited = Duration::ZERO;
                        let _ = store.put(&name, &text(&host));
                    }
                }
            })
        };
        Ok(Lock::Remote(RemoteLock { store, name, host, stop, refresher: Some(refresher) }))
    }
}

impl Drop for RemoteLock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.refresher.take() {
            let _ = t.join();
        }
        release(self.store.as_ref(), &self.name, &self.host);
    }
}
