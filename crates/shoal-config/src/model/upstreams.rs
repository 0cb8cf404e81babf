//! `upstreams:` — backends shoal does not start — and the protocol shoal
//! speaks to any backend.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `http://host:port` (or `https://`) of a backend shoal does not start.
    pub url: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// The protocol shoal speaks to this backend.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
    /// TLS settings of an `https://` upstream (default: every default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<super::UpstreamTlsConfig>,
}

fn default_weight() -> u32 {
    1
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
