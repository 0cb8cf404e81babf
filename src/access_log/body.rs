//! On hyper's path the line is written when the response body is done
//! with — sent whole, cut, or the client gone — so that it has the bytes
//! sent and the time until the last one: the body counts what passes and
//! logs when it is dropped.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};

use super::{AccessLog, Facts, Report};
use crate::proxy::body::{BodyError, ProxyBody};

pub struct LoggedBody {
    inner: ProxyBody,
    log: Arc<AccessLog>,
    facts: Box<Facts>,
    report: Report,
}

impl LoggedBody {
    pub fn new(inner: ProxyBody, log: Arc<AccessLog>, facts: Box<Facts>, report: Report) -> Self {
        LoggedBody {
            inner,
            log,
            facts,
            report,
        }
    }
}

impl Body for LoggedBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        // Every field is Unpin: ProxyBody pins nothing it cannot move.
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                this.report.bytes_out += data.len() as u64;
            }
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

impl Drop for LoggedBody {
    fn drop(&mut self) {
        if let Some(tally) = &self.report.tally {
            self.report.bytes_in = tally.load(std::sync::atomic::Ordering::Relaxed);
        }
        self.log.log(&self.facts, &self.report);
    }
}
