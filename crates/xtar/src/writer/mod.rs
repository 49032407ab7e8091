//! Writing archives.
//!
//! [`ArchiveWriter`] is the builder every writer in the workspace uses:
//! open a container, add files (from disk, already compressed, or copied
//! byte for byte from another archive), add extra members, finish. On top
//! of it, [`write_entries`] archives a walked tree in three stages, one
//! file each: [`plan`] (containers, order, hard links), [`pipeline`] (the
//! window of files compressed in parallel ahead of the writer) and the
//! builder, whose bytes go through one ordered [`bytes`] writer.

mod builder;
mod bytes;
mod large;
mod packed;
mod pipeline;
mod place;
mod plan;
mod tree;

pub use builder::{ArchiveWriter, Stored, Written};
pub use large::{stream_zip, Streamed};
pub use packed::{Extra, PackedWriter, PACK_BYTES, PACK_FILES};
pub use plan::{plan, Step};
pub use tree::{
    request_path, root_label, walk_source, write_archive, write_entries, Codec, CompressOptions, CompressSummary,
    ListSkip, Select, TreeSink,
};
