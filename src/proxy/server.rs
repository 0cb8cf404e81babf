//! The public listener: accepts connections and serves HTTP/1.1 (and h2c with
//! prior knowledge) on each, until told to stop; then it stops accepting and
//! lets in-flight requests finish within the grace period. With `tls:` on,
//! each connection first gets a TLS handshake (in its own task, bounded by
//! `limits.header_read_timeout`); HTTP/2 is then what the client negotiated
//! through ALPN and starts with its preface.
//!
//! HTTP/1.1 connections, plain or TLS, start on the native HTTP/1.1 engine
//! (`proxy/h1`, `proxy.engine: native`), which hands a connection to hyper
//! at the first request it does not serve; h2 (by ALPN or h2c's preface)
//! is hyper's. The drain is the same for both: the `stop`
//! token (for hyper; for the engine, the listener's `h1::Idle`, whose
//! drain begins when `stop` fires) ends idle connections at once and busy
//! ones after their request; every connection task is tracked, and the
//! listener waits for them up to the grace period.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulConnection;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use http::{Request, StatusCode};
use http_body::Body as _;
use hyper::body::Incoming;
use shoal_config::LimitsConfig;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::conn_watch::{ConnWatch, TrackedBody, WatchedIo};
use super::debug_events::{self, Engine};
use super::forward::Proxy;
use super::h1;
use super::limits;
use super::listener::{HttpsPort, ListenerRole};
use crate::tls::Terminator;
use arc_swap::ArcSwap;
use shoal_config::ProxyProtocol;
use std::sync::atomic::Ordering;

/// How long the drain may take, read when it begins (a config reload may
/// have changed it since the listener started).
pub type Grace = Arc<dyn Fn() -> Duration + Send + Sync>;

/// The current `limits:` section, read for each connection accepted (a
/// config reload applies to the connections accepted after it).
pub type LimitsNow = Arc<dyn Fn() -> LimitsConfig + Send + Sync>;

fn builder_for(limits: &LimitsConfig) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // hyper's own header timeout is off: `conn_watch::WatchedIo` does it (and
    // answers 408), and hyper's would also cut idle keep-alive connections.
    // The read buffer bounds the request head: over it, hyper answers 431.
    let head = usize::try_from(limits.max_header_size).unwrap_or(usize::MAX);
    // A client that ends its sending side after a whole request (body and
    // all) still gets the answer; hyper alone knows where the body ended.
    // (It then reads nothing more while the request is served, so a reset
    // is noticed when the answer is written. With abort_on_client_close,
    // the end or a reset abandons the request at once.)
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .half_close(!limits.abort_on_client_close)
        .max_buf_size(head.max(8192));
    builder
        .http2()
        .max_header_list_size(u32::try_from(head).unwrap_or(u32::MAX));
    builder
}

/// What a public listener serves with; everything may change by reload
/// and is read per accepted connection.
pub struct Frontend {
    pub proxy: Arc<Proxy>,
    /// TLS off, or the rustls config for the next handshake.
    pub tls: Arc<Terminator>,
    pub grace: Grace,
    pub limits: LimitsNow,
    /// Its name, PROXY protocol and redirect.
    pub role: Arc<ArcSwap<ListenerRole>>,
    /// Where `redirect_https` sends clients.
    pub https_port: HttpsPort,
}

/// One connection's request handler settings.
struct Handler {
    proxy: Arc<Proxy>,
    watch: ConnWatch,
    max_body_size: Option<u64>,
    peer: SocketAddr,
    /// The listener's address the client reached (`Host` for a request
    /// that has none).
    local: SocketAddr,
    /// `X-Forwarded-Proto`: `http` or `https`.
    proto: &'static str,
    /// `redirect_https`: every request is answered with a redirect to
    /// this port (`proxy/redirect.rs`), none is proxied.
    redirect: Option<HttpsPort>,
    /// The listener's name (its own routes).
    listener: Arc<str>,
}

