//! The client connection's timers and reads on hyper's path (the native
//! engine keeps its own, `h1/conn.rs`), for `limits:`.
//!
//! - `header_read_timeout`, `body_read_timeout` and `idle_timeout` are one
//!   timer per connection, driven by [`WatchedIo`] (the connection's socket)
//!   and [`ConnWatch`] (which sees requests start, their bodies end and
//!   responses end). hyper's own `header_read_timeout` is off: it also runs
//!   while a keep-alive connection waits for its next request and closes
//!   without answering.
//! - `send_timeout` is a [`WriteStall`] in [`WatchedIo`]'s writes.
//!
//! The per-connection phases of the read timer:
//!
//! | phase | timer | on expiry |
//! |---|---|---|
//! | `Fresh`: accepted, no byte yet | `header_read_timeout` | close |
//! | `Head`: part of a request head read | `header_read_timeout` (from the first byte, or from accepting) | 408, close |
//! | `Body`: a request body is being read | `body_read_timeout`, from the first read that finds no data to the next byte | the body fails: 408 if no response started, close |
//! | `Busy`: a request is being served | none | - |
//! | `Idle`: keep-alive, response sent, nothing new | `idle_timeout` | close |
//! | `Off`: upgraded (101) or HTTP/2 | none | - |
//!
//! In `Body` the timer runs only while the upstream request waits for body
//! data and the socket has none: when shoal stops reading because the
//! backend is slow to take the body (backpressure), or reads the socket
//! only to notice a close, the client is not blamed.
//!
//! It also reads a request line's `HTTP/1.2` as 1.1 ([`minor_version_to_1`]).
//! A half-close after a whole request is hyper's own `half_close`
//! (`server.rs`, `limits.abort_on_client_close`).

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use shoal_config::LimitsConfig;

use super::body::{BodyError, ProxyBody};
use super::error::ProxyError;
use super::request_id;
use super::stall::{Stalled, WriteStall};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Fresh,
    Head,
    Body,
    Busy,
    Idle,
    Off,
}

/// Where the request line of the next head stands, for [`minor_version_to_1`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Line {
    /// The next bytes may begin a request line.
    Next,
    /// A request line began and has not ended yet.
    Open,
    /// Not looking: the line was seen, or a body is coming.
    Done,
}

struct Watch {
    phase: Phase,
    line: Line,
    in_flight: usize,
    /// Requests begun on the connection (for its debug event at close).
    requests: u32,
    /// In `Body`: the request body's reader is waiting for data (the body
    /// timer runs only then, not while shoal is not asking for more).
    body_waiting: bool,
    deadline: Option<Instant>,
    /// The connection task, woken when the timer changes while it waits.
    waker: Option<Waker>,
}

/// One client connection's header-read, body-read and idle timers.
#[derive(Clone)]
pub struct ConnWatch {
    watch: Arc<Mutex<Watch>>,
    header_read_timeout: Duration,
    body_read_timeout: Duration,
    idle_timeout: Duration,
    send_timeout: Duration,
}

