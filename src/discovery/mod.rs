//! Discovery: an upstream group's backends found at run time — DNS A/AAAA
//! or SRV records (`dns.rs`, the Kubernetes headless-Service pattern), a
//! file another tool writes (`file.rs`), or the instances' own
//! registrations with heartbeats (`registry.rs`) — and published into the group's
//! endpoint table like any backend: the balancer never knows where a
//! backend came from.
//!
//! One task per group looks again and again. A backend found is added in
//! the `Starting` state, so it takes traffic only once its health check
//! passes; a backend gone is taken out of the table, so no new request
//! goes to it while its in-flight ones finish (they hold their own
//! reference), and its health checks stop. A look that fails — the server
//! does not answer, the name has no records, the file is missing or has a
//! bad line — changes nothing: the last set found keeps serving, with a
//! warning (once per run of failures) and a counter.

mod dns;
mod file;
pub mod registry;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use shoal_config::{Config, DnsDiscovery, FileDiscovery, UpstreamProtocol};
use tokio_util::sync::CancellationToken;

use crate::balance::{Endpoint, EndpointTable};
use crate::health::HealthCell;
use crate::proxy::pool::PoolSettings;

/// Where a group's backends come from.
#[derive(Clone, Debug, PartialEq)]
pub enum Source {
    Dns(DnsDiscovery),
    File(FileDiscovery),
    Registry,
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Dns(_) => "dns",
            Source::File(_) => "file",
            Source::Registry => "registry",
        }
    }

    fn protocol(&self) -> UpstreamProtocol {
        match self {
            Source::Dns(d) => d.protocol,
            Source::File(f) => f.protocol,
            // Registered instances speak HTTP/1.1 (h2c detection is per
            // backend: `protocol` is not part of a registration yet).
            Source::Registry => UpstreamProtocol::Http1,
        }
    }

    /// What the config's groups ask to discover: (group, source).
    pub fn wanted(config: &Config) -> Vec<(String, Source)> {
        let mut out = Vec::new();
        for (name, group) in config.upstreams.groups() {
            if let Some(d) = &group.dns {
                out.push((name.to_string(), Source::Dns(d.clone())));
            }
            if let Some(f) = &group.file {
                out.push((name.to_string(), Source::File(f.clone())));
            }
            if group.registry {
                out.push((name.to_string(), Source::Registry));
            }
        }
        out
    }
}

/// One backend found: its address and weight.
pub type Found = Vec<(SocketAddr, u32)>;

/// What one look gave: the backends, and when to look again at the latest
/// (a DNS answer's TTL), or why it failed.
type Look = Result<(Found, Option<Duration>), String>;

/// A group's discovery as the metrics and the status API see it.
pub struct Shared {
    pub group: String,
    pub source: &'static str,
    /// The backends of the last good look, each with the token that stops
    /// its health checks.
    current: Mutex<Vec<(Arc<Endpoint>, u32, CancellationToken)>>,
    pub looks: AtomicU64,
    pub failures: AtomicU64,
}

