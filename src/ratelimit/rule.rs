//! One rule of `rate_limits:` compiled for a config: where it applies
//! (routes, `match`) and what it counts by, read from the engine-neutral
//! view of a request, so both engines ask the same questions.

use std::sync::Arc;

use shoal_config::{LimitKey, RateLimitConfig};

use super::settings::Live;
use crate::balance::RequestView;
use crate::routes::{Listeners, Matcher, RouteTable};

/// One rule, as a config's requests meet it.
pub struct Rule {
    pub name: Arc<str>,
    keys: Vec<Part>,
    /// Only requests that took one of these routes (indices into the
    /// config's `RouteTable`); every request when `None`.
    routes: Option<Vec<usize>>,
    matcher: Option<Matcher>,
    /// Its settings now (the config's, or the admin API's), and its counts.
    pub live: Arc<Live>,
}

enum Part {
    ClientIp,
    /// Lowercase.
    Header(String),
    Cookie(String),
    Route,
}

impl Rule {
    pub fn new(config: &RateLimitConfig, routes: &RouteTable, live: Arc<Live>) -> Rule {
        let keys = config
            .key
            .iter()
            .map(|k| match k {
                LimitKey::ClientIp => Part::ClientIp,
                LimitKey::Header(n) => Part::Header(n.to_ascii_lowercase()),
                LimitKey::Cookie(n) => Part::Cookie(n.clone()),
                LimitKey::Route => Part::Route,
            })
            .collect();
        let scoped = (!config.routes.is_empty()).then(|| {
            (0..routes.len())
                .filter(|&i| config.routes.iter().any(|n| **n == *routes.get(i).name))
                .collect()
        });
        let matcher = (!config.matches.is_everything())
            .then(|| Matcher::new(&config.matches, Listeners::Any));
        Rule {
            name: config.name.as_str().into(),
            keys,
            routes: scoped,
            matcher,
            live,
        }
    }

    /// Whether the rule counts `req`, which took route `route` (named
    /// `route_name`; `None`: no route took it).
    pub fn applies(&self, req: &RequestView<'_>, route: Option<usize>) -> bool {
        if !self.live.enabled() {
            return false;
        }
        if let Some(scope) = &self.routes {
            if !route.is_some_and(|r| scope.contains(&r)) {
                return false;
            }
        }
        self.matcher.as_ref().is_none_or(|m| m.matches(req))
    }

    /// The key this request is counted under, `NAME:PART|PART…` (the
    /// client address as text), into `out`; `false` when a part is missing
    /// (no such header or cookie): the rule does not count the request, as
    /// nginx's `limit_req` skips an empty key.
    pub fn key(&self, req: &RequestView<'_>, route_name: &str, out: &mut Vec<u8>) -> bool {
        out.extend_from_slice(self.name.as_bytes());
        out.push(b':');
        for (i, part) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b'|');
            }
            let bytes = match part {
                Part::ClientIp => {
                    use std::io::Write;
                    let _ = write!(out, "{}", req.client.to_canonical());
                    continue;
                }
                Part::Header(name) => req.headers.get(name),
                Part::Cookie(name) => req.cookie(name),
                Part::Route => Some(route_name.as_bytes()),
            };
            match bytes {
                Some(b) if !b.is_empty() => out.extend_from_slice(b),
                _ => return false,
            }
        }
        true
    }
}
