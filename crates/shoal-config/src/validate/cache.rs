//! `cache` (top level and per route): sizes that fit in each other,
//! methods the cache answers, header names that are header names.

use std::time::Duration;

use super::{Checker, MAX_WAIT};
use crate::model::{CacheConfig, CacheKey, RouteCache, RouteConfig, StateBackend};

/// Headers the cache key may not name: they are in it already (`Host`)
/// or differ on every request.
const NOT_IN_KEY: [&str; 3] = ["host", "cookie", "authorization"];

/// Redis keeps a string of at most 512 MiB.
const REDIS_MAX_VALUE: u64 = 512 << 20;

pub(super) fn cache(c: &mut Checker<'_>, config: &CacheConfig, state: StateBackend) {
    let at = "cache";
    if let Some(redis) = &config.redis {
        if state != StateBackend::Redis {
            c.invalid(
                "cache.redis",
                "needs `state.backend: redis` (the shared tier is kept in the state backend's Redis)"
                    .into(),
            );
        }
        if redis.max_item_size == 0 {
            c.invalid(
                "cache.redis.max_item_size",
                "must be greater than 0 (to keep responses in memory only, remove `cache.redis`)"
                    .into(),
            );
        } else if redis.max_item_size > REDIS_MAX_VALUE {
            c.invalid(
                "cache.redis.max_item_size",
                format!(
                    "must be at most 512MiB, the largest value Redis keeps (got {} bytes)",
                    redis.max_item_size
                ),
            );
        }
    }
    let m = &config.memory;
    if m.max_size == 0 {
        c.invalid(
            "cache.memory.max_size",
            "must be greater than 0 (to turn the cache off, set `cache.enabled: false`)".into(),
        );
    }
    if m.max_item_size == 0 {
        c.invalid(
            "cache.memory.max_item_size",
            "must be greater than 0".into(),
        );
    } else if m.max_item_size > m.max_size {
        c.invalid(
            "cache.memory.max_item_size",
            format!(
                "must not be larger than `cache.memory.max_size` ({} bytes) (got {} bytes)",
                m.max_size, m.max_item_size
            ),
        );
    }
    ttl(c, at, config.default_ttl);
    key(c, at, &config.key);
    methods(c, at, &config.methods);
    header(c, at, &config.header);
    c.at_most(
        &format!("{at}.coalesce.wait"),
        config.coalesce.wait,
        MAX_WAIT,
    );
}

pub(super) fn route_cache(c: &mut Checker<'_>, at: &str, route: &RouteConfig) {
    let Some(config) = &route.cache else {
        return;
    };
    let at = format!("{at}.cache");
    let on = !matches!(config, RouteCache::Switch(false))
        && !matches!(config, RouteCache::Settings(o) if o.enabled == Some(false));
    if on && (route.redirect.is_some() || route.respond.is_some() || route.files.is_some()) {
        c.invalid(
            &at,
            "only applies to a route that sends requests to a pool (`to`); this one answers \
             them itself"
                .into(),
        );
    }
    let RouteCache::Settings(o) = config else {
        return;
    };
    ttl(c, &at, o.default_ttl);
    if let Some(k) = &o.key {
        key(c, &at, k);
    }
    if let Some(m) = &o.methods {
        methods(c, &at, m);
    }
    if let Some(h) = &o.header {
        header(c, &at, h);
    }
    if let Some(w) = &o.coalesce {
        c.at_most(&format!("{at}.coalesce.wait"), w.wait, MAX_WAIT);
    }
}

fn ttl(c: &mut Checker<'_>, at: &str, ttl: Option<Duration>) {
    if let Some(t) = ttl {
        c.positive_at_most(
            &format!("{at}.default_ttl"),
            t,
            Duration::from_secs(365 * 86400),
        );
    }
}

fn token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn key(c: &mut Checker<'_>, at: &str, key: &CacheKey) {
    for (i, h) in key.headers.iter().enumerate() {
        let path = format!("{at}.key.headers[{i}]");
        if !token(h) {
            c.invalid(&path, format!("`{h}` is not a header name"));
        } else if NOT_IN_KEY.contains(&h.to_ascii_lowercase().as_str()) {
            c.invalid(
                &path,
                format!(
                    "`{h}` cannot be part of the key (`Host` already is; for a cookie use \
                     `key.cookies`; a request with `Authorization` is not served from the cache)"
                ),
            );
        }
    }
    for (i, name) in key.cookies.iter().enumerate() {
        if !token(name) {
            c.invalid(
                &format!("{at}.key.cookies[{i}]"),
                format!("`{name}` is not a cookie name"),
            );
        }
    }
}

fn methods(c: &mut Checker<'_>, at: &str, methods: &[String]) {
    if methods.is_empty() {
        c.invalid(
            &format!("{at}.methods"),
            "must name `GET` (and `HEAD`, if wanted); to turn the cache off set `enabled: false`"
                .into(),
        );
    }
    for (i, m) in methods.iter().enumerate() {
        if m != "GET" && m != "HEAD" {
            c.invalid(
                &format!("{at}.methods[{i}]"),
                format!("the cache answers `GET` and `HEAD` only (got `{m}`)"),
            );
        }
    }
}

fn header(c: &mut Checker<'_>, at: &str, name: &str) {
    if !token(name) {
        c.invalid(
            &format!("{at}.header"),
            format!("`{name}` is not a header name"),
        );
    }
}
