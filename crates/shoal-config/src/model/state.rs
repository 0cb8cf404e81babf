//! `state:` — where shared state (rate-limit counts) lives: in this
//! process (the default, no dependency) or in Redis (standalone, Sentinel
//! or Cluster), so that several shoal replicas count as one.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `state:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StateConfig {
    pub backend: StateBackend,
    /// `backend: redis`, one server: `redis://[user:password@]host:port[/db]`
    /// or `rediss://` for TLS.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `backend: redis` behind Sentinel.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel: Option<SentinelConfig>,
    /// `backend: redis`, a Redis Cluster: some of its nodes' URLs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cluster: Vec<String>,
    /// Connections to Redis (to each node in a cluster).
    pub pool_size: u32,
    #[serde(with = "crate::units::duration")]
    pub connect_timeout: Duration,
    /// How long a request waits for Redis's answer before `on_error` decides.
    #[serde(with = "crate::units::duration")]
    pub command_timeout: Duration,
    /// What a request gets when Redis cannot answer in time.
    pub on_error: OnError,
    /// Keys the in-process counts hold at most (the memory backend, and
    /// `on_error: local`); idle keys go first.
    pub max_keys: u64,
    /// The start of every key shoal writes in Redis.
    pub key_prefix: String,
}

impl Default for StateConfig {
    fn default() -> Self {
        StateConfig {
            backend: StateBackend::Memory,
            url: None,
            sentinel: None,
            cluster: Vec::new(),
            pool_size: 4,
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(100),
            on_error: OnError::Local,
            max_keys: 100_000,
            key_prefix: "shoal".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// In this process: exact for one shoal, no dependency.
    #[default]
    Memory,
    /// In Redis: exact across every shoal sharing it.
    Redis,
}

/// `state.on_error`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Let the request pass (fail open).
    Allow,
    /// Refuse it (429).
    Deny,
    /// Count it in this process until Redis answers again.
    #[default]
    Local,
}

/// `state.sentinel`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SentinelConfig {
    /// The master's name the sentinels know (`mymaster`).
    pub master: String,
    /// The sentinels, `host:port` each.
    pub nodes: Vec<String>,
    /// The data nodes' password, if they have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// The sentinels' own password, if they have one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sentinel_password: Option<String>,
}
