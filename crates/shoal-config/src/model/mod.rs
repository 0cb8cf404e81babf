//! The configuration model: every key shoal understands, with its default.
//!
//! Loading (interpolation, YAML parsing, strict validation with key paths and
//! line numbers) lives in the sibling modules; this folder is only the shape:
//! the top level, `admin`, `shutdown` and `log` here, each larger section in
//! its own file, all re-exported so every type is `shoal_config::Name`.

mod app;
mod balance;
mod health;
mod proxy;
mod tls;
mod upstream_tls;
mod upstreams;

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use app::*;
pub use balance::*;
pub use health::*;
pub use proxy::*;
pub use tls::*;
pub use upstream_tls::*;
pub use upstreams::*;

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
