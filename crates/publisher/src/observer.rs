//! How a publish reports progress: bars on a terminal, plain lines otherwise.

use std::io::IsTerminal;
use std::sync::Arc;

use berth_core::Repository;
use berth_core::store::Progress;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::source::BlobRef;

/// What happened to one blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobOutcome {
    Uploaded,
    /// The repository already had it.
    Present,
    /// Another repository of the store had it; copied server-side.
    Copied {
        from: Repository,
    },
}

pub trait Observer: Send + Sync {
    /// An upload begins; the returned callback is fed the bytes sent.
    fn upload_started(&self, blob: &BlobRef) -> Progress;
    fn blob_done(&self, blob: &BlobRef, outcome: &BlobOutcome);
    fn note(&self, message: &str);
}

/// Picks bars when stderr is a terminal, plain lines otherwise.
pub fn for_stderr() -> Box<dyn Observer> {
    if std::io::stderr().is_terminal() {
        Box::new(Bars::default())
    } else {
        Box::new(Lines)
    }
}

/// Reports nothing (library callers, tests).
pub struct Silent;

impl Observer for Silent {
    fn upload_started(&self, _: &BlobRef) -> Progress {
        Arc::new(|_| {})
    }
    fn blob_done(&self, _: &BlobRef, _: &BlobOutcome) {}
    fn note(&self, _: &str) {}
}

/// One line per finished blob on stderr: readable in CI logs.
pub struct Lines;

impl Observer for Lines {
    fn upload_started(&self, _: &BlobRef) -> Progress {
        Arc::new(|_| {})
    }

    fn blob_done(&self, blob: &BlobRef, outcome: &BlobOutcome) {
        eprintln!("{}", describe(blob, outcome));
    }

    fn note(&self, message: &str) {
        eprintln!("{message}");
    }
}

/// A byte-progress bar per uploading blob.
pub struct Bars {
    bars: MultiProgress,
}

impl Default for Bars {
    fn default() -> Self {
        Bars {
            bars: MultiProgress::with_draw_target(ProgressDrawTarget::stderr()),
        }
    }
}

impl Observer for Bars {
    fn upload_started(&self, blob: &BlobRef) -> Progress {
        let bar = self.bars.add(ProgressBar::new(blob.size));
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
            )
            .expect("progress template is valid")
            .progress_chars("=> "),
        );
        bar.set_prefix(short(blob).to_owned());
        Arc::new(move |n| {
            bar.inc(n);
            if bar.position() >= bar.length().unwrap_or(0) {
                bar.finish_and_clear();
            }
        })
    }

    fn blob_done(&self, blob: &BlobRef, outcome: &BlobOutcome) {
        let _ = self.bars.println(describe(blob, outcome));
    }

    fn note(&self, message: &str) {
        let _ = self.bars.println(message);
    }
}

fn short(blob: &BlobRef) -> &str {
    &blob.digest.hex()[..12]
}

fn describe(blob: &BlobRef, outcome: &BlobOutcome) -> String {
    let what = match outcome {
        BlobOutcome::Uploaded => format!("uploaded ({})", indicatif::HumanBytes(blob.size)),
        BlobOutcome::Present => "already present".to_owned(),
        BlobOutcome::Copied { from } => format!("reused from {from} (server-side copy)"),
    };
    format!("{}: {what}", short(blob))
}
