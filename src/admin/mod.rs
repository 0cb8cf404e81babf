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

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::State;

/// Accept until `stop_accepting`; connections already open live until they
/// end or `shutdown` (a moved admin listener keeps serving the request that
/// moved it).
pub async fn serve(
    listener: TcpListener,
    state: Arc<State>,
    stop_accepting: CancellationToken,
    shutdown: CancellationToken,
) {
    let builder = auto::Builder::new(TokioExecutor::new());
    loop {
        let (stream, _) = tokio::select! {
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
        let state = state.clone();
        let service = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(routes::route(&state, req).await) }
        });
        let conn = builder
            .serve_connection(TokioIo::new(stream), service)
            .into_owned();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            tokio::select! {
                _ = conn => {}
                _ = shutdown.cancelled() => {}
            }
        });
    }
}
