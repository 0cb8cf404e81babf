//! `limits:` on the client side of the public listener.
//!
//! - `max_body_size`: a declared `Content-Length` over it is answered 413 at
//!   once, never forwarded; a body without one (chunked) is counted as it
//!   streams, and past the limit the upstream request body fails with
//!   [`BodyTooLarge`], which `ProxyError` turns into 413.
//! - `max_header_size` is hyper's own HTTP/1 read-buffer bound (hyper answers
//!   431 itself), set in `server.rs`.
//! - `header_read_timeout` and `idle_timeout` are one timer per connection,
//!   driven by [`WatchedIo`] (the connection's socket) and [`ConnWatch`]
//!   (which sees requests start and responses end). hyper's own
//!   `header_read_timeout` is off: it also runs while a keep-alive connection
//!   waits for its next request and closes without answering.
//!
//! The per-connection phases:
//!
//! | phase | timer | on expiry |
//! |---|---|---|
//! | `Fresh`: accepted, no byte yet | `header_read_timeout` | close |
//! | `Head`: part of a request head read | `header_read_timeout` (from the first byte, or from accepting) | 408, close |
//! | `Busy`: a request is being served | none | - |
//! | `Idle`: keep-alive, response sent, nothing new | `idle_timeout` | close |
//! | `Off`: upgraded (101) or HTTP/2 | none | - |

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::body::{BodyError, ProxyBody};
use super::error::{wants_json, ProxyError};
use super::request_id;

/// The request body grew past `limits.max_body_size`.
#[derive(Debug, thiserror::Error)]
#[error("request body larger than {limit} bytes (limits.max_body_size)")]
pub struct BodyTooLarge {
    pub limit: u64,
}

pin_project! {
    /// The client's request body on its way upstream, counted against
    /// `limits.max_body_size`.
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        limit: Option<u64>,
        seen: u64,
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.project();
        match this.inner.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(limit), Some(data)) = (*this.limit, frame.data_ref()) {
                    *this.seen += data.len() as u64;
                    if *this.seen > limit {
                        return Poll::Ready(Some(Err(BodyTooLarge { limit }.into())));
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Applies `max_body_size` to a request: a declared length over it is
/// answered here (413, never forwarded); otherwise the body is counted as it
/// streams.
pub fn admit(
    req: Request<Incoming>,
    max_body_size: Option<u64>,
) -> Result<Request<RequestBody>, Box<Response<ProxyBody>>> {
    if let Some(limit) = max_body_size {
        let declared = req.body().size_hint().exact();
        if declared.is_some_and(|n| n > limit) {
            let (mut parts, _) = req.into_parts();
            let id = request_id::ensure(&mut parts.headers);
            let e = ProxyError::PayloadTooLarge { limit };
            tracing::warn!(request_id = ?id, error = %e, content_length = declared, status = 413, "request refused");
            return Err(Box::new(e.to_response(&id, wants_json(&parts.headers))));
        }
    }
    Ok(req.map(|inner| RequestBody {
        inner,
        limit: max_body_size,
        seen: 0,
    }))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Fresh,
    Head,
    Busy,
    Idle,
    Off,
}

struct Watch {
    phase: Phase,
    in_flight: usize,
    deadline: Option<Instant>,
    /// The connection task, woken when the timer changes while it waits.
    waker: Option<Waker>,
}

/// One client connection's header-read and idle timers.
#[derive(Clone)]
pub struct ConnWatch {
    watch: Arc<Mutex<Watch>>,
    header_read_timeout: Duration,
    idle_timeout: Duration,
}

impl ConnWatch {
    pub fn new(header_read_timeout: Duration, idle_timeout: Duration) -> ConnWatch {
        ConnWatch {
            watch: Arc::new(Mutex::new(Watch {
                phase: Phase::Fresh,
                in_flight: 0,
                deadline: Some(Instant::now() + header_read_timeout),
                waker: None,
            })),
            header_read_timeout,
            idle_timeout,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Watch> {
        self.watch.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes arrived from the client.
    fn on_bytes(&self, data: &[u8]) {
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
            Phase::Head | Phase::Busy | Phase::Off => {}
        }
    }

    /// hyper parsed a request head and called the service.
    pub fn request_started(&self) -> Busy {
        let mut w = self.lock();
        w.in_flight += 1;
        if w.phase != Phase::Off {
            w.phase = Phase::Busy;
            w.deadline = None;
        }
        Busy(self.clone())
    }

    /// The response switched protocols: the socket now carries a tunnel,
    /// timed by `proxy.tunnel_idle_timeout` instead.
    pub fn upgraded(&self) {
        let mut w = self.lock();
        w.phase = Phase::Off;
        w.deadline = None;
    }

    /// The current deadline, remembering who to wake when it changes.
    fn deadline(&self, waker: &Waker) -> Option<(Instant, Phase)> {
        let mut w = self.lock();
        if !w.waker.as_ref().is_some_and(|old| old.will_wake(waker)) {
            w.waker = Some(waker.clone());
        }
        w.deadline.map(|d| (d, w.phase))
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
    }
}

impl<T> WatchedIo<T> {
    pub fn new(io: T, watch: ConnWatch) -> WatchedIo<T> {
        WatchedIo {
            io,
            timer: Box::pin(tokio::time::sleep(watch.header_read_timeout)),
            watch,
            expired: false,
        }
    }
}

/// What a client whose request head did not arrive in time gets.
fn request_timeout_response(after: Duration) -> Vec<u8> {
    let e = ProxyError::HeaderTimeout { after };
    let id = request_id::generate();
    let id = id.to_str().unwrap_or("");
    let status = e.status();
    crate::metrics::counters::generated(status.as_u16());
    let reason = status.canonical_reason().unwrap_or("Error");
    let body = format!(
        "{} {reason}: {} (request id {id})\n",
        status.as_u16(),
        e.kind()
    );
    debug_assert_eq!(status, StatusCode::REQUEST_TIMEOUT);
    tracing::debug!(request_id = id, error = %e, status = status.as_u16(), "closing connection");
    format!(
        "HTTP/1.1 {} {reason}\r\ncontent-type: text/plain; charset=utf-8\r\n\
         connection: close\r\nx-request-id: {id}\r\ncontent-length: {}\r\n\r\n{body}",
        status.as_u16(),
        body.len()
    )
    .into_bytes()
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
                let read = &buf.filled()[before..];
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

impl<T: AsyncWrite> AsyncWrite for WatchedIo<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        self.project().io.poll_write_vectored(cx, bufs)
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
