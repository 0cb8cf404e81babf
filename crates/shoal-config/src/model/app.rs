//! `app:` — the service shoal starts and supervises: its command, restart
//! policy and backoff, rollout and limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{HealthConfig, UpstreamProtocol};

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
    /// The instances serve TLS: `true` (every default) or the same block
    /// as `upstreams[].tls`; `None`/`false`: cleartext.
    #[serde(
        deserialize_with = "crate::fields::app_tls",
        skip_serializing_if = "Option::is_none"
    )]
    pub tls: Option<super::UpstreamTlsConfig>,
    /// Sticky sessions to the app's instances (`routes[].sticky` wins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<super::StickyConfig>,
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
            tls: None,
            sticky: None,
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
