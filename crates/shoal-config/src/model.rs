//! The configuration model: every key shoal understands, with its default.
//!
//! Loading (interpolation, YAML parsing, strict validation with key paths and
//! line numbers) lives in the sibling modules; this file is only the shape.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole `shoal.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the public (data plane) listener.
    #[serde(deserialize_with = "crate::fields::socket_addr")]
    pub listen: SocketAddr,
    /// Runtime worker threads; `None` means one per core.
    pub workers: Option<usize>,
    pub admin: AdminConfig,
    /// Local instances shoal starts and supervises.
    pub app: Option<AppConfig>,
    /// Static backends, as an alternative or in addition to `app`.
    pub upstreams: Vec<UpstreamConfig>,
    /// Health checks for the static `upstreams` (instances use `app.health`).
    pub health: HealthConfig,
    pub balance: BalanceConfig,
    pub proxy: ProxyConfig,
    /// Client-side limits of the public listener.
    pub limits: LimitsConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    /// Peers (CIDRs such as `10.0.0.0/8`, or single addresses) whose
    /// `X-Forwarded-For` is extended; from anyone else it is replaced, so the
    /// client address (ip_hash, logs, later rate limits) cannot be spoofed.
    pub trusted_proxies: Vec<String>,
    /// TLS termination on the public listener; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([0, 0, 0, 0], 8080)),
            workers: None,
            admin: AdminConfig::default(),
            app: None,
            upstreams: Vec::new(),
            health: HealthConfig::default(),
            balance: BalanceConfig::default(),
            proxy: ProxyConfig::default(),
            limits: LimitsConfig::default(),
            shutdown: ShutdownConfig::default(),
            log: LogConfig::default(),
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener (health, readiness, status API).
    #[serde(deserialize_with = "crate::fields::socket_addr")]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
        }
    }
}

/// How to start the user's service: an argv list (no shell) or one shell string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum CommandSpec {
    Argv(Vec<String>),
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AppConfig {
    /// Required. `{port}` in any argument is replaced by the instance's port.
    #[serde(deserialize_with = "crate::fields::command")]
    pub command: CommandSpec,
    /// Number of instances to run.
    pub instances: u32,
    /// Extra environment for every instance (on top of shoal's own environment).
    #[serde(deserialize_with = "crate::fields::env")]
    pub env: BTreeMap<String, String>,
    /// Working directory of the instances; default: shoal's own.
    pub cwd: Option<PathBuf>,
    /// Address the instances are expected to listen on.
    #[serde(deserialize_with = "crate::fields::ip_addr")]
    pub host: std::net::IpAddr,
    pub health: HealthConfig,
    /// Time between SIGTERM and SIGKILL when an instance is stopped.
    #[serde(with = "crate::units::duration")]
    pub stop_timeout: Duration,
    /// How long a retiring instance may take to finish its in-flight
    /// requests (out of rotation already) before it gets SIGTERM.
    #[serde(with = "crate::units::duration")]
    pub drain_timeout: Duration,
    /// A new instance (scale up, rolling reload, replacement) must pass its
    /// health check within this, or the operation that started it fails.
    #[serde(with = "crate::units::duration")]
    pub ready_timeout: Duration,
    /// Lower bound for `shoal scale` (and the autoscaler later).
    pub min: Option<u32>,
    /// Upper bound for `shoal scale`.
    pub max: Option<u32>,
    /// Rolling reload: how many replacements may run on top of `instances`.
    pub max_surge: u32,
    /// Rolling reload: how many instances may be out of service at once.
    pub max_unavailable: u32,
    /// When an instance that exited is started again.
    pub restart: RestartPolicy,
    /// This many restarts within `restart_window` mark the instance `failed`
    /// (a crash loop): it is no longer restarted until a reload or scale.
    pub max_restarts: u32,
    #[serde(with = "crate::units::duration")]
    pub restart_window: Duration,
    /// Delays between restarts.
    pub backoff: BackoffConfig,
    /// Passive health of the instances: this many failed requests in a row
    /// (no successful response between them), within `proxy.fail_timeout`,
    /// take an instance out of rotation; `0`: never. It replaces
    /// `proxy.max_fails` for them: shoal sees an instance's process, and one
    /// failed request (a pre-fork server's worker killed) says little.
    pub max_fails: u32,
    /// An instance whose RSS stays above this is replaced (new one first).
    #[serde(default, with = "crate::units::size_opt")]
    pub max_memory: Option<u64>,
    /// The protocol shoal speaks to the instances.
    pub protocol: UpstreamProtocol,
}

