//! The response body shoal sends to clients.
//!
//! An upstream body carries a lease: the pooled connection goes back to its
//! pool when the body has been read to the end, and the endpoint's in-flight
//! count drops when the body is finished or dropped (client went away).
//! While it waits for the backend, an idle timer runs: a body that stalls
//! longer than `proxy.read_timeout` is cut (nginx's `proxy_read_timeout`).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::Incoming;
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use super::h1::upstream::RawBody;
use super::pool::PooledConn;
use crate::balance::InFlight;

pub struct Lease {
    pub conn: Option<PooledConn>,
    pub _in_flight: InFlight,
    /// False for an exchange whose framing a backend might read otherwise
    /// (see `forward::isolated`): the connection is closed after it.
    pub reuse: bool,
}

impl Lease {
    /// The exchange is complete: the connection may serve the next request.
    fn release(&mut self) {
        if let Some(c) = self.conn.take() {
            if self.reuse {
                c.release();
            }
        }
    }
}

/// The backend sent nothing for `read_timeout` in the middle of a body.
#[derive(Debug, thiserror::Error)]
#[error("backend {backend} sent no data for {after:?} (proxy.read_timeout); response cut")]
pub struct ReadTimeout {
    backend: String,
    after: Duration,
}

pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// `proxy.read_timeout` between two reads of a body: its timer is made
/// the first time the backend keeps the body waiting (most small
/// responses arrive whole and never need one), and set again after each
/// read that brought something.
pub struct StallTimer {
    idle: Option<Pin<Box<Sleep>>>,
    armed: bool,
    after: Duration,
}

impl StallTimer {
    pub fn new(after: Duration) -> StallTimer {
        StallTimer {
            idle: None,
            armed: false,
            after,
        }
    }

    pub fn after(&self) -> Duration {
        self.after
    }

    /// A read brought something: the next wait starts the count again.
    pub fn progressed(&mut self) {
        self.armed = false;
    }

    /// The body had nothing to give: whether `after` has passed since it
    /// last had (when not, the task is woken when it does).
    pub fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        let timer = match &mut self.idle {
            Some(t) => {
                if !self.armed {
                    t.as_mut().reset(Instant::now() + self.after);
                }
                t
            }
            None => self.idle.insert(Box::pin(tokio::time::sleep(self.after))),
        };
        self.armed = true;
        timer.as_mut().poll(cx).is_ready()
    }
}

pin_project! {
    #[project = Proj]
    pub enum ProxyBody {
        Upstream {
            #[pin]
            body: Incoming,
            lease: Option<Lease>,
            stall: StallTimer,
        },
        // Read from a raw socket (`h1/upstream.rs`).
        Raw { body: RawBody },
        Full { data: Option<Bytes> },
        // Made by a later phase: a compressed body, a file.
        Boxed { body: UnsyncBoxBody<Bytes, BodyError> },
    }
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> ProxyBody {
        ProxyBody::Full { data: Some(bytes) }
    }

    pub fn empty() -> ProxyBody {
        ProxyBody::Full { data: None }
    }

    /// A body a phase made (compression, a static file).
    pub fn boxed<B>(body: B) -> ProxyBody
    where
        B: Body<Data = Bytes, Error = BodyError> + Send + 'static,
    {
        ProxyBody::Boxed {
            body: UnsyncBoxBody::new(body),
        }
    }

    pub fn upstream(body: Incoming, mut lease: Lease, read_timeout: Duration) -> ProxyBody {
        // A body already complete (HEAD, 204, 304, Content-Length: 0) frees
        // its connection at once instead of waiting for a poll that may
        // never come.
        if body.is_end_stream() {
            lease.release();
        }
        ProxyBody::Upstream {
            body,
            lease: Some(lease),
            stall: StallTimer::new(read_timeout),
        }
    }

    pub fn raw(body: RawBody) -> ProxyBody {
        ProxyBody::Raw { body }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.project() {
            Proj::Full { data } => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Proj::Boxed { body } => Pin::new(body).poll_frame(cx),
            Proj::Raw { body } => Pin::new(body).poll_frame(cx),
            Proj::Upstream {
                mut body,
                lease,
                stall,
            } => match body.as_mut().poll_frame(cx) {
                Poll::Ready(None) => {
                    if let Some(l) = lease {
                        l.release();
                    }
                    Poll::Ready(None)
                }
                Poll::Ready(Some(Ok(frame))) => {
                    stall.progressed();
                    // hyper may not poll again once it has the last byte of a
                    // sized body: release the connection with the last frame.
                    if body.is_end_stream() {
                        if let Some(l) = lease {
                            l.release();
                        }
                    }
                    Poll::Ready(Some(Ok(frame)))
                }
                Poll::Ready(Some(Err(e))) => {
                    // The connection is broken; never pool it.
                    lease.take();
                    Poll::Ready(Some(Err(e.into())))
                }
                Poll::Pending => {
                    if !stall.expired(cx) {
                        return Poll::Pending;
                    }
                    let backend = lease
                        .take()
                        .map(|l| l._in_flight.endpoint().id.clone())
                        .unwrap_or_default();
                    let e = ReadTimeout {
                        backend,
                        after: stall.after(),
                    };
                    tracing::warn!(error = %e, "response body stalled");
                    Poll::Ready(Some(Err(e.into())))
                }
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full { data } => data.is_none(),
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
            ProxyBody::Raw { body } => body.is_end_stream(),
            ProxyBody::Boxed { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full { data: Some(d) } => SizeHint::with_exact(d.len() as u64),
            ProxyBody::Full { data: None } => SizeHint::with_exact(0),
            ProxyBody::Upstream { body, .. } => body.size_hint(),
            ProxyBody::Raw { body } => body.size_hint(),
            ProxyBody::Boxed { body } => body.size_hint(),
        }
    }
}
