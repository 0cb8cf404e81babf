//! The settings a request is served under: everything `balance`, `proxy`,
//! `trusted_proxies`, `routes` and the upstream groups decide (the pools), behind one `ArcSwap` in the proxy
//! so a config reload swaps it while requests are in flight; and the
//! per-response rules both engines apply (passive health, `fail_statuses`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_config::{Algorithm, BalanceConfig, Engine, ProxyConfig, TraceContext};

use crate::access_log::AccessLog;
use crate::ratelimit::{Limiter, RateLimits};
use crate::routes::{Action, Policy, RouteTable};
use crate::sticky::Sticky;

use super::error::ProxyError;
use super::headers::TrustedProxies;
use crate::balance::{
    panic, slow_start, Balance, Endpoint, EndpointSet, EndpointTable, PassiveHealth, Tried,
};

/// One pool of backends requests are balanced over: the default pool
/// (`app`'s instances and a flat `upstreams` list) or a named upstream
/// group, with its own endpoint table and balancer.
pub struct Pool {
    /// `app`, `upstreams`, or the group's name.
    pub name: Arc<str>,
    pub table: Arc<EndpointTable>,
    pub balancer: Box<dyn Balance>,
    pub algorithm: Algorithm,
    /// `proxy.slow_start`, or zero for the hashing algorithms (see
    /// `balance::slow_start`).
    pub slow_start: Duration,
    pub panic_mode: bool,
    /// `sticky` of the app or upstream group (routes may have their own).
    pub sticky: Option<Arc<Sticky>>,
}

impl Pool {
    pub fn new(
        name: &str,
        table: Arc<EndpointTable>,
        balance: &BalanceConfig,
        proxy: &ProxyConfig,
    ) -> Pool {
        Pool {
            name: name.into(),
            table,
            balancer: crate::balance::from_config(balance),
            algorithm: balance.algorithm,
            slow_start: match balance.algorithm {
                Algorithm::Hash | Algorithm::IpHash => Duration::ZERO,
                _ => proxy.slow_start,
            },
            panic_mode: balance.panic_mode,
            sticky: None,
        }
    }

    /// The endpoint for the next attempt: the algorithm's pick with slow
    /// start applied, or, with none in rotation and `panic_mode` on, any
    /// running endpoint not tried yet.
    pub(super) fn pick(&self, set: &EndpointSet, tried: &Tried, key: Option<u64>) -> Option<usize> {
        if let Some(i) = slow_start::pick(&*self.balancer, set, tried, key, self.slow_start) {
            return Some(i);
        }
        if !self.panic_mode || set.any_in_rotation() {
            return None;
        }
        let i = panic::pick(set, tried)?;
        if panic::warning_due() {
            tracing::warn!(pool = %self.name, backend = %set.endpoints[i].id, "no backend in rotation; panic mode sends requests to failing ones");
        }
        Some(i)
    }
}

/// Where one request goes: its pool, and the attempt settings of its route.
#[derive(Clone, Copy)]
pub struct Target<'a> {
    pub pool: &'a Pool,
    pub policy: &'a Policy,
}

/// The settings a config reload may swap while requests are in flight.
pub struct Routing {
    pub trusted: TrustedProxies,
    pub retry_budget_percent: u32,
    pub retry_budget_min: u32,
    pub retry_budget_window: Duration,
    pub passive: PassiveHealth,
    pub fail_statuses: Vec<u16>,
    pub tunnel_idle_timeout: Duration,
    /// `proxy.engine`, read per accepted connection.
    pub engine: Engine,
    /// `proxy.trace_context`.
    pub trace: TraceContext,
    pub routes: RouteTable,
    /// `rate_limits:`, the *admit* phase's rules.
    pub limits: RateLimits,
    /// The *log* phase's access log, when it is on.
    pub access_log: Option<Arc<AccessLog>>,
    /// The pools `routes` send requests to, by index.
    pub pools: Vec<Pool>,
}

impl Routing {
    /// Everything a config decides: `balance`, `proxy`, `trusted_proxies`,
    /// `routes` and the pools (each over the endpoint table `table_of`
    /// gives for its name). Startup and every reload build it here, so a
    /// reload cannot drop a part of it.
    pub fn for_config(
        config: &shoal_config::Config,
        table_of: &dyn Fn(&str) -> Arc<EndpointTable>,
        limiter: &Arc<Limiter>,
    ) -> Routing {
        let proxy = &config.proxy;
        let pools = config
            .pool_names()
            .into_iter()
            .map(|name| {
                let group = config.upstreams.groups().find(|(n, _)| *n == name);
                let balance = group
                    .and_then(|(_, g)| g.balance.as_ref())
                    .unwrap_or(&config.balance);
                let app = config.all_apps().into_iter().find(|(n, _)| *n == name);
                let sticky = app
                    .and_then(|(_, a)| a.sticky.as_ref())
                    .or_else(|| group.and_then(|(_, g)| g.sticky.as_ref()));
                let mut pool = Pool::new(name, table_of(name), balance, proxy);
                pool.sticky = Sticky::from_config(sticky);
                pool
            })
            .collect();
        Routing::with_pools(config, pools, limiter)
    }

    /// One pool over `table` that every request goes to (the config's
    /// routes and groups aside): for tests and the fuzz targets.
    pub fn single(table: Arc<EndpointTable>, config: &shoal_config::Config) -> Routing {
        let mut config = config.clone();
        config.routes.clear();
        let pool = Pool::new("upstreams", table, &config.balance, &config.proxy);
        let limiter = Arc::new(Limiter::new(&config.state));
        Routing::with_pools(&config, vec![pool], &limiter)
    }