/// `app.protocol`, `upstreams[].protocol`: how shoal talks to a backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// HTTP/1.1 over a pool of keep-alive connections.
    #[default]
    Http1,
    /// Cleartext HTTP/2 with prior knowledge (h2c): one multiplexed
    /// connection per backend. For gRPC and other h2-only servers.
    H2,
}

impl UpstreamProtocol {
    /// The name as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            UpstreamProtocol::Http1 => "http1",
            UpstreamProtocol::H2 => "h2",
        }
    }
}

/// `app.restart`, as Docker's and PM2's restart policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicy {
    #[default]
    Always,
    /// Only after a non-zero exit code or a death by signal.
    OnFailure,
    Never,
}

impl Default for AppConfig {
    fn default() -> Self {
        AppConfig {
            command: CommandSpec::Argv(Vec::new()),
            instances: 3,
            env: BTreeMap::new(),
            cwd: None,
            host: std::net::IpAddr::from([127, 0, 0, 1]),
            health: HealthConfig::default(),
            stop_timeout: Duration::from_secs(30),
            drain_timeout: Duration::from_secs(30),
            ready_timeout: Duration::from_secs(60),
            min: None,
            max: None,
            max_surge: 1,
            max_unavailable: 0,
            restart: RestartPolicy::Always,
            max_restarts: 10,
            restart_window: Duration::from_secs(300),
            backoff: BackoffConfig::default(),
            max_fails: 3,
            max_memory: None,
            protocol: UpstreamProtocol::Http1,
        }
    }
}

/// Exponential backoff between restarts of a crashed instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BackoffConfig {
    /// First delay after a crash.
    #[serde(with = "crate::units::duration")]
    pub initial: Duration,
    /// The delay doubles after each crash up to this cap.
    #[serde(with = "crate::units::duration")]
    pub max: Duration,
    /// An instance up this long has its delay reset to `initial`.
    #[serde(with = "crate::units::duration")]
    pub reset_after: Duration,
}

impl Default for BackoffConfig {
    fn default() -> Self {
        BackoffConfig {
            initial: Duration::from_millis(500),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// Active health checks: an HTTP request for `path` when set, TCP connect otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub path: Option<String>,
    /// The HTTP method of a check (`GET`, `HEAD`, …).
    pub method: String,
    /// The statuses that pass (HAProxy's `http-check expect status`).
    #[serde(deserialize_with = "crate::fields::status_range")]
    pub expect_status: StatusRange,
    /// When set, the response body must contain this text to pass
    /// (HAProxy's `http-check expect string`).
    pub expect_body: Option<String>,
    #[serde(with = "crate::units::duration")]
    pub interval: Duration,
    #[serde(with = "crate::units::duration")]
    pub timeout: Duration,
    /// Consecutive failures that take a backend out of rotation.
    pub fall: u32,
    /// Consecutive passes that bring it back.
    pub rise: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: None,
            method: "GET".into(),
            expect_status: StatusRange::DEFAULT,
            expect_body: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fall: 3,
            rise: 2,
        }
    }
}

/// `health.expect_status`: an inclusive range of statuses, written `200`,
/// `200-299` or `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub min: u16,
    pub max: u16,
}

impl StatusRange {
    /// 2xx and 3xx, as HAProxy's `httpchk`.
    pub const DEFAULT: StatusRange = StatusRange { min: 200, max: 399 };

    pub fn contains(self, status: u16) -> bool {
        (self.min..=self.max).contains(&status)
    }

