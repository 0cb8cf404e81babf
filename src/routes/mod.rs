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
mod matcher;
mod rewrite;
pub mod stats;

use std::sync::Arc;
use std::time::Duration;

use shoal_config::{Config, ProxyConfig, RouteConfig};

pub use fixed::{Fixed, Redirect, Respond};
pub use matcher::Matcher;
pub use rewrite::{HeaderEdits, PathRewrite};

use crate::compress::Compression;
use crate::files::Files;
use crate::proxy::view::RequestView;
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
    /// `routes[].limits.max_body_size`, else the listener's.
    pub max_body_size: Option<u64>,
    pub stats: Arc<RouteStats>,
    /// Response compression (`compress`, the route's or the top level's),
    /// when it is on for this route.
    pub compress: Option<Compression>,
}

impl Route {
    /// Why the native engine hands this request to hyper's path, if it
    /// does: a `files` route, or compression the request takes (its
    /// `Accept-Encoding` names one of the route's codecs). Only hyper's
    /// path serves files and compresses, so neither engine ever sends an
    /// uncompressed body where compression applies.
    pub fn for_hyper(&self, req: &RequestView<'_>) -> Option<&'static str> {
        if matches!(self.action, Action::Files(_)) {
            return Some("static files");
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
}

impl RouteTable {
    /// `pool_index` finds a pool by name (the config was validated, so
    /// every `to` names one). Without routes, one route named `default`
    /// takes every request to the default pool (index 0).
    pub fn new(config: &Config, pool_index: &dyn Fn(&str) -> Option<usize>) -> RouteTable {
        let policy = Policy::new(&config.proxy);
        let mut built = Vec::new();
        let default_route;
        let routes: &[RouteConfig] = if config.routes.is_empty() {
            default_route = [RouteConfig {
                name: Some("default".into()),
                to: config.default_pool().map(str::to_string),
                ..Default::default()
            }];
            &default_route
        } else {
            &config.routes
        };
        let names: Vec<String> = routes
            .iter()
            .enumerate()
            .map(|(i, r)| r.name.clone().unwrap_or_else(|| format!("routes[{i}]")))
            .collect();
        let stats = stats::for_routes(&names.iter().map(String::as_str).collect::<Vec<_>>());
        for ((route, name), stats) in routes.iter().zip(names).zip(stats) {
            let action = match (&route.to, &route.redirect, &route.respond) {
                _ if route.files.is_some() => {
                    Action::Files(Files::new(route.files.as_ref().expect("checked")))
                }
                (_, Some(r), _) => Action::Redirect(Redirect::new(r)),
                (_, _, Some(r)) => Action::Respond(Respond::new(r)),
                (Some(to), _, _) => Action::To(pool_index(to).unwrap_or(0)),
                (None, None, None) => Action::To(0),
            };
            built.push(Route {
                name: name.into(),
                matcher: Matcher::new(&route.matches),
                action,
                path: PathRewrite::new(route),
                request_headers: HeaderEdits::new(&route.request_headers),
                response_headers: HeaderEdits::new(&route.response_headers),
                policy: policy.with(route),
                max_body_size: route.limits.max_body_size.or(config.limits.max_body_size),
                stats,
                compress: config
                    .compress
                    .for_route(route.compress.as_ref())
                    .map(|c| Compression::new(&c)),
            });
        }
        RouteTable {
            routes: built.into(),
        }
    }

    /// The first route whose match takes `req`, by its index.
    pub fn find(&self, req: &RequestView<'_>) -> Option<usize> {
        self.routes.iter().position(|r| r.matcher.matches(req))
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