impl Handler {
    /// The handler of a connection accepted (or handed over) now, under
    /// `limits`: its header-read timer starts here.
    /// `stream` is the client's socket (its local address is the `Host`
    /// of a request that has none).
    fn new(
        proxy: Arc<Proxy>,
        limits: &LimitsConfig,
        stream: &tokio::net::TcpStream,
        (peer, proto): (SocketAddr, &'static str),
        listener: &Arc<str>,
    ) -> Handler {
        Handler {
            listener: listener.clone(),
            proxy,
            watch: ConnWatch::new(limits),
            max_body_size: limits.max_body_size,
            peer,
            local: stream.local_addr().unwrap_or(peer),
            proto,
            redirect: None,
        }
    }
}

/// hyper's connection (HTTP/1.1 with upgrades, or HTTP/2 by its preface)
/// over `io`, owning what it needs.
fn connection<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: WatchedIo<I>,
    h: Handler,
) -> impl GracefulConnection<Error = Box<dyn std::error::Error + Send + Sync>> + Send + 'static
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let Handler {
        proxy,
        watch,
        max_body_size,
        peer,
        local,
        proto,
        redirect,
        listener,
    } = h;
    let service = service_fn(move |req: Request<Incoming>| {
        let proxy = proxy.clone();
        let listener = listener.clone();
        let redirect = redirect.as_ref().map(|p| p.load(Ordering::Relaxed));
        let upgrade = req.headers().contains_key(http::header::UPGRADE);
        let (busy, reading) = watch.request_started(!req.body().is_end_stream(), upgrade);
        let watch = watch.clone();
        let h2 = req.version() == http::Version::HTTP_2;
        async move {
            let mut resp = match redirect {
                Some(port) => super::redirect::answer(&req, local, port),
                None => {
                    let req = limits::counted(req, max_body_size, reading);
                    proxy.handle(req, peer, local, proto, &listener).await
                }
            };
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                watch.upgraded();
            }
            if h2 {
                super::hpack::never_index_per_response_values(resp.headers_mut());
            }
            Ok::<_, Infallible>(resp.map(|b| TrackedBody::new(b, busy)))
        }
    });
    builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned()
}

/// A TLS connection whose client chose `h2` by ALPN: HTTP/2 and nothing
/// else (RFC 9113 §3.3), with no sniffing of HTTP/1.1. A connection that
/// does not open with the HTTP/2 preface gets a GOAWAY with PROTOCOL_ERROR
/// (RFC 9113 §3.4) and is closed.
async fn serve_h2<I>(
    mut stream: I,
    handler: Handler,
    builder: &auto::Builder<TokioExecutor>,
    timeout: Duration,
    stop: CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    let peer = handler.peer;
    let mut preface = [0u8; 24];
    let mut got = 0;
    let read = tokio::time::timeout(timeout, async {
        while got < PREFACE.len() {
            match stream.read(&mut preface[got..]).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got += n,
            }
            if preface[..got] != PREFACE[..got] {
                return false;
            }
        }
        true
    });
    let read = tokio::select! {
        read = read => read,
        _ = stop.cancelled() => return,
    };
    match read {
        Ok(true) => {}
        Ok(false) if got == 0 => return,
        Err(_) if got == 0 => return,
        _ => {
            tracing::debug!(%peer, "not the HTTP/2 preface after ALPN h2; GOAWAY");
            // The server's preface (an empty SETTINGS, RFC 9113 §3.4)
            // comes first, then GOAWAY: length 8, type 0x7, no flags,
            // stream 0; last stream 0, error PROTOCOL_ERROR (0x1).
            const SETTINGS_THEN_GOAWAY: [u8; 26] = [
                0, 0, 0, 4, 0, 0, 0, 0, 0, // SETTINGS
                0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, // GOAWAY
            ];
            let _ = tokio::time::timeout(timeout, async {
                let _ = stream.write_all(&SETTINGS_THEN_GOAWAY).await;
                let _ = stream.shutdown().await;
            })
            .await;
            return;
        }
    }
    let builder = builder.clone().http2_only();
    let io = WatchedIo::new(
        h1::Rewind::new(stream, preface.to_vec()),
        handler.watch.clone(),
    );
    let watch = handler.watch.clone();
    run_hyper(
        connection(&builder, io, handler),
        (peer, Engine::Tls, watch),
        stop,
    )
    .await;
}