impl ConnWatch {
    pub fn new(limits: &LimitsConfig) -> ConnWatch {
        ConnWatch {
            watch: Arc::new(Mutex::new(Watch {
                phase: Phase::Fresh,
                line: Line::Next,
                in_flight: 0,
                requests: 0,
                body_waiting: false,
                deadline: Some(Instant::now() + limits.header_read_timeout),
                waker: None,
            })),
            header_read_timeout: limits.header_read_timeout,
            body_read_timeout: limits.body_read_timeout,
            idle_timeout: limits.idle_timeout,
            send_timeout: limits.send_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes arrived from the client (a request line's `HTTP/1.2` is read
    /// as `HTTP/1.1` here: see [`minor_version_to_1`]).
    fn on_bytes(&self, data: &mut [u8]) {
        let mut w = self.lock();
        match w.phase {
            // HTTP/2 with prior knowledge: its own flow control and pings.
            Phase::Fresh if b"PRI * HTTP/2.0".starts_with(&data[..data.len().min(14)]) => {
                w.phase = Phase::Off;
                w.deadline = None;
            }
            // From accepting, as nginx's client_header_timeout.
            Phase::Fresh => w.phase = Phase::Head,
            Phase::Idle => {
                w.phase = Phase::Head;
                w.deadline = Some(Instant::now() + self.header_read_timeout);
            }
            // Body data came: the body timer is re-armed by the next read
            // that finds nothing.
            Phase::Body => w.deadline = None,
            Phase::Head | Phase::Busy | Phase::Off => {}
        }
        if w.line != Line::Done && !matches!(w.phase, Phase::Body | Phase::Off) {
            w.line = minor_version_to_1(data, w.line);
        }
    }

    /// hyper parsed a request head and called the service. With a body
    /// still to come, the connection is in its `Body` phase until the
    /// returned [`BodyRead`] is dropped (the body ended, failed, or was
    /// given up).
    /// `upgrade`: the request offers an upgrade, so what follows may be a
    /// tunnel's bytes, never read as a request line.
    pub fn request_started(&self, has_body: bool, upgrade: bool) -> (Busy, Option<BodyRead>) {
        let mut w = self.lock();
        w.in_flight += 1;
        w.requests = w.requests.saturating_add(1);
        let mut reading = None;
        if w.phase != Phase::Off {
            w.deadline = None;
            w.body_waiting = false;
            // After a body, bytes are the next head's only once it is read.
            w.line = if has_body || upgrade {
                Line::Done
            } else {
                Line::Next
            };
            w.phase = if has_body {
                reading = Some(BodyRead(self.clone()));
                Phase::Body
            } else {
                Phase::Busy
            };
        }
        (Busy(self.clone()), reading)
    }

    /// Requests begun on the connection so far.
    pub fn requests(&self) -> u32 {
        self.lock().requests
    }

    /// The response switched protocols: the socket now carries a tunnel,
    /// timed by `proxy.tunnel_idle_timeout` instead.
    pub fn upgraded(&self) {
        let mut w = self.lock();
        w.phase = Phase::Off;
        w.deadline = None;
    }

    /// The current deadline, remembering who to wake when it changes. A
    /// read that finds no body data while the body's reader waits for some
    /// arms the body timer.
    fn deadline(&self, waker: &Waker) -> Option<(Instant, Phase)> {
        let mut w = self.lock();
        if !w.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            w.waker = Some(waker.clone());
        }
        if w.phase == Phase::Body && w.body_waiting && w.deadline.is_none() {
            w.deadline = Some(Instant::now() + self.body_read_timeout);
        }
        w.deadline.map(|d| (d, w.phase))
    }
}

/// A request body being read from the client; dropped when it ends.
pub struct BodyRead(ConnWatch);

impl BodyRead {
    /// The body's reader (the upstream request) is waiting for client data,
    /// or has got some. Only while it waits may the client be late: hyper
    /// also reads the socket to notice a client closing, and shoal stops
    /// asking for the body while the backend does not take it.
    pub(super) fn waiting(&self, waiting: bool) {
        let mut w = self.0.lock();
        if w.phase != Phase::Body {
            return;
        }
        w.body_waiting = waiting;
        if waiting {
            // Let the connection task look at its socket again, and arm the
            // timer if it finds nothing.
            if let Some(waker) = w.waker.take() {
                waker.wake();
            }
        } else {
            w.deadline = None;
        }
    }
}

impl Drop for BodyRead {
    fn drop(&mut self) {
        let mut w = self.0.lock();
        if w.phase != Phase::Body {
            return;
        }
        w.line = Line::Next;
        if w.in_flight == 0 {
            // The response was already complete (the backend answered
            // without waiting for the whole body).
            w.phase = Phase::Idle;
            w.deadline = Some(Instant::now() + self.0.idle_timeout);
            if let Some(waker) = w.waker.take() {
                waker.wake();
            }
        } else {
            w.phase = Phase::Busy;
            w.deadline = None;
        }
    }
}

/// A request being served; its end (the response body finished or dropped)
/// starts the idle timer when no other request is in flight.
pub struct Busy(ConnWatch);

impl Drop for Busy {
    fn drop(&mut self) {
        let mut w = self.0.lock();
        w.in_flight = w.in_flight.saturating_sub(1);
        if w.in_flight == 0 && w.phase == Phase::Busy {
            w.phase = Phase::Idle;
            w.deadline = Some(Instant::now() + self.0.idle_timeout);
            if let Some(waker) = w.waker.take() {
                waker.wake();
            }
        }
    }
}

pin_project! {
    /// A response body that holds its request's [`Busy`] until it is done.
    pub struct TrackedBody {
        #[pin]
        inner: ProxyBody,
        busy: Option<Busy>,
    }
}

impl TrackedBody {
    pub fn new(inner: ProxyBody, busy: Busy) -> TrackedBody {
        TrackedBody {
            inner,
            busy: Some(busy),
        }
    }
}

impl Body for TrackedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.busy.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The client's socket, with the connection's timer: reads wait on it,
    /// and when it expires the read ends (EOF), so hyper closes the
    /// connection; an unfinished request head first gets 408.
    pub struct WatchedIo<T> {
        #[pin]
        io: T,
        watch: ConnWatch,
        timer: Pin<Box<Sleep>>,
        expired: bool,
        send: WriteStall,
    }
}

impl<T> WatchedIo<T> {
    pub fn new(io: T, watch: ConnWatch) -> WatchedIo<T> {
        WatchedIo {
            io,
            timer: Box::pin(tokio::time::sleep(watch.header_read_timeout)),
            send: WriteStall::new(watch.send_timeout),
            watch,
            expired: false,
        }
    }
}

/// What a client whose request head did not arrive in time gets.
fn request_timeout_response(after: Duration) -> Vec<u8> {
    let e = ProxyError::HeaderTimeout { after };
    let id = request_id::generate_hex();
    tracing::debug!(request_id = %String::from_utf8_lossy(&id), error = %e, status = e.status().as_u16(), "closing connection");
    let mut out = Vec::with_capacity(256);
    e.answer(&id, false).write_h1(&mut out, true, false);
    out
}

impl<T: AsyncRead + AsyncWrite> AsyncRead for WatchedIo<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let mut this = self.project();
        if *this.expired {
            return Poll::Ready(Ok(()));
        }
        let before = buf.filled().len();
        match this.io.as_mut().poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &mut buf.filled_mut()[before..];
                if !read.is_empty() {
                    this.watch.on_bytes(read);
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => {
                let Some((deadline, phase)) = this.watch.deadline(cx.waker()) else {
                    return Poll::Pending;
                };
                if this.timer.deadline() != deadline {
                    this.timer.as_mut().reset(deadline);
                }
                if this.timer.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                *this.expired = true;
                match phase {
                    Phase::Body => {
                        let after = this.watch.body_read_timeout;
                        tracing::debug!(
                            body_read_timeout = ?after,
                            "client stopped sending its request body (limits.body_read_timeout)"
                        );
                        // The body fails: the upstream request is aborted
                        // and hyper closes the connection after the answer.
                        return Poll::Ready(Err(Stalled::ClientBody(after).into_io()));
                    }
                    Phase::Head => {
                        // Nothing of this request was answered yet, so the
                        // 408 cannot interleave with a response of hyper's.
                        // Best effort: a client that does not read loses it.
                        let answer = request_timeout_response(this.watch.header_read_timeout);
                        let _ = this.io.as_mut().poll_write(cx, &answer);
                        let _ = this.io.as_mut().poll_flush(cx);
                    }
                    Phase::Idle => tracing::debug!(
                        idle_timeout = ?this.watch.idle_timeout,
                        "closing idle keep-alive connection (limits.idle_timeout)"
                    ),
                    _ => tracing::debug!(
                        header_read_timeout = ?this.watch.header_read_timeout,
                        "closing connection: no request (limits.header_read_timeout)"
                    ),
                }
                // End of input: hyper closes the connection.
                Poll::Ready(Ok(()))
            }
        }
    }
}

