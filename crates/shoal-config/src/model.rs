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
    /// An instance whose RSS stays above this is replaced (new one first).
    #[serde(default, with = "crate::units::size_opt")]
    pub max_memory: Option<u64>,
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
            max_memory: None,
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

/// Active health checks: HTTP GET of `path` when set, TCP connect otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub path: Option<String>,
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
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fall: 3,
            rise: 2,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` of a backend shoal does not start.
    pub url: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            retries: 2,
            max_idle_per_backend: 64,
            idle_timeout: Duration::from_secs(60),
            response_header_timeout: Duration::from_secs(60),
            read_timeout: Duration::from_secs(60),
            send_timeout: Duration::from_secs(60),
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            fail_statuses: Vec::new(),
            retry_budget_percent: 20,
            retry_budget_window: Duration::from_secs(10),
            retry_budget_min: 10,
            tunnel_idle_timeout: Duration::from_secs(3600),
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
