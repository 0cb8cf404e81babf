//! `GET /metrics` on the admin listener: everything is read at scrape time
//! from the live state (endpoints, supervisor, the process-wide counters)
//! and written in the OpenMetrics text format by `prometheus-client`, so
//! the data plane keeps plain atomics and never touches a registry.

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use super::counters;
use crate::app::State;
use crate::balance::{Endpoint, RESPONSE_CLASSES};

/// The OpenMetrics text of every metric, as of now.
pub fn render(state: &Arc<State>) -> String {
    let mut registry = Registry::default();
    registry.register_collector(Box::new(Scrape(state.clone())));
    let mut text = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut text, &registry);
    text
}

pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

struct Scrape(Arc<State>);

impl std::fmt::Debug for Scrape {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scrape")
    }
}

type Labels<'a> = Vec<(&'static str, String)>;

/// One metric family: a descriptor, then one sample per label set.
fn family<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels<'static>, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (labels, value) in samples {
        value.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A metric without labels.
fn single<M: EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    value: M,
) -> Result<(), std::fmt::Error> {
    value.encode(encoder.encode_descriptor(name, help, None, kind)?)
}

fn backend(e: &Endpoint) -> Labels<'static> {
    vec![("backend", e.id.clone())]
}

impl Collector for Scrape {
    fn encode(&self, mut enc: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let state = &self.0;
        let endpoints: Vec<_> = state
            .tables
            .all()
            .iter()
            .flat_map(|t| t.snapshot().endpoints.clone())
            .collect();
        backends(&mut enc, &endpoints)?;
        routes(&mut enc)?;
        rate_limits(&mut enc, &state.limiter)?;
        if let Some(store) = crate::cache::store::current() {
            cache(&mut enc, &store)?;
        }
        let (written, dropped) = state.access_logs.counts();
        family(
            &mut enc,
            "shoal_access_log_lines",
            "Access-log lines written, and dropped (queue full, or the file could not be written)",
            MetricType::Counter,
            [("written", written), ("dropped", dropped)]
                .into_iter()
                .map(|(o, n)| (vec![("outcome", o.to_string())], ConstCounter::new(n))),
        )?;
        discovery(&mut enc, &state.discovery)?;
        process(&mut enc)?;
        if !state.supervisors.is_empty() {
            instances(&mut enc, &state.supervisors)?;
            autoscale(&mut enc, &state.autoscalers)?;
        }
        single(
            &mut enc,
            "shoal_uptime_seconds",
            "Seconds since shoal started",
            MetricType::Gauge,
            ConstGauge::new(state.started.elapsed().as_secs_f64()),
        )?;
        Ok(())
    }
}

/// Per discovered group (the config's group names, so a bounded label).
fn discovery(
    enc: &mut DescriptorEncoder<'_>,
    discovery: &crate::discovery::Discoveries,
) -> Result<(), std::fmt::Error> {
    use std::sync::atomic::Ordering::Relaxed;
    let all = discovery.all();
    if all.is_empty() {
        return Ok(());
    }
    let labels = |d: &crate::discovery::Shared| {
        vec![("group", d.group.clone()), ("source", d.source.to_string())]
    };
    family(
        enc,
        "shoal_discovery_backends",
        "Backends the group's last good discovery found",
        MetricType::Gauge,
        all.iter()
            .map(|d| (labels(d), ConstGauge::new(d.endpoints().len() as i64))),
    )?;
    family(
        enc,
        "shoal_discovery_lookups",
        "Discovery lookups (DNS resolutions, file reads), failed or not",
        MetricType::Counter,
        all.iter()
            .map(|d| (labels(d), ConstCounter::new(d.looks.load(Relaxed)))),
    )?;
    family(
        enc,
        "shoal_discovery_failures",
        "Discovery lookups that failed (the last set found kept serving)",
        MetricType::Counter,
        all.iter()
            .map(|d| (labels(d), ConstCounter::new(d.failures.load(Relaxed)))),
    )
}

/// Per route (the config's route names, so a bounded label).
fn routes(enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    family(
        enc,
        "shoal_route_requests",
        "Requests each route took (answered by a backend or by the route itself)",
        MetricType::Counter,
        crate::routes::stats::snapshot()
            .into_iter()
            .map(|(name, n)| (vec![("route", name)], ConstCounter::new(n))),
    )
}

