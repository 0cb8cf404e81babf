//! The engine's socket work: buffers that live only while a request does,
//! writes bounded by a send timeout, and the socket handed to hyper with
//! the bytes already read put back in front.

use std::cell::RefCell;
use std::io::{self, IoSlice};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::FutureExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

use crate::proxy::debug_events::Engine;
use crate::proxy::stall::Stalled;

/// A request's buffers start this size: the client's head, the backend's
/// response head (and a small body with it). nginx's header buffer is
/// 1 KiB; most heads fit in 4.
pub const HEAD_BUF: usize = 4 << 10;
/// A request head may grow its buffer to this; a larger one goes to hyper
/// (which reads up to `limits.max_header_size`).
pub const MAX_HEAD_BUF: usize = 16 << 10;
/// A response head may grow its buffer to this (many `Set-Cookie`s, a large
/// CSP); a larger one is a 502. The same bound as for h2 backends.
pub const MAX_RESPONSE_HEAD: usize = 256 << 10;
/// Large response bodies are relayed through a buffer this size.
pub const BODY_BUF: usize = 64 << 10;
/// Buffers kept per thread for the next request.
const KEPT: usize = 64;
const KEPT_BODY: usize = 4;

/// Heads written for the other side start with this much room.
const HEAD_CAPACITY: usize = 1024;

thread_local! {
    static FREE: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static FREE_HEADS: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static FREE_BODIES: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
}

/// A zeroed-once buffer of `HEAD_BUF` bytes, from this thread's free list.
pub fn take_buf() -> Vec<u8> {
    FREE.with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; HEAD_BUF])
}

/// Back to the free list: an idle connection holds no buffer. A grown one
/// is freed.
pub fn give_buf(buf: Vec<u8>) {
    if buf.len() != HEAD_BUF {
        return;
    }
    FREE.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEPT {
            f.push(buf);
        }
    });
}

/// Make room for a longer head, four times as much up to `limit`; false
/// when it is at `limit` already.
pub fn grow(buf: &mut Vec<u8>, limit: usize) -> bool {
    if buf.len() >= limit {
        return false;
    }
    buf.resize((buf.len() * 4).min(limit), 0);
    true
}

/// A `BODY_BUF` buffer for relaying a large body.
pub fn take_body_buf() -> Vec<u8> {
    FREE_BODIES
        .with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| vec![0u8; BODY_BUF])
}

pub fn give_body_buf(buf: Vec<u8>) {
    FREE_BODIES.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEPT_BODY {
            f.push(buf);
        }
    });
}

/// An empty vector for a head, from this thread's free list.
pub fn take_vec() -> Vec<u8> {
    FREE_HEADS
        .with(|f| f.borrow_mut().pop())
        .unwrap_or_else(|| Vec::with_capacity(HEAD_CAPACITY))
}

pub fn give_vec(mut v: Vec<u8>) {
    if v.capacity() > MAX_HEAD_BUF {
        return;
    }
    v.clear();
    FREE_HEADS.with(|f| {
        let mut f = f.borrow_mut();
        if f.len() < KEPT {
            f.push(v);
        }
    });
}

/// Write all of `parts` to `stream`, failing with `stalled` when a write
/// makes no progress for `timeout` (nginx's `send_timeout` and
/// `proxy_send_timeout`: between two writes, not for the whole). A write
/// that goes through at once — the usual case — sets no timer. Then a
/// flush: a TLS stream may hold records its socket did not take yet (for
/// a plain socket it does nothing).
pub async fn write_all<S: AsyncWrite + Unpin>(
    stream: &mut S,
    parts: &[&[u8]],
    timeout: Duration,
    stalled: Stalled,
) -> io::Result<()> {
    let mut skip = 0usize;
    let total: usize = parts.iter().map(|p| p.len()).sum();
    while skip < total {
        let mut slices = [IoSlice::new(&[]); 2];
        let mut n = 0;
        let mut offset = skip;
        for p in parts {
            if offset >= p.len() {
                offset -= p.len();
                continue;
            }
            if n == slices.len() {
                break;
            }
            slices[n] = IoSlice::new(&p[offset..]);
            offset = 0;
            n += 1;
        }
        let slices = &slices[..n];
        // One slice is a `send`; `writev` takes the longer VFS path in the
        // kernel for the same bytes.
        let written = if let [one] = slices {
            match stream.write(one).now_or_never() {
                Some(r) => r?,
                None => match tokio::time::timeout(timeout, stream.write(one)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(stalled.into_io()),
                },
            }
        } else {
            match stream.write_vectored(slices).now_or_never() {
                Some(r) => r?,
                None => match tokio::time::timeout(timeout, stream.write_vectored(slices)).await {
                    Ok(r) => r?,
                    Err(_) => return Err(stalled.into_io()),
                },
            }
        };
        if written == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        skip += written;
    }
    match stream.flush().now_or_never() {
        Some(r) => r,
        None => match tokio::time::timeout(timeout, stream.flush()).await {
            Ok(r) => r,
            Err(_) => Err(stalled.into_io()),
        },
    }
}

