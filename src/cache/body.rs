//! The tee: a response body streamed to the client while a copy is kept
//! for the store. Each frame is passed on as it comes (nothing waits for
//! the whole body); the copy is dropped, and the response passed through
//! unstored, the moment it grows past `max_item_size`, or if the body
//! fails or the client goes before its end. Stored only once complete.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::HeaderMap;
use http::StatusCode;
use http_body::{Body, Frame, SizeHint};

use super::coalesce::Lead;
use super::policy::Times;
use super::store::{Entry, Store};
use crate::proxy::body::{BodyError, ProxyBody};

/// What storing the response needs once its body is complete.
pub struct Pending {
    pub store: Arc<Store>,
    pub primary: String,
    /// The request's headers, for the `Vary` secondary key.
    pub request: HeaderMap,
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub times: Times,
    pub lifetime: Duration,
    /// Held until stored or given up: the coalesced misses wait on it.
    pub lead: Option<Lead>,
}

pub struct Tee {
    inner: ProxyBody,
    chunks: Vec<Bytes>,
    len: usize,
    limit: usize,
    pending: Option<Box<Pending>>,
}

impl Tee {
    pub fn new(inner: ProxyBody, pending: Pending, limit: usize) -> Tee {
        Tee {
            inner,
            chunks: Vec::new(),
            len: 0,
            limit,
            pending: Some(Box::new(pending)),
        }
    }
}

impl Pending {
    fn store(self, chunks: Vec<Bytes>, len: usize) {
        // Copied into one buffer of its own size: a frame's bytes may be
        // a slice of the connection's whole read buffer, which a stored
        // slice would keep alive far past its weight.
        let mut all = BytesMut::with_capacity(len);
        for c in chunks {
            all.extend_from_slice(&c);
        }
        let body = all.freeze();
        let entry = Entry::new(self.status, self.headers, body, self.times, self.lifetime);
        self.store
            .put(&self.primary, &self.request, Arc::new(entry));
        drop(self.lead);
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), true) = (frame.data_ref(), this.pending.is_some()) {
                    this.len += data.len();
                    if this.len > this.limit {
                        // Too large: pass the rest through, keep nothing.
                        this.pending.take();
                        this.chunks.clear();
                        this.chunks.shrink_to_fit();
                    } else {
                        this.chunks.push(data.clone());
                    }
                }
            }
            Poll::Ready(Some(Err(_))) => {
                this.pending.take();
                this.chunks.clear();
            }
            Poll::Ready(None) => {
                if let Some(p) = this.pending.take() {
                    p.store(std::mem::take(&mut this.chunks), this.len);
                }
            }
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Tee {
    fn drop(&mut self) {
        // A body whose last frame was read but not polled past (hyper
        // stops at `is_end_stream`): complete, so stored.
        if let Some(p) = self.pending.take() {
            if self.inner.is_end_stream() {
                p.store(std::mem::take(&mut self.chunks), self.len);
            }
        }
    }
}
