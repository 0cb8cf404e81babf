//! The native engine's upstream half for requests hyper serves (HTTP/2
//! streams, HTTP/1.1 after a hand-off): a `GET` or `HEAD` without a body is
//! written as bytes on a raw pooled socket, the response head is parsed in
//! place (`response::parse_for_hyper`), and [`RawBody`] reads the body in
//! the stream's own task, decoded from its chunks, trailers passed on —
//! no hyper client connection, dispatch task or channel per exchange. The
//! attempts around it are hyper's path's own (`forward.rs`); what an
//! attempt came to is said as the native engine says it
//! (`exchange::Failure`).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use futures_util::FutureExt;
use http::{HeaderMap, Method, Request};
use http_body::{Body, Frame, SizeHint};
use tokio::net::TcpStream;

use super::chunked::Tracker;
use super::exchange::Failure;
use super::io::{give_vec, take_vec, write_all, MAX_RESPONSE_HEAD};
use super::response::{self, Framing, HyperHead, Parsed};
use crate::balance::{Endpoint, InFlight};
use crate::proxy::attempt::Reach;
use crate::proxy::body::{BodyError, StallTimer};
use crate::proxy::error::ProxyError;
use crate::proxy::pool::{Pool, UpstreamBody};
use crate::proxy::stall::Stalled;
use crate::routes::Policy;

/// What a response head is first read into (most heads and small bodies
/// fit); the body's reads after it take up to `READ_BUF` at a time.
const HEAD_BUF: usize = 4 << 10;
const READ_BUF: usize = 16 << 10;
/// A trailer section longer than this cuts the response.
const MAX_TRAILERS: usize = 16 << 10;

/// Whether `req` can go this way: a `GET` or `HEAD` whose body is already
/// at its end (hyper's `Incoming` of a request without one).
pub fn eligible(req: &Request<UpstreamBody>) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD) && req.body().is_end_stream()
}

/// Write `req`'s head on `stream` and read the response head (1xx
/// skipped), due `policy.response_header_timeout` after `started`: the
/// head, and what was read after it. The request is only read, so it can
/// be sent again as it is.
pub async fn send(
    req: &Request<UpstreamBody>,
    stream: &mut TcpStream,
    endpoint: &Endpoint,
    policy: &Policy,
    started: Instant,
) -> Result<(HyperHead, BytesMut), (ProxyError, Reach)> {
    exchange(req, stream, endpoint, policy, started)
        .await
        .map_err(|f| f.classify(&endpoint.id, policy))
}

async fn exchange(
    req: &Request<UpstreamBody>,
    stream: &mut TcpStream,
    endpoint: &Endpoint,
    policy: &Policy,
    started: Instant,
) -> Result<(HyperHead, BytesMut), Failure> {
    let mut head = take_vec();
    write_head(req, &mut head);
    let send_timeout = endpoint.pool.send_timeout();
    let written = write_all(
        stream,
        &[&head],
        send_timeout,
        Stalled::UpstreamSend(send_timeout),
    )
    .await;
    give_vec(head);
    written.map_err(Failure::Unsent)?;

    let deadline = tokio::time::Instant::from_std(started) + policy.response_header_timeout;
    let head_only = req.method() == Method::HEAD;
    let mut buf = BytesMut::with_capacity(HEAD_BUF);
    let mut got_bytes = false;
    loop {
        let read = match read_buf_now(stream, &mut buf) {
            Some(read) => Some(read),
            None => tokio::time::timeout_at(
                deadline,
                tokio::io::AsyncReadExt::read_buf(stream, &mut buf),
            )
            .await
            .ok(),
        };
        match read {
            None => return Err(Failure::Timeout),
            Some(Err(source)) => return Err(Failure::Read { source, got_bytes }),
            Some(Ok(0)) => {
                return Err(Failure::Read {
                    source: io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed before a whole response head",
                    ),
                    got_bytes,
                })
            }
            Some(Ok(_)) => got_bytes = true,
        }
        loop {
            match response::parse_for_hyper(&buf, head_only) {
                Parsed::Partial => break,
                Parsed::Informational(len) => buf.advance(len),
                Parsed::Invalid(why) => return Err(Failure::Invalid(why)),
                Parsed::Ready(head) => {
                    buf.advance(head.len);
                    return Ok((head, buf));
                }
            }
        }
        if buf.len() >= MAX_RESPONSE_HEAD {
            return Err(Failure::Invalid("response head larger than 256 KiB"));
        }
        buf.reserve(READ_BUF);
    }
}

