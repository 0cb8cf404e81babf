//! The data plane's debug events, written once for both engines:
//! a connection accepted and closed, a hand-off from the native engine to
//! hyper, the pick of a backend, each failed attempt and what comes next.
//! `SHOAL_LOG=debug` shows them; so does `SHOAL_LOG=info,shoal::conn=debug`
//! (connections) or `info,shoal::request=debug` (picks and retries).
//!
//! At `info` (the default) each costs what a disabled `tracing::debug!`
//! costs: a comparison with tracing's global max level (one relaxed atomic
//! load). Every field is computed inside the macro, so nothing is
//! formatted, allocated or looked up unless the event is on. The functions
//! take only references and copies the caller already has.

use std::fmt::{Debug, Display};
use std::net::SocketAddr;

use shoal_config::Algorithm;

use super::attempt::{Next, Reach};
use super::error::ProxyError;

/// Connections: accepted, closed, handed to hyper.
pub const CONN: &str = "shoal::conn";
/// Requests: the pick, the retries.
pub const REQUEST: &str = "shoal::request";

/// Which engine serves a connection, as the events name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The native HTTP/1.1 engine (`proxy/h1`).
    Native,
    /// hyper, from the start (`proxy.engine: hyper`).
    Hyper,
    /// hyper, after the native engine handed the connection over.
    HyperAfterHandoff,
    /// hyper over TLS (HTTP/2, or `proxy.engine: hyper`).
    Tls,
    /// The native engine over TLS (HTTP/1.1).
    NativeTls,
    /// hyper over TLS, after the native engine handed the connection over.
    TlsAfterHandoff,
    /// hyper answering with `redirect_https`'s redirect.
    Redirect,
}

impl Engine {
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Native => "native",
            Engine::Hyper => "hyper",
            Engine::HyperAfterHandoff => "hyper (after hand-off)",
            Engine::Tls => "hyper (TLS)",
            Engine::NativeTls => "native (TLS)",
            Engine::TlsAfterHandoff => "hyper (TLS, after hand-off)",
            Engine::Redirect => "hyper (redirect_https)",
        }
    }
}

#[inline]
pub fn accepted(peer: &SocketAddr, listener: &str, engine: Engine) {
    tracing::debug!(
        target: CONN,
        %peer,
        listener,
        engine = engine.as_str(),
        "connection accepted"
    );
}

/// `why` is asked only when the event is on.
#[inline]
pub fn closed<W: Display>(
    peer: &SocketAddr,
    engine: Engine,
    requests: u32,
    why: impl FnOnce() -> W,
) {
    tracing::debug!(
        target: CONN,
        %peer,
        engine = engine.as_str(),
        requests,
        why = %why(),
        "connection closed"
    );
}

#[inline]
pub fn handed_off(peer: &SocketAddr, why: &'static str) {
    tracing::debug!(
        target: CONN,
        %peer,
        why,
        "connection handed from the native engine to hyper"
    );
}

/// The balancer (or a sticky cookie) chose `backend` for attempt
/// `attempt` (1 for the first).
#[inline]
pub fn picked(
    request_id: &dyn Debug,
    pool: &str,
    backend: &str,
    algorithm: Algorithm,
    attempt: u32,
    sticky: bool,
) {
    tracing::debug!(
        target: REQUEST,
        request_id = ?request_id,
        pool,
        backend,
        algorithm = if sticky { "sticky" } else { algorithm.as_str() },
        attempt,
        "picked backend"
    );
}

/// No backend for attempt `attempt`: `why` (none left in rotation and
/// untried, `proxy.retries` used up).
#[inline]
pub fn no_pick(request_id: &dyn Debug, pool: &str, attempt: u32, why: &'static str) {
    tracing::debug!(
        target: REQUEST,
        request_id = ?request_id,
        pool,
        attempt,
        why,
        "no backend to pick"
    );
}

/// Attempt `attempt` on `backend` failed with `reason`, having got as far
/// as `reach`; `next` says what comes of it.
#[inline]
pub fn failed(
    request_id: &dyn Debug,
    backend: &str,
    attempt: u32,
    reason: &ProxyError,
    reach: Reach,
    next: Next,
) {
    match next {
        Next::Answer => tracing::debug!(
            target: REQUEST,
            request_id = ?request_id,
            backend,
            attempt,
            reason = %reason,
            reach = ?reach,
            "attempt failed; no retry (the client gets the error)"
        ),
        Next::Reconnect | Next::Elsewhere => tracing::debug!(
            target: REQUEST,
            request_id = ?request_id,
            backend,
            attempt,
            reason = %reason,
            reach = ?reach,
            next = next.as_str(),
            "attempt failed; retrying"
        ),
    }
}