/// Run a hyper connection to its end; when `stop` fires, let it finish the
/// request in flight and close (hyper's graceful shutdown). `watch`
/// counts its requests for the debug event at the end.
async fn run_hyper<C>(
    conn: C,
    (peer, engine, watch): (SocketAddr, Engine, ConnWatch),
    stop: CancellationToken,
) where
    C: GracefulConnection<Error = Box<dyn std::error::Error + Send + Sync>>,
{
    tokio::pin!(conn);
    let mut drained = false;
    let ended = tokio::select! {
        ended = conn.as_mut() => ended,
        _ = stop.cancelled() => {
            drained = true;
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = &ended {
        tracing::debug!(%peer, error = %e, "client connection ended with an error");
    }
    debug_events::closed(&peer, engine, watch.requests(), || {
        match (&ended, drained) {
            (Err(e), _) => format!("error: {e}"),
            (Ok(()), true) => "drain (shutdown, or the listener removed)".to_string(),
            (Ok(()), false) => {
                "ended (the client closed, `Connection: close`, or a timeout)".to_string()
            }
        }
    });
}

/// What the native connections of a listener share: one `Arc` per
/// connection instead of each setting (a connection task's arguments stay
/// in its state for its whole life). Rebuilt when `limits` change.
struct NativeShared {
    proxy: Arc<Proxy>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    limits: LimitsConfig,
    /// The part of `limits` the native engine reads.
    native: h1::ConnLimits,
    /// The same across rebuilds: idle waits, parking, name, stop.
    lasting: Lasting,
}

impl NativeShared {
    fn new(
        proxy: &Arc<Proxy>,
        builder: &Arc<auto::Builder<TokioExecutor>>,
        limits: &LimitsConfig,
        lasting: &Lasting,
    ) -> Arc<NativeShared> {
        // The idle sweeper's tick follows these limits.
        lasting
            .idle
            .set_tick(&[limits.idle_timeout, limits.header_read_timeout]);
        Arc::new(NativeShared {
            proxy: proxy.clone(),
            builder: builder.clone(),
            limits: limits.clone(),
            native: h1::ConnLimits {
                header_read_timeout: limits.header_read_timeout,
                idle_timeout: limits.idle_timeout,
                send_timeout: limits.send_timeout,
                max_head: usize::try_from(limits.max_header_size).unwrap_or(usize::MAX),
                abort_on_close: limits.abort_on_client_close,
            },
            lasting: lasting.clone(),
        })
    }
}

/// What a listener's native connections share across rebuilds of
/// `Current`.
#[derive(Clone)]
struct Lasting {
    /// Idle waits and the drain; the drain begins when `stop` fires.
    idle: Arc<h1::Idle>,
    /// Where idle plain connections park; `None` if the epoll set could
    /// not be made.
    parker: Option<Arc<h1::Parker<ParkedConn>>>,
    /// The listener's name (its own routes), as a reload may change it.
    role: Arc<ArcSwap<ListenerRole>>,
    /// The listener's stop (for hyper's connection after a handoff).
    stop: CancellationToken,
}

/// How long a plain connection on the native engine waits for its next
/// request in a task of its own before it parks (`h1/park.rs`): long
/// enough that a busy connection never does, short enough that a client
/// holding connections open (browsers, pools) costs ~100 bytes each.
const PARK_AFTER: Duration = Duration::from_secs(1);

/// What a parked connection's task held, to start a new one when the
/// client sends again.
struct ParkedConn {
    peer: SocketAddr,
    shared: Arc<NativeShared>,
    slot: Slot,
    /// Requests served before it parked (for the debug events).
    served: u32,
}

impl h1::Parked for ParkedConn {
    fn closed(self, why: &'static str) {
        debug_events::closed(&self.peer, Engine::Native, self.served, || why);
    }
}

/// An HTTP/1.1 connection (plain, or TLS after its handshake) on the
/// native engine, and on hyper after a handoff. hyper's connection state (several KiB) is boxed, so the task
/// of a connection that never moves — and every idle one — does not carry
/// it. It is the task itself (no wrapping `async` block, whose captures
/// would be a second copy of these arguments), so it also holds the
/// connection's slot (`max_connections`) and its place in the
/// open-connections gauge.
async fn native_connection(
    mut stream: h1::ClientStream,
    peer: SocketAddr,
    shared: Arc<NativeShared>,
    slot: Slot,
    resumed: u32,
) {
    let end = h1::drive(
        &mut stream,
        &peer,
        &shared.proxy,
        (&shared.native, &shared.lasting.role),
        (&shared.lasting.idle, resumed),
    )
    .await;
    match end {
        h1::End::Handoff(read) => after_handoff(stream, read, peer, &shared).await,
        // TLS ends with the client told so (close_notify): a body that
        // ends with the connection is then known to be whole. Not after a
        // cut or a failed write (`End::Gone`).
        h1::End::Closed if matches!(stream, h1::ClientStream::Tls(_)) => {
            close_notify(stream, shared.native.send_timeout).await
        }
        h1::End::Park { served, left_ms } => {
            let due = crate::clock::coarse() + Duration::from_millis(left_ms.into());
            return park(stream, peer, shared, slot, (served, due));
        }
        h1::End::Closed | h1::End::Gone => {}
    }
    drop(slot);
}

/// Idle long enough: the task ends, the socket waits in the listener's
/// epoll set until the client sends again (`h1/park.rs`), or is closed if
/// it cannot (the drain began, the set refused it), as an idle connection
/// may be.
fn park(
    stream: h1::ClientStream,
    peer: SocketAddr,
    shared: Arc<NativeShared>,
    slot: Slot,
    (served, due): (u32, std::time::Instant),
) {
    let (h1::ClientStream::Plain(socket), Some(parker)) = (stream, shared.lasting.parker.clone())
    else {
        return;
    };
    let conn = ParkedConn {
        peer,
        shared,
        slot,
        served,
    };
    parker.park(socket, due, conn);
}

/// TLS's close: the close_notify alert, then the socket's end (boxed: the
/// plain connections' tasks never carry it). Everything before it was
/// flushed, so this is one small record: a client that reads nothing more
/// holds the connection at most a second (or `limits.send_timeout`).
fn close_notify(
    mut stream: h1::ClientStream,
    send_timeout: Duration,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    Box::pin(async move {
        use tokio::io::AsyncWriteExt;
        let within = send_timeout.min(Duration::from_secs(1));
        let _ = tokio::time::timeout(within, stream.shutdown()).await;
    })
}

/// hyper's connection over a socket the native engine handed off, as one
/// boxed future: its state is never part of the native task's.
fn after_handoff(
    stream: h1::ClientStream,
    read: Vec<u8>,
    peer: SocketAddr,
    shared: &NativeShared,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> {
    // The bytes already read count as the head's first: the header timer
    // runs on from now.
    let handler = Handler::new(
        shared.proxy.clone(),
        &shared.limits,
        stream.tcp(),
        (peer, stream.proto()),
        &shared.lasting.role.load().name,
    );
    let (builder, at) = (&shared.builder, (peer, shared.lasting.stop.clone()));
    match stream {
        h1::ClientStream::Plain(s) => hyper_boxed(
            builder,
            h1::Rewind::new(s, read),
            handler,
            Engine::HyperAfterHandoff,
            at,
        ),
        h1::ClientStream::Tls(tls) => {
            let io = h1::Rewind::new(tls.stream, read);
            hyper_boxed(builder, io, handler, Engine::TlsAfterHandoff, at)
        }
    }
}

/// hyper's connection over `io`, run to its end (as `run_hyper`), as one
/// boxed future.
fn hyper_boxed<I>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    handler: Handler,
    engine: Engine,
    (peer, stop): (SocketAddr, CancellationToken),
) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let watch = handler.watch.clone();
    let io = WatchedIo::new(io, watch.clone());
    Box::pin(run_hyper(
        connection(builder, io, handler),
        (peer, engine, watch),
        stop,
    ))
}

/// What a TLS connection is served with.
struct TlsConn {
    config: Arc<rustls::ServerConfig>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    /// `limits.header_read_timeout`, which bounds the handshake too.
    timeout: Duration,
    /// The native engine's settings, with `proxy.engine: native`.
    native: Option<Arc<NativeShared>>,
}

/// A TLS connection: the handshake, then HTTP/2 on hyper when ALPN chose
/// `h2`, else HTTP/1.1 on the native engine (as a plain connection, hyper
/// after a hand-off) or, with `proxy.engine: hyper`, on hyper. `slot` is
/// the connection's place under `max_connections` and in the
/// open-connections gauge, held until it ends.
async fn tls_connection(
    stream: tokio::net::TcpStream,
    tls: TlsConn,
    handler: Handler,
    stop: CancellationToken,
    slot: Slot,
) {
    let peer = handler.peer;
    let TlsConn {
        config,
        builder,
        timeout,
        native,
    } = tls;
    // The first request's head is due `header_read_timeout` from now, the
    // handshake included (hyper's path: `ConnWatch`, started at accept).
    let first_head_due = crate::clock::coarse() + timeout;
    let handshake = TlsAcceptor::from(config).accept(stream);
    let stream = match tokio::time::timeout(timeout, handshake).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            return;
        }
        Err(_) => {
            tracing::debug!(%peer, header_read_timeout = ?timeout, "TLS handshake not finished in time (limits.header_read_timeout); closing");
            return;
        }
    };
    // The connection's engine is known now: its accepted event (after the
    // handshake, over TLS) says it. Each engine's future is boxed, so the
    // task is as large as the largest of them only while that one runs.
    let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
    match native {
        Some(shared) if !h2 => {
            debug_events::accepted(&peer, &handler.listener, Engine::NativeTls);
            drop(handler);
            let stream = h1::ClientStream::Tls(Box::new(h1::TlsClient {
                stream,
                first_head_due,
            }));
            Box::pin(native_connection(stream, peer, shared, slot, 0)).await;
        }
        _ if h2 => {
            debug_events::accepted(&peer, &handler.listener, Engine::Tls);
            Box::pin(serve_h2(stream, handler, &builder, timeout, stop)).await;
            drop(slot);
        }
        _ => {
            debug_events::accepted(&peer, &handler.listener, Engine::Tls);
            hyper_boxed(&builder, stream, handler, Engine::Tls, (peer, stop)).await;
            drop(slot);
        }
    }
}

