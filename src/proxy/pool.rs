//! Keep-alive connections to one backend.
//!
//! Each endpoint owns its pool, so there is no lock shared between backends;
//! the per-pool mutex is held only to push or pop an idle sender, never across
//! an await. A connection goes back to the pool only once its response body has
//! been read to the end (see `body.rs`), so a pooled sender is always free.
//!
//! Each connection's socket is an [`UpstreamIo`]: its writes fail once the
//! backend has read nothing for `proxy.send_timeout` (nginx's
//! `proxy_send_timeout`), which fails the exchange and closes the connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{Either, Empty};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use pin_project_lite::pin_project;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

use super::limits::RequestBody;
use super::stall::{Stalled, WriteStall};

/// What the proxy sends upstream: the client's body streamed through, or
/// nothing (a replayed bodyless request, a health check).
pub type UpstreamBody = Either<RequestBody, Empty<Bytes>>;

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub max_idle: usize,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
}

impl Default for PoolSettings {
    fn default() -> Self {
        let p = shoal_config::ProxyConfig::default();
        PoolSettings::from(&p)
    }
}

impl From<&shoal_config::ProxyConfig> for PoolSettings {
    fn from(p: &shoal_config::ProxyConfig) -> Self {
        PoolSettings {
            connect_timeout: p.connect_timeout,
            max_idle: p.max_idle_per_backend,
            idle_timeout: p.idle_timeout,
            send_timeout: p.send_timeout,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("connect to {addr} timed out after {timeout:?}")]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("connect to {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP handshake with {addr}: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
}

struct Idle {
    sender: SendRequest<UpstreamBody>,
    since: Instant,
}

struct Inner {
    addr: SocketAddr,
    settings: PoolSettings,
    idle: Mutex<Vec<Idle>>,
    /// Connections opened so far (shows whether keep-alive reuse works).
    opened: std::sync::atomic::AtomicU64,
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// A connection checked out of the pool.
pub struct PooledConn {
    pub sender: SendRequest<UpstreamBody>,
    /// True when it came from the idle list rather than a fresh connect: a
    /// failure on it may just mean the backend closed an idle connection.
    pub reused: bool,
    pool: Pool,
}

impl PooledConn {
    /// Return the connection for reuse (only when its last exchange is complete).
    pub fn release(self) {
        self.pool.put(self.sender);
    }
}

impl Pool {
    pub fn new(addr: SocketAddr, settings: PoolSettings) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                addr,
                settings,
                idle: Mutex::new(Vec::new()),
                opened: std::sync::atomic::AtomicU64::new(0),
            }),
        }
    }

    pub fn opened(&self) -> u64 {
        self.inner.opened.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn idle_count(&self) -> usize {
        self.inner.idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// Drop every idle connection (the backend went away or is draining).
    pub fn clear(&self) {
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.clear();
        }
    }

    fn take_idle(&self) -> Option<SendRequest<UpstreamBody>> {
        let mut idle = self.inner.idle.lock().ok()?;
        let timeout = self.inner.settings.idle_timeout;
        // Most recently used first: it is the least likely to have been closed.
        while let Some(conn) = idle.pop() {
            if conn.sender.is_ready() && conn.since.elapsed() < timeout {
                return Some(conn.sender);
            }
        }
        None
    }

    fn put(&self, sender: SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        if let Ok(mut idle) = self.inner.idle.lock() {
            // Oldest first: drop the ones past idle_timeout while we are here.
            let timeout = self.inner.settings.idle_timeout;
            let expired = idle
                .iter()
                .take_while(|c| c.since.elapsed() >= timeout)
                .count();
            if expired > 0 {
                idle.drain(..expired);
            }
            if idle.len() < self.inner.settings.max_idle {
                idle.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        }
    }

    pub async fn checkout(&self) -> Result<PooledConn, ConnectError> {
        if let Some(sender) = self.take_idle() {
            return Ok(PooledConn {
                sender,
                reused: true,
                pool: self.clone(),
            });
        }
        let sender = self.connect().await?;
        Ok(PooledConn {
            sender,
            reused: false,
            pool: self.clone(),
        })
    }

    /// A new connection, never a pooled one.
    pub async fn connect_new(&self) -> Result<PooledConn, ConnectError> {
        let sender = self.connect().await?;
        Ok(PooledConn {
            sender,
            reused: false,
            pool: self.clone(),
        })
    }

    async fn connect(&self) -> Result<SendRequest<UpstreamBody>, ConnectError> {
        let addr = self.inner.addr;
        let timeout = self.inner.settings.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(ConnectError::Timeout { addr, timeout }),
            Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        self.inner
            .opened
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let io = UpstreamIo {
            io: stream,
            send: WriteStall::new(self.inner.settings.send_timeout),
        };
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(io))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            // Errors here are seen by the request that was using the
            // connection; an idle connection closing is routine.
            let _ = conn.with_upgrades().await;
        });
        Ok(sender)
    }
}

pin_project! {
    /// A backend connection's socket, with `proxy.send_timeout` on its writes.
    pub struct UpstreamIo {
        #[pin]
        io: TcpStream,
        send: WriteStall,
    }
}

impl AsyncRead for UpstreamIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        self.project().io.poll_read(cx, buf)
    }
}

impl AsyncWrite for UpstreamIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.io.poll_write(cx, buf);
        this.send.check(cx, r, Stalled::UpstreamSend)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.io.poll_write_vectored(cx, bufs);
        this.send.check(cx, r, Stalled::UpstreamSend)
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