impl Shared {
    pub fn endpoints(&self) -> Vec<Arc<Endpoint>> {
        lock(&self.current)
            .iter()
            .map(|(e, ..)| e.clone())
            .collect()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

struct Running {
    source: Source,
    stop: CancellationToken,
    shared: Arc<Shared>,
}

/// Every group's discovery task, kept across config reloads.
#[derive(Default)]
pub struct Discoveries {
    running: Mutex<BTreeMap<(String, &'static str), Running>>,
    /// The registrations of the groups with `registry: true`.
    pub registry: Arc<registry::Registry>,
}

/// What a task needs from the process: where the group's backends go.
pub struct Target {
    pub table: Arc<EndpointTable>,
    pub health: HealthCell,
    pub pool: PoolSettings,
}

impl Discoveries {
    /// Make the tasks match `config`: start the new ones, stop (and empty)
    /// the ones gone or changed, keep the others with their backends.
    pub fn sync(
        &self,
        config: &Config,
        target: &dyn Fn(&str, UpstreamProtocol) -> Target,
        parent: &CancellationToken,
    ) -> Vec<String> {
        let wanted = Source::wanted(config);
        let registry_groups: Vec<String> = wanted
            .iter()
            .filter(|(_, s)| *s == Source::Registry)
            .map(|(g, _)| g.clone())
            .collect();
        self.registry.enable(&registry_groups);
        let mut running = lock(&self.running);
        let mut changes = Vec::new();
        running.retain(|(group, kind), r| {
            let keep = wanted.iter().any(|(g, s)| g == group && *s == r.source);
            if !keep {
                r.stop.cancel();
                changes.push(format!("upstreams.{group}.{kind}: discovery stopped"));
            }
            keep
        });
        for (group, source) in wanted {
            let key = (group.clone(), source.kind());
            if running.contains_key(&key) {
                continue;
            }
            let shared = Arc::new(Shared {
                group: group.clone(),
                source: source.kind(),
                current: Mutex::new(Vec::new()),
                looks: AtomicU64::new(0),
                failures: AtomicU64::new(0),
            });
            let stop = parent.child_token();
            let t = target(&group, source.protocol());
            let finder = match &source {
                Source::Dns(d) => Finder::Dns(Box::new(dns::Dns::new(d.clone()))),
                Source::File(f) => Finder::File(file::File::new(f.clone())),
                Source::Registry => Finder::Registry(self.registry.clone(), group.clone()),
            };
            tokio::spawn(run(source.clone(), finder, t, shared.clone(), stop.clone()));
            changes.push(format!(
                "upstreams.{group}.{}: discovery started",
                source.kind()
            ));
            running.insert(
                key,
                Running {
                    source,
                    stop,
                    shared,
                },
            );
        }
        changes
    }

    /// Every discovery's state, for the metrics and the status API.
    pub fn all(&self) -> Vec<Arc<Shared>> {
        lock(&self.running)
            .values()
            .map(|r| r.shared.clone())
            .collect()
    }
}

/// Look, publish, wait; until `stop`, which empties the group of what this
/// task added.
async fn run(
    source: Source,
    mut finder: Finder,
    target: Target,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let what = format!("upstreams.{}.{}", shared.group, shared.source);
    let (min, max) = match &source {
        Source::Dns(d) => (d.min_interval, d.interval),
        Source::File(f) => (f.interval, f.interval),
        Source::Registry => (registry::TICK, registry::TICK),
    };
    let mut failing = false;
    loop {
        let look = tokio::select! {
            _ = stop.cancelled() => break,
            look = finder.look() => look,
        };
        shared.looks.fetch_add(1, Ordering::Relaxed);
        let wait = match look {
            Ok((found, ttl)) => {
                if failing {
                    tracing::info!(discovery = %what, backends = found.len(), "discovery works again");
                    failing = false;
                }
                publish(&what, &found, &target, &shared, &stop);
                ttl.unwrap_or(max).clamp(min, max)
            }
            Err(why) => {
                shared.failures.fetch_add(1, Ordering::Relaxed);
                if !failing {
                    let kept = lock(&shared.current).len();
                    tracing::warn!(discovery = %what, error = %why, kept, "discovery failed; the last backends found keep serving");
                    failing = true;
                }
                min
            }
        };
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(wait) => {}
        }
    }
    for (endpoint, _, health) in lock(&shared.current).drain(..) {
        health.cancel();
        target.table.remove(endpoint.key());
    }
}

/// Make the group's discovered endpoints match `found`.
fn publish(what: &str, found: &Found, target: &Target, shared: &Shared, stop: &CancellationToken) {
    let mut current = lock(&shared.current);
    current.retain(|(e, weight, health)| {
        let keep = found.contains(&(e.addr, *weight));
        if !keep {
            health.cancel();
            target.table.remove(e.key());
            tracing::info!(discovery = %what, backend = %e.addr, "discovered backend gone: out of rotation, in-flight requests finish");
        }
        keep
    });
    for &(addr, weight) in found {
        if current
            .iter()
            .any(|(e, w, _)| e.addr == addr && *w == weight)
        {
            continue;
        }
        let endpoint = Endpoint::new(format!("http://{addr}"), addr, weight, &target.pool);
        let health = stop.child_token();
        target.table.insert(endpoint.clone());
        crate::health::spawn(endpoint.clone(), target.health.clone(), health.clone());
        tracing::info!(discovery = %what, backend = %addr, weight, "discovered backend: in rotation once its health check passes");
        current.push((endpoint, weight, health));
    }
}

enum Finder {
    Dns(Box<dns::Dns>),
    File(file::File),
    Registry(Arc<registry::Registry>, String),
}

impl Finder {
    async fn look(&mut self) -> Look {
        match self {
            Finder::Dns(d) => d.look().await,
            Finder::File(f) => f.look().await,
            Finder::Registry(r, group) => r.look(group),
        }
    }
}