    pub fn parse(text: &str) -> Result<StatusRange, String> {
        let text = text.trim();
        let status = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(n) if (100..=599).contains(&n) => Ok(n),
                _ => Err(format!(
                    "`{t}` is not a status from 100 to 599 (write a status like `200`, \
                     a range like `200-399`, or a class like `2xx`)"
                )),
            }
        };
        let lower = text.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) if class.len() == 1 => Ok(StatusRange {
                    min: c * 100,
                    max: c * 100 + 99,
                }),
                _ => Err(format!(
                    "`{text}` is not a status class (write `2xx`, `3xx`, … `5xx`)"
                )),
            };
        }
        let range = match text.split_once('-') {
            Some((a, b)) => StatusRange {
                min: status(a)?,
                max: status(b)?,
            },
            None => {
                let s = status(text)?;
                StatusRange { min: s, max: s }
            }
        };
        if range.min > range.max {
            return Err(format!(
                "the range `{text}` is empty (write the lower status first, like `200-399`)"
            ));
        }
        Ok(range)
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else if self.min % 100 == 0 && self.max == self.min + 99 {
            write!(f, "{}xx", self.min / 100)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl Serialize for StatusRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` of a backend shoal does not start.
    pub url: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The protocol shoal speaks to this backend.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
}

fn default_weight() -> u32 {
    1
}

/// `balance.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Each backend in turn, smooth weighted by `weight` (nginx's algorithm).
    RoundRobin,
    /// The same smooth weighted round robin, under the name nginx users know.
    Weighted,
    /// Fewest requests in flight relative to weight.
    #[default]
    LeastConn,
    /// Consistent hash of the client's IP address.
    IpHash,
    /// Consistent hash of `balance.hash_key` (a header, cookie, query
    /// parameter or the path).
    Hash,
    /// Weighted random.
    Random,
    /// Power of two choices over peak-EWMA latency × (in flight + 1).
    P2cEwma,
}

impl Algorithm {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::RoundRobin,
        Algorithm::Weighted,
        Algorithm::LeastConn,
        Algorithm::IpHash,
        Algorithm::Hash,
        Algorithm::Random,
        Algorithm::P2cEwma,
    ];

    /// The name as written in the config (`round_robin`, `p2c_ewma`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::Weighted => "weighted",
            Algorithm::LeastConn => "least_conn",
            Algorithm::IpHash => "ip_hash",
            Algorithm::Hash => "hash",
            Algorithm::Random => "random",
            Algorithm::P2cEwma => "p2c_ewma",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceConfig {
    pub algorithm: Algorithm,
    /// For `algorithm: hash` (required there, refused elsewhere): what part
    /// of the request is hashed.
    #[serde(deserialize_with = "crate::fields::hash_key")]
    pub hash_key: Option<HashKey>,
    /// When no backend is in rotation, send requests to the ones that are
    /// running but failing (down, ejected, not yet checked) instead of
    /// answering 503 (Envoy's panic mode).
    pub panic_mode: bool,
}

/// `balance.hash_key`: where `algorithm: hash` finds a request's key.
/// Written `header:NAME`, `cookie:NAME`, `query:NAME` or `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The first value of a request header (name as written; matched
    /// without regard to case).
    Header(String),
    /// The value of one cookie in the `Cookie` header(s).
    Cookie(String),
    /// The raw (not percent-decoded) value of the first query parameter with
    /// this name.
    Query(String),
    /// The request path, without the query.
    Path,
}

impl HashKey {
    /// Parses `header:X-User-Id`, `cookie:session`, `query:user` or `path`.
    pub fn parse(text: &str) -> Result<HashKey, String> {
        const FORMS: &str = "`header:NAME`, `cookie:NAME`, `query:NAME` or `path`";
        let invalid = |why: String| format!("invalid hash key `{text}`: {why}");
        if text == "path" {
            return Ok(HashKey::Path);
        }
        let Some((source, name)) = text.split_once(':') else {
            let why = match text.to_ascii_lowercase().as_str() {
                "path" | "uri" | "url" => "write `path` to hash the request path".to_string(),
                "ip" | "client" | "source" | "remote_addr" => {
                    "to hash the client address use `algorithm: ip_hash` (without `hash_key`)"
                        .to_string()
                }
                "" => format!("empty; expected {FORMS}"),
                _ => format!("expected {FORMS} (for a header, write `header:{text}`)"),
            };
            return Err(invalid(why));
        };
        let kind = match source {
            "header" => HashKey::Header,
            "cookie" => HashKey::Cookie,
            "query" => HashKey::Query,
            _ => {
                let hint = match source.to_ascii_lowercase().as_str() {
                    "header" | "headers" | "hdr" | "http" => " (did you mean `header`?)",
                    "cookie" | "cookies" => " (did you mean `cookie`?)",
                    "query" | "arg" | "args" | "param" | "url_param" => " (did you mean `query`?)",
                    _ => "",
                };
                return Err(invalid(format!(
                    "unknown source `{source}`{hint}; expected {FORMS}"
                )));
            }
        };
        if name.is_empty() {
            return Err(invalid(format!("a name must follow `{source}:`")));
        }
        let valid = match source {
            // Header and cookie names are HTTP tokens (RFC 9110 5.6.2, RFC 6265 4.1.1).
            "header" | "cookie" => name.bytes().all(is_token_byte),
            // A query parameter name is anything up to `=` or `&`.
            _ => name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'&' | b'=' | b'#')),
        };
        if !valid {
            let what = match source {
                "query" => "a query parameter name must not contain spaces, `&`, `=` or `#`",
                _ => "a header or cookie name may only contain letters, digits and !#$%&'*+-.^_`|~",
            };
            return Err(invalid(what.to_string()));
        }
        Ok(kind(name.to_string()))
    }
}

fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl std::fmt::Display for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKey::Header(name) => write!(f, "header:{name}"),
            HashKey::Cookie(name) => write!(f, "cookie:{name}"),
            HashKey::Query(name) => write!(f, "query:{name}"),
            HashKey::Path => f.write_str("path"),
        }
    }
}

impl Serialize for HashKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

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

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// After SIGTERM/SIGINT, how long shoal keeps accepting while `/ready`
    /// already answers 503, so a load balancer in front stops sending first.
    #[serde(with = "crate::units::duration")]
    pub delay: Duration,
    /// How long in-flight requests may take to finish once accepting stopped.
    #[serde(with = "crate::units::duration")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            delay: Duration::ZERO,
            grace: Duration::from_secs(30),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A tracing filter directive such as `info` or `shoal=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".to_string(),
            format: LogFormat::Text,
        }
    }
}

/// `tls:` on the public listener. One certificate is written `cert` + `key`;
/// several (chosen by SNI) as a `certificates` list. Paths are PEM files,
/// relative ones taken from shoal's working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// One certificate chain (leaf first)...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// ... and its private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Several certificates; the first is the default (no SNI, no match).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateConfig>,
    /// Oldest TLS version accepted.
    pub min_version: TlsVersion,
    /// Protocols offered through ALPN, in order of preference.
    pub alpn: Vec<Alpn>,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            certificates: Vec::new(),
            min_version: TlsVersion::V1_2,
            alpn: vec![Alpn::H2, Alpn::Http11],
        }
    }
}

/// One item of `tls.certificates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and key pair as written, with the key paths messages name
/// (`tls.cert`, or `tls.certificates[1].cert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub cert_at: String,
    pub key_at: String,
}

impl TlsConfig {
    /// Every complete pair, the default first. Incomplete ones (a `cert`
    /// without `key`) are left out: validation reports them.
    pub fn files(&self) -> Vec<CertificateFiles<'_>> {
        let mut out = Vec::new();
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            out.push(CertificateFiles {
                cert,
                key,
                cert_at: "tls.cert".into(),
                key_at: "tls.key".into(),
            });
        }
        for (i, c) in self.certificates.iter().enumerate() {
            out.push(CertificateFiles {
                cert: &c.cert,
                key: &c.key,
                cert_at: format!("tls.certificates[{i}].cert"),
                key_at: format!("tls.certificates[{i}].key"),
            });
        }
        out
    }

    /// The ALPN protocol ids, as sent on the wire.
    pub fn alpn_ids(&self) -> Vec<Vec<u8>> {
        self.alpn
            .iter()
            .map(|a| a.as_str().as_bytes().to_vec())
            .collect()
    }
}

/// `tls.min_version`: rustls implements TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }

    /// `1.2` or `1.3` (written as a number or a string).
    pub fn parse(text: &str) -> Result<TlsVersion, String> {
        let t = text.trim();
        match t {
            "1.2" => return Ok(TlsVersion::V1_2),
            "1.3" => return Ok(TlsVersion::V1_3),
            _ => {}
        }
        let bare = t
            .to_ascii_lowercase()
            .trim_start_matches("tlsv")
            .trim_start_matches("tls")
            .trim_start_matches(['v', ' ', '_'])
            .replace('_', ".");
        let hint = match bare.as_str() {
            "1.2" | "12" => " (write `1.2`)".to_string(),
            "1.3" | "13" => " (write `1.3`)".to_string(),
            "1" | "1.0" | "1.1" | "10" | "11" => {
                " (TLS 1.0 and 1.1 are obsolete (RFC 8996) and not supported)".to_string()
            }
            _ => String::new(),
        };
        Err(format!(
            "unknown TLS version `{t}`: expected `1.2` or `1.3`{hint}"
        ))
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A number, so the effective config prints `1.2` rather than `'1.2'`.
        s.serialize_f64(match self {
            TlsVersion::V1_2 => 1.2,
            TlsVersion::V1_3 => 1.3,
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::fields::tls_version(d)
    }
}

/// `tls.alpn` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alpn {
    #[serde(rename = "h2")]
    H2,
    #[serde(rename = "http/1.1")]
    Http11,
}

impl Alpn {
    pub fn as_str(self) -> &'static str {
        match self {
            Alpn::H2 => "h2",
            Alpn::Http11 => "http/1.1",
        }
    }
}
