//! Connections to one backend, by its protocol (`app.protocol`,
//! `upstreams[].protocol`).
//!
//! - **HTTP/1.1**: keep-alive connections, one exchange at a time each. The
//!   per-pool mutex is held only to push or pop an idle sender, never across
//!   an await. A connection goes back to the pool only once its response body
//!   has been read to the end (see `body.rs`), so a pooled sender is always
//!   free.
//! - **h2** (cleartext, prior knowledge): one multiplexed connection per
//!   backend, shared by every request (its sender is cloned, lock-free, from
//!   an `ArcSwapOption`). hyper queues requests beyond the backend's
//!   `SETTINGS_MAX_CONCURRENT_STREAMS` until a stream frees up. A connection
//!   that closed, or that a request found gone (GOAWAY), is replaced by the
//!   next request; one connect at a time per backend, so a burst of requests
//!   after a GOAWAY opens one new connection, not one each.
//!
//! - **Raw HTTP/1.1** for the native engine (`proxy/h1`): plain keep-alive
//!   sockets the engine drives itself, with no hyper task per connection. A
//!   socket is pooled only after a response that ended cleanly; on checkout
//!   one whose backend closed it (or sent bytes nobody asked for) while it
//!   was idle is dropped, seen from the reactor's readiness without a
//!   syscall in the usual case.
//!
//! - **TLS** (`https://` upstreams, `app.tls`): the same two paths over a
//!   rustls stream (`tls::client`). The backend's ALPN answer on each new
//!   connection decides: `h2` → the shared connection, else HTTP/1.1 (with
//!   `protocol: h2`, HTTP/2 only). The last answer is remembered, so once a
//!   backend chose h2 every request goes to the shared connection. A
//!   connection an upgrade (WebSocket) will take over offers `http/1.1`
//!   alone (`checkout_upgrade`). The native engine hands requests for TLS
//!   backends to hyper's path, so raw sockets are always cleartext.
//!
//! Each endpoint owns its pool, so there is no lock shared between backends.
//!
//! Each connection's socket is an [`UpstreamIo`]: its writes fail once the
//! backend has read nothing for `proxy.send_timeout` (nginx's
//! `proxy_send_timeout`), which fails the exchange (HTTP/1.1) or the shared
//! connection (h2) and closes it.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2, TrySendError};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use pin_project_lite::pin_project;
use shoal_config::UpstreamProtocol;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

use super::limits::RequestBody;
use super::stall::{Stalled, WriteStall};
use crate::clock;
use crate::tls::client::{self as tls_client, Connector};

/// What the proxy sends upstream: the client's body streamed through, or
/// nothing (a replayed bodyless request, a health check).
pub type UpstreamBody = Either<RequestBody, Full<Bytes>>;

/// Largest response head accepted from an h2 backend (HPACK-decoded size).
/// hyper's default, 16 KiB, is smaller than what HTTP/1.1 backends may send.
const H2_MAX_HEADER_LIST_SIZE: u32 = 256 << 10;
/// The shared h2 connection is pinged this often, busy or idle, and closed
/// (then replaced by the next request) when a ping is not answered in
/// `H2_PING_TIMEOUT`: a connection silently dropped on the way (a NAT, a
/// firewall, a vanished host) must not hold every request to the backend.
const H2_PING_INTERVAL: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, Clone)]
pub struct PoolSettings {
    pub connect_timeout: Duration,
    pub max_idle: usize,
    pub idle_timeout: Duration,
    /// How to talk to the backend; set per endpoint.
    pub protocol: UpstreamProtocol,
    pub send_timeout: Duration,
    /// TLS to the backend (`https://`, `app.tls`); set per endpoint.
    pub tls: Option<Arc<Connector>>,
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
            protocol: UpstreamProtocol::Http1,
            send_timeout: p.send_timeout,
            tls: None,
        }
    }
}

impl PoolSettings {
    /// The same settings for a backend spoken to with `protocol`.
    pub fn with_protocol(&self, protocol: UpstreamProtocol) -> PoolSettings {
        PoolSettings {
            protocol,
            ..self.clone()
        }
    }

