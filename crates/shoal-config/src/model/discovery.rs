//! `upstreams.NAME.dns` and `upstreams.NAME.file`: a group's backends found
//! at run time rather than listed — the Kubernetes headless-Service pattern
//! (DNS A/AAAA or SRV records), or a file another tool writes.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::UpstreamProtocol;

/// `dns:` — resolve `name` again and again; every address is a backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnsDiscovery {
    /// The name to resolve: `api.default.svc.cluster.local` (A/AAAA), or
    /// with `srv: true` an SRV name (`_http._tcp.api.default.svc.cluster.local`).
    pub name: String,
    /// The backends' port (A/AAAA records carry none); not with `srv`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Look up SRV records: each gives a host, a port and a weight.
    #[serde(default)]
    pub srv: bool,
    /// The longest time between two resolutions; a record's TTL shortens it,
    /// down to `min_interval`.
    #[serde(default = "five_seconds", with = "crate::units::duration")]
    pub interval: Duration,
    /// The shortest time between two resolutions, whatever the TTLs say.
    #[serde(default = "one_second", with = "crate::units::duration")]
    pub min_interval: Duration,
    /// A resolution that takes longer has failed (the last set is kept).
    #[serde(default = "two_seconds", with = "crate::units::duration")]
    pub timeout: Duration,
    /// The DNS server to ask (`127.0.0.1:8600` for Consul's); the system's
    /// (`/etc/resolv.conf`) when absent.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "crate::fields::opt_socket_addr"
    )]
    pub server: Option<SocketAddr>,
    /// The protocol shoal speaks to the backends found.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
}

/// `file:` — a file of backends, one `HOST:PORT [WEIGHT]` a line (`#`
/// starts a comment), read again when it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDiscovery {
    pub path: PathBuf,
    /// How often the file is looked at.
    #[serde(default = "one_second", with = "crate::units::duration")]
    pub interval: Duration,
    /// The protocol shoal speaks to the backends listed.
    #[serde(default)]
    pub protocol: UpstreamProtocol,
}

fn one_second() -> Duration {
    Duration::from_secs(1)
}

fn two_seconds() -> Duration {
    Duration::from_secs(2)
}

fn five_seconds() -> Duration {
    Duration::from_secs(5)
}
