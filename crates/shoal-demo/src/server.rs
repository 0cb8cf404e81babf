//! Accept loop and graceful shutdown.
//!
//! Connections speak HTTP/1.1 (keep-alive, upgrades) or HTTP/2, detected per
//! connection. On shutdown the listener is closed first, then every connection is asked
//! to finish: idle keep-alive connections close at once, in-flight requests complete,
//! and WebSocket sessions get a close frame.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;

use crate::options::DemoOptions;
use crate::routes::App;

/// A client gets this long to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Pause after a failed accept (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

pub(crate) async fn serve(
    listener: TcpListener,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    let port = listener.local_addr()?.port();
    let app = Arc::new(App::new(opts, port));

    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let builder = Arc::new(builder);

    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(_) => {
                    // Per-connection failures (reset before accept, fd exhaustion)
                    // must not stop the server; back off briefly instead of spinning.
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
        };
        // Small responses should leave at once rather than wait for Nagle.
        let _ = stream.set_nodelay(true);

        let app = Arc::clone(&app);
        let service = service_fn(move |req| {
            let app = Arc::clone(&app);
            async move { Ok::<_, std::convert::Infallible>(app.handle(req).await) }
        });
        let builder = Arc::clone(&builder);
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            // Errors here are the client's doing (reset, bad request, timeout): the
            // connection is over either way.
            let _ = watcher.watch(conn).await;
        });
    }

    drop(listener);
    // Sessions start closing while requests drain; one that upgrades during the drain
    // registers before its connection finishes, so the last wait sees it.
    app.sessions.begin_shutdown();
    graceful.shutdown().await;
    app.sessions.wait_closed().await;
    Ok(())
}