    /// The same settings for a backend spoken to with `protocol`, over TLS
    /// when `tls` is set.
    pub fn for_backend(
        &self,
        protocol: UpstreamProtocol,
        tls: Option<Arc<Connector>>,
    ) -> PoolSettings {
        PoolSettings {
            protocol,
            tls,
            ..self.clone()
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
    /// The TLS handshake failed: a certificate error (`TLS: certificate
    /// expired`, see `tls::client::reason`), or the connection broke.
    #[error("{}", tls_failure(.addr, .source))]
    Tls {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("HTTP handshake with {addr}: {source}")]
    Handshake {
        addr: SocketAddr,
        source: hyper::Error,
    },
}

fn tls_failure(addr: &SocketAddr, source: &std::io::Error) -> String {
    let text = source.to_string();
    match text.starts_with("TLS: ") {
        true => text,
        false => format!("TLS handshake with {addr}: {text}"),
    }
}

/// How an h2 backend declined a request it did not process (RFC 9113 §8.7):
/// such a request may go to another backend even after it was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// `RST_STREAM(REFUSED_STREAM)`: this stream was not processed; the
    /// connection is fine.
    RefusedStream,
    /// The stream was above the last stream id of the backend's `GOAWAY`, or
    /// opened after it: not processed; the connection is going away.
    GoAway,
}

/// Whether `e` says the backend did not process the request. Only HTTP/2
/// can say so; an HTTP/1.1 error never does.
pub fn refusal(e: &hyper::Error) -> Option<Refusal> {
    let h2 = std::error::Error::source(e)?.downcast_ref::<h2::Error>()?;
    if !h2.is_remote() {
        return None;
    }
    if h2.is_go_away() {
        Some(Refusal::GoAway)
    } else if h2.reason() == Some(h2::Reason::REFUSED_STREAM) {
        Some(Refusal::RefusedStream)
    } else {
        None
    }
}

/// A connection's request sender, whichever the protocol.
pub enum Sender {
    H1(http1::SendRequest<UpstreamBody>),
    H2 {
        sender: http2::SendRequest<UpstreamBody>,
        /// Which connection (its number in `opened`), so that a request that
        /// found it broken replaces this one and not a newer one.
        id: u64,
    },
}

impl Sender {
    /// Send one request. On an error before the request was handed to the
    /// connection, the request comes back with it (`TrySendError::take_message`).
    /// Not an `async fn`: the request goes to the connection now, and the
    /// future returned is hyper's wait for the answer, without a copy of
    /// the request in it (each request's future is boxed, so copied, once).
    pub fn send(
        &mut self,
        req: Request<UpstreamBody>,
    ) -> impl std::future::Future<
        Output = Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>,
    > + Send
           + use<'_> {
        match self {
            Sender::H1(s) => futures_util::future::Either::Left(s.try_send_request(req)),
            Sender::H2 { sender, .. } => {
                futures_util::future::Either::Right(sender.try_send_request(req))
            }
        }
    }

    pub fn protocol(&self) -> UpstreamProtocol {
        match self {
            Sender::H1(_) => UpstreamProtocol::Http1,
            Sender::H2 { .. } => UpstreamProtocol::H2,
        }
    }
}

/// An idle keep-alive connection: hyper's sender, or a raw socket (native
/// engine).
struct Idle<T> {
    conn: T,
    /// When it was parked, on the coarse clock (idle timeouts are seconds).
    since: Instant,
}

/// The most recently parked connection of `list` that is within
/// `idle_timeout` and `usable` (the most recently used is the least likely
/// to have been closed); the ones passed over are dropped.
fn unpark<T>(
    list: &Mutex<Vec<Idle<T>>>,
    settings: &PoolSettings,
    usable: impl Fn(&T) -> bool,
) -> Option<T> {
    let mut idle = list.lock().ok()?;
    let now = clock::coarse();
    while let Some(c) = idle.pop() {
        if now.saturating_duration_since(c.since) < settings.idle_timeout && usable(&c.conn) {
            return Some(c.conn);
        }
    }
    None
}

