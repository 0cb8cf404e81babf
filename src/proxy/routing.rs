//! The *route* settings a request is served under: everything `balance`,
//! `proxy` and `trusted_proxies` decide, behind one `ArcSwap` in the proxy
//! so a config reload swaps it while requests are in flight; and the
//! per-response rules both engines apply (passive health, `fail_statuses`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_config::{Algorithm, BalanceConfig, Engine, ProxyConfig};

use super::error::ProxyError;
use super::headers::TrustedProxies;
use crate::balance::{
    panic, slow_start, Balance, Endpoint, EndpointSet, EndpointTable, PassiveHealth, Tried,
};

/// The settings a config reload may swap while requests are in flight.
pub struct Routing {
    pub trusted: TrustedProxies,
    pub retry_budget_percent: u32,
    pub retry_budget_min: u32,
    pub retry_budget_window: Duration,
    pub balancer: Box<dyn Balance>,
    pub algorithm: Algorithm,
    pub retries: u32,
    pub replay_body_size: u64,
    pub response_header_timeout: Duration,
    pub read_timeout: Duration,
    pub passive: PassiveHealth,
    pub fail_statuses: Vec<u16>,
    /// `proxy.slow_start`, or zero for the hashing algorithms (see
    /// `balance::slow_start`).
    pub slow_start: Duration,
    pub panic_mode: bool,
    pub tunnel_idle_timeout: Duration,
    /// `proxy.engine`, read per accepted connection.
    pub engine: Engine,
}

impl Routing {
    pub fn new(balance: &BalanceConfig, proxy: &ProxyConfig) -> Routing {
        Routing {
            trusted: TrustedProxies::default(),
            retry_budget_percent: proxy.retry_budget_percent,
            retry_budget_min: proxy.retry_budget_min,
            retry_budget_window: proxy.retry_budget_window,
            balancer: crate::balance::from_config(balance),
            algorithm: balance.algorithm,
            retries: proxy.retries,
            replay_body_size: proxy.replay_body_size,
            response_header_timeout: proxy.response_header_timeout,
            read_timeout: proxy.read_timeout,
            passive: PassiveHealth {
                max_fails: proxy.max_fails,
                fail_timeout: proxy.fail_timeout,
                max_ejection_time: proxy.max_ejection_time,
            },
            fail_statuses: proxy.fail_statuses.clone(),
            slow_start: match balance.algorithm {
                Algorithm::Hash | Algorithm::IpHash => Duration::ZERO,
                _ => proxy.slow_start,
            },
            panic_mode: balance.panic_mode,
            tunnel_idle_timeout: proxy.tunnel_idle_timeout,
            engine: proxy.engine,
        }
    }

    /// Everything a config decides: `balance`, `proxy` and
    /// `trusted_proxies`. Startup and every reload build it here, so a
    /// reload cannot drop a part of it.
    pub fn for_config(config: &shoal_config::Config) -> Routing {
        Routing::new(&config.balance, &config.proxy)
            .with_trusted(TrustedProxies::new(&config.trusted_proxies))
    }

    /// The peers whose forwarding headers are believed (`trusted_proxies`).
    pub fn with_trusted(mut self, trusted: TrustedProxies) -> Routing {
        self.trusted = trusted;
        self
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
            tracing::warn!(backend = %set.endpoints[i].id, "no backend in rotation; panic mode sends requests to failing ones");
        }
        Some(i)
    }
}
