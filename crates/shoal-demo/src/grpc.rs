//! `POST /grpc/echo`: a gRPC-shaped answer, enough to check that trailers
//! survive a proxy. Not a gRPC server: the request body is echoed as it
//! arrives (frames untouched, so a gRPC length-prefixed message comes back as
//! it was sent), then the trailers:
//!
//! - `grpc-status`: `0`, or `?status=N` (0-16, gRPC's codes);
//! - `grpc-message`: `OK`, or `?message=TEXT` (sent as written; gRPC
//!   percent-encodes it, so a query value fits);
//! - every trailer of the request, echoed back (names other than those two).
//!
//! The response is `200` with `content-type: application/grpc` and
//! `trailer: grpc-status, grpc-message` (plus the names the request's own
//! `Trailer` announced): over HTTP/1.1 only announced trailers are sent, in a
//! chunked body, to a client that sent `te: trailers`. Over HTTP/2 every
//! trailer is sent.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response};
use http_body_util::BodyExt;
use hyper::body::{Frame, Incoming};

use crate::body::{Body, BoxError};
use crate::query;

static GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
static GRPC_MESSAGE: HeaderName = HeaderName::from_static("grpc-message");

/// gRPC's largest status code (`UNAUTHENTICATED`).
const MAX_GRPC_STATUS: u8 = 16;

/// Answers `POST /grpc/echo`; `Err` carries the reason for a 400.
pub(crate) fn echo(req: Request<Incoming>) -> Result<Response<Body>, &'static str> {
    let query = req.uri().query();
    let status = match query::param(query, "status") {
        None => 0,
        Some(s) => s
            .parse::<u8>()
            .ok()
            .filter(|s| *s <= MAX_GRPC_STATUS)
            .ok_or("status must be a gRPC status code, 0-16")?,
    };
    let message = match query::param(query, "message") {
        None => HeaderValue::from_static("OK"),
        Some(m) => HeaderValue::from_str(m).map_err(|_| "message is not a valid header value")?,
    };
    let mut trailers = HeaderMap::new();
    trailers.insert(GRPC_STATUS.clone(), HeaderValue::from(u16::from(status)));
    trailers.insert(GRPC_MESSAGE.clone(), message);

    let announced: Vec<HeaderValue> = req
        .headers()
        .get_all(header::TRAILER)
        .iter()
        .cloned()
        .collect();
    let body = EchoThenTrailers {
        inner: req.into_body(),
        trailers: Some(trailers),
    };
    let mut response = Response::new(body.boxed_unsync());
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    headers.insert(
        header::TRAILER,
        HeaderValue::from_static("grpc-status, grpc-message"),
    );
    for names in announced {
        headers.append(header::TRAILER, names);
    }
    Ok(response)
}

/// The request's data frames, then `trailers` (with the request's own
/// trailers added).
struct EchoThenTrailers {
    inner: Incoming,
    trailers: Option<HeaderMap>,
}

impl hyper::body::Body for EchoThenTrailers {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        loop {
            if self.trailers.is_none() {
                return Poll::Ready(None);
            }
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) => match frame.into_trailers() {
                    Ok(theirs) => {
                        if let Some(ours) = self.trailers.as_mut() {
                            for (name, value) in &theirs {
                                if name != GRPC_STATUS && name != GRPC_MESSAGE {
                                    ours.append(name.clone(), value.clone());
                                }
                            }
                        }
                    }
                    Err(frame) => return Poll::Ready(Some(Ok(frame))),
                },
                Some(Err(e)) => return Poll::Ready(Some(Err(e.into()))),
                None => return Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t)))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.trailers.is_none()
    }
}
