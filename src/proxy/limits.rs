//! `limits:` on the client side of the public listener: the request body.
//!
//! - `max_body_size` (the listener's, or the request's route's): a declared
//!   `Content-Length` over it is answered 413 in the *admit* phase, never
//!   forwarded; a body without one (chunked) is counted as it
//!   streams, and past the limit the upstream request body fails with
//!   [`BodyTooLarge`], which `ProxyError` turns into 413.
//! - `max_header_size` is hyper's own HTTP/1 read-buffer bound (hyper answers
//!   431 itself), set in `server.rs`.
//! - The timers (`header_read_timeout`, `body_read_timeout`,
//!   `idle_timeout`, `send_timeout`) and the half-close rule are the
//!   connection's: `conn_watch.rs`.

use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::Request;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::sync::Notify;

use super::body::BodyError;
use super::conn_watch::BodyRead;
use super::error::ProxyError;
use super::stall::Stalled;

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
        // Holds the connection in its `Body` phase until the body ends.
        reading: Option<BodyRead>,
        // Last poll was Pending (told to `reading` on each change only).
        waiting: bool,
        // Told when the last byte has been read (see `when_read`).
        done: Option<Arc<Notify>>,
        // Bytes read, for the access log (see `tally`).
        tally: Option<Arc<AtomicU64>>,
    }
}

impl RequestBody {
    /// Notified once the whole body has been read (so sent upstream): where
    /// `proxy.response_header_timeout` starts for a request with a body, as
    /// nginx's `proxy_read_timeout` starts once the request is sent.
    /// A count of the body's bytes as they are read (the access log's
    /// `bytes_in`).
    pub fn tally(&mut self) -> Arc<AtomicU64> {
        self.tally.get_or_insert_with(Default::default).clone()
    }

    pub fn when_read(&mut self) -> Arc<Notify> {
        self.done.get_or_insert_with(Default::default).clone()
    }

    /// The limit of the request's route (`routes[].limits.max_body_size`)
    /// in place of the listener's, when it has one; `Err` (413) when the
    /// declared length is over the limit that applies.
    pub fn limit_to(&mut self, route_limit: Option<u64>) -> Result<(), ProxyError> {
        if route_limit.is_some() {
            self.limit = route_limit;
        }
        match (self.limit, self.inner.size_hint().exact()) {
            (Some(limit), Some(declared)) if declared > limit => {
                Err(ProxyError::PayloadTooLarge { limit })
            }
            _ => Ok(()),
        }
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(tally), Some(data)) = (this.tally.as_ref(), frame.data_ref()) {
                    tally.fetch_add(data.len() as u64, Ordering::Relaxed);
                }
                if let (Some(limit), Some(data)) = (*this.limit, frame.data_ref()) {
                    *this.seen += data.len() as u64;
                    if *this.seen > limit {
                        this.reading.take();
                        return Poll::Ready(Some(Err(BodyTooLarge { limit }.into())));
                    }
                }
                if this.inner.is_end_stream() {
                    this.reading.take();
                    if let Some(done) = this.done.take() {
                        done.notify_one();
                    }
                } else if *this.waiting {
                    *this.waiting = false;
                    if let Some(r) = this.reading.as_ref() {
                        r.waiting(false);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.reading.take();
                // The client stalled (`limits.body_read_timeout`): say so
                // plainly, so the answer is 408 rather than 400.
                match Stalled::find(&e) {
                    Some(s @ Stalled::ClientBody(_)) => Poll::Ready(Some(Err(s.into()))),
                    _ => Poll::Ready(Some(Err(e.into()))),
                }
            }
            Poll::Ready(None) => {
                this.reading.take();
                if let Some(done) = this.done.take() {
                    done.notify_one();
                }
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !*this.waiting {
                    *this.waiting = true;
                    if let Some(r) = this.reading.as_ref() {
                        r.waiting(true);
                    }
                }
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Counts the request's body against `max_body_size` as it streams.
/// A declared length over the limit is answered 413 in the *admit* phase
/// (`RequestBody::limit_to`), once the route — which may have a limit of
/// its own — is known. `reading` is the connection's `Body` phase, held by
/// the body until it ends (see [`ConnWatch::request_started`]).
pub fn counted(
    req: Request<Incoming>,
    max_body_size: Option<u64>,
    reading: Option<BodyRead>,
) -> Request<RequestBody> {
    req.map(|inner| RequestBody {
        inner,
        limit: max_body_size,
        seen: 0,
        reading,
        waiting: false,
        done: None,
        tally: None,
    })
}
