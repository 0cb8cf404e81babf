//! Every way a proxied request can fail, classified once: its status, whether
//! another backend may be tried, and the answer the client gets.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ProxyBody;
use super::pool::ConnectError;
use super::request_id::X_REQUEST_ID;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("no healthy backend")]
    NoBackend,
    #[error("backend {backend}: {source}")]
    Connect {
        backend: String,
        source: ConnectError,
    },
    #[error("backend {backend}: {source}")]
    Upstream {
        backend: String,
        source: hyper::Error,
    },
    #[error(
        "backend {backend}: no response headers within {after:?} (proxy.response_header_timeout)"
    )]
    Timeout {
        backend: String,
        after: std::time::Duration,
    },
    /// Not an error for the client (the response is passed on); counts
    /// against the backend when its status is in `proxy.fail_statuses`.
    #[error("backend {backend}: answered {status}")]
    Status { backend: String, status: u16 },
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect {
                source: ConnectError::Timeout { .. },
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Status { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Short, stable words for logs and JSON bodies.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::NoBackend => "no_healthy_backend",
            ProxyError::Connect {
                source: ConnectError::Timeout { .. },
                ..
            } => "connect_timeout",
            ProxyError::Connect { .. } => "connect_failed",
            ProxyError::Upstream { .. } => "upstream_failed",
            ProxyError::Timeout { .. } => "upstream_timeout",
            ProxyError::Status { .. } => "upstream_status",
        }
    }

    /// The client-facing answer. The body carries the request id (as text,
    /// or JSON when the client's `Accept` asks for it) but not internal
    /// details such as backend addresses: those go to the log.
    pub fn to_response(&self, request_id: &HeaderValue, wants_json: bool) -> Response<ProxyBody> {
        let status = self.status();
        let id = request_id.to_str().unwrap_or("");
        let reason = status.canonical_reason().unwrap_or("Error");
        let (content_type, body) = if wants_json {
            let v = serde_json::json!({
                "status": status.as_u16(),
                "error": self.kind(),
                "message": reason,
                "request_id": id,
            });
            ("application/json", format!("{v}\n"))
        } else {
            (
                "text/plain; charset=utf-8",
                format!(
                    "{} {reason}: {} (request id {id})\n",
                    status.as_u16(),
                    self.kind()
                ),
            )
        };
        let mut resp = Response::new(ProxyBody::full(Bytes::from(body)));
        *resp.status_mut() = status;
        let h = resp.headers_mut();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        h.insert(X_REQUEST_ID.clone(), request_id.clone());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

pub fn wants_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/json"))
}