/// A request line that ends in `HTTP/1.2` … `HTTP/1.9` is read as
/// `HTTP/1.1` (RFC 9112 §2.3: a higher minor version is handled as the
/// highest the server speaks, as nginx and HAProxy do; hyper's parser
/// answers 400). `data` is what one read brought; `line` where the next
/// request line stands. Rewritten in place, before hyper parses it. Only
/// the first request line a read brings is looked at: a version split
/// across two reads, or a second pipelined request that came in the same
/// read, is not seen (hyper then answers 400 to it).
fn minor_version_to_1(data: &mut [u8], line: Line) -> Line {
    if line == Line::Done {
        return Line::Done;
    }
    let mut start = 0;
    if line == Line::Next {
        // RFC 9112 §2.2: empty lines before a request line are skipped.
        match data.iter().position(|b| !matches!(b, b'\r' | b'\n')) {
            Some(i) => start = i,
            None => return Line::Next,
        }
    }
    let Some(nl) = data[start..].iter().position(|b| *b == b'\n') else {
        return Line::Open;
    };
    let mut end = start + nl;
    if end > start && data[end - 1] == b'\r' {
        end -= 1;
    }
    let tail = &data[start..end];
    if tail.len() >= 9 && tail[tail.len() - 9..tail.len() - 1] == *b" HTTP/1." {
        let minor = &mut data[end - 1];
        if (b'2'..=b'9').contains(minor) {
            *minor = b'1';
        }
    }
    Line::Done
}

