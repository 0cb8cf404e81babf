//! The response body shoal sends to clients.
//!
//! An upstream body carries a lease: the pooled connection goes back to its
//! pool when the body has been read to the end, and the endpoint's in-flight
//! count drops when the body is finished or dropped (client went away).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;

use super::pool::PooledConn;
use crate::balance::InFlight;

pub struct Lease {
    pub conn: Option<PooledConn>,
    pub _in_flight: InFlight,
}

pub enum ProxyBody {
    Upstream {
        body: Incoming,
        lease: Option<Lease>,
    },
    Full(Option<Bytes>),
}

impl ProxyBody {
    pub fn full(bytes: Bytes) -> ProxyBody {
        ProxyBody::Full(Some(bytes))
    }

    pub fn empty() -> ProxyBody {
        ProxyBody::Full(None)
    }

    pub fn upstream(body: Incoming, lease: Lease) -> ProxyBody {
        let mut b = ProxyBody::Upstream {
            body,
            lease: Some(lease),
        };
        b.finish_if_done();
        b
    }

    /// A body already complete (HEAD, 204, 304, Content-Length: 0) frees its
    /// connection at once instead of waiting for a poll that may never come.
    fn finish_if_done(&mut self) {
        if let ProxyBody::Upstream { body, lease } = self {
            if body.is_end_stream() {
                if let Some(mut l) = lease.take() {
                    if let Some(c) = l.conn.take() {
                        c.release();
                    }
                }
            }
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = self.get_mut();
        match this {
            ProxyBody::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            ProxyBody::Upstream { body, .. } => {
                let polled = Pin::new(body).poll_frame(cx);
                match &polled {
                    Poll::Ready(None) => this.finish_if_done(),
                    Poll::Ready(Some(Ok(_))) => this.finish_if_done(),
                    Poll::Ready(Some(Err(_))) => {
                        // The connection is broken; never pool it.
                        if let ProxyBody::Upstream { lease, .. } = this {
                            lease.take();
                        }
                    }
                    Poll::Pending => {}
                }
                polled
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Full(d) => d.is_none(),
            ProxyBody::Upstream { body, .. } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Full(Some(d)) => SizeHint::with_exact(d.len() as u64),
            ProxyBody::Full(None) => SizeHint::with_exact(0),
            ProxyBody::Upstream { body, .. } => body.size_hint(),
        }
    }
}