    fn with_pools(
        config: &shoal_config::Config,
        pools: Vec<Pool>,
        limiter: &Arc<Limiter>,
    ) -> Routing {
        let proxy = &config.proxy;
        let mut routes =
            RouteTable::new(config, &|name| pools.iter().position(|p| &*p.name == name));
        routes.inherit_sticky(&|i| pools.get(i).and_then(|p| p.sticky.clone()));
        if let Some(store) = crate::cache::store::current() {
            // The shared tier is the state backend's Redis (`cache.redis`).
            let redis = config.cache.as_ref().and_then(|c| c.redis);
            store.attach(redis.and_then(|r| limiter.redis().map(|conn| (conn, r))));
        }
        let limits = RateLimits::new(&config.rate_limits, &routes, limiter.clone());
        Routing {
            trusted: TrustedProxies::new(&config.trusted_proxies),
            retry_budget_percent: proxy.retry_budget_percent,
            retry_budget_min: proxy.retry_budget_min,
            retry_budget_window: proxy.retry_budget_window,
            passive: PassiveHealth {
                max_fails: proxy.max_fails,
                fail_timeout: proxy.fail_timeout,
                max_ejection_time: proxy.max_ejection_time,
            },
            fail_statuses: proxy.fail_statuses.clone(),
            tunnel_idle_timeout: proxy.tunnel_idle_timeout,
            engine: proxy.engine,
            trace: proxy.trace_context,
            routes,
            limits,
            access_log: None,
            pools,
        }
    }

    /// Where the route at `index` sends requests, or `None` for a route
    /// that answers itself.
    pub fn target(&self, index: usize) -> Option<Target<'_>> {
        let route = self.routes.get(index);
        match route.action {
            Action::To(pool) => Some(Target {
                pool: self.pools.get(pool)?,
                policy: &route.policy,
            }),
            _ => None,
        }
    }

    /// Passive health: count a failed request against `endpoint`. As nginx
    /// never marks a lone server unavailable, the last endpoint in rotation
    /// is never ejected: a struggling backend beats a 503 for everyone.
    pub(super) fn failed(&self, table: &EndpointTable, endpoint: &Arc<Endpoint>, why: &ProxyError) {
        let others = table
            .snapshot()
            .endpoints
            .iter()
            .any(|e| e.key() != endpoint.key() && e.in_rotation());
        if !others {
            return;
        }
        if let Some(ejected_for) = endpoint.record_failure(&self.passive) {
            tracing::warn!(
                backend = %endpoint.id, error = %why, max_fails = self.passive.max_fails,
                ejections = endpoint.ejections(), ejected_for = ?ejected_for,
                "out of rotation after failed requests (passive health)"
            );
            // Once per ejection, not per request.
            crate::events::emit(
                crate::events::Kind::Ejected,
                None,
                Some(&endpoint.id),
                format!(
                    "{} ejected for {ejected_for:?} after failed requests ({why})",
                    endpoint.id
                ),
            );
        }
    }

    /// A response from `endpoint` to a request sent at `sent`: its latency
    /// and status class on the endpoint, and a failure for passive health
    /// when its status is in `proxy.fail_statuses`.
    pub(super) fn observe(
        &self,
        table: &EndpointTable,
        endpoint: &Arc<Endpoint>,
        status: u16,
        sent: Instant,
    ) {
        endpoint.record_response(status, sent);
        if !self.fail_statuses.is_empty() && self.fail_statuses.contains(&status) {
            let why = ProxyError::Status {
                backend: endpoint.id.clone(),
                status,
            };
            self.failed(table, endpoint, &why);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each pool's `sticky` (an app of `apps`, a group) reaches the routes
    /// to it; a route's own replaces it; a pool without one has none.
    #[test]
    fn sticky_comes_from_the_route_or_its_pool() {
        let key = "key: 0123456789abcdef";
        let yaml = format!(
            "apps:\n  a: {{command: [x], sticky: {{{key}, cookie: ca}}}}\n  b: {{command: [x]}}\n\
             upstreams:\n  g: {{servers: [{{url: 'http://h:1'}}], sticky: {{{key}, cookie: cg}}}}\n\
             routes:\n\
             \x20 - {{match: {{path_prefix: /a}}, to: a}}\n\
             \x20 - {{match: {{path_prefix: /b}}, to: b}}\n\
             \x20 - {{match: {{path_prefix: /g}}, to: g}}\n\
             \x20 - {{match: {{path_prefix: /r}}, to: a, sticky: {{{key}, cookie: cr}}}}\n\
             \x20 - {{to: b, sticky: {{{key}}}}}\n"
        );
        let config = shoal_config::load_str(&yaml, "test", &|_| None).unwrap();
        let table = Arc::new(EndpointTable::new());
        let limiter = std::sync::Arc::new(crate::ratelimit::Limiter::new(&config.state));
        let routing = Routing::for_config(&config, &|_| table.clone(), &limiter);
        let cookies: Vec<Option<&str>> = (0..5)
            .map(|i| routing.routes.get(i).sticky.as_deref().map(Sticky::cookie))
            .collect();
        assert_eq!(
            cookies,
            [
                Some("ca"),
                None,
                Some("cg"),
                Some("cr"),
                Some("shoal_sticky")
            ]
        );
    }
}