fn client_send_stalled(after: Duration) -> Stalled {
    tracing::debug!(
        send_timeout = ?after,
        "closing connection: the client stopped reading (limits.send_timeout)"
    );
    Stalled::ClientSend(after)
}

impl<T: AsyncWrite> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.io.poll_write(cx, buf);
        this.send.check(cx, r, client_send_stalled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.io.poll_write_vectored(cx, bufs);
        this.send.check(cx, r, client_send_stalled)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().io.poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::{minor_version_to_1, Line};

    fn rewrite(text: &str, line: Line) -> (String, Line) {
        let mut data = text.as_bytes().to_vec();
        let line = minor_version_to_1(&mut data, line);
        (String::from_utf8(data).unwrap(), line)
    }

    #[test]
    fn a_higher_minor_version_is_read_as_1_1() {
        for v in ["1.2", "1.9"] {
            let (out, line) = rewrite(&format!("GET / HTTP/{v}\r\nHost: a\r\n\r\n"), Line::Next);
            assert_eq!(out, "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
            assert_eq!(line, Line::Done);
        }
        let (out, _) = rewrite("\r\nGET /x HTTP/1.3\n", Line::Next);
        assert_eq!(out, "\r\nGET /x HTTP/1.1\n");
        for same in [
            "GET / HTTP/1.1\r\n",
            "GET / HTTP/1.0\r\n",
            "GET / HTTP/2.2\r\n",
            "GET /HTTP/1.2 HTTP/1.1\r\nX: HTTP/1.2\r\n",
        ] {
            assert_eq!(rewrite(same, Line::Next).0, same);
        }
    }

    #[test]
    fn only_the_request_line_is_looked_at() {
        // A request line that comes in two reads, then headers.
        let (_, line) = rewrite("GET /lo", Line::Next);
        assert_eq!(line, Line::Open);
        let (out, line) = rewrite("ng HTTP/1.2\r\nX: HTTP/1.2\r\n", line);
        assert_eq!(out, "ng HTTP/1.1\r\nX: HTTP/1.2\r\n");
        assert_eq!(line, Line::Done);
        let (out, line) = rewrite("X: a HTTP/1.2\r\n", Line::Done);
        assert_eq!((out.as_str(), line), ("X: a HTTP/1.2\r\n", Line::Done));
        assert_eq!(rewrite("\r\n", Line::Next).1, Line::Next);
    }
}
