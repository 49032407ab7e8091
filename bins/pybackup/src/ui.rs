//! What the user sees on stderr: warnings, progress bars, summaries.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Prints warnings and drives the progress bar.
pub struct Ui {
    bar: Option<ProgressBar>,
    quiet: bool,
    warnings: AtomicU64,
}

impl Ui {
    pub fn new(quiet: bool, no_progress: bool, verb: &str) -> Ui {
        let show = !quiet && !no_progress && std::io::stderr().is_terminal();
        let bar = show.then(|| {
            let b = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template("{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            b.set_prefix(verb.to_string());
            b
        });
        Ui { bar, quiet, warnings: AtomicU64::new(0) }
    }

    /// Prints a message to stderr unless quiet, without breaking the bar.
    pub fn say(&self, msg: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }

    /// Warnings printed so far.
    pub fn warnings(&self) -> u64 {
        self.warnings.load(Ordering::Relaxed)
    }

    /// Whether -q was given.
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// Prints a warning (shown even with -q).
    pub fn say_warning(&self, msg: &str) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        self.print(&format!("pybackup: warning: {msg}"));
    }

    pub fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

pub use cli::error_chain as chain;

impl Ui {
    fn print(&self, msg: &str) {
        match &self.bar {
            Some(b) => b.suspend(|| eprintln!("{msg}")),
            None => eprintln!("{msg}"),
        }
    }
}

impl xtar::Observer for Ui {
    fn notice(&self, n: &xtar::Error) {
        if !self.quiet {
            self.print(&format!("pybackup: note: {}", chain(n)));
        }
    }

    fn start(&self, total: u64) {
        if let Some(b) = &self.bar {
            b.set_length(total);
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.inc(bytes);
        }
    }

    fn warning(&self, w: &xtar::Error) {
        self.warnings.fetch_add(1, Ordering::Relaxed);
        // Warnings are shown even with -q: they explain a non-zero exit.
        self.print(&format!("pybackup: warning: {}", chain(w)));
    }
}

pub use cli::human;