/// Begins the engine's drain when dropped: at the end of `serve`, or if its
/// future is dropped or panics before it gets there.
struct DrainOnDrop(Arc<h1::Idle>, Option<Arc<h1::Parker<ParkedConn>>>);

impl DrainOnDrop {
    /// Idle waits end, parked connections close, and none parks after.
    fn begin(&self) {
        self.0.begin_drain();
        // Parked connections hold their settings, which hold the parker:
        // closing them ends that cycle too.
        if let Some(parker) = &self.1 {
            parker.begin_drain();
        }
    }
}

impl Drop for DrainOnDrop {
    fn drop(&mut self) {
        self.begin();
    }
}

pub async fn serve(listener: TcpListener, front: Frontend, stop: CancellationToken) {
    let Frontend {
        proxy,
        tls,
        grace,
        limits: limits_now,
        role,
        https_port,
    } = front;
    // Idle plain connections park after PARK_AFTER (without an epoll set,
    // they wait in their tasks as before).
    let parker = match h1::Parker::new() {
        Ok(p) => Some(Arc::new(p)),
        Err(e) => {
            tracing::warn!(error = %e, "no epoll set for idle connections; each keeps its task");
            None
        }
    };
    let idle = Arc::new(match parker {
        Some(_) => h1::Idle::parking_after(PARK_AFTER),
        None => h1::Idle::default(),
    });
    let lasting = Lasting {
        idle: idle.clone(),
        parker: parker.clone(),
        role: role.clone(),
        stop: stop.clone(),
    };
    let mut current = Current::new(limits_now(), &proxy, &lasting);
    // The engine's idle deadlines, swept every tick until `serve` ends;
    // then (or if this future is dropped) the drain ends every idle wait
    // and closes every parked connection, so none outlives its sweeper.
    let _sweeper = {
        let idle = idle.clone();
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move { idle.sweeper().await }))
    };
    let drain_at_end = DrainOnDrop(idle.clone(), parker.clone());
    let tasks = TaskTracker::new();
    // Parked connections get a task again when their client sends.
    let _unparker = parker.clone().map(|parker| {
        let (idle, tasks) = (idle.clone(), tasks.clone());
        tokio_util::task::AbortOnDropHandle::new(tokio::spawn(async move {
            let resume = |socket, conn: ParkedConn| {
                tasks.spawn(native_connection(
                    h1::ClientStream::Plain(socket),
                    conn.peer,
                    conn.shared,
                    conn.slot,
                    conn.served,
                ));
            };
            parker.run(|| idle.tick(), resume).await
        }))
    });
    loop {
        // `limits.max_connections`: without a permit, no accept;
        // connections wait in the kernel's listen backlog.
        let permit = match &current.slots {
            None => None,
            Some(s) => tokio::select! {
                biased;
                _ = stop.cancelled() => break,
                p = s.clone().acquire_owned() => p.ok(),
            },
        };
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(listener = %role.load().name, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        current.refresh(limits_now(), &proxy, &lasting);
        let _ = stream.set_nodelay(true);
        // Counts as open (in /metrics) until the connection's task ends.
        let slot = (permit, crate::metrics::counters::connection_opened());
        let accepted = Accepted { stream, peer, slot };
        let role = role.load();
        let front = Front {
            tasks: &tasks,
            current: &current,
            proxy: &proxy,
            tls: &tls,
            https_port: &https_port,
            stop: &stop,
        };
        if role.proxy_protocol == ProxyProtocol::Off {
            spawn_connection(front, &role, accepted);
        } else {
            spawn_after_proxy_header(front, &role, accepted);
        }
    }
    drop(listener);
    drain_at_end.begin();
    drain(tasks, grace()).await;
}

