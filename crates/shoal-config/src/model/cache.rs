//! `cache:` (top level and `routes[].cache`) — the response cache, the
//! *lookup* and *respond* phases (docs/CACHE.md).

use std::fmt;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

/// The top-level `cache` section. Written at all, it caches every route
/// but those with `cache: false`; absent, only routes with their own
/// `cache` do, with these defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// `false` keeps the section (and its settings for routes that turn
    /// the cache on) without caching every route.
    pub enabled: bool,
    /// The in-memory tier (L1), one per process, shared by every route.
    pub memory: CacheMemory,
    /// The shared tier (L2) in the state backend's Redis (`state.backend:
    /// redis`): every replica sharing that Redis shares its hits and
    /// purges. Absent: memory only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<CacheRedis>,
    /// The lifetime of a response that gives none (no `max-age`,
    /// `s-maxage` or `Expires`): unset (the default), such a response is
    /// not stored; set, it is the heuristic freshness RFC 9111 §4.2.2
    /// allows — 10% of the time since `Last-Modified`, at most this, or
    /// this without `Last-Modified`.
    #[serde(
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_ttl: Option<Duration>,
    /// What the cache key holds beside method, scheme, host, path and query.
    pub key: CacheKey,
    /// The methods answered from the cache (`GET`, `HEAD`).
    pub methods: Vec<String>,
    /// Store responses that carry `Set-Cookie` (and replay the cookie to
    /// every client that gets the stored response).
    pub store_set_cookie: bool,
    /// The response header that says what the cache did
    /// (`HIT`, `MISS`, `STALE`, `REVALIDATED`, `BYPASS`).
    pub header: String,
    pub coalesce: CacheCoalesce,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            enabled: true,
            memory: CacheMemory::default(),
            redis: None,
            default_ttl: None,
            key: CacheKey::default(),
            methods: vec!["GET".into(), "HEAD".into()],
            store_set_cookie: false,
            header: "X-Cache".into(),
            coalesce: CacheCoalesce::default(),
        }
    }
}

/// `cache.memory`: the L1 tier.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheMemory {
    /// Bytes the stored responses (heads and bodies) may take in all.
    #[serde(with = "crate::units::size")]
    pub max_size: u64,
    /// A response larger than this is passed through, not stored.
    #[serde(with = "crate::units::size")]
    pub max_item_size: u64,
}

impl Default for CacheMemory {
    fn default() -> Self {
        CacheMemory {
            max_size: 64 << 20,
            max_item_size: 5 << 20,
        }
    }
}

/// `cache.redis`: the L2 tier, in the state backend's Redis.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheRedis {
    /// A response larger than this is not written to Redis; `too_large`
    /// says whether it is kept in memory alone.
    #[serde(with = "crate::units::size")]
    pub max_item_size: u64,
    pub too_large: TooLarge,
}

impl Default for CacheRedis {
    fn default() -> Self {
        CacheRedis {
            max_item_size: 1 << 20,
            too_large: TooLarge::Memory,
        }
    }
}

/// `cache.redis.too_large`: what becomes of a response too large for Redis.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TooLarge {
    /// Stored in this replica's memory only (the default).
    Memory,
    /// Not stored at all: every replica asks the backend for it.
    Pass,
}

/// `cache.key`: request headers and cookies that make responses differ.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheKey {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub cookies: Vec<String>,
}

/// `cache.coalesce`: concurrent misses of one key.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheCoalesce {
    /// How long a miss waits for the one already at the backend before it
    /// goes itself; `0s` turns coalescing off.
    #[serde(with = "crate::units::duration")]
    pub wait: Duration,
}

impl Default for CacheCoalesce {
    fn default() -> Self {
        CacheCoalesce {
            wait: Duration::from_secs(5),
        }
    }
}

/// `routes[].cache`: `true`/`false`, or the top-level keys this route
/// changes (all but `memory`, which is the process's).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum RouteCache {
    Switch(bool),
    Settings(CacheOverrides),
}

/// `routes[].cache` as a mapping: each key given replaces the top-level
/// one; `enabled` is `true` unless given.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheOverrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    #[serde(
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub default_ttl: Option<Duration>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<CacheKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub methods: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store_set_cookie: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub coalesce: Option<CacheCoalesce>,
}

impl<'de> Deserialize<'de> for RouteCache {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = RouteCache;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("`true`, `false` or a mapping of `cache` keys")
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<RouteCache, E> {
                Ok(RouteCache::Switch(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<RouteCache, A::Error> {
                CacheOverrides::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(RouteCache::Settings)
            }
        }
        d.deserialize_any(V)
    }
}

/// The settings of a route: the top level's (or the defaults), changed
/// by the route's `cache`; `None` when the route does not cache.
pub fn cache_for_route(
    top: Option<&CacheConfig>,
    route: Option<&RouteCache>,
) -> Option<CacheConfig> {
    let mut c = top.cloned().unwrap_or_else(|| CacheConfig {
        enabled: false,
        ..CacheConfig::default()
    });
    match route {
        None => {}
        Some(RouteCache::Switch(on)) => c.enabled = *on,
        Some(RouteCache::Settings(o)) => {
            c.enabled = o.enabled.unwrap_or(true);
            if o.default_ttl.is_some() {
                c.default_ttl = o.default_ttl;
            }
            if let Some(v) = &o.key {
                c.key = v.clone();
            }
            if let Some(v) = &o.methods {
                c.methods = v.clone();
            }
            if let Some(v) = o.store_set_cookie {
                c.store_set_cookie = v;
            }
            if let Some(v) = &o.header {
                c.header = v.clone();
            }
            if let Some(v) = o.coalesce {
                c.coalesce = v;
            }
        }
    }
    c.enabled.then_some(c)
}
