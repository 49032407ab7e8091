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
/// Small files compressed by one task, at most.
const BATCH_FILES: usize = 32;
/// Input bytes of one task: a run of small files ends once it reaches this.
const BATCH_BYTES: u64 = 256 << 10;

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
    /// Batches of results: the number of the first file, then each one's.
    tx: mpsc::Sender<(usize, Vec<Result<Job>>)>,
    rx: mpsc::Receiver<(usize, Vec<Result<Job>>)>,
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
        while self.next_submit < self.inputs.len() && self.open(self.next_submit, seq) {
            self.submit_batch(scope, seq);
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
                Ok((first, batch)) => {
                    self.ready.extend((first..).zip(batch));
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

    /// Whether file `n` may be handed to the workers while the writer
    /// waits for file `seq`: always up to `seq`, beyond it while the window
    /// holds fewer than `WINDOW_BYTES` and `WINDOW_FILES`.
    fn open(&self, n: usize, seq: usize) -> bool {
        n <= seq || (self.inflight < WINDOW_BYTES && n < seq + WINDOW_FILES)
    }

    /// Hands the workers the next files from `next_submit`: one task for
    /// a run of small files of at most `BATCH_FILES` files and
    /// `BATCH_BYTES` bytes (a message and a wake-up per file cost more
    /// than compressing a file of a few KiB), skipping large ones. The run
    /// ends early where the window is full, once it has reached `seq`.
    fn submit_batch<'s>(&mut self, scope: &rayon::Scope<'s>, seq: usize) {
        let first = self.next_submit;
        let mut paths = Vec::new();
        let mut bytes = 0;
        while let Some(input) = self.inputs.get(self.next_submit) {
            let n = self.next_submit;
            let small = input.size <= self.encoder.small_max();
            if !self.open(n, seq)
                || (!paths.is_empty() && (!small || paths.len() >= BATCH_FILES || bytes >= BATCH_BYTES))
            {
                break;
            }
            self.next_submit += 1;
            if !small {
                break;
            }
            self.inflight += input.size;
            bytes += input.size;
            paths.push(input.disk.clone());
        }
        if paths.is_empty() {
            return;
        }
        let tx = self.tx.clone();
        let (level, follow, encoder) = (self.level, self.follow, self.encoder.clone());
        scope.spawn(move |_| {
            let batch = paths
                .into_iter()
                .map(|path| {
                    // A worker that panics still answers, so the writer,
                    // which waits for every file in turn, never hangs.
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        compress_job(&path, level, follow, &encoder)
                    }))
                    .unwrap_or_else(|_| Err(Error::WorkerPanicked { path: path.clone() }))
                })
                .collect();
            let _ = tx.send((first, batch));
        });
    }
}

fn compress_job(path: &Path, level: u32, follow: bool, encoder: &Encoder) -> Result<Job> {
    let (mut f, meta) = open_regular(path, follow)?;
    let (compressed, short) = compress::compress_small(&mut f, meta.size, level, encoder)
        .map_err(|source| Error::Read { path: path.to_path_buf(), source })?;
    let changed = short || changed_since(&f, &meta);
    Ok(Job { compressed, meta, changed, path: path.to_path_buf() })
}