/// A read of what is already there, without a timer; `None`: nothing yet.
fn read_buf_now(stream: &mut TcpStream, buf: &mut BytesMut) -> Option<io::Result<usize>> {
    tokio::io::AsyncReadExt::read_buf(stream, buf).now_or_never()
}

/// The request line and headers as HTTP/1.1 (the request was prepared
/// for an HTTP/1.1 backend: origin-form target, `Host`).
fn write_head(req: &Request<UpstreamBody>, out: &mut Vec<u8>) {
    out.extend_from_slice(req.method().as_str().as_bytes());
    out.push(b' ');
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (name, value) in req.headers() {
        super::head::header(out, name.as_str().as_bytes(), value.as_bytes());
    }
    out.extend_from_slice(b"\r\n");
}

/// Where the body is.
enum Decode {
    /// `Content-Length`: this many bytes still to pass on.
    Length(u64),
    /// Chunked: where the chunks are; then the trailer section.
    Chunked(Tracker),
    /// Until the backend closes.
    ToClose,
    Done,
}

/// A response body read from a raw socket by the task that serves the
/// request. At its end the socket goes back to its pool (when the head
/// allowed and nothing came after the body) and the endpoint's in-flight
/// count drops; dropped before, the socket closes. Between two reads the
/// backend has `proxy.read_timeout`.
pub struct RawBody {
    stream: Option<TcpStream>,
    /// Bytes read and not yet passed on.
    buf: BytesMut,
    decode: Decode,
    /// The socket may carry another request after the body.
    reusable: bool,
    pool: Pool,
    in_flight: Option<InFlight>,
    stall: StallTimer,
}

impl RawBody {
    /// The body after `head`, whose first bytes are `buf`; `stream` then
    /// belongs to it.
    pub fn new(
        head: &HyperHead,
        buf: BytesMut,
        stream: TcpStream,
        endpoint: &Endpoint,
        in_flight: InFlight,
        read_timeout: Duration,
    ) -> RawBody {
        let decode = match head.framing {
            Framing::None | Framing::Length(0) => Decode::Done,
            Framing::Length(n) => Decode::Length(n),
            Framing::Chunked => Decode::Chunked(Tracker::default()),
            Framing::Close => Decode::ToClose,
        };
        let mut body = RawBody {
            stream: Some(stream),
            buf,
            decode,
            reusable: head.reusable,
            pool: endpoint.pool.clone(),
            in_flight: Some(in_flight),
            stall: StallTimer::new(read_timeout),
        };
        if matches!(body.decode, Decode::Done) {
            // Nothing to read (HEAD, 204, 304, an empty body): the socket
            // is free now, not when the body is polled (it may never be).
            body.finish();
        }
        body
    }

    /// The body is whole: the socket back to its pool if it may carry
    /// another request, the in-flight count down.
    fn finish(&mut self) {
        self.decode = Decode::Done;
        if let Some(stream) = self.stream.take() {
            if self.reusable && self.buf.is_empty() {
                self.pool.put_raw(stream);
            }
        }
        self.in_flight = None;
    }

