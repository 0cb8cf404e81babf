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
/// that goes through at once — the usual case — sets no timer.
pub async fn write_all(
    stream: &mut TcpStream,
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
    Ok(())
}

/// The client's socket for hyper, with the bytes the engine already read
/// (the head of the request it did not serve, and anything after it) read
/// first. (Also a TLS stream whose HTTP/2 preface was read to check it.)
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