/// A connection's place under `max_connections` and in the
/// open-connections gauge, held until its task ends.
type Slot = (
    Option<OwnedSemaphorePermit>,
    crate::metrics::counters::ConnectionGuard,
);

struct Accepted {
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    slot: Slot,
}

/// What new connections are served with; rebuilt when `limits` change (a
/// reload applies to the connections accepted after it).
#[derive(Clone)]
struct Current {
    limits: LimitsConfig,
    builder: Arc<auto::Builder<TokioExecutor>>,
    native: Arc<NativeShared>,
    slots: Option<Arc<Semaphore>>,
}

impl Current {
    fn new(limits: LimitsConfig, proxy: &Arc<Proxy>, lasting: &Lasting) -> Current {
        let builder = Arc::new(builder_for(&limits));
        Current {
            native: NativeShared::new(proxy, &builder, &limits, lasting),
            slots: limits
                .max_connections
                .map(|n| Arc::new(Semaphore::new(n as usize))),
            builder,
            limits,
        }
    }

    fn refresh(&mut self, now: LimitsConfig, proxy: &Arc<Proxy>, lasting: &Lasting) {
        if now == self.limits {
            return;
        }
        let keep_slots = now.max_connections == self.limits.max_connections;
        let slots = self.slots.take();
        *self = Current::new(now, proxy, lasting);
        if keep_slots {
            self.slots = slots;
        }
    }
}