/// The response cache, once a config turned it on (docs/CACHE.md).
fn cache(
    enc: &mut DescriptorEncoder<'_>,
    store: &crate::cache::store::Store,
) -> Result<(), std::fmt::Error> {
    use crate::cache::stats::{requests, OUTCOMES};
    use std::sync::atomic::Ordering::Relaxed;
    family(
        enc,
        "shoal_cache_requests",
        "Requests on routes that cache, by what the cache did (hit, miss, stale, revalidated, bypass)",
        MetricType::Counter,
        OUTCOMES.map(|o| {
            (
                vec![("outcome", o.label().to_string())],
                ConstCounter::new(requests(o)),
            )
        }),
    )?;
    single(
        enc,
        "shoal_cache_stores",
        "Responses stored",
        MetricType::Counter,
        ConstCounter::new(store.counts.stores.load(Relaxed)),
    )?;
    single(
        enc,
        "shoal_cache_evictions",
        "Stored responses evicted (for room, or expired)",
        MetricType::Counter,
        ConstCounter::new(store.counts.evictions.load(Relaxed)),
    )?;
    let tiers = store.tiers();
    family(
        enc,
        "shoal_cache_bytes",
        "Bytes the stored responses take, by tier (memory: Redis's are not counted here)",
        MetricType::Gauge,
        tiers.iter().filter_map(|t| {
            Some((
                vec![("tier", t.name.to_string())],
                ConstGauge::new(t.bytes? as i64),
            ))
        }),
    )?;
    family(
        enc,
        "shoal_cache_entries",
        "Stored responses, by tier (redis: every replica's, not expired)",
        MetricType::Gauge,
        tiers.iter().map(|t| {
            (
                vec![("tier", t.name.to_string())],
                ConstGauge::new(t.entries as i64),
            )
        }),
    )?;
    let Some(l2) = store.l2() else {
        return Ok(());
    };
    let c = &l2.counts;
    family(
        enc,
        "shoal_cache_redis_lookups",
        "Lookups in the shared tier (Redis) after a miss in memory, by result",
        MetricType::Counter,
        [("hit", &c.hits), ("miss", &c.misses)]
            .into_iter()
            .map(|(r, n)| {
                (
                    vec![("result", r.to_string())],
                    ConstCounter::new(n.load(Relaxed)),
                )
            }),
    )?;
    single(
        enc,
        "shoal_cache_redis_stores",
        "Responses this replica wrote to the shared tier (Redis)",
        MetricType::Counter,
        ConstCounter::new(c.stores.load(Relaxed)),
    )?;
    single(
        enc,
        "shoal_cache_redis_written_bytes",
        "Bytes this replica wrote to the shared tier (Redis)",
        MetricType::Counter,
        ConstCounter::new(c.written_bytes.load(Relaxed)),
    )?;
    single(
        enc,
        "shoal_cache_redis_errors",
        "Shared-tier (Redis) calls that failed or timed out (read as a miss, or a store skipped)",
        MetricType::Counter,
        ConstCounter::new(c.errors.load(Relaxed)),
    )
}

/// Per rate-limit rule (the config's names, so a bounded label).
fn rate_limits(
    enc: &mut DescriptorEncoder<'_>,
    limiter: &crate::ratelimit::Limiter,
) -> Result<(), std::fmt::Error> {
    use std::sync::atomic::Ordering::Relaxed;
    let rules = limiter.snapshot();
    family(
        enc,
        "shoal_rate_limit_decisions",
        "Requests each rate-limit rule counted, by outcome (allowed, limited)",
        MetricType::Counter,
        rules.iter().flat_map(|(name, live)| {
            [
                ("allowed", live.allowed.load(Relaxed)),
                ("limited", live.limited.load(Relaxed)),
            ]
            .map(|(outcome, n)| {
                (
                    vec![("rule", name.to_string()), ("outcome", outcome.to_string())],
                    ConstCounter::new(n),
                )
            })
        }),
    )?;
    family(
        enc,
        "shoal_rate_limit_store_errors",
        "Decisions the state store could not make in time (state.on_error decided them)",
        MetricType::Counter,
        rules.iter().map(|(name, live)| {
            (
                vec![("rule", name.to_string())],
                ConstCounter::new(live.errors.load(Relaxed)),
            )
        }),
    )?;
    single(
        enc,
        "shoal_rate_limit_local_keys",
        "Keys the in-process rate-limit counts hold (the memory store, or on_error: local)",
        MetricType::Gauge,
        ConstGauge::new(limiter.local_keys() as i64),
    )?;
    state_backend(enc, limiter)
}

