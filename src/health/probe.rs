//! One health probe: a TCP connect, or an HTTP request for the configured
//! path on a fresh connection (so a check also proves the backend still
//! accepts), passing on `expect_status` and, if set, `expect_body`.
//!
//! The request speaks the backend's protocol: HTTP/1.1, or for an h2 backend
//! (`protocol: h2`) HTTP/2 with prior knowledge, since an h2-only server
//! (a gRPC server) does not answer HTTP/1.1. A gRPC server's own health
//! service needs a gRPC request; point `health.path` at a plain HTTP route,
//! or leave it out for a TCP check.
//!
//! A TLS backend (`https://`, `app.tls`) is probed over TLS with the same
//! settings as requests: a check passes only if the handshake does (a TCP
//! check is a TLS handshake then, as HAProxy's `check-ssl`), and the
//! HTTP check speaks what the backend chose by ALPN.

use std::fmt;

use bytes::Bytes;
use http::{header, Method, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use shoal_config::{HealthConfig, UpstreamProtocol};
use tokio::net::TcpStream;
use tokio_util::either::Either;

use crate::balance::Endpoint;

#[derive(Debug)]
pub enum ProbeError {
    Timeout,
    Connect(std::io::Error),
    /// The TLS handshake failed (`TLS: certificate expired`).
    Tls(std::io::Error),
    Http(hyper::Error),
    Status(u16),
    /// The body did not contain `expect_body` (within the first 64 KiB).
    Body,
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Timeout => write!(f, "timed out"),
            ProbeError::Connect(e) => write!(f, "connect: {e}"),
            ProbeError::Tls(e) if e.to_string().starts_with("TLS: ") => write!(f, "{e}"),
            ProbeError::Tls(e) => write!(f, "TLS handshake: {e}"),
            ProbeError::Http(e) => write!(f, "http: {e}"),
            ProbeError::Status(s) => write!(f, "status {s}"),
            ProbeError::Body => write!(f, "expected text not in the body"),
        }
    }
}

/// How much of a check's body is searched for `expect_body` (HAProxy's
/// `tune.chksize` is 16 KiB): a check is not a download.
const MAX_CHECK_BODY: usize = 64 * 1024;

pub async fn probe(endpoint: &Endpoint, config: &HealthConfig) -> Result<(), ProbeError> {
    match tokio::time::timeout(config.timeout, probe_inner(endpoint, config)).await {
        Ok(r) => r,
        Err(_) => Err(ProbeError::Timeout),
    }
}

async fn probe_inner(endpoint: &Endpoint, config: &HealthConfig) -> Result<(), ProbeError> {
    let stream = TcpStream::connect(endpoint.addr)
        .await
        .map_err(ProbeError::Connect)?;
    let (stream, protocol, scheme) = match endpoint.pool.tls() {
        None => (Either::Left(stream), endpoint.pool.protocol(), "http"),
        Some(tls) => {
            let c = tls.connect(stream, false).await.map_err(ProbeError::Tls)?;
            (Either::Right(c.stream), c.protocol, "https")
        }
    };
    let Some(path) = &config.path else {
        return Ok(());
    };
    let io = TokioIo::new(stream);
    let method = Method::from_bytes(config.method.as_bytes()).unwrap_or(Method::GET);
    let check = Request::builder()
        .method(method)
        .header(header::USER_AGENT, "shoal-health-check");
    let check = match protocol {
        UpstreamProtocol::Http1 => check
            .uri(path.as_str())
            .header(header::HOST, endpoint.authority.as_str())
            .header(header::CONNECTION, "close"),
        // `:scheme` and `:authority` come from the URI.
        UpstreamProtocol::H2 => check.uri(format!("{scheme}://{}{path}", endpoint.authority)),
    };
    let req = check
        .body(Empty::<Bytes>::new())
        .map_err(|_| ProbeError::Status(0))?;
    let (resp, conn) = match protocol {
        UpstreamProtocol::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(ProbeError::Http)?;
            // Driven by its own task before the request is sent.
            let conn = tokio::spawn(conn);
            (sender.send_request(req).await, conn)
        }
        UpstreamProtocol::H2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(ProbeError::Http)?;
            // Driven by its own task before the request is sent.
            let conn = tokio::spawn(conn);
            (sender.send_request(req).await, conn)
        }
    };
    let resp = match resp {
        Ok(r) => r,
        Err(e) => {
            conn.abort();
            return Err(ProbeError::Http(e));
        }
    };
    let status = resp.status().as_u16();
    // Read the body so the exchange completes cleanly (and to look for
    // `expect_body`); the timeout around the whole probe bounds a backend
    // that streams forever, and only the first 64 KiB are kept.
    let mut body = resp.into_body();
    let mut seen = Vec::new();
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Some(data) = frame.data_ref() {
            let room = MAX_CHECK_BODY.saturating_sub(seen.len());
            seen.extend_from_slice(&data[..data.len().min(room)]);
            if room == 0 && config.expect_body.is_none() {
                break;
            }
        }
    }
    conn.abort();
    if !config.expect_status.contains(status) {
        return Err(ProbeError::Status(status));
    }
    match &config.expect_body {
        Some(text) if !contains(&seen, text.as_bytes()) => Err(ProbeError::Body),
        _ => Ok(()),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}
