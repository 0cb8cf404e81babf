//! The access log: the *log* phase's line per request, written once for
//! both engines. At the *admit* phase an engine takes the request's
//! [`Facts`] from its engine-neutral view (only when the log is on); the
//! engine fills a [`Report`] as it serves (status, bytes, backend, upstream
//! time, attempts); at the end [`AccessLog::log`] formats the line
//! (`format.rs`) and hands it to the writer's thread (`writer.rs`), which
//! never makes a request wait.

pub mod body;
mod format;
pub mod writer;

use std::net::IpAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_config::{AccessLogConfig, AccessLogFormat};

use crate::balance::{Endpoint, RequestView};
pub use writer::{Target, Writer};

/// What the request said, taken at the *admit* phase.
pub struct Facts {
    pub(crate) start: Instant,
    pub(crate) client: IpAddr,
    pub(crate) protocol: &'static str,
    /// The request id, method, host, path (and query), user agent and
    /// referer as the client sent them, one after the other; `ends` says
    /// where each stops. (Escaped when a line is written.) Inline: one
    /// allocation for the whole of the facts, most of the time.
    text: smallvec::SmallVec<[u8; 256]>,
    ends: [u32; 7],
    /// The route it took (its name).
    pub(crate) route: Option<Arc<str>>,
}

impl Facts {
    fn part(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.ends[i - 1] as usize };
        &self.text[start..self.ends[i] as usize]
    }
    pub(crate) fn request_id(&self) -> &[u8] {
        self.part(0)
    }
    pub(crate) fn method(&self) -> &[u8] {
        self.part(1)
    }
    pub(crate) fn host(&self) -> &[u8] {
        self.part(2)
    }
    pub(crate) fn path(&self) -> &[u8] {
        self.part(3)
    }
    pub(crate) fn user_agent(&self) -> &[u8] {
        self.part(4)
    }
    pub(crate) fn referer(&self) -> &[u8] {
        self.part(5)
    }
    /// Empty when the request carries no trace.
    pub(crate) fn trace_id(&self) -> &[u8] {
        self.part(6)
    }
}

/// What became of the request, filled in as it is served.
#[derive(Default)]
pub struct Report {
    /// The status the client got (0: none, the connection ended first).
    pub status: u16,
    /// Bytes of the request's body read from the client.
    pub bytes_in: u64,
    /// Bytes written to the client for this request (head and body).
    pub bytes_out: u64,
    /// From sending the request to the backend's response head.
    pub upstream: Option<Duration>,
    /// The backend that answered (only kept while the log is on).
    pub backend: Option<Arc<Endpoint>>,
    /// Backends tried (1 when the first answered; 0 when none was).
    pub attempts: u32,
    /// `allowed` or `limited`, when a rate limit counted the request.
    pub rate_limit: Option<&'static str>,
    /// The pool the route sends to.
    pub pool: Option<Arc<str>>,
    /// What the response cache did (`HIT`, `MISS`, …), on a route that
    /// caches.
    pub cache: Option<&'static str>,
    /// hyper's path: the request body's bytes, counted as it is read.
    pub tally: Option<Arc<std::sync::atomic::AtomicU64>>,
}

/// The writer, kept across config reloads while the log's place stays
/// the same (a new place starts a new writer; the old one ends when the
/// last request that holds it has logged).
#[derive(Default)]
pub struct Logs {
    writer: std::sync::Mutex<Option<Arc<Writer>>>,
}

impl Logs {
    /// The access log `config` asks for, over the kept writer when its
    /// place is the same.
    pub fn for_config(&self, config: &AccessLogConfig) -> Option<Arc<AccessLog>> {
        if config.format == AccessLogFormat::Off {
            return None;
        }
        let target = Target::parse(&config.path);
        let mut kept = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let writer = match kept.as_ref().filter(|w| w.target == target) {
            Some(w) => w.clone(),
            None => match Writer::start(target, config.buffer as usize) {
                Ok(w) => {
                    let w = Arc::new(w);
                    *kept = Some(w.clone());
                    w
                }
                Err(e) => {
                    tracing::error!(error = %e, "cannot start the access log's writer; no access log");
                    return None;
                }
            },
        };
        AccessLog::new(config, writer).map(Arc::new)
    }

    /// Reopen the log file (SIGUSR1).
    pub fn reopen(&self) {
        if let Some(w) = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            w.reopen();
        }
    }

    /// Wait (at most a second) until the lines of requests served so far
    /// are written: at shutdown.
    pub async fn flush(&self) {
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some(w) = writer {
            w.flush(std::time::Duration::from_secs(1)).await;
        }
    }

    /// Lines written and dropped so far, for `/metrics`.
    pub fn counts(&self) -> (u64, u64) {
        match self
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
        {
            Some(w) => (
                w.counts.written.load(Relaxed),
                w.counts.dropped.load(Relaxed),
            ),
            None => (0, 0),
        }
    }
}

/// `access_log:` compiled, over its writer.
pub struct AccessLog {
    format: AccessLogFormat,
    sample: f64,
    errors_always: bool,
    query: bool,
    writer: Arc<Writer>,
}

impl AccessLog {
    /// `None` when the log is off.
    pub fn new(config: &AccessLogConfig, writer: Arc<Writer>) -> Option<AccessLog> {
        (config.format != AccessLogFormat::Off).then(|| AccessLog {
            format: config.format,
            sample: config.sample,
            errors_always: config.errors_always,
            query: config.query,
            writer,
        })
    }

    /// The facts of `req`, with request id `request_id`, that took route
    /// `route` (its name), in trace `trace`.
    pub fn facts(
        &self,
        req: &RequestView<'_>,
        request_id: &[u8],
        protocol: &'static str,
        route: Option<Arc<str>>,
        trace: Option<&crate::proxy::trace::TraceId>,
    ) -> Box<Facts> {
        let mut text = smallvec::SmallVec::new();
        let mut ends = [0u32; 7];
        let path = if self.query { req.target } else { req.path() };
        let parts: [&[u8]; 7] = [
            request_id,
            req.method.as_bytes(),
            req.host.unwrap_or_default(),
            path.as_bytes(),
            req.headers.get("user-agent").unwrap_or_default(),
            req.headers.get("referer").unwrap_or_default(),
            trace.map_or(&[][..], |t| t.as_bytes()),
        ];
        for (part, end) in parts.iter().zip(&mut ends) {
            text.extend_from_slice(part);
            *end = text.len() as u32;
        }
        Box::new(Facts {
            start: Instant::now(),
            client: req.client.to_canonical(),
            protocol,
            text,
            ends,
            route,
        })
    }

    /// Write the line of a finished request (or not, as `sample` says).
    pub fn log(&self, facts: &Facts, report: &Report) {
        let error = report.status >= 400 || report.status == 0;
        let sampled = self.sample >= 1.0 || fastrand::f64() < self.sample;
        if !(sampled || (error && self.errors_always)) {
            return;
        }
        let mut line = Vec::with_capacity(384);
        let now = std::time::SystemTime::now();
        match self.format {
            AccessLogFormat::Json => format::json(&mut line, now, facts, report),
            AccessLogFormat::Combined => format::combined(&mut line, now, facts, report),
            AccessLogFormat::Off => return,
        }
        self.writer.send(line);
    }
}