/// The state store: up or not (the memory store always is); with Redis,
/// its failed calls and its round trips.
fn state_backend(
    enc: &mut DescriptorEncoder<'_>,
    limiter: &crate::ratelimit::Limiter,
) -> Result<(), std::fmt::Error> {
    let labels = vec![("backend", limiter.backend().to_string())];
    let redis = limiter.redis();
    family(
        enc,
        "shoal_state_backend_up",
        "1 while the state store answers (Redis: its last call answered in time), else 0",
        MetricType::Gauge,
        std::iter::once((
            labels.clone(),
            ConstGauge::new(i64::from(redis.is_none_or(|r| r.health().up()))),
        )),
    )?;
    let Some(redis) = redis else {
        return Ok(());
    };
    let health = redis.health();
    family(
        enc,
        "shoal_state_backend_errors",
        "Redis calls that failed or timed out (state.on_error decided their requests)",
        MetricType::Counter,
        std::iter::once((
            labels.clone(),
            ConstCounter::new(health.errors.load(std::sync::atomic::Ordering::Relaxed)),
        )),
    )?;
    let s = health.latency();
    let mut metric = enc.encode_descriptor(
        "shoal_state_backend_latency_seconds",
        "Round trip of each Redis call that answered (a decision's script calls, a reset, the run-time changes' poll)",
        None,
        MetricType::Histogram,
    )?;
    metric
        .encode_family(&labels)?
        .encode_histogram::<Vec<(&str, String)>>(s.sum_seconds, s.count, &s.buckets, None)?;
    Ok(())
}

/// Per backend, from the endpoint tables' snapshots.
fn backends(
    enc: &mut DescriptorEncoder<'_>,
    endpoints: &[std::sync::Arc<Endpoint>],
) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter, Gauge};

    family(
        enc,
        "shoal_backend_up",
        "1 when the backend is in rotation, else 0",
        Gauge,
        endpoints
            .iter()
            .map(|e| (backend(e), ConstGauge::new(i64::from(e.in_rotation())))),
    )?;
    family(
        enc,
        "shoal_backend_in_flight",
        "Requests being served by the backend",
        Gauge,
        endpoints
            .iter()
            .map(|e| (backend(e), ConstGauge::new(e.in_flight() as i64))),
    )?;
    family(
        enc,
        "shoal_backend_requests",
        "Requests sent to the backend (each attempt counts)",
        Counter,
        endpoints
            .iter()
            .map(|e| (backend(e), ConstCounter::new(e.requests()))),
    )?;
    family(
        enc,
        "shoal_backend_responses",
        "Responses from the backend by status class",
        Counter,
        endpoints.iter().flat_map(|e| {
            let counts = e.responses();
            RESPONSE_CLASSES.iter().zip(counts).map(move |(class, n)| {
                let mut labels = backend(e);
                labels.push(("code", (*class).to_string()));
                (labels, ConstCounter::new(n))
            })
        }),
    )?;
    {
        let mut metric = enc.encode_descriptor(
            "shoal_backend_response_seconds",
            "Time from sending a request to the backend to its response headers",
            None,
            MetricType::Histogram,
        )?;
        for e in endpoints.iter() {
            let s = e.response_times();
            let labels = backend(e);
            metric
                .encode_family(&labels)?
                .encode_histogram::<Vec<(&str, String)>>(
                    s.sum_seconds,
                    s.count,
                    &s.buckets,
                    None,
                )?;
        }
    }
    family(
        enc,
        "shoal_backend_connections_opened",
        "Connections opened to the backend (few when keep-alive reuse works)",
        Counter,
        endpoints
            .iter()
            .map(|e| (backend(e), ConstCounter::new(e.pool.opened()))),
    )?;
    family(
        enc,
        "shoal_backend_idle_connections",
        "Idle keep-alive connections pooled for the backend",
        Gauge,
        endpoints
            .iter()
            .map(|e| (backend(e), ConstGauge::new(e.pool.idle_count() as i64))),
    )?;
    family(
        enc,
        "shoal_backend_ejections",
        "Passive-health ejections of the backend in a row (0 when it behaves)",
        Gauge,
        endpoints
            .iter()
            .map(|e| (backend(e), ConstGauge::new(i64::from(e.ejections())))),
    )?;
    Ok(())
}

