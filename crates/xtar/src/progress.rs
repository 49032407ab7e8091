use crate::Error;

/// What the library tells its caller while it works. The binaries turn
/// this into progress bars and messages; the default methods do nothing.
pub trait Observer: Sync {
    /// The amount of work ahead, in bytes.
    fn start(&self, _total_bytes: u64) {}
    /// `bytes` more of the work are done.
    fn advance(&self, _bytes: u64) {}
    /// A problem that did not stop the work (the file is skipped, or kept
    /// with a caveat).
    fn warning(&self, _warning: &Error) {}
    /// Something worth telling that is not a problem (a fifo recorded but
    /// not stored); it does not make the result unclean.
    fn notice(&self, _notice: &Error) {}
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Observer for Silent {}