/// What the accept loop hands each connection.
#[derive(Clone, Copy)]
struct Front<'a> {
    tasks: &'a TaskTracker,
    current: &'a Current,
    proxy: &'a Arc<Proxy>,
    tls: &'a Arc<Terminator>,
    https_port: &'a HttpsPort,
    stop: &'a CancellationToken,
}

/// On a `proxy_protocol` listener: refuse a peer outside
/// `trusted_proxies` at once; else a task reads the PROXY header (bounded
/// by `limits.header_read_timeout`), and the connection then goes on as
/// any other, with the client's address from the header as its peer.
fn spawn_after_proxy_header(front: Front<'_>, role: &ListenerRole, accepted: Accepted) {
    use super::proxy_protocol::{read_header, refused, Refused};
    let peer = accepted.peer;
    if !front.proxy.routing().trusted.contains(peer.ip()) {
        refused(&role.name, peer, Refused::Untrusted);
        return;
    }
    let version = role.proxy_protocol;
    let name = role.name.clone();
    let redirect_https = role.redirect_https;
    let timeout = front.current.limits.header_read_timeout;
    let (tasks, current, proxy, tls, https_port, stop) = (
        front.tasks.clone(),
        front.current.clone(),
        front.proxy.clone(),
        front.tls.clone(),
        front.https_port.clone(),
        front.stop.clone(),
    );
    front.tasks.spawn(async move {
        let mut accepted = accepted;
        let header = tokio::select! {
            h = read_header(&mut accepted.stream, version, timeout) => h,
            _ = stop.cancelled() => return,
        };
        match header {
            Ok(Some(client)) => accepted.peer = client,
            Ok(None) => {}
            Err(why) => {
                refused(&name, peer, why);
                return;
            }
        }
        let front = Front {
            tasks: &tasks,
            current: &current,
            proxy: &proxy,
            tls: &tls,
            https_port: &https_port,
            stop: &stop,
        };
        let role = ListenerRole {
            name,
            proxy_protocol: version,
            redirect_https,
        };
        spawn_connection(front, &role, accepted);
    });
}

