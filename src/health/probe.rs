//! One health probe: a TCP connect, or an HTTP GET of the configured path on a
//! fresh connection (so a check also proves the backend still accepts).
//!
//! The GET speaks the backend's protocol: HTTP/1.1, or for an h2 backend
//! (`protocol: h2`) HTTP/2 with prior knowledge, since an h2-only server
//! (a gRPC server) does not answer HTTP/1.1. A gRPC server's own health
//! service needs a gRPC request; point `health.path` at a plain HTTP route,
//! or leave it out for a TCP check.

use std::fmt;

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use shoal_config::{HealthConfig, UpstreamProtocol};
use tokio::net::TcpStream;

use crate::balance::Endpoint;

#[derive(Debug)]
pub enum ProbeError {
    Timeout,
    Connect(std::io::Error),
    Http(hyper::Error),
    Status(u16),
}

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProbeError::Timeout => write!(f, "timed out"),
            ProbeError::Connect(e) => write!(f, "connect: {e}"),
            ProbeError::Http(e) => write!(f, "http: {e}"),
            ProbeError::Status(s) => write!(f, "status {s}"),
        }
    }
}

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
    let Some(path) = &config.path else {
        return Ok(());
    };
    let io = TokioIo::new(stream);
    let (resp, conn) = match endpoint.pool.protocol() {
        UpstreamProtocol::Http1 => {
            let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(ProbeError::Http)?;
            let conn = tokio::spawn(conn);
            let req = Request::get(path.as_str())
                .header(header::HOST, endpoint.authority.as_str())
                .header(header::USER_AGENT, "shoal-health-check")
                .header(header::CONNECTION, "close")
                .body(Empty::<Bytes>::new())
                .map_err(|_| ProbeError::Status(0))?;
            (sender.send_request(req).await, conn)
        }
        UpstreamProtocol::H2 => {
            let (mut sender, conn) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                    .await
                    .map_err(ProbeError::Http)?;
            let conn = tokio::spawn(conn);
            // `:scheme` and `:authority` come from the URI.
            let req = Request::get(format!("http://{}{path}", endpoint.authority))
                .header(header::USER_AGENT, "shoal-health-check")
                .body(Empty::<Bytes>::new())
                .map_err(|_| ProbeError::Status(0))?;
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
    let status = resp.status();
    // Drain the body so the exchange completes cleanly; the timeout around
    // the whole probe bounds a backend that streams forever.
    let _ = resp.into_body().collect().await;
    conn.abort();
    // As HAProxy's httpchk: 2xx and 3xx mean healthy.
    if status.is_success() || status.is_redirection() {
        Ok(())
    } else {
        Err(ProbeError::Status(status.as_u16()))
    }
}
