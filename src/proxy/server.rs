//! The public listener: accepts connections and serves HTTP/1.1 (and h2c with
//! prior knowledge) on each, until told to stop; then it stops accepting and
//! lets in-flight requests finish within the grace period.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::forward::Proxy;

/// How long the drain may take, read when it begins (a config reload may
/// have changed it since the listener started).
pub type Grace = Arc<dyn Fn() -> Duration + Send + Sync>;

pub async fn serve(
    listener: TcpListener,
    proxy: Arc<Proxy>,
    stop: CancellationToken,
    grace: Grace,
) {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();

    loop {
        let (stream, peer) = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let proxy = proxy.clone();
        let service = service_fn(move |req| {
            let proxy = proxy.clone();
            async move { Ok::<_, Infallible>(proxy.handle(req, peer).await) }
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(%peer, error = %e, "client connection ended with an error");
            }
        });
    }
    drop(listener);
    let grace = grace();
    let open = graceful.count();
    if open > 0 {
        tracing::info!(connections = open, grace = ?grace, "waiting for in-flight requests");
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?grace, "grace period over; closing remaining connections");
    }
}
