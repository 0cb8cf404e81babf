//! The *route* phase: which of the config's `routes` a request takes, and
//! what that route says — the pool it goes to (an app or an upstream
//! group), or a fixed answer (`redirect`, `respond`); the path and header
//! rewrites and the `proxy`/`limits` overrides. Written once, read by both
//! engines through the engine-neutral view of the request
//! (`proxy::view::RequestView`).
//!
//! Without `routes:` in the config, one route takes every request to the
//! default pool, so there is always a route and the engines have one path.

mod fixed;
mod index;
mod matcher;
mod rewrite;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use shoal_config::{Config, ProxyConfig, RouteConfig};

pub use fixed::{Fixed, Redirect, Respond};
pub use matcher::{Listeners, Matcher};
pub use rewrite::{HeaderEdits, PathRewrite};

use crate::cache::RouteCache;
use crate::compress::Compression;
use crate::files::Files;
use crate::proxy::view::RequestView;
use crate::sticky::Sticky;
use stats::RouteStats;

/// The attempt settings a route may change (`routes[].proxy`).
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    pub retries: u32,
    pub replay_body_size: u64,
    pub response_header_timeout: Duration,
    pub read_timeout: Duration,
}

impl Policy {
    pub fn new(proxy: &ProxyConfig) -> Policy {
        Policy {
            retries: proxy.retries,
            replay_body_size: proxy.replay_body_size,
            response_header_timeout: proxy.response_header_timeout,
            read_timeout: proxy.read_timeout,
        }
    }

    fn with(mut self, route: &RouteConfig) -> Policy {
        let p = &route.proxy;
        self.retries = p.retries.unwrap_or(self.retries);
        self.response_header_timeout = p
            .response_header_timeout
            .unwrap_or(self.response_header_timeout);
        self.read_timeout = p.read_timeout.unwrap_or(self.read_timeout);
        self
    }
}

/// What a route does with the requests it takes.
#[derive(Debug)]
pub enum Action {
    /// To the pool at this index of `Routing::pools`.
    To(usize),
    Redirect(Redirect),
    Respond(Respond),
    /// Static files (`files`), served on hyper's path.
    Files(Files),
}

#[derive(Debug)]
pub struct Route {
    /// `routes[].name`, or `routes[N]`.
    pub name: Arc<str>,
    matcher: Matcher,
    pub action: Action,
    pub path: PathRewrite,
    pub request_headers: HeaderEdits,
    pub response_headers: HeaderEdits,
    pub policy: Policy,
    /// `routes[].limits.max_body_size`; `None`: the listener's, as the
    /// connection was accepted with.
    pub max_body_size: Option<u64>,
    pub stats: Arc<RouteStats>,
    /// Response compression (`compress`, the route's or the top level's),
    /// when it is on for this route.
    pub compress: Option<Compression>,
    /// Sticky sessions (`sticky`, the route's or its pool's).
    pub sticky: Option<Arc<Sticky>>,
    /// The response cache (`cache`, the route's or the top level's), when
    /// it is on for this route.
    pub cache: Option<Box<RouteCache>>,
}

impl Route {
    /// Why the native engine hands this request to hyper's path, if it
    /// does: the route caches, or compression the request takes (its `Accept-Encoding` names
    /// one of the route's codecs). Only hyper's path compresses, so
    /// neither engine ever sends an uncompressed body where compression
    /// applies. (A `files` route is served by the native engine unless
    /// its answer streams: `h1::files`.)
    pub fn for_hyper(&self, req: &RequestView<'_>) -> Option<&'static str> {
        if self.cache.is_some() {
            // The cache is written once, on hyper's path.
            return Some("cache");
        }
        let c = self.compress.as_ref()?;
        c.negotiate(req.method, req.headers.get_all("accept-encoding"))
            .map(|_| "compression")
    }
}

/// The config's routes, in order.
#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Box<[Route]>,
    index: index::RouteIndex,
    by_listener: bool,
}