    /// The response is cut: the socket is closed, never pooled.
    fn cut(&mut self, why: impl Into<BodyError>) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let why = why.into();
        let backend = self
            .in_flight
            .as_ref()
            .map(|f| f.endpoint().id.clone())
            .unwrap_or_default();
        tracing::warn!(backend = %backend, error = %why, "response body failed; response cut");
        self.stream = None;
        self.in_flight = None;
        self.decode = Decode::Done;
        Poll::Ready(Some(Err(why)))
    }

    /// The next frame out of the bytes already read; `None`: more must be
    /// read first (or the body is done).
    fn next_frame(&mut self) -> Result<Option<Frame<Bytes>>, BodyError> {
        match &mut self.decode {
            Decode::Done => Ok(None),
            Decode::ToClose if self.buf.is_empty() => Ok(None),
            Decode::ToClose => Ok(Some(Frame::data(self.buf.split().freeze()))),
            Decode::Length(_) if self.buf.is_empty() => Ok(None),
            Decode::Length(left) => {
                let take = usize::try_from(*left).map_or(self.buf.len(), |l| l.min(self.buf.len()));
                *left -= take as u64;
                let data = self.buf.split_to(take).freeze();
                if *left == 0 {
                    // Bytes past the body: the backend broke its framing.
                    if !self.buf.is_empty() {
                        self.reusable = false;
                        self.buf.clear();
                    }
                    self.finish();
                }
                Ok(Some(Frame::data(data)))
            }
            Decode::Chunked(_) => self.next_chunk(),
        }
    }

    /// The next run of chunk data as a frame, the trailers, or `None`.
    fn next_chunk(&mut self) -> Result<Option<Frame<Bytes>>, BodyError> {
        loop {
            let Decode::Chunked(tracker) = &mut self.decode else {
                return Ok(None);
            };
            if tracker.at_trailers() {
                return self.trailers();
            }
            if self.buf.is_empty() {
                return Ok(None);
            }
            let (walked, run) = tracker.next_data(&self.buf)?;
            match run {
                Some(run) => {
                    self.buf.advance(run.start);
                    let data = self.buf.split_to(run.len()).freeze();
                    self.buf.advance(walked - run.end);
                    return Ok(Some(Frame::data(data)));
                }
                None => self.buf.advance(walked),
            }
        }
    }

    /// After the last chunk: the trailer section, whole, as a frame (none
    /// when it is empty), and the body is done.
    fn trailers(&mut self) -> Result<Option<Frame<Bytes>>, BodyError> {
        if self.buf.starts_with(b"\r\n") {
            self.buf.advance(2);
            self.after_trailers();
            return Ok(None);
        }
        let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") else {
            if self.buf.len() > MAX_TRAILERS {
                return Err("trailer section larger than 16 KiB".into());
            }
            return Ok(None);
        };
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let trailers = match httparse::parse_headers(&self.buf[..end + 4], &mut slots) {
            Ok(httparse::Status::Complete((_, lines))) => {
                let mut map = HeaderMap::with_capacity(lines.len());
                for line in lines.iter() {
                    let (Ok(name), Ok(value)) = (
                        http::HeaderName::from_bytes(line.name.as_bytes()),
                        http::HeaderValue::from_bytes(line.value),
                    ) else {
                        return Err("a trailer that is not a valid header".into());
                    };
                    map.append(name, value);
                }
                map
            }
            _ => return Err("a trailer section that does not parse".into()),
        };
        self.buf.advance(end + 4);
        self.after_trailers();
        Ok(Some(Frame::trailers(trailers)))
    }

    fn after_trailers(&mut self) {
        if !self.buf.is_empty() {
            self.reusable = false;
            self.buf.clear();
        }
        self.finish();
    }
}

impl Body for RawBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        loop {
            match this.next_frame() {
                Ok(Some(frame)) => return Poll::Ready(Some(Ok(frame))),
                Ok(None) => {}
                Err(e) => return this.cut(e),
            }
            let Some(stream) = this.stream.as_mut() else {
                return Poll::Ready(None);
            };
            if this.buf.capacity() - this.buf.len() < READ_BUF / 4 {
                this.buf.reserve(READ_BUF);
            }
            match tokio_util::io::poll_read_buf(Pin::new(stream), cx, &mut this.buf) {
                Poll::Pending => {
                    if !this.stall.expired(cx) {
                        return Poll::Pending;
                    }
                    let after = this.stall.after();
                    return this.cut(format!(
                        "the backend sent no data for {after:?} (proxy.read_timeout)"
                    ));
                }
                Poll::Ready(Ok(0)) if matches!(this.decode, Decode::ToClose) => {
                    this.reusable = false;
                    this.finish();
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => {
                    return this
                        .cut("the backend closed the connection in the middle of a response body")
                }
                Poll::Ready(Ok(_)) => this.stall.progressed(),
                Poll::Ready(Err(e)) => return this.cut(e),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        // (Done is only set with the socket given back or closed.)
        matches!(self.decode, Decode::Done)
    }

    fn size_hint(&self) -> SizeHint {
        match self.decode {
            Decode::Length(left) => SizeHint::with_exact(left),
            Decode::Done => SizeHint::with_exact(0),
            Decode::Chunked(_) | Decode::ToClose => SizeHint::default(),
        }
    }
}
