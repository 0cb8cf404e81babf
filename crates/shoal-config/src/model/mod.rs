//! The configuration model: every key shoal understands, with its default.
//!
//! Loading (interpolation, YAML parsing, strict validation with key paths and
//! line numbers) lives in the sibling modules; this folder is only the shape:
//! the top level, `admin`, `shutdown` and `log` here, each larger section in
//! its own file, all re-exported so every type is `shoal_config::Name`.

mod access_log;
mod app;
mod autoscale;
mod balance;
mod cache;
mod compress;
mod discovery;
mod health;
mod listeners;
mod proxy;
mod rate_limits;
mod routes;
mod state;
mod sticky;
mod tls;
mod upstream_tls;
mod upstreams;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use access_log::*;
pub use app::*;
pub use autoscale::*;
pub use balance::*;
pub use cache::*;
pub use compress::*;
pub use discovery::*;
pub use health::*;
pub use listeners::*;
pub use proxy::*;
pub use rate_limits::*;
pub use routes::*;
pub use state::*;
pub use sticky::*;
pub use tls::*;
pub use upstream_tls::*;
pub use upstreams::*;

/// The whole `shoal.yaml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Address of the public (data plane) listener: the one-listener
    /// shorthand of `listeners`.
    #[serde(deserialize_with = "crate::fields::socket_addr")]
    pub listen: SocketAddr,
    /// Several public listeners; when set, `listen` and `tls` are not.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub listeners: Vec<ListenerConfig>,
    /// Runtime worker threads; `None` means one per core.
    pub workers: Option<usize>,
    pub admin: AdminConfig,
    /// Local instances shoal starts and supervises: one app (its pool and
    /// instances are named `app`)...
    pub app: Option<AppConfig>,
    /// ... or several, by name (instances `NAME-1`, `NAME-2`, …), each
    /// supervised, scaled and reloaded on its own.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub apps: BTreeMap<String, AppConfig>,
    /// Static backends, as an alternative or in addition to `app`: one
    /// list, or named groups for `routes`.
    pub upstreams: Upstreams,
    /// Which requests go where; without routes, every request goes to the
    /// default pool (`app` and a flat `upstreams` list).
    pub routes: Vec<RouteConfig>,
    /// Where shared state (rate-limit counts) lives: this process, or Redis.
    pub state: StateConfig,
    /// Named rate limits, checked for every request they apply to.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rate_limits: Vec<RateLimitConfig>,
    /// Response compression (routes may change it: `routes[].compress`).
    pub compress: CompressConfig,
    /// The response cache (routes may change it: `routes[].cache`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheConfig>,
    /// Health checks for the static `upstreams` (instances use `app.health`).
    pub health: HealthConfig,
    pub balance: BalanceConfig,
    pub proxy: ProxyConfig,
    /// Client-side limits of the public listener.
    pub limits: LimitsConfig,
    pub shutdown: ShutdownConfig,
    pub log: LogConfig,
    /// One line per request (off by default).
    pub access_log: AccessLogConfig,
    /// Peers (CIDRs such as `10.0.0.0/8`, or single addresses) whose
    /// `X-Forwarded-For` is extended; from anyone else it is replaced, so the
    /// client address (ip_hash, logs, later rate limits) cannot be spoofed.
    pub trusted_proxies: Vec<String>,
    /// TLS termination on the public listener; `None` serves plain HTTP.
    pub tls: Option<TlsConfig>,
}

/// The pool of `app`'s instances (and of a flat `upstreams` list beside
/// them).
pub const APP_POOL: &str = "app";
/// The pool of a flat `upstreams` list when there is no `app`.
pub const UPSTREAMS_POOL: &str = "upstreams";

impl Config {
    /// Every app shoal supervises, by name: `app` (named `app`) or each
    /// of `apps`.
    pub fn all_apps(&self) -> Vec<(&str, &AppConfig)> {
        match &self.app {
            Some(app) => vec![(APP_POOL, app)],
            None => self.apps.iter().map(|(n, a)| (n.as_str(), a)).collect(),
        }
    }

    /// Every pool a route may name: each app (`app`, with a flat
    /// `upstreams` list beside its instances; or each of `apps`), a flat
    /// list of its own (`upstreams`) when there is no `app`, and each
    /// upstream group.
    pub fn pool_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.all_apps().into_iter().map(|(n, _)| n).collect();
        if self.app.is_none() && !self.upstreams.list().is_empty() {
            names.push(UPSTREAMS_POOL);
        }
        names.extend(self.upstreams.groups().map(|(n, _)| n));
        names
    }

    /// The pool requests go to without `routes`: `app` when there is one,
    /// else the only pool; `None` when there are several (then `routes`
    /// are needed).
    pub fn default_pool(&self) -> Option<&str> {
        if self.app.is_some() {
            return Some(APP_POOL);
        }
        match self.pool_names().as_slice() {
            [only] => Some(only),
            _ => None,
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: default_listen(),
            listeners: Vec::new(),
            workers: None,
            admin: AdminConfig::default(),
            app: None,
            apps: BTreeMap::new(),
            upstreams: Upstreams::default(),
            routes: Vec::new(),
            state: StateConfig::default(),
            rate_limits: Vec::new(),
            compress: CompressConfig::default(),
            cache: None,
            health: HealthConfig::default(),
            balance: BalanceConfig::default(),
            proxy: ProxyConfig::default(),
            limits: LimitsConfig::default(),
            shutdown: ShutdownConfig::default(),
            log: LogConfig::default(),
            access_log: AccessLogConfig::default(),
            trusted_proxies: Vec::new(),
            tls: None,
        }
    }
}

/// `listen`'s default, `0.0.0.0:8080`.
pub fn default_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 8080))
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Address of the admin listener (health, readiness, status API).
    #[serde(deserialize_with = "crate::fields::socket_addr")]
    pub listen: SocketAddr,
    /// The bearer token the mutating endpoints (scale, reload) require,
    /// and every other one but `/health` and `/ready` with `read: token`.
    /// Usually `${SHOAL_ADMIN_TOKEN}`. (`shoal check` prints it, as it
    /// prints `app.env`: the effective config is a config.)
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// A file holding the token (its first line), in place of `token`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_file: Option<std::path::PathBuf>,
    /// Whether reading (status, metrics) needs the token too.
    pub read: AdminRead,
    /// HTTPS on the admin listener (probes included): the keys and checks
    /// of a public listener's `tls`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
}

/// `admin.read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AdminRead {
    /// Anyone who reaches the admin listener may read.
    #[default]
    Open,
    /// Reads need the token as well.
    Token,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            token: None,
            token_file: None,
            read: AdminRead::Open,
            tls: None,
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
