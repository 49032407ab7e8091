use std::ffi::OsString;
use std::fs::Metadata;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use crate::Error;

/// What kind of file system object an entry is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A regular file.
    File,
    /// A directory.
    Dir,
    /// A symbolic link (not followed).
    Symlink,
    /// A named pipe.
    Fifo,
    /// A Unix domain socket.
    Socket,
    /// A character device.
    CharDevice,
    /// A block device.
    BlockDevice,
}

/// The `lstat` metadata a backup needs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Meta {
    /// All 12 permission bits (`0o7777`), without the file type.
    pub mode: u32,
    /// Modification time, seconds since the epoch (may be negative).
    pub mtime: i64,
    /// Nanoseconds of the modification time, `0..1_000_000_000`.
    pub mtime_nsec: u32,
    /// Status change time, seconds since the epoch.
    pub ctime: i64,
    /// Nanoseconds of the status change time.
    pub ctime_nsec: u32,
    /// Access time, seconds since the epoch.
    pub atime: i64,
    /// Nanoseconds of the access time.
    pub atime_nsec: u32,
    /// Size in bytes (for symlinks, the length of the target).
    pub size: u64,
    /// Device of the containing file system.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Number of hard links.
    pub nlink: u64,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Birth (creation) time, seconds and nanoseconds since the epoch,
    /// where the file system reports it (`statx`).
    pub birth: Option<(i64, u32)>,
}

impl Meta {
    /// Takes the fields from a [`std::fs::Metadata`].
    pub fn from_std(m: &Metadata) -> Meta {
        Meta {
            mode: m.mode() & 0o7777,
            mtime: m.mtime(),
            mtime_nsec: clamp_nsec(m.mtime_nsec()),
            ctime: m.ctime(),
            ctime_nsec: clamp_nsec(m.ctime_nsec()),
            atime: m.atime(),
            atime_nsec: clamp_nsec(m.atime_nsec()),
            size: m.size(),
            dev: m.dev(),
            ino: m.ino(),
            nlink: m.nlink(),
            uid: m.uid(),
            gid: m.gid(),
            birth: m.created().ok().map(|t| match t.duration_since(std::time::UNIX_EPOCH) {
                Ok(d) => (d.as_secs() as i64, d.subsec_nanos()),
                Err(e) => {
                    let d = e.duration();
                    if d.subsec_nanos() == 0 {
                        (-(d.as_secs() as i64), 0)
                    } else {
                        (-(d.as_secs() as i64) - 1, 1_000_000_000 - d.subsec_nanos())
                    }
                }
            }),
        }
    }
}

fn clamp_nsec(n: i64) -> u32 {
    n.clamp(0, 999_999_999) as u32
}

/// One entry found by the walk.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Path relative to the walk root, raw bytes, `/`-separated; empty for
    /// the root itself.
    pub path: Vec<u8>,
    /// What it is.
    pub kind: Kind,
    /// Its metadata.
    pub meta: Meta,
    /// The target of a symbolic link, raw bytes.
    pub link_target: Option<Vec<u8>>,
}

impl Entry {
    pub(crate) fn from_metadata(rel: Vec<u8>, full: &Path, m: &Metadata, on_error: &mut impl FnMut(Error)) -> Entry {
        let ft = m.file_type();
        let kind = if ft.is_dir() {
            Kind::Dir
        } else if ft.is_file() {
            Kind::File
        } else if ft.is_symlink() {
            Kind::Symlink
        } else if ft.is_fifo() {
            Kind::Fifo
        } else if ft.is_socket() {
            Kind::Socket
        } else if ft.is_char_device() {
            Kind::CharDevice
        } else {
            Kind::BlockDevice
        };
        let link_target = if kind == Kind::Symlink {
            match std::fs::read_link(full) {
                Ok(t) => Some(OsString::from(t).into_vec()),
                Err(source) => {
                    on_error(Error::Io { path: full.to_path_buf(), source });
                    Some(Vec::new())
                }
            }
        } else {
            None
        };
        Entry { path: rel, kind, meta: Meta::from_std(m), link_target }
    }

    /// Number of components in the path (0 for the root).
    pub fn depth(&self) -> usize {
        if self.path.is_empty() {
            0
        } else {
            self.path.iter().filter(|&&b| b == b'/').count() + 1
        }
    }

    /// The last component of the path (empty for the root).
    pub fn name(&self) -> &[u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.path[i + 1..],
            None => &self.path,
        }
    }
}