impl RouteTable {
    /// `pool_index` finds a pool by name (the config was validated, so
    /// every `to` names one). Without routes, one route named `default`
    /// takes every request to the default pool.
    pub fn new(config: &Config, pool_index: &dyn Fn(&str) -> Option<usize>) -> RouteTable {
        let policy = Policy::new(&config.proxy);
        let default_route = [RouteConfig {
            name: Some("default".into()),
            to: config.default_pool().map(str::to_string),
            ..Default::default()
        }];
        let lists = config.route_lists();
        // Listeners with routes of their own; the top-level ones are for
        // every other listener.
        let own: Box<[Box<str>]> = lists
            .iter()
            .filter_map(|(_, name, _)| name.as_deref().map(Into::into))
            .collect();
        let mut flat: Vec<(String, &RouteConfig, Listeners)> = Vec::new();
        for (at, listener, list) in &lists {
            let list: &[RouteConfig] = if listener.is_none() && list.is_empty() {
                &default_route
            } else {
                list
            };
            for (i, route) in list.iter().enumerate() {
                let name = route.name.clone().unwrap_or_else(|| format!("{at}[{i}]"));
                let listeners = match listener {
                    Some(l) => Listeners::Only(l.as_str().into()),
                    None if own.is_empty() => Listeners::Any,
                    None => Listeners::Except(own.clone()),
                };
                flat.push((name, route, listeners));
            }
        }
        let names: Vec<&str> = flat.iter().map(|(n, _, _)| n.as_str()).collect();
        let stats = stats::for_routes(&names);
        let index = index::RouteIndex::new(flat.iter().map(|(_, r, _)| &r.matches));
        let mut built = Vec::new();
        for ((name, route, listeners), stats) in flat.into_iter().zip(stats) {
            let action = match (&route.to, &route.redirect, &route.respond) {
                _ if route.files.is_some() => {
                    Action::Files(Files::new(route.files.as_ref().expect("checked")))
                }
                (_, Some(r), _) => Action::Redirect(Redirect::new(r)),
                (_, _, Some(r)) => Action::Respond(Respond::new(r)),
                (Some(to), _, _) => Action::To(pool_index(to).unwrap_or(0)),
                (None, None, None) => Action::To(0),
            };
            let cache = match &action {
                Action::To(_) => {
                    shoal_config::cache_for_route(config.cache.as_ref(), route.cache.as_ref())
                        .map(|c| Box::new(RouteCache::new(&c)))
                }
                _ => None,
            };
            built.push(Route {
                name: name.into(),
                matcher: Matcher::new(&route.matches, listeners),
                action,
                path: PathRewrite::new(route),
                request_headers: HeaderEdits::new(&route.request_headers),
                response_headers: HeaderEdits::new(&route.response_headers),
                policy: policy.with(route),
                max_body_size: route.limits.max_body_size,
                stats,
                compress: config
                    .compress
                    .for_route(route.compress.as_ref())
                    .map(|c| Compression::new(&c)),
                sticky: Sticky::from_config(route.sticky.as_ref()),
                cache,
            });
        }
        RouteTable {
            routes: built.into(),
            index,
            by_listener: !own.is_empty(),
        }
    }

    /// A route without `sticky` of its own takes its pool's
    /// (`pool_sticky`, by the pool's index).
    pub fn inherit_sticky(&mut self, pool_sticky: &dyn Fn(usize) -> Option<Arc<Sticky>>) {
        for route in self.routes.iter_mut() {
            if let (None, Action::To(pool)) = (&route.sticky, &route.action) {
                route.sticky = pool_sticky(*pool);
            }
        }
    }

    /// Some listener has routes of its own: a request's listener matters.
    pub fn by_listener(&self) -> bool {
        self.by_listener
    }

    /// The first route whose match takes `req`, by its index.
    pub fn find(&self, req: &RequestView<'_>) -> Option<usize> {
        if let [only] = &*self.routes {
            // No `routes:` (or one): no index to consult.
            return only.matcher.matches(req).then_some(0);
        }
        let mut lower = [0u8; 255];
        let host = req.host.and_then(|h| {
            let h = matcher::strip_port(h);
            let to = lower.get_mut(..h.len())?;
            to.copy_from_slice(h);
            to.make_ascii_lowercase();
            Some(&*to)
        });
        let path = req.path();
        self.index
            .first(host, path, |i| self.routes[i].matcher.matches(req))
    }

    pub fn get(&self, index: usize) -> &Route {
        &self.routes[index]
    }

    /// The route at `index`, if there is one.
    pub fn get_checked(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    pub fn len(&self) -> usize {
        self.routes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::view::Headers;

    /// The index finds what trying every route in order finds.
    #[test]
    fn the_index_agrees_with_trying_every_route() {
        let yaml = "app: {command: x}\nroutes:\n\
            - {match: {host: a.test, path_prefix: /api}, to: app}\n\
            - {match: {path_prefix: /api/v2}, to: app}\n\
            - {match: {host: '*.test', methods: [POST]}, to: app}\n\
            - {match: {path: /health}, to: app}\n\
            - {match: {host: A.TEST}, to: app}\n\
            - {match: {headers: {x-canary: '1'}}, to: app}\n\
            - {match: {path_prefix: /, methods: [GET]}, to: app}\n\
            - {match: {path_prefix: /static/}, to: app}\n";
        let config = shoal_config::load_str(yaml, "t", &|_| None).unwrap();
        let table = RouteTable::new(&config, &|_| Some(0));
        let hosts: [&[u8]; 4] = [b"a.test", b"A.test:8080", b"b.test", b"other"];
        let targets = [
            "/api",
            "/api/v2/x",
            "/apix",
            "/health?x",
            "/static/a.css",
            "/",
            "/x/y",
        ];
        for host in hosts {
            for canary in [false, true] {
                for method in ["GET", "POST"] {
                    for target in targets {
                        let mut lines = vec![httparse::Header {
                            name: "Host",
                            value: host,
                        }];
                        if canary {
                            lines.push(httparse::Header {
                                name: "X-Canary",
                                value: b"1",
                            });
                        }
                        let view = RequestView {
                            listener: "",
                            host: Some(host),
                            client: [127, 0, 0, 1].into(),
                            method,
                            target,
                            headers: Headers::Lines(&lines),
                        };
                        let linear = table.routes.iter().position(|r| r.matcher.matches(&view));
                        assert_eq!(
                            table.find(&view),
                            linear,
                            "{method} {target} host {:?} canary {canary}",
                            String::from_utf8_lossy(host)
                        );
                    }
                }
            }
        }
    }
}