/// Process-wide counters of the data plane.
fn process(enc: &mut DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter, Gauge};

    family(
        enc,
        "shoal_generated_responses",
        "Responses shoal answered itself (errors and refusals), by status",
        Counter,
        counters::generated_counts().into_iter().map(|(status, n)| {
            let code = status.map_or_else(|| "other".to_string(), |s| s.to_string());
            (vec![("code", code)], ConstCounter::new(n))
        }),
    )?;
    single(
        enc,
        "shoal_retries",
        "Requests tried again on another backend",
        Counter,
        ConstCounter::new(counters::retries()),
    )?;
    single(
        enc,
        "shoal_retry_budget_exhausted",
        "Retries not made because the retry budget was spent",
        Counter,
        ConstCounter::new(counters::retry_budget_exhausted_count()),
    )?;
    single(
        enc,
        "shoal_client_connections_accepted",
        "Client connections accepted on the public listener",
        Counter,
        ConstCounter::new(counters::connections_accepted()),
    )?;
    single(
        enc,
        "shoal_client_connections_open",
        "Client connections open now",
        Gauge,
        ConstGauge::new(counters::connections_open()),
    )?;
    single(
        enc,
        "shoal_client_connections_parked",
        "Idle client connections parked without a task of their own (also counted as open)",
        Gauge,
        ConstGauge::new(counters::connections_parked()),
    )?;
    family(
        enc,
        "shoal_proxy_protocol_refused",
        "Connections refused on a proxy_protocol listener, by reason (untrusted peer, invalid header, timeout, closed)",
        Counter,
        crate::proxy::proxy_protocol::refused_counts()
            .into_iter()
            .map(|(reason, n)| (vec![("reason", reason.to_string())], ConstCounter::new(n))),
    )?;
    single(
            enc,
            "shoal_native_handoffs",
            "Client connections the native HTTP/1.1 engine handed to hyper (a request with a body, an upgrade, h2c, ...)",
            Counter,
            ConstCounter::new(counters::native_handoffs()),
        )?;
    Ok(())
}

/// Per app (label `app`) and per supervised instance (label `instance`,
/// `NAME-N`, unique across apps).
fn instances(
    enc: &mut DescriptorEncoder<'_>,
    sups: &[std::sync::Arc<crate::supervisor::Supervisor>],
) -> Result<(), std::fmt::Error> {
    use MetricType::{Counter, Gauge};
    let mut by_state = std::collections::BTreeMap::<(String, &'static str), i64>::new();
    let mut instances = Vec::new();
    for sup in sups {
        for i in sup.instances() {
            *by_state
                .entry((sup.name().to_string(), i.state().as_str()))
                .or_default() += 1;
            instances.push(i);
        }
    }
    family(
        enc,
        "shoal_instances",
        "Supervised instances by app and state",
        Gauge,
        by_state.into_iter().map(|((app, s), n)| {
            (
                vec![("app", app), ("state", s.to_string())],
                ConstGauge::new(n),
            )
        }),
    )?;
    family(
        enc,
        "shoal_instances_target",
        "How many instances shoal is keeping running, by app",
        Gauge,
        sups.iter().map(|sup| {
            (
                vec![("app", sup.name().to_string())],
                ConstGauge::new(i64::from(sup.target())),
            )
        }),
    )?;
    family(
        enc,
        "shoal_instance_restarts",
        "Restarts of each instance slot",
        Counter,
        instances.iter().map(|i| {
            (
                vec![("instance", i.id.clone())],
                ConstCounter::new(u64::from(i.restarts())),
            )
        }),
    )?;
    family(
        enc,
        "shoal_instance_resident_memory_bytes",
        "Resident memory of each instance's process group",
        Gauge,
        instances.iter().map(|i| {
            (
                vec![("instance", i.id.clone())],
                ConstGauge::new(i.rss() as i64),
            )
        }),
    )?;
    Ok(())
}

/// The autoscalers' statistics, for the apps that have one set.
fn autoscale(
    enc: &mut DescriptorEncoder<'_>,
    scalers: &[std::sync::Arc<crate::autoscale::Autoscaler>],
) -> Result<(), std::fmt::Error> {
    let stats: Vec<(String, crate::autoscale::Stats)> = scalers
        .iter()
        .filter_map(|a| Some((a.app().to_string(), a.summary()?.stats)))
        .collect();
    if stats.is_empty() {
        return Ok(());
    }
    family(
        enc,
        "shoal_autoscale_operations",
        "The autoscaler's operations by app and outcome (scale_up, scale_down, failed), and counts set outside it (manual)",
        MetricType::Counter,
        stats.iter().flat_map(|(app, s)| {
            [
                ("scale_up", s.scale_ups),
                ("scale_down", s.scale_downs),
                ("failed", s.failed_ops),
                ("manual", s.manual_scales),
            ]
            .map(|(outcome, n)| {
                (
                    vec![("app", app.clone()), ("outcome", outcome.to_string())],
                    ConstCounter::new(n),
                )
            })
        }),
    )
}
