//! The access log's writer: a thread of its own that takes finished lines
//! from a bounded queue and writes them in batches, so a request never
//! waits on the disk. A full queue drops the line (counted); a failed
//! write drops its batch (counted) and requests go on. A file is reopened
//! on request (SIGUSR1, logrotate's convention) between two batches, so
//! no line is split or lost across the rotation.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;

/// Where lines go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    Stderr,
    Stdout,
    File(std::path::PathBuf),
}

impl Target {
    pub fn parse(path: &str) -> Target {
        match path {
            "stderr" => Target::Stderr,
            "stdout" => Target::Stdout,
            file => Target::File(file.into()),
        }
    }
}

/// What the writer's thread and the requests share.
#[derive(Default)]
pub struct Counts {
    pub written: AtomicU64,
    pub dropped: AtomicU64,
    reopen: AtomicBool,
}

/// The sending side; the thread ends when the last one is dropped.
pub struct Writer {
    tx: SyncSender<Vec<u8>>,
    pub counts: Arc<Counts>,
    pub target: Target,
}

impl Writer {
    /// Start the writer's thread for `target`, queueing at most `buffer`
    /// lines. A file that cannot be opened now is tried again at each
    /// batch (its lines are dropped meanwhile).
    pub fn start(target: Target, buffer: usize) -> io::Result<Writer> {
        let (tx, rx) = sync_channel(buffer);
        let counts = Arc::new(Counts::default());
        let thread_counts = counts.clone();
        let thread_target = target.clone();
        std::thread::Builder::new()
            .name("shoal-access-log".into())
            .spawn(move || run(thread_target, rx, &thread_counts))?;
        Ok(Writer { tx, counts, target })
    }

    /// Queue one line (ending in `\n`); never waits.
    pub fn send(&self, line: Vec<u8>) {
        match self.tx.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counts.dropped.fetch_add(1, Relaxed);
            }
        }
    }

    /// Close and open the file again before the next batch (SIGUSR1).
    pub fn reopen(&self) {
        self.counts.reopen.store(true, Relaxed);
    }
}

enum Out {
    Stderr(io::Stderr),
    Stdout(io::Stdout),
    File(File),
    /// Could not be opened; tried again at the next batch.
    Closed,
}

fn open(target: &Target) -> Out {
    match target {
        Target::Stderr => Out::Stderr(io::stderr()),
        Target::Stdout => Out::Stdout(io::stdout()),
        Target::File(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Out::File(f),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot open the access log; its lines are dropped until it can be");
                Out::Closed
            }
        },
    }
}

impl Out {
    fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        match self {
            Out::Stderr(s) => s.lock().write_all(bytes),
            Out::Stdout(s) => s.lock().write_all(bytes),
            Out::File(f) => f.write_all(bytes),
            Out::Closed => Err(io::Error::new(io::ErrorKind::NotFound, "not open")),
        }
    }
}

/// Batches of at most this many bytes go out in one write.
const BATCH: usize = 64 << 10;

fn run(target: Target, rx: Receiver<Vec<u8>>, counts: &Counts) {
    let mut out = open(&target);
    let mut failing = false;
    let mut batch = Vec::with_capacity(BATCH);
    while let Ok(first) = rx.recv() {
        let mut lines = 1u64;
        batch.extend_from_slice(&first);
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(line) => {
                    batch.extend_from_slice(&line);
                    lines += 1;
                }
                Err(_) => break,
            }
        }
        if counts.reopen.swap(false, Relaxed) || matches!(out, Out::Closed) {
            out = open(&target);
        }
        match out.write_all(&batch) {
            Ok(()) => {
                counts.written.fetch_add(lines, Relaxed);
                if failing {
                    tracing::info!("the access log is written again");
                    failing = false;
                }
            }
            Err(e) => {
                counts.dropped.fetch_add(lines, Relaxed);
                if !failing {
                    tracing::warn!(error = %e, "cannot write the access log; lines are dropped (shoal_access_log_dropped_total) until it can");
                    failing = true;
                }
            }
        }
        batch.clear();
    }
}