/// Park `conn` as the newest idle connection of `list`: the ones past
/// `idle_timeout` go first (oldest first, while we are here), and at most
/// `max_idle` are kept.
fn park<T>(list: &Mutex<Vec<Idle<T>>>, conn: T, settings: &PoolSettings) {
    let Ok(mut idle) = list.lock() else {
        return;
    };
    let now = clock::coarse();
    let expired = idle
        .iter()
        .take_while(|c| now.saturating_duration_since(c.since) >= settings.idle_timeout)
        .count();
    if expired > 0 {
        idle.drain(..expired);
    }
    if idle.len() < settings.max_idle {
        idle.push(Idle { conn, since: now });
    }
}

/// The h2 connection every request to the backend shares.
struct Shared {
    sender: http2::SendRequest<UpstreamBody>,
    id: u64,
}

struct Inner {
    addr: SocketAddr,
    settings: PoolSettings,
    /// HTTP/1.1: idle keep-alive connections.
    idle: Mutex<Vec<Idle<http1::SendRequest<UpstreamBody>>>>,
    /// Raw HTTP/1.1 (native engine): idle keep-alive sockets.
    raw_idle: Mutex<Vec<Idle<TcpStream>>>,
    /// h2: the shared connection, if one is open.
    shared: ArcSwapOption<Shared>,
    /// h2: one connect at a time.
    connecting: tokio::sync::Mutex<()>,
    /// h2: connect attempts finished so far, and why the last one failed
    /// (whether it timed out, the error), so that requests that waited for
    /// it fail at once instead of each trying again in turn.
    attempts: AtomicU64,
    last_failure: Mutex<Option<(bool, String)>>,
    /// Connections opened so far (shows whether keep-alive reuse and
    /// multiplexing work).
    opened: AtomicU64,
    /// TLS: the backend chose h2 by ALPN on the last new connection.
    negotiated_h2: AtomicBool,
}

#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

/// A connection checked out of the pool.
pub struct PooledConn {
    pub sender: Sender,
    /// True when it was already open rather than a fresh connect: a failure
    /// on it may just mean the backend closed it (idle keep-alive, GOAWAY).
    pub reused: bool,
    pool: Pool,
}

impl PooledConn {
    /// Return the connection for reuse (only when its last exchange is
    /// complete). An h2 connection stays shared; this only drops the clone.
    pub fn release(self) {
        if let Sender::H1(sender) = self.sender {
            self.pool.put(sender);
        }
    }

    pub fn protocol(&self) -> UpstreamProtocol {
        self.sender.protocol()
    }

    /// Whether the connection is TLS (an h2 request's `:scheme` is `https`).
    pub fn tls(&self) -> bool {
        self.pool.inner.settings.tls.is_some()
    }
}

