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
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
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
            shutdown: ShutdownConfig::default(),
            log: LogConfig::default(),
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
    pub restart: RestartConfig,
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
            restart: RestartConfig::default(),
        }
    }
}

/// Exponential backoff between restarts of a crashed instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RestartConfig {
    /// First delay after a crash.
    #[serde(with = "crate::units::duration")]
    pub backoff_initial: Duration,
    /// The delay doubles after each crash up to this cap.
    #[serde(with = "crate::units::duration")]
    pub backoff_max: Duration,
    /// An instance up this long has its backoff reset to `backoff_initial`.
    #[serde(with = "crate::units::duration")]
    pub reset_after: Duration,
}

impl Default for RestartConfig {
    fn default() -> Self {
        RestartConfig {
            backoff_initial: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
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

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    RoundRobin,
    #[default]
    LeastConn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceConfig {
    pub algorithm: Algorithm,
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
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: Duration::from_secs(5),
            retries: 2,
            max_idle_per_backend: 64,
            idle_timeout: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// How long in-flight requests may take to finish after SIGTERM/SIGINT.
    #[serde(with = "crate::units::duration")]
    pub grace: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
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
