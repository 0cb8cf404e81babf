//! Every way a proxied request can fail, classified once: its status, whether
//! another backend may be tried, and the answer the client gets.

use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::answer::Answer;
use super::body::ProxyBody;
use super::limits::BodyTooLarge;
use super::pool::ConnectError;
use super::stall::Stalled;

#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// The request's framing is ambiguous (a smuggling vector); never forwarded.
    #[error("rejected request: {0}")]
    BadFraming(&'static str),
    /// The request's method, target or `Host` breaks a rule of
    /// `proxy::request_rules` (CONNECT, `*` for other than OPTIONS, user
    /// info, no or two `Host`s); never forwarded.
    #[error("rejected request: {0}")]
    BadRequest(&'static str),
    /// The client's body was malformed or cut while it was being forwarded.
    #[error("the client's request body failed: {}", Causes(.0))]
    ClientBody(hyper::Error),
    /// The client's body failed while shoal read it in full to keep it for
    /// a retry (`proxy.replay_body_size`).
    #[error("the client's request body failed: {0}")]
    ClientBodyRead(super::body::BodyError),
    #[error("no healthy backend")]
    NoBackend,
    #[error("backend {backend}: {source}")]
    Connect {
        backend: String,
        source: ConnectError,
    },
    #[error("backend {backend}: {}", Causes(.source))]
    Upstream {
        backend: String,
        source: hyper::Error,
    },
    /// The native engine's socket to the backend failed (reset, closed
    /// before a whole response, a write that stalled).
    #[error("backend {backend}: {source}")]
    UpstreamIo {
        backend: String,
        source: std::io::Error,
    },
    /// The backend's response could not be read one way only (native
    /// engine; hyper's client reports these as `Upstream`).
    #[error("backend {backend}: invalid response: {why}")]
    BadResponse { backend: String, why: &'static str },
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
    /// The declared `Content-Length` is over `limits.max_body_size`. A
    /// streamed body that grows past it surfaces as `ClientBody` (or
    /// `Upstream`) with a [`BodyTooLarge`] cause, and is answered the same.
    #[error("request body larger than {limit} bytes (limits.max_body_size)")]
    PayloadTooLarge { limit: u64 },
    /// No complete request head within `limits.header_read_timeout`.
    #[error("no complete request head within {after:?} (limits.header_read_timeout)")]
    HeaderTimeout { after: std::time::Duration },
}

impl ProxyError {
    /// A connection to `backend` could not be made.
    pub fn connect(backend: &str, source: ConnectError) -> ProxyError {
        ProxyError::Connect {
            backend: backend.to_string(),
            source,
        }
    }

    /// The request body passed `limits.max_body_size` on its way upstream.
    fn body_too_large(&self) -> bool {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = match self {
            ProxyError::PayloadTooLarge { .. } => return true,
            ProxyError::ClientBody(source) | ProxyError::Upstream { source, .. } => {
                std::error::Error::source(source)
            }
            ProxyError::ClientBodyRead(e) => Some(e.as_ref()),
            _ => return false,
        };
        while let Some(c) = cause {
            if c.is::<BodyTooLarge>() {
                return true;
            }
            cause = c.source();
        }
        false
    }

    /// A peer stopped moving (`limits.body_read_timeout`,
    /// `proxy.send_timeout`): the cause is deep inside hyper's error.
    fn stalled(&self) -> Option<Stalled> {
        match self {
            ProxyError::ClientBody(source) | ProxyError::Upstream { source, .. } => {
                Stalled::find(source)
            }
            ProxyError::ClientBodyRead(e) => Stalled::find(e.as_ref()),
            ProxyError::UpstreamIo { source, .. } => Stalled::find(source),
            _ => None,
        }
    }

    pub fn status(&self) -> StatusCode {
        if self.body_too_large() {
            return StatusCode::PAYLOAD_TOO_LARGE;
        }
        match self.stalled() {
            Some(Stalled::ClientBody(_)) => return StatusCode::REQUEST_TIMEOUT,
            Some(Stalled::UpstreamSend(_)) => return StatusCode::GATEWAY_TIMEOUT,
            Some(Stalled::ClientSend(_)) | None => {}
        }
        match self {
            ProxyError::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::HeaderTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BadFraming(_)
            | ProxyError::BadRequest(_)
            | ProxyError::ClientBody(_)
            | ProxyError::ClientBodyRead(_) => StatusCode::BAD_REQUEST,
            ProxyError::NoBackend => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Connect {
                source: ConnectError::Timeout { .. },
                ..
            } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::Status { status, .. } => {
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY)
            }
            ProxyError::Connect { .. }
            | ProxyError::Upstream { .. }
            | ProxyError::UpstreamIo { .. }
            | ProxyError::BadResponse { .. } => StatusCode::BAD_GATEWAY,
        }
    }

    /// Short, stable words for logs and JSON bodies.
    pub fn kind(&self) -> &'static str {
        if self.body_too_large() {
            return "payload_too_large";
        }
        match self.stalled() {
            Some(Stalled::ClientBody(_)) => return "request_timeout",
            Some(Stalled::UpstreamSend(_)) => return "upstream_timeout",
            Some(Stalled::ClientSend(_)) | None => {}
        }
        match self {
            ProxyError::PayloadTooLarge { .. } => "payload_too_large",
            ProxyError::HeaderTimeout { .. } => "request_timeout",
            ProxyError::BadFraming(_) => "bad_framing",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::ClientBody(_) | ProxyError::ClientBodyRead(_) => "bad_request_body",
            ProxyError::NoBackend => "no_healthy_backend",
            ProxyError::Connect {
                source: ConnectError::Timeout { .. },
                ..
            } => "connect_timeout",
            ProxyError::Connect { .. } => "connect_failed",
            ProxyError::Upstream { .. } | ProxyError::UpstreamIo { .. } => "upstream_failed",
            ProxyError::BadResponse { .. } => "bad_upstream_response",
            ProxyError::Timeout { .. } => "upstream_timeout",
            ProxyError::Status { .. } => "upstream_status",
        }
    }

    /// The client-facing answer (`proxy::answer`): the status, the kind
    /// and the request id, as text or JSON; internal details such as
    /// backend addresses go to the log, not to the client.
    pub fn answer<'a>(&self, request_id: &'a [u8], json: bool) -> Answer<'a> {
        Answer {
            status: self.status(),
            kind: self.kind(),
            request_id,
            json,
            rate: None,
        }
    }

    /// [`answer`](ProxyError::answer) as hyper's path sends it.
    pub fn to_response(&self, request_id: &HeaderValue, wants_json: bool) -> Response<ProxyBody> {
        self.answer(request_id.as_bytes(), wants_json).to_response()
    }
}

/// An error with its causes, `: `-separated (hyper's own messages name only
/// the outermost one: "error writing a body to connection"). The message of
/// an `io::Error` already is that of the error it wraps.
struct Causes<'a>(&'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Causes<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

pub fn wants_json(headers: &http::HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .is_some_and(|a| accepts_json(a.as_bytes()))
}

/// Does this `Accept` value ask for JSON?
pub fn accepts_json(accept: &[u8]) -> bool {
    accept.windows(16).any(|w| w == b"application/json")
}
