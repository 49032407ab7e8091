//! The window of parallel work: small files are read and compressed on
//! the pool ahead of the writer, at most `WINDOW_BYTES` of input or
//! `WINDOW_FILES` files ahead, and handed to it in order.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use super::large::{changed_since, open_regular};
use crate::compress::{self, Compressed, Encoder};
use crate::{Error, Result};

/// Input bytes of small files compressed ahead of the writer, at most.
const WINDOW_BYTES: u64 = 64 << 20;
/// Small files compressed ahead of the writer, at most.
const WINDOW_FILES: usize = 4096;

/// A small file, compressed by a worker.
pub(crate) struct Job {
    pub compressed: Compressed,
    pub meta: walk::Meta,
    /// It changed while it was read.
    pub changed: bool,
    pub path: PathBuf,
}

/// One file to store: where it is on disk and its size at walk time.
pub(crate) struct Input {
    pub disk: PathBuf,
    pub size: u64,
}

/// What the writer does with the next file.
pub(crate) enum Next {
    /// A small file, compressed (or the error that prevented it).
    Small(Box<Result<Job>>),
    /// A large file: the writer streams it itself.
    Large,
}

/// Compresses small files ahead of the writer and hands them over in the
/// order of `inputs`.
pub(crate) struct Window {
    inputs: Vec<Input>,
    level: u32,
    follow: bool,
    encoder: Encoder,
    next_submit: usize,
    taken: usize,
    inflight: u64,
    tx: mpsc::Sender<(usize, Result<Job>)>,
    rx: mpsc::Receiver<(usize, Result<Job>)>,
    ready: HashMap<usize, Result<Job>>,
}

impl Window {
    pub(crate) fn new(inputs: Vec<Input>, level: u32, follow: bool, encoder: Encoder) -> Window {
        let (tx, rx) = mpsc::channel();
        Window { inputs, level, follow, encoder, next_submit: 0, taken: 0, inflight: 0, tx, rx, ready: HashMap::new() }
    }

    /// The next file, in order. Keeps the window of work ahead full.
    /// `out` names the archive in the error raised if the workers stop.
    pub(crate) fn next<'s>(&mut self, scope: &rayon::Scope<'s>, out: &Path) -> Result<Next> {
        let seq = self.taken;
        let Some(size) = self.inputs.get(seq).map(|i| i.size) else {
            return Err(Error::Write {
                path: out.to_path_buf(),
                source: std::io::Error::other("no file left to write"),
            });
        };
        while self.next_submit < self.inputs.len()
            && (self.next_submit <= seq || (self.inflight < WINDOW_BYTES && self.next_submit < seq + WINDOW_FILES))
        {
            let input = &self.inputs[self.next_submit];
            if input.size <= self.encoder.small_max() {
                self.inflight += input.size;
                let tx = self.tx.clone();
                let (path, level, follow, n) = (input.disk.clone(), self.level, self.follow, self.next_submit);
                let encoder = self.encoder.clone();
                scope.spawn(move |_| {
                    // A worker that panics still answers, so the writer,
                    // which waits for every file in turn, never hangs.
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        compress_job(&path, level, follow, &encoder)
                    }))
                    .unwrap_or_else(|_| Err(Error::WorkerPanicked { path: path.clone() }));
                    let _ = tx.send((n, r));
                });
            }
            self.next_submit += 1;
        }
        self.taken += 1;
        if size > self.encoder.small_max() {
            return Ok(Next::Large);
        }
        let r = loop {
            if let Some(r) = self.ready.remove(&seq) {
                break r;
            }
            match self.rx.recv() {
                Ok((n, r)) => {
                    self.ready.insert(n, r);
                }
                Err(_) => {
                    return Err(Error::Write {
                        path: out.to_path_buf(),
                        source: std::io::Error::other("compression workers stopped"),
                    })
                }
            }
        };
        self.inflight -= size;
        Ok(Next::Small(Box::new(r)))
    }
}

fn compress_job(path: &Path, level: u32, follow: bool, encoder: &Encoder) -> Result<Job> {
    let (mut f, meta) = open_regular(path, follow)?;
    let (compressed, short) = compress::compress_small(&mut f, meta.size, level, encoder)
        .map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let changed = short || changed_since(&f, &meta);
    Ok(Job { compressed, meta, changed, path: path.to_path_buf() })
}