/// The connection's task: the native engine or hyper, after a TLS
/// handshake on a TLS listener (HTTP/2 by ALPN: hyper); on
/// a `redirect_https` listener, hyper answering every request with a
/// redirect.
fn spawn_connection(front: Front<'_>, role: &ListenerRole, accepted: Accepted) {
    let Front {
        tasks,
        current,
        proxy,
        tls,
        https_port,
        stop,
    } = front;
    let Accepted { stream, peer, slot } = accepted;
    let (permit, open) = slot;
    if role.redirect_https {
        // Plain HTTP only (validation refuses `tls` with it). Neither
        // engine runs: both answer alike because neither answers.
        let mut handler = Handler::new(
            proxy.clone(),
            &current.limits,
            &stream,
            (peer, "http"),
            &role.name,
        );
        handler.redirect = Some(https_port.clone());
        debug_events::accepted(&peer, &role.name, Engine::Redirect);
        let io = WatchedIo::new(stream, handler.watch.clone());
        let watch = handler.watch.clone();
        let conn = connection(&current.builder, io, handler);
        let stop = stop.clone();
        tasks.spawn(async move {
            run_hyper(conn, (peer, Engine::Redirect, watch), stop).await;
            drop((permit, open));
        });
        return;
    }
    match tls.server_config() {
        None if proxy.routing().engine == shoal_config::Engine::Native => {
            debug_events::accepted(&peer, &role.name, Engine::Native);
            tasks.spawn(native_connection(
                h1::ClientStream::Plain(stream),
                peer,
                current.native.clone(),
                (permit, open),
                0,
            ));
        }
        None => {
            let handler = Handler::new(
                proxy.clone(),
                &current.limits,
                &stream,
                (peer, "http"),
                &role.name,
            );
            debug_events::accepted(&peer, &role.name, Engine::Hyper);
            let io = WatchedIo::new(stream, handler.watch.clone());
            let watch = handler.watch.clone();
            let conn = connection(&current.builder, io, handler);
            let stop = stop.clone();
            tasks.spawn(async move {
                run_hyper(conn, (peer, Engine::Hyper, watch), stop).await;
                drop((permit, open));
            });
        }
        Some(config) => {
            // The handshake runs in the connection's task, never in the
            // accept loop, so a slow client cannot hold up accepting. The
            // header-read timer starts now (at the task's start for the
            // native engine): it bounds the handshake too (as nginx's
            // client_header_timeout did).
            let handler = Handler::new(
                proxy.clone(),
                &current.limits,
                &stream,
                (peer, "https"),
                &role.name,
            );
            let native = proxy.routing().engine == shoal_config::Engine::Native;
            let tls = TlsConn {
                config,
                builder: current.builder.clone(),
                timeout: current.limits.header_read_timeout,
                native: native.then(|| current.native.clone()),
            };
            tasks.spawn(tls_connection(
                stream,
                tls,
                handler,
                stop.clone(),
                (permit, open),
            ));
        }
    }
}

