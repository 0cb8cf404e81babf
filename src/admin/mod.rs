//! The admin listener: liveness, readiness, status and control. It is a
//! separate listener (127.0.0.1:9090 by default) so it never hides the app's
//! own paths and is not exposed where the public listener is.

pub mod auth;
mod backends;
mod cache;
mod control;
mod events;
mod logs;
mod rate_limits;
pub(crate) mod reply;
mod routes;
pub mod status;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::app::State;

/// A client that has not finished its TLS handshake by then is let go.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accept until `stop_accepting`; connections already open live until they
/// end or `shutdown` (a moved admin listener keeps serving the request that
/// moved it). With `admin.tls` every connection is HTTPS (the certificates
/// as the config in use says when it was accepted); a plain-HTTP client's
/// handshake fails and its connection is closed.
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
) {
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, peer) = tokio::select! {
            _ = stop_accepting.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let tls = state.admin_tls.server_config();
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(routes::route(&state, req).await) }
        });
        let shutdown = shutdown.clone();
        let builder = builder.clone();
        tokio::spawn(async move {
            let conn = match tls {
                None => builder
                    .serve_connection(TokioIo::new(stream), service)
                    .into_owned()
                    .boxed(),
                Some(config) => {
                    let handshake = TlsAcceptor::from(config).accept(stream);
                    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "admin TLS handshake failed");
                            return;
                        }
                        Err(_) => {
                            tracing::debug!(%peer, "admin TLS handshake not finished in 10s; closing");
                            return;
                        }
                    };
                    builder
                        .serve_connection(TokioIo::new(stream), service)
                        .into_owned()
                        .boxed()
                }
            };
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
