//! One rule of `rate_limits:` compiled for a config: where it applies
//! (routes, `match`) and what it counts by, read from the engine-neutral
//! view of a request, so both engines ask the same questions.

use std::net::IpAddr;
use std::sync::Arc;

use shoal_config::{LimitKey, RateLimitConfig};

use super::keybuf::KeyBuf;
use super::settings::Live;
use crate::balance::RequestView;
use crate::routes::{Listeners, Matcher, RouteTable};

/// One rule, as a config's requests meet it.
pub struct Rule {
    pub name: Arc<str>,
    /// `NAME:`, the start of every key.
    prefix: Box<[u8]>,
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
            prefix: format!("{}:", config.name).into_bytes().into(),
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
    /// client address as its 4 or 16 bytes), into `out`; `false` when a
    /// part is missing (no such header or cookie): the rule does not count
    /// the request, as nginx's `limit_req` skips an empty key.
    pub fn key(&self, req: &RequestView<'_>, route_name: &str, out: &mut KeyBuf) -> bool {
        out.extend_from_slice(&self.prefix);
        for (i, part) in self.keys.iter().enumerate() {
            if i > 0 {
                out.push(b'|');
            }
            let bytes = match part {
                Part::ClientIp => {
                    match req.client.to_canonical() {
                        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
                    }
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

    /// The key of `identity` as the admin API names it: the parts as text
    /// (`10.0.0.7`, a header's value, a route's name), joined by `|`.
    /// `Err`: why it is not one of this rule's keys.
    pub fn key_of(&self, identity: &str) -> Result<Vec<u8>, String> {
        let texts: Vec<&str> = if self.keys.len() == 1 {
            vec![identity]
        } else {
            identity.splitn(self.keys.len(), '|').collect()
        };
        if texts.len() != self.keys.len() {
            return Err(format!(
                "rule `{}` counts by {} parts; join them with `|`",
                self.name,
                self.keys.len()
            ));
        }
        let mut out = Vec::new();
        out.extend_from_slice(self.name.as_bytes());
        out.push(b':');
        for (i, (part, text)) in self.keys.iter().zip(texts).enumerate() {
            if i > 0 {
                out.push(b'|');
            }
            match part {
                Part::ClientIp => match text.parse::<IpAddr>() {
                    Ok(ip) => match ip.to_canonical() {
                        IpAddr::V4(a) => out.extend_from_slice(&a.octets()),
                        IpAddr::V6(a) => out.extend_from_slice(&a.octets()),
                    },
                    Err(_) => return Err(format!("`{text}` is not an IP address")),
                },
                _ => out.extend_from_slice(text.as_bytes()),
            }
        }
        Ok(out)
    }
}