/// A client connection on the engine: a plain socket, or TLS over one
/// (HTTP/1.1 by ALPN, or no ALPN). The TLS side is boxed: rustls' state
/// is large, and a plain connection's task stays as small as the socket.
pub enum ClientStream {
    Plain(TcpStream),
    Tls(Box<TlsClient>),
}

/// A TLS client connection after its handshake.
pub struct TlsClient {
    pub stream: TlsStream<TcpStream>,
    /// When its first request head is due: `limits.header_read_timeout`
    /// from accepting, the handshake included (as on hyper's path).
    pub first_head_due: std::time::Instant,
}

impl ClientStream {
    /// The socket under it.
    pub fn tcp(&self) -> &TcpStream {
        match self {
            ClientStream::Plain(s) => s,
            ClientStream::Tls(s) => s.stream.get_ref().0,
        }
    }

    /// For the debug events.
    pub fn engine(&self) -> Engine {
        match self {
            ClientStream::Plain(_) => Engine::Native,
            ClientStream::Tls(_) => Engine::NativeTls,
        }
    }

    /// See [`TlsClient::first_head_due`]; `None` for a plain connection
    /// (from now).
    pub fn first_head_due(&self) -> Option<std::time::Instant> {
        match self {
            ClientStream::Plain(_) => None,
            ClientStream::Tls(s) => Some(s.first_head_due),
        }
    }

    /// `X-Forwarded-Proto`.
    pub fn proto(&self) -> &'static str {
        match self {
            ClientStream::Plain(_) => "http",
            ClientStream::Tls(_) => "https",
        }
    }

    /// A read would return without the socket: rustls holds plaintext
    /// not read yet, or the client's close_notify, which the socket's
    /// readiness does not show.
    pub fn readable_without_socket(&self) -> bool {
        match self {
            ClientStream::Plain(_) => false,
            ClientStream::Tls(s) => !s.stream.get_ref().1.wants_read(),
        }
    }

    /// Ready when the socket has something to read (which, over TLS, may
    /// be less than a record: the read that follows may find nothing).
    pub fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.tcp().poll_read_ready(cx)
    }

    /// A peek at the socket, without taking anything. Over TLS it sees the
    /// records: a client that closes without close_notify is seen as on a
    /// plain socket, but most send close_notify first (Go, OpenSSL,
    /// rustls), whose bytes read as "still there" and hide a FIN or a reset
    /// behind them.
    pub fn poll_peek(
        &self,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<usize>> {
        self.tcp().poll_peek(cx, buf)
    }
}

impl AsyncRead for ClientStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            ClientStream::Tls(s) => Pin::new(&mut s.stream).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ClientStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            ClientStream::Tls(s) => Pin::new(&mut s.stream).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ClientStream::Tls(s) => Pin::new(&mut s.stream).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ClientStream::Plain(s) => s.is_write_vectored(),
            ClientStream::Tls(s) => s.stream.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_flush(cx),
            ClientStream::Tls(s) => Pin::new(&mut s.stream).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ClientStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            ClientStream::Tls(s) => Pin::new(&mut s.stream).poll_shutdown(cx),
        }
    }
}

/// The client's connection for hyper, with the bytes the engine already
/// read (the head of the request it did not serve, and anything after it)
/// read first: a plain socket, or a TLS stream (a hand-off from the engine
/// over TLS, or one whose HTTP/2 preface was read to check it).
pub struct Rewind<S = TcpStream> {
    pending: Vec<u8>,
    at: usize,
    stream: S,
}

impl<S> Rewind<S> {
    pub fn new(stream: S, pending: Vec<u8>) -> Rewind<S> {
        Rewind {
            pending,
            at: 0,
            stream,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Rewind<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if this.at < this.pending.len() {
            let n = (this.pending.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.pending[this.at..this.at + n]);
            this.at += n;
            if this.at == this.pending.len() {
                this.pending = Vec::new();
                this.at = 0;
            }
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Rewind<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