impl Pool {
    pub fn new(addr: SocketAddr, settings: PoolSettings) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                addr,
                settings,
                idle: Mutex::new(Vec::new()),
                raw_idle: Mutex::new(Vec::new()),
                shared: ArcSwapOption::empty(),
                connecting: tokio::sync::Mutex::new(()),
                attempts: AtomicU64::new(0),
                last_failure: Mutex::new(None),
                opened: AtomicU64::new(0),
                negotiated_h2: AtomicBool::new(false),
            }),
        }
    }

    /// The protocol configured (`protocol:`); over TLS the backend's ALPN
    /// choice may still make an `http1` backend an h2 one.
    pub fn protocol(&self) -> UpstreamProtocol {
        self.inner.settings.protocol
    }

    /// The TLS settings of the backend, if it has TLS.
    pub fn tls(&self) -> Option<&Arc<Connector>> {
        self.inner.settings.tls.as_ref()
    }

    /// Whether the native engine can serve requests to this backend on raw
    /// sockets: cleartext HTTP/1.1 only.
    #[inline]
    pub fn raw_ok(&self) -> bool {
        self.inner.settings.protocol == UpstreamProtocol::Http1 && self.inner.settings.tls.is_none()
    }

    /// The protocol spoken now: `protocol:`, or over TLS what the backend
    /// chose by ALPN on the last new connection (for the status API).
    pub fn speaking(&self) -> UpstreamProtocol {
        match self.speaks_h2() {
            true => UpstreamProtocol::H2,
            false => UpstreamProtocol::Http1,
        }
    }

    /// Whether new requests go to the shared h2 connection: `protocol: h2`,
    /// or a TLS backend that chose h2 by ALPN.
    fn speaks_h2(&self) -> bool {
        self.inner.settings.protocol == UpstreamProtocol::H2
            || self.inner.negotiated_h2.load(Ordering::Relaxed)
    }

    pub fn opened(&self) -> u64 {
        self.inner.opened.load(Ordering::Relaxed)
    }

    pub fn idle_count(&self) -> usize {
        let hyper = self.inner.idle.lock().map(|v| v.len()).unwrap_or(0);
        hyper + self.inner.raw_idle.lock().map(|v| v.len()).unwrap_or(0)
    }

    /// `proxy.send_timeout` for this backend's connections.
    pub fn send_timeout(&self) -> Duration {
        self.inner.settings.send_timeout
    }

    /// Drop every idle connection, and the shared h2 connection (the backend
    /// went away or is draining). Requests in flight on them finish.
    pub fn clear(&self) {
        if let Ok(mut idle) = self.inner.idle.lock() {
            idle.clear();
        }
        if let Ok(mut idle) = self.inner.raw_idle.lock() {
            idle.clear();
        }
        self.inner.shared.store(None);
    }

    /// An idle raw socket that still looks open, most recently used first.
    pub fn take_raw(&self) -> Option<TcpStream> {
        unpark(&self.inner.raw_idle, &self.inner.settings, still_open)
    }

    /// Give back a raw socket whose last exchange ended cleanly.
    pub fn put_raw(&self, stream: TcpStream) {
        park(&self.inner.raw_idle, stream, &self.inner.settings);
    }

    /// A raw socket for the next request: an idle one that still looks
    /// open (`true`: reused), or else a new one.
    pub async fn raw_stream(&self) -> Result<(TcpStream, bool), ConnectError> {
        match self.take_raw() {
            Some(stream) => Ok((stream, true)),
            // Boxed: a connect's future is large, a pooled socket needs none.
            None => Box::pin(self.connect_raw()).await.map(|s| (s, false)),
        }
    }

    /// A new raw socket to the backend (`proxy.connect_timeout`).
    pub async fn connect_raw(&self) -> Result<TcpStream, ConnectError> {
        let stream = self.tcp_stream().await?;
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        Ok(stream)
    }

    fn take_idle(&self) -> Option<http1::SendRequest<UpstreamBody>> {
        unpark(&self.inner.idle, &self.inner.settings, |sender| {
            sender.is_ready()
        })
    }

    fn put(&self, sender: http1::SendRequest<UpstreamBody>) {
        if sender.is_closed() {
            return;
        }
        park(&self.inner.idle, sender, &self.inner.settings);
    }

    fn conn(&self, sender: Sender, reused: bool) -> PooledConn {
        PooledConn {
            sender,
            reused,
            pool: self.clone(),
        }
    }

    pub async fn checkout(&self) -> Result<PooledConn, ConnectError> {
        // The connect paths are boxed: they are large futures (TCP connect,
        // timeout, handshake) that would otherwise live inline in every
        // request's future — copied on each move and held by every client
        // connection — while a pooled connection needs none of it.
        if self.speaks_h2() {
            return Box::pin(self.checkout_h2(None)).await;
        }
        if let Some(sender) = self.take_idle() {
            return Ok(self.conn(Sender::H1(sender), true));
        }
        let sender = Box::pin(self.connect(false)).await?;
        Ok(self.conn(sender, false))
    }

    /// A connection for a request that asks for an upgrade (WebSocket),
    /// which needs HTTP/1.1: to a TLS backend that chose h2, a new
    /// connection offering `http/1.1` alone; otherwise as [`Pool::checkout`].
    pub async fn checkout_upgrade(&self) -> Result<PooledConn, ConnectError> {
        let negotiable = self.inner.settings.tls.is_some()
            && self.inner.settings.protocol == UpstreamProtocol::Http1;
        if negotiable && self.speaks_h2() {
            let sender = Box::pin(self.connect(true)).await?;
            return Ok(self.conn(sender, false));
        }
        self.checkout().await
    }

    /// A new HTTP/1.1 connection, never an idle one: for a request that
    /// must have a connection to itself (`forward::isolated`). h2 frames
    /// every body, so an h2 backend gets the shared connection.
    pub async fn checkout_fresh(&self) -> Result<PooledConn, ConnectError> {
        if self.speaks_h2() {
            return Box::pin(self.checkout_h2(None)).await;
        }
        let sender = Box::pin(self.connect(false)).await?;
        Ok(self.conn(sender, false))
    }

    /// A request failed on `broken` before any response: a new HTTP/1.1
    /// connection; for h2, a replacement of the shared connection (unless
    /// another request replaced it already).
    pub async fn reconnect(&self, broken: &PooledConn) -> Result<PooledConn, ConnectError> {
        match &broken.sender {
            Sender::H1(_) => {
                let sender = Box::pin(self.connect(false)).await?;
                Ok(self.conn(sender, false))
            }
            Sender::H2 { id, .. } => Box::pin(self.checkout_h2(Some(*id))).await,
        }
    }

    /// The shared h2 connection, unless it is closed or is `broken`.
    fn shared_h2(&self, broken: Option<u64>) -> Option<Sender> {
        let guard = self.inner.shared.load();
        let shared = guard.as_ref()?;
        if shared.sender.is_closed() || Some(shared.id) == broken {
            return None;
        }
        Some(Sender::H2 {
            sender: shared.sender.clone(),
            id: shared.id,
        })
    }

    async fn checkout_h2(&self, broken: Option<u64>) -> Result<PooledConn, ConnectError> {
        if let Some(sender) = self.shared_h2(broken) {
            return Ok(self.conn(sender, true));
        }
        let attempts = self.inner.attempts.load(Ordering::Acquire);
        let _one = self.inner.connecting.lock().await;
        // Whoever held the lock may have just connected.
        if let Some(sender) = self.shared_h2(broken) {
            return Ok(self.conn(sender, false));
        }
        if self.inner.attempts.load(Ordering::Acquire) != attempts {
            // ... or tried while this request waited, and failed.
            return Err(self.failed_meanwhile());
        }
        let connected = self.connect(false).await;
        if let Err(e) = &connected {
            if let Ok(mut last) = self.inner.last_failure.lock() {
                *last = Some((matches!(e, ConnectError::Timeout { .. }), e.to_string()));
            }
        }
        self.inner.attempts.fetch_add(1, Ordering::Release);
        // Over TLS the backend may have chosen HTTP/1.1 this time.
        Ok(self.conn(connected?, false))
    }

    /// A new connection in the protocol the backend speaks: the configured
    /// one, or over TLS the backend's ALPN choice (`h1_only`: offer
    /// `http/1.1` alone). A new h2 connection becomes the shared one.
    async fn connect(&self, h1_only: bool) -> Result<Sender, ConnectError> {
        let (io, protocol) = self.open(h1_only).await?;
        Ok(match protocol {
            UpstreamProtocol::Http1 => Sender::H1(self.handshake_h1(io).await?),
            UpstreamProtocol::H2 => {
                let (sender, id) = self.handshake_h2(io).await?;
                Sender::H2 { sender, id }
            }
        })
    }

    /// TCP, then TLS when the backend has it (the handshake, too, within
    /// `connect_timeout`, as nginx's `proxy_connect_timeout`).
    async fn open(&self, h1_only: bool) -> Result<(UpstreamIo, UpstreamProtocol), ConnectError> {
        let tcp = self.tcp_stream().await?;
        let (io, protocol) = match &self.inner.settings.tls {
            None => (Stream::Plain(tcp), self.inner.settings.protocol),
            Some(tls) => {
                let addr = self.inner.addr;
                let timeout = self.inner.settings.connect_timeout;
                let c = match tokio::time::timeout(timeout, tls.connect(tcp, h1_only)).await {
                    Err(_) => return Err(ConnectError::Timeout { addr, timeout }),
                    Ok(Err(source)) => return Err(ConnectError::Tls { addr, source }),
                    Ok(Ok(c)) => c,
                };
                if !h1_only {
                    let h2 = c.protocol == UpstreamProtocol::H2;
                    self.inner.negotiated_h2.store(h2, Ordering::Relaxed);
                }
                (Stream::Tls(Box::new(c.stream)), c.protocol)
            }
        };
        let io = UpstreamIo {
            io,
            send: WriteStall::new(self.inner.settings.send_timeout),
        };
        Ok((io, protocol))
    }

    /// The error of a connect attempt another request made (see `attempts`).
    fn failed_meanwhile(&self) -> ConnectError {
        let addr = self.inner.addr;
        let last = self.inner.last_failure.lock().ok().and_then(|l| l.clone());
        match last {
            Some((true, _)) => ConnectError::Timeout {
                addr,
                timeout: self.inner.settings.connect_timeout,
            },
            Some((false, why)) => ConnectError::Io {
                addr,
                source: std::io::Error::other(format!("{why} (while this request waited)")),
            },
            None => ConnectError::Io {
                addr,
                source: std::io::Error::other("connection closed"),
            },
        }
    }

    /// A new shared h2 connection on `stream`, stored for every request to use.
    async fn handshake_h2(
        &self,
        stream: UpstreamIo,
    ) -> Result<(http2::SendRequest<UpstreamBody>, u64), ConnectError> {
        let id = self.inner.opened.fetch_add(1, Ordering::Relaxed) + 1;
        let addr = self.inner.addr;
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .max_header_list_size(H2_MAX_HEADER_LIST_SIZE)
            .keep_alive_interval(H2_PING_INTERVAL)
            .keep_alive_timeout(H2_PING_TIMEOUT)
            .keep_alive_while_idle(true)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(|source| ConnectError::Handshake { addr, source })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(backend = %addr, error = %e, "h2 upstream connection ended with an error");
            }
        });
        self.inner.shared.store(Some(Arc::new(Shared {
            sender: sender.clone(),
            id,
        })));
        Ok((sender, id))
    }

    async fn tcp_stream(&self) -> Result<TcpStream, ConnectError> {
        let addr = self.inner.addr;
        let timeout = self.inner.settings.connect_timeout;
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Err(_) => return Err(ConnectError::Timeout { addr, timeout }),
            Ok(Err(source)) => return Err(ConnectError::Io { addr, source }),
            Ok(Ok(s)) => s,
        };
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    async fn handshake_h1(
        &self,
        stream: UpstreamIo,
    ) -> Result<http1::SendRequest<UpstreamBody>, ConnectError> {
        let addr = self.inner.addr;
        self.inner.opened.fetch_add(1, Ordering::Relaxed);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
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

/// Whether an idle keep-alive socket is still usable: nothing arrived on it
/// while it sat in the pool (a backend's close is a read event, so is a
/// response nobody asked for). The reactor's readiness answers without a
/// syscall; only when it says readable — which may be stale, left from the
/// last response's final read — one non-blocking read looks.
fn still_open(stream: &TcpStream) -> bool {
    let mut cx = Context::from_waker(std::task::Waker::noop());
    match stream.poll_read_ready(&mut cx) {
        Poll::Pending => true,
        Poll::Ready(Err(_)) => false,
        Poll::Ready(Ok(())) => {
            let mut probe = [0u8; 1];
            matches!(stream.try_read(&mut probe), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
        }
    }
}

/// A backend connection's stream: cleartext, or TLS (boxed: the rustls
/// state is large, and most backends are cleartext).
enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            // A certificate refused after the handshake (TLS 1.3: the
            // backend's alert comes with its first read) is told in words.
            Stream::Tls(s) => Pin::new(s).poll_read(cx, buf).map_err(tls_client::clarify),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s).poll_write(cx, buf).map_err(tls_client::clarify),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s)
                .poll_write_vectored(cx, bufs)
                .map_err(tls_client::clarify),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

pin_project! {
    /// A backend connection's stream, with `proxy.send_timeout` on its writes.
    pub struct UpstreamIo {
        #[pin]
        io: Stream,
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