/// Wait for the connections still open, up to the grace period.
async fn drain(tasks: TaskTracker, grace: Duration) {
    tasks.close();
    let open = tasks.len();
    if open > 0 {
        tracing::info!(connections = open, grace = ?grace, "waiting for in-flight requests");
    }
    if tokio::time::timeout(grace, tasks.wait()).await.is_err() {
        tracing::warn!(grace = ?grace, "grace period over; closing remaining connections");
    }
}

#[cfg(test)]
mod future_sizes {
    use std::net::SocketAddr;

    /// Every byte of a connection task's future is held by every open
    /// connection, idle or not (10,000 idle connections: scenario 4 of
    /// docs/BENCHMARKS.md). The native engine's task stays small: the
    /// exchange and hyper's connection are boxed, an idle wait's deadline
    /// and drain wake-up live outside it (`h1/idle.rs`). (Release builds:
    /// drive 264 bytes, the task's future 488; tokio rounds a task to
    /// 128-byte lines, so 640 bytes in all.)
    #[tokio::test]
    async fn a_native_connection_task_stays_small() {
        let table = std::sync::Arc::new(crate::balance::EndpointTable::new());
        let proxy = std::sync::Arc::new(super::Proxy::new(crate::proxy::Routing::single(
            table,
            &Default::default(),
        )));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let stream = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let limits = shoal_config::LimitsConfig::default();
        let builder = std::sync::Arc::new(super::builder_for(&limits));
        let idle = std::sync::Arc::new(super::h1::Idle::default());
        let role = std::sync::Arc::new(arc_swap::ArcSwap::from_pointee(super::ListenerRole {
            name: "test".into(),
            proxy_protocol: Default::default(),
            redirect_https: false,
        }));
        let lasting = super::Lasting {
            idle: idle.clone(),
            parker: None,
            role: role.clone(),
            stop: tokio_util::sync::CancellationToken::new(),
        };
        let shared = super::NativeShared::new(&proxy, &builder, &limits, &lasting);
        let drive_size = {
            let s2 = tokio::net::TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let peer: SocketAddr = ([127, 0, 0, 1], 1).into();
            let mut s2 = super::h1::ClientStream::Plain(s2);
            let f = super::h1::drive(&mut s2, &peer, &proxy, (&shared.native, &role), (&idle, 0));
            std::mem::size_of_val(&f)
        };
        println!("drive: {drive_size} bytes");
        assert!(
            drive_size <= 288,
            "h1::drive's future is {drive_size} bytes"
        );
        let task = super::native_connection(
            super::h1::ClientStream::Plain(stream),
            ([127, 0, 0, 1], 1).into(),
            shared,
            (None, crate::metrics::counters::connection_opened()),
            0,
        );
        let size = std::mem::size_of_val(&task);
        println!("native connection task: {size} bytes");
        assert!(size <= 528, "the native connection task is {size} bytes");
    }
}
