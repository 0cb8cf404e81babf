//! `access_log:` — one line per request: where, in which format, and how
//! many of them.

use serde::{Deserialize, Serialize};

/// `access_log:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AccessLogConfig {
    pub format: AccessLogFormat,
    /// `stderr`, `stdout`, or a file (appended to; reopened on SIGUSR1).
    pub path: String,
    /// The share of requests logged, 0 to 1.
    pub sample: f64,
    /// Requests answered 4xx or 5xx are logged whatever `sample` says.
    pub errors_always: bool,
    /// The path is logged with its query string.
    pub query: bool,
    /// Lines waiting to be written at most; more are dropped and counted.
    pub buffer: u32,
}

impl Default for AccessLogConfig {
    fn default() -> Self {
        AccessLogConfig {
            format: AccessLogFormat::Off,
            path: "stderr".into(),
            sample: 1.0,
            errors_always: true,
            query: false,
            buffer: 16_384,
        }
    }
}

/// `access_log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLogFormat {
    /// No access log.
    #[default]
    Off,
    /// One JSON object per line.
    Json,
    /// Apache/nginx "combined", with shoal's fields after it.
    Combined,
}
