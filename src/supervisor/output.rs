//! Forwarding an instance's stdout and stderr, one line at a time, each line
//! prefixed with the instance id (as docker compose and PM2 do) — or, with
//! `log.format: json`, as a JSON object (time, instance, generation, pid,
//! stream, line), so the whole of shoal's output is JSON lines. The recent
//! lines of each instance are kept in a bounded ring (`shoal logs`,
//! `GET /api/v1/instances/{id}/logs`).
//!
//! Lines go through a bounded channel to one writer thread: writing to
//! shoal's own stdout may block (a slow pipe, a paused terminal), and that
//! must never stall the runtime threads that carry requests. When the writer
//! falls behind, the forwarders wait, and the instances' own pipes fill and
//! slow them down, as they would without shoal.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use serde::Serialize;

use arc_swap::ArcSwap;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, watch};

/// A line longer than this is cut into pieces, so a process that never
/// writes a newline cannot grow shoal's memory.
const MAX_LINE: usize = 16 * 1024;

#[derive(Clone, Copy)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Instances' lines are written as JSON objects (`log.format: json`).
static JSON: AtomicBool = AtomicBool::new(false);

pub fn set_json(on: bool) {
    JSON.store(on, Relaxed);
}

/// One line of an instance's output, as kept and served.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// Orders lines across instances (one counter for all).
    pub seq: u64,
    /// UTC, RFC 3339.
    pub time: String,
    #[serde(skip)]
    pub at: SystemTime,
    #[serde(serialize_with = "text")]
    pub instance: Arc<str>,
    pub generation: u64,
    pub pid: u32,
    pub stream: &'static str,
    /// Without its newline.
    pub line: String,
}

