//! Volume sets: one tree cut into archives of at most a given size
//! (`NAME.001.xtar`, `NAME.002.xtar`, …), each a complete `.xtar` of its
//! own, with the table of the whole set (`.xtar-volumes`) in every volume.
//! A file member that does not fit in the room left in a volume is cut
//! into parts (`PATH.zip.K.xtar-part`) on consecutive volumes: that is the
//! only dependency between volumes. See `docs/format/volumes.md`.
//!
//! This crate uses only the public API of `xtar`: the set writer is a
//! [`xtar::TreeSink`] that `xtar::write_entries` drives, placing each
//! member in the volume open at the time ([`write`]); the budget of a
//! volume is pure arithmetic ([`plan`]); [`read`] and [`salvage`] read
//! sets back.

mod compress;
mod error;
pub mod plan;
pub mod read;
pub mod salvage;
pub mod table;
pub mod write;

pub use compress::{compress, Job, Outcome, Output};
pub use error::{Error, Result};
pub use read::{extract_set, find_set, open_set, SetReport, VolumeSet};
pub use salvage::salvage_set;
pub use table::{set_base, volume_base, volume_path, Place, Table, VOLUMES_MAGIC, VOLUMES_VERSION};
pub use write::{compress_volumes, VolumeOptions, VolumeSummary};
