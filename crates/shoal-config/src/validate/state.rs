//! `state:` and `rate_limits:` — one way to reach Redis, and only with
//! `backend: redis`; rules with a name, a rate, keys named once, and
//! routes that exist.

use std::time::Duration;

use super::routes::{matches, plain_name};
use super::Checker;
use crate::model::{Config, LimitKey, StateBackend, StateConfig};
use crate::suggest::closest;

const MAX_POOL: u32 = 256;
const MAX_BURST: u32 = 10_000_000;
const MAX_KEYS: u64 = 100_000_000;

pub(super) fn state(c: &mut Checker<'_>, s: &StateConfig) {
    let ways = [
        ("state.url", s.url.is_some()),
        ("state.sentinel", s.sentinel.is_some()),
        ("state.cluster", !s.cluster.is_empty()),
    ];
    let given: Vec<&str> = ways.iter().filter(|(_, on)| *on).map(|(k, _)| *k).collect();
    match s.backend {
        StateBackend::Memory => {
            for key in &given {
                c.invalid(
                    key,
                    "is for `backend: redis`; set `state.backend: redis` to use it".into(),
                );
            }
        }
        StateBackend::Redis => match given.as_slice() {
            [] => c.invalid(
                "state.backend",
                "`redis` needs one of `url`, `sentinel` or `cluster`".into(),
            ),
            [_] => {}
            [_, more @ ..] => {
                for key in more {
                    c.invalid(
                        key,
                        format!(
                            "only one of `url`, `sentinel` and `cluster` may be given (also: {})",
                            given[0]
                        ),
                    );
                }
            }
        },
    }
    if let Some(url) = &s.url {
        redis_url(c, "state.url", url);
    }
    for (i, url) in s.cluster.iter().enumerate() {
        redis_url(c, &format!("state.cluster[{i}]"), url);
    }
    if let Some(sentinel) = &s.sentinel {
        if sentinel.master.is_empty() {
            c.invalid(
                "state.sentinel.master",
                "the master's name the sentinels know (e.g. `mymaster`) is required".into(),
            );
        }
        if sentinel.nodes.is_empty() {
            c.invalid(
                "state.sentinel.nodes",
                "list at least one sentinel as `host:port`".into(),
            );
        }
        for (i, node) in sentinel.nodes.iter().enumerate() {
            let ok = node
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p > 0));
            if !ok {
                c.invalid(
                    &format!("state.sentinel.nodes[{i}]"),
                    format!("`{node}` is not `host:port`"),
                );
            }
        }
    }
    c.range("state.pool_size", s.pool_size, 1, MAX_POOL);
    c.positive_at_most(
        "state.connect_timeout",
        s.connect_timeout,
        Duration::from_secs(60),
    );
    c.positive_at_most(
        "state.command_timeout",
        s.command_timeout,
        Duration::from_secs(10),
    );
    c.range("state.max_keys", s.max_keys, 1, MAX_KEYS);
    if !plain_name(&s.key_prefix) {
        c.invalid(
            "state.key_prefix",
            format!(
                "`{}` is not usable: use letters, digits, `-`, `_` and `.`",
                s.key_prefix
            ),
        );
    }
}

fn redis_url(c: &mut Checker<'_>, at: &str, url: &str) {
    let Some((scheme, rest)) = url.split_once("://") else {
        c.invalid(
            at,
            format!("`{url}` is not a Redis URL like `redis://127.0.0.1:6379`"),
        );
        return;
    };
    if !matches!(scheme, "redis" | "rediss") {
        c.invalid(
            at,
            format!("scheme `{scheme}` is not `redis` or `rediss` (TLS)"),
        );
    } else if rest.is_empty() || rest.starts_with('/') {
        c.invalid(at, format!("`{url}` names no host"));
    }
}

pub(super) fn rate_limits(c: &mut Checker<'_>, config: &Config) {
    let route_names: Vec<&str> = config
        .route_lists()
        .into_iter()
        .flat_map(|(_, _, list)| list.iter().filter_map(|r| r.name.as_deref()))
        .collect();
    for (i, rule) in config.rate_limits.iter().enumerate() {
        let at = format!("rate_limits[{i}]");
        if rule.name.is_empty() {
            c.invalid(&format!("{at}.name"), "every rule needs a name".into());
        } else if !plain_name(&rule.name) {
            c.invalid(
                &format!("{at}.name"),
                format!(
                    "`{}` is not a usable name: use letters, digits, `-`, `_` and `.`",
                    rule.name
                ),
            );
        } else if let Some(j) = config.rate_limits[..i]
            .iter()
            .position(|r| r.name == rule.name)
        {
            c.invalid(
                &format!("{at}.name"),
                format!(
                    "`{}` is also the name of `rate_limits[{j}]`; rule names must differ",
                    rule.name
                ),
            );
        }
        if rule.rate.count == 0 {
            c.invalid(
                &format!("{at}.rate"),
                "a rate like `200/min` is required".into(),
            );
        }
        if rule.rate.count > 0 && rule.rate.interval().is_zero() {
            c.invalid(
                &format!("{at}.rate"),
                format!("`{}` is more than one request per nanosecond", rule.rate),
            );
        }
        if let Some(burst) = rule.burst {
            c.range(&format!("{at}.burst"), burst, 1, MAX_BURST);
        }
        if rule.key.is_empty() {
            c.invalid(
                &format!("{at}.key"),
                "name at least one of `client_ip`, `header:NAME`, `cookie:NAME`, `route`".into(),
            );
        }
        for (k, key) in rule.key.iter().enumerate() {
            let twice = rule.key[..k].iter().any(|other| same(other, key));
            if twice {
                c.invalid(&format!("{at}.key[{k}]"), format!("`{key}` is named twice"));
            }
        }
        for (r, route) in rule.routes.iter().enumerate() {
            if !route_names.contains(&route.as_str()) {
                let hint = closest(route, route_names.iter().copied())
                    .map(|n| format!(" (did you mean `{n}`?)"))
                    .unwrap_or_default();
                let known = if route_names.is_empty() {
                    "no route has a `name`".to_string()
                } else {
                    format!("named routes: {}", route_names.join(", "))
                };
                c.invalid(
                    &format!("{at}.routes[{r}]"),
                    format!("no route is named `{route}`{hint}; {known}"),
                );
            }
        }
        matches(c, &format!("{at}.match"), &rule.matches);
    }
}

/// Header names without regard to case; cookie names exactly.
fn same(a: &LimitKey, b: &LimitKey) -> bool {
    match (a, b) {
        (LimitKey::Header(x), LimitKey::Header(y)) => x.eq_ignore_ascii_case(y),
        _ => a == b,
    }
}
