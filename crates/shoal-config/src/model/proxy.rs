//! `proxy:` (the upstream side of the data plane) and `limits:` (what a
//! client may send).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Upstream side of the data plane.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProxyConfig {
    /// Time allowed to open a TCP connection to a backend.
    #[serde(with = "crate::units::duration")]
    pub connect_timeout: Duration,
    /// How many other backends a request that could not be delivered is tried on.
    pub retries: u32,
    /// Request bodies up to this size (by their declared length) are read in
    /// full before they are sent, so that the request can be sent again if
    /// a backend did not process it. 0: always streamed.
    #[serde(with = "crate::units::size")]
    pub replay_body_size: u64,
    /// Idle keep-alive connections kept per backend.
    pub max_idle_per_backend: usize,
    /// An idle pooled connection older than this is closed.
    #[serde(with = "crate::units::duration")]
    pub idle_timeout: Duration,
    /// From sending a request to receiving the response headers (→ 504).
    #[serde(with = "crate::units::duration")]
    pub response_header_timeout: Duration,
    /// Longest wait between two reads of a response body from a backend; the
    /// response is cut when it passes (nginx's `proxy_read_timeout`).
    #[serde(with = "crate::units::duration")]
    pub read_timeout: Duration,
    /// Longest wait between two writes of a request (its body) to a backend
    /// that does not read it; the attempt fails as a timeout (nginx's
    /// `proxy_send_timeout`).
    #[serde(with = "crate::units::duration")]
    pub send_timeout: Duration,
    /// Passive health, as nginx's `max_fails`: this many failed requests
    /// within `fail_timeout` take a backend out of rotation for
    /// `fail_timeout`. 0 turns passive health off.
    pub max_fails: u32,
    #[serde(with = "crate::units::duration")]
    pub fail_timeout: Duration,
    /// Outlier ejection: each ejection in a row lasts `fail_timeout` longer
    /// than the one before, up to this (Envoy's `max_ejection_time`).
    #[serde(with = "crate::units::duration")]
    pub max_ejection_time: Duration,
    /// A backend entering rotation (new, back from down or ejected) gets a
    /// share of traffic that ramps from 10% to full over this time
    /// (nginx's and HAProxy's `slow_start`); `0s` turns it off.
    #[serde(with = "crate::units::duration")]
    pub slow_start: Duration,
    /// Response statuses that count as failures too (connect errors, resets
    /// and timeouts always do).
    pub fail_statuses: Vec<u16>,
    /// Retry budget: retries may add at most this percentage of the requests
    /// seen in the last `retry_budget_window` ...
    pub retry_budget_percent: u32,
    #[serde(with = "crate::units::duration")]
    pub retry_budget_window: Duration,
    /// ... plus this many retries per window, so quiet services can retry.
    pub retry_budget_min: u32,
    /// An upgraded connection (WebSocket) with no traffic either way for this
    /// long is closed (HAProxy's `timeout tunnel`).
    #[serde(with = "crate::units::duration")]
    pub tunnel_idle_timeout: Duration,
    /// What serves plain-HTTP client connections: shoal's own HTTP/1.1
    /// path for bodyless requests, handing anything else to hyper
    /// (`native`), or hyper for everything (`hyper`).
    pub engine: Engine,
    /// W3C Trace Context (`traceparent`): passed on and logged (`pass`),
    /// also started when a request has none (`start`), or left alone (`off`).
    pub trace_context: TraceContext,
}

/// `proxy.trace_context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TraceContext {
    /// Headers pass as any other; the access log has no trace id.
    Off,
    /// A valid `traceparent` passes; its trace id is in the access log.
    #[default]
    Pass,
    /// As `pass`, and a request without a valid one gets a new trace.
    Start,
}

/// `proxy.engine`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Engine {
    #[default]
    Native,
    Hyper,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            retries: 2,
            replay_body_size: 64 << 10,
            max_idle_per_backend: 64,
            idle_timeout: Duration::from_secs(60),
            response_header_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(300),
            slow_start: Duration::ZERO,
            fail_statuses: Vec::new(),
            retry_budget_percent: 20,
            retry_budget_window: Duration::from_secs(10),
            retry_budget_min: 10,
            tunnel_idle_timeout: Duration::from_secs(3600),
            engine: Engine::Native,
            trace_context: TraceContext::Pass,
        }
    }
}

/// What a client of the public listener may send, and for how long a
/// connection may sit idle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Largest request body; `None` means unlimited. Over it: 413.
    #[serde(with = "crate::units::size_opt")]
    pub max_body_size: Option<u64>,
    /// Largest request head (request line and headers). Over it: 431.
    #[serde(with = "crate::units::size")]
    pub max_header_size: u64,
    /// From the first byte of a request to the end of its headers (and from
    /// accepting a connection to its first byte); past it: 408 and close.
    #[serde(with = "crate::units::duration")]
    pub header_read_timeout: Duration,
    /// Longest wait between two reads of a request body from the client
    /// while shoal wants more of it; past it: 408 (if no response started)
    /// and close (nginx's `client_body_timeout`).
    #[serde(with = "crate::units::duration")]
    pub body_read_timeout: Duration,
    /// Longest wait between two writes to a client that does not read its
    /// response; past it the connection is closed (nginx's `send_timeout`).
    #[serde(with = "crate::units::duration")]
    pub send_timeout: Duration,
    /// A keep-alive client connection with no request for this long is closed.
    #[serde(with = "crate::units::duration")]
    pub idle_timeout: Duration,
    /// Client connections open at once; `None` means unlimited. When full,
    /// new connections wait in the listen backlog until one closes.
    pub max_connections: Option<u32>,
    /// A client that ends its sending side (FIN) after a complete request,
    /// while waiting for the answer: `false` (default) answers it, as
    /// HAProxy does; `true` abandons the request, as nginx does without
    /// `proxy_ignore_client_abort` (HAProxy's `option abortonclose`). A
    /// reset always abandons it.
    pub abort_on_client_close: bool,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_body_size: None,
            max_header_size: 64 << 10,
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(75),
            max_connections: None,
            abort_on_client_close: false,
        }
    }
}