fn text<S: serde::Serializer>(s: &Arc<str>, out: S) -> Result<S::Ok, S::Error> {
    out.serialize_str(s)
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// Lines kept per instance, at most…
const RING_LINES: usize = 1000;
/// …and bytes of them.
const RING_BYTES: usize = 256 << 10;

enum Msg {
    Line(Stream, Vec<u8>),
    /// Answered once every line queued before it is written.
    Flush(tokio::sync::oneshot::Sender<()>),
}

fn writer() -> &'static mpsc::Sender<Msg> {
    static WRITER: OnceLock<mpsc::Sender<Msg>> = OnceLock::new();
    WRITER.get_or_init(|| {
        let (tx, mut rx) = mpsc::channel::<Msg>(1024);
        std::thread::Builder::new()
            .name("shoal-output".into())
            .spawn(move || {
                while let Some(msg) = rx.blocking_recv() {
                    match msg {
                        Msg::Line(Stream::Stdout, line) => {
                            let _ = std::io::stdout().lock().write_all(&line);
                        }
                        Msg::Line(Stream::Stderr, line) => {
                            let _ = std::io::stderr().lock().write_all(&line);
                        }
                        Msg::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            })
            .ok();
        tx
    })
}

/// Wait (up to a second) until the instances' lines queued so far are out,
/// so their last words at shutdown are not lost when shoal exits.
pub async fn flush() {
    let (tx, rx) = tokio::sync::oneshot::channel();
    if writer().send(Msg::Flush(tx)).await.is_ok() {
        let _ = tokio::time::timeout(Duration::from_secs(1), rx).await;
    }
}

/// Lines of an instance's output kept for a failed start's message.
const TAIL_LINES: usize = 8;
/// Characters kept of each such line.
const TAIL_WIDTH: usize = 300;

/// Where one instance's output goes: its prefix (`app-1 | `, or
/// `app-1 (gen 2) | ` while two generations of the slot run), and its last
/// lines, kept so a failed start can say what the app printed.
pub struct Sink {
    id: Arc<str>,
    generation: u64,
    pid: AtomicU32,
    prefix: ArcSwap<String>,
    tail: Mutex<VecDeque<String>>,
    /// The recent lines (at most RING_LINES and RING_BYTES), and their bytes.
    ring: Mutex<(VecDeque<Arc<LogLine>>, usize)>,
}

impl Sink {
    pub fn new(id: &str, generation: u64) -> Sink {
        Sink {
            id: id.into(),
            generation,
            pid: AtomicU32::new(0),
            prefix: ArcSwap::from_pointee(format!("{id} | ")),
            tail: Mutex::new(VecDeque::new()),
            ring: Mutex::new((VecDeque::new(), 0)),
        }
    }

    /// The process now writing to it.
    pub fn set_pid(&self, pid: u32) {
        self.pid.store(pid, Relaxed);
    }

    /// The kept lines after `seq`, oldest first.
    pub fn lines_after(&self, seq: u64) -> Vec<Arc<LogLine>> {
        let ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.0.iter().filter(|l| l.seq > seq).cloned().collect()
    }

    fn record(&self, stream: Stream, line: &[u8]) -> Arc<LogLine> {
        let text = String::from_utf8_lossy(line);
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text).to_string();
        let at = SystemTime::now();
        let entry = Arc::new(LogLine {
            seq: SEQ.fetch_add(1, Relaxed),
            time: crate::utc::rfc3339_string(at),
            at,
            instance: self.id.clone(),
            generation: self.generation,
            pid: self.pid.load(Relaxed),
            stream: stream.name(),
            line: text,
        });
        let mut ring = self.ring.lock().unwrap_or_else(|p| p.into_inner());
        ring.1 += entry.line.len();
        ring.0.push_back(entry.clone());
        while ring.0.len() > RING_LINES || ring.1 > RING_BYTES {
            match ring.0.pop_front() {
                Some(old) => ring.1 -= old.line.len(),
                None => break,
            }
        }
        entry
    }

    pub fn set_prefix(&self, prefix: String) {
        self.prefix.store(Arc::new(prefix));
    }

    /// The last lines (both streams, in order), without their prefix.
    pub fn tail(&self) -> Vec<String> {
        self.tail
            .lock()
            .map(|t| t.iter().cloned().collect())
            .unwrap_or_default()
    }

    fn keep(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end();
        let text: String = text.chars().take(TAIL_WIDTH).collect();
        if let Ok(mut t) = self.tail.lock() {
            if t.len() == TAIL_LINES {
                t.pop_front();
            }
            t.push_back(text);
        }
    }
}

/// The streams of one run of a process still being read: each is counted
/// from the moment it is handed to [`forward`] until its reader reaches EOF.
pub(crate) struct Open(watch::Sender<usize>);

impl Open {
    pub(crate) fn new() -> Open {
        Open(watch::Sender::new(0))
    }

    /// Waits until every stream counted here has been read to EOF (every
    /// line the process wrote is in its sink's tail), at most `within`: a
    /// process that left a child outside its group holding the pipes must
    /// not hold the caller up. True when they all were.
    pub(crate) async fn closed(&self, within: Duration) -> bool {
        let mut open = self.0.subscribe();
        tokio::time::timeout(within, open.wait_for(|n| *n == 0))
            .await
            .is_ok_and(|r| r.is_ok())
    }
}

pub(crate) fn forward<R>(reader: R, sink: Arc<Sink>, stream: Stream, open: &Open)
where
    R: AsyncRead + Unpin + Send + 'static,
{
    let writer = writer().clone();
    open.0.send_modify(|n| *n += 1);
    let open = open.0.clone();
    tokio::spawn(async move {
        let mut reader = BufReader::new(reader);
        let mut line = Vec::with_capacity(256);
        loop {
            line.clear();
            let n = match read_line_limited(&mut reader, &mut line).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            if line.last() != Some(&b'\n') {
                line.push(b'\n');
            }
            sink.keep(&line);
            let entry = sink.record(stream, &line);
            let out = if JSON.load(Relaxed) {
                let mut out = serde_json::to_vec(&*entry).unwrap_or_default();
                out.push(b'\n');
                out
            } else {
                let prefix = sink.prefix.load();
                let mut out = Vec::with_capacity(prefix.len() + n + 1);
                out.extend_from_slice(prefix.as_bytes());
                out.extend_from_slice(&line);
                out
            };
            // One write per line: lines from different instances never
            // interleave mid-line.
            if writer.send(Msg::Line(stream, out)).await.is_err() {
                break;
            }
        }
        open.send_modify(|n| *n = n.saturating_sub(1));
    });
}

async fn read_line_limited<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    line: &mut Vec<u8>,
) -> std::io::Result<usize> {
    let mut total = 0;
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok(total);
        }
        let room = MAX_LINE - line.len();
        let take = buf.len().min(room);
        let (used, done) = match buf[..take].iter().position(|b| *b == b'\n') {
            Some(i) => (i + 1, true),
            None => (take, take == room),
        };
        line.extend_from_slice(&buf[..used]);
        reader.consume(used);
        total += used;
        if done {
            return Ok(total);
        }
    }
}
