//! `upstreams:` — backends shoal does not start, as one list or in named
//! groups — and the protocol shoal speaks to any backend.

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{BalanceConfig, HealthConfig};

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

/// `upstreams:` — a list of backends (the one-service shorthand, in the
/// default pool beside `app`'s instances), or a map of named groups, each
/// with its own backends, balancing and health checks, which `routes` send
/// requests to by name.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstreams {
    List(Vec<UpstreamConfig>),
    Groups(BTreeMap<String, UpstreamGroup>),
}

impl Default for Upstreams {
    fn default() -> Self {
        Upstreams::List(Vec::new())
    }
}

/// One named group of `upstreams:`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamGroup {
    /// Backends listed here; with `dns` or `file`, those found are added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<UpstreamConfig>,
    /// Backends found by resolving a name again and again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dns: Option<super::DnsDiscovery>,
    /// Backends listed in a file, read again when it changes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<super::FileDiscovery>,
    /// Backends that register themselves (`POST /api/v1/backends`) and
    /// stay while they send heartbeats.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub registry: bool,
    /// The group's balancing; the top-level `balance` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub balance: Option<BalanceConfig>,
    /// The group's active health checks; the top-level `health` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthConfig>,
    /// Sticky sessions to the group's backends (`routes[].sticky` wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sticky: Option<super::StickyConfig>,
}

impl Upstreams {
    /// No backend is listed at all.
    pub fn is_empty(&self) -> bool {
        match self {
            Upstreams::List(l) => l.is_empty(),
            Upstreams::Groups(g) => g.is_empty(),
        }
    }

    /// The flat list (empty when `upstreams` is a map of groups).
    pub fn list(&self) -> &[UpstreamConfig] {
        match self {
            Upstreams::List(l) => l,
            Upstreams::Groups(_) => &[],
        }
    }

    /// The named groups (none when `upstreams` is a flat list).
    pub fn groups(&self) -> impl Iterator<Item = (&str, &UpstreamGroup)> {
        let groups = match self {
            Upstreams::List(_) => None,
            Upstreams::Groups(g) => Some(g.iter().map(|(k, v)| (k.as_str(), v))),
        };
        groups.into_iter().flatten()
    }

    /// Every backend with its key path (`upstreams[0]`, `upstreams.api[1]`),
    /// in the order of [`Upstreams::all`].
    pub fn keyed(&self) -> Vec<(String, &UpstreamConfig)> {
        let mut out: Vec<_> = self
            .list()
            .iter()
            .enumerate()
            .map(|(i, u)| (format!("upstreams[{i}]"), u))
            .collect();
        for (name, group) in self.groups() {
            out.extend(
                group
                    .servers
                    .iter()
                    .enumerate()
                    .map(|(i, u)| (format!("upstreams.{name}[{i}]"), u)),
            );
        }
        out
    }

    /// Every backend: its group (`None` in the flat list) and its config.
    pub fn all(&self) -> Vec<(Option<&str>, &UpstreamConfig)> {
        let mut out: Vec<_> = self.list().iter().map(|u| (None, u)).collect();
        for (name, group) in self.groups() {
            out.extend(group.servers.iter().map(|u| (Some(name), u)));
        }
        out
    }
}

impl Serialize for Upstreams {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Upstreams::List(l) => l.serialize(s),
            Upstreams::Groups(g) => g.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Upstreams {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListOrMap::<Upstreams>(PhantomData))
    }
}

impl<'de> Deserialize<'de> for GroupServers {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ListOrMap::<GroupServers>(PhantomData))
    }
}

/// A group written as a bare list of backends, or in full.
struct GroupServers(UpstreamGroup);

/// A sequence or a map, each handed on to its own shape (so key paths and
/// "unknown field" errors stay as precise as for a plain struct).
struct ListOrMap<T>(PhantomData<T>);

impl<'de> Visitor<'de> for ListOrMap<Upstreams> {
    type Value = Upstreams;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of backends (`- url: http://HOST:PORT`) or a map of named groups")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Upstreams, A::Error> {
        Deserialize::deserialize(SeqAccessDeserializer::new(seq)).map(Upstreams::List)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Upstreams, A::Error> {
        let mut groups = BTreeMap::new();
        while let Some(name) = map.next_key::<String>()? {
            if matches!(name.as_str(), "url" | "weight" | "protocol") {
                return Err(serde::de::Error::custom(format!(
                    "expected a list of backends (got one backend's `{name}` without its `- `: \
                     write `upstreams: [{{url: http://HOST:PORT}}]`), or a map of named groups"
                )));
            }
            let GroupServers(group) = map.next_value()?;
            groups.insert(name, group);
        }
        Ok(Upstreams::Groups(groups))
    }

    fn visit_unit<E: serde::de::Error>(self) -> Result<Upstreams, E> {
        Ok(Upstreams::default())
    }
}

impl<'de> Visitor<'de> for ListOrMap<GroupServers> {
    type Value = GroupServers;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of backends, or `servers:` with optional `balance:` and `health:`")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<GroupServers, A::Error> {
        let servers = Deserialize::deserialize(SeqAccessDeserializer::new(seq))?;
        Ok(GroupServers(UpstreamGroup {
            servers,
            ..Default::default()
        }))
    }

    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<GroupServers, A::Error> {
        Deserialize::deserialize(MapAccessDeserializer::new(map)).map(GroupServers)
    }
}
