//! `GET /api/v1/status`: one serde type that the admin API builds and
//! serializes and `shoal status` deserializes and prints. The JSON field
//! names are the API: scripts and tests read them.

use serde::{Deserialize, Serialize};
use shoal_config::{Algorithm, UpstreamProtocol};

use crate::app::State;
use crate::balance::Endpoint;
use crate::supervisor::{self, ProcState, Supervisor};

/// The whole status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub version: String,
    pub uptime_secs: f64,
    pub shutting_down: bool,
    /// The (first) public listener's address, once bound.
    pub listen: Option<String>,
    /// Every public listener.
    #[serde(default)]
    pub listeners: Vec<crate::app::ListenerStatus>,
    pub balance: Algorithm,
    pub retries: u32,
    /// The local app (the first of `apps`); `null` when shoal balances
    /// remote upstreams only.
    pub app: Option<App>,
    /// Every app shoal supervises, by name (one for `app`).
    #[serde(default)]
    pub apps: Vec<App>,
    /// Every app's instances, app by app.
    pub instances: Vec<Instance>,
    pub upstreams: Vec<Upstream>,
    /// Which replica answered: its id (`SHOAL_REPLICA_ID`, else
    /// `HOSTNAME-PID`) and host name.
    #[serde(default)]
    pub replica: ReplicaId,
    /// The other replicas sharing this one's Redis, as they last said
    /// (empty with `state.backend: memory`).
    #[serde(default)]
    pub peers: Vec<crate::app::replica::Peer>,
}

/// `status.replica`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ReplicaId {
    pub id: String,
    pub hostname: String,
    pub pid: u32,
}

/// The supervised app as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    /// `app`, or the app's key in `apps`.
    #[serde(default = "app_name")]
    pub name: String,
    /// Active instances (not those draining or stopping).
    pub instances: usize,
    pub target: u32,
    pub generation: u64,
    /// The generations of the active instances, sorted, each once.
    pub running_generations: Vec<u64>,
    pub last_rollout: Option<Rollout>,
    /// The operation running now (`scale`, `reload`, …).
    pub operation: Option<String>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    /// `app.autoscale`'s state: statistics and the last decision (the
    /// whole history is at `/api/v1/autoscale`); absent when not set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub autoscale: Option<crate::autoscale::Summary>,
}

fn app_name() -> String {
    shoal_config::APP_POOL.to_string()
}

/// How the last rolling reload ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub generation: u64,
    pub ok: bool,
    pub message: String,
}

/// One local instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    pub id: String,
    /// The app it is an instance of.
    #[serde(default = "app_name")]
    pub app: String,
    pub slot: u32,
    pub generation: u64,
    pub pid: Option<u32>,
    pub port: u16,
    pub state: ProcState,
    /// `starting`, `up`, `down`, `stopped` or `ejected`.
    pub health: String,
    pub last_check: Option<Check>,
    pub ejections: u32,
    pub restarts: u32,
    pub in_flight: usize,
    pub requests: u64,
    pub connections_opened: u64,
    pub protocol: UpstreamProtocol,
    pub rss_bytes: u64,
    /// CPU time over the last seconds (`supervisor::usage::WINDOW`), in
    /// percent of one core; `null` while no process runs or before the
    /// second reading. Added after the first release: absent in older
    /// documents, hence `default` on these four.
    #[serde(default)]
    pub cpu_percent: Option<f64>,
    /// Responses per second over the same seconds.
    #[serde(default)]
    pub requests_per_sec: Option<f64>,
    /// 5xx responses per second over the same seconds.
    #[serde(default)]
    pub errors_per_sec: Option<f64>,
    /// The 95th percentile of the backend response time over the same
    /// seconds, in ms; `null` without responses.
    #[serde(default)]
    pub p95_ms: Option<f64>,
    pub uptime_secs: Option<f64>,
    pub last_exit: Option<String>,
    pub failure: Option<String>,
}

/// One remote upstream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Upstream {
    pub id: String,
    pub address: String,
    pub weight: u32,
    /// As [`Instance::health`].
    pub health: String,
    pub last_check: Option<Check>,
    pub ejections: u32,
    pub in_flight: usize,
    pub requests: u64,
    pub connections_opened: u64,
    pub protocol: UpstreamProtocol,
    /// Its upstream group; absent in the flat list.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

/// The latest active check of a backend: passed or not, why, how long it
/// took and when (seconds since the Unix epoch).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Check {
    pub passed: bool,
    pub detail: String,
    pub duration_ms: f64,
    pub at: f64,
}

impl Status {
    /// The status of the running shoal.
    pub fn of(state: &State) -> Status {
        let apps: Vec<App> = state
            .supervisors
            .iter()
            .zip(
                state
                    .autoscalers
                    .iter()
                    .map(Some)
                    .chain(std::iter::repeat(None)),
            )
            .map(|(s, a)| App::of(s, a.and_then(|a| a.summary())))
            .collect();
        let instances = state
            .supervisors
            .iter()
            .flat_map(|s| {
                s.instances()
                    .iter()
                    .map(|i| Instance::of(i, s.name()))
                    .collect::<Vec<_>>()
            })
            .collect();
        Status {
            version: env!("CARGO_PKG_VERSION").to_string(),
            uptime_secs: state.started.elapsed().as_secs_f64(),
            shutting_down: state.is_shutting_down(),
            listen: state.proxy_addr().map(|a| a.to_string()),
            listeners: state.public.status(),
            balance: state
                .proxy
                .routing()
                .pools
                .first()
                .map_or(state.config().balance.algorithm, |p| p.algorithm),
            retries: state.config().proxy.retries,
            app: apps.first().cloned(),
            apps,
            instances,
            upstreams: state
                .upstream_groups()
                .iter()
                .map(|(group, e)| Upstream::of(e, group.clone()))
                .collect(),
            replica: ReplicaId {
                id: state.replica.id.clone(),
                hostname: state.replica.hostname.clone(),
                pid: std::process::id(),
            },
            peers: state.replica.peers(),
        }
    }
}

impl App {
    fn of(s: &Supervisor, autoscale: Option<crate::autoscale::Summary>) -> App {
        let spec = s.spec();
        let active = s.active();
        let mut running: Vec<u64> = active.iter().map(|i| i.generation).collect();
        running.sort_unstable();
        running.dedup();
        App {
            name: s.name().to_string(),
            instances: active.len(),
            target: s.target(),
            generation: s.generation(),
            running_generations: running,
            last_rollout: s.last_rollout().map(|r| Rollout {
                generation: r.generation,
                ok: r.ok,
                message: r.message,
            }),
            operation: s.operation(),
            min: spec.min,
            max: spec.max,
            autoscale,
        }
    }
}

impl Instance {
    fn of(i: &supervisor::Instance, app: &str) -> Instance {
        let e = &i.endpoint;
        let rates = i.rates();
        Instance {
            id: i.id.clone(),
            app: app.to_string(),
            slot: i.slot,
            generation: i.generation,
            pid: i.pid(),
            port: i.port,
            state: i.state(),
            health: e.health_word().health().as_str().to_string(),
            last_check: Check::of(e),
            ejections: e.ejections(),
            restarts: i.restarts(),
            in_flight: e.in_flight(),
            requests: e.requests(),
            connections_opened: e.pool.opened(),
            protocol: e.pool.speaking(),
            rss_bytes: i.rss(),
            cpu_percent: rates.cpu_percent,
            requests_per_sec: rates.requests_per_sec,
            errors_per_sec: rates.errors_per_sec,
            p95_ms: rates.p95_ms,
            uptime_secs: i.uptime().map(|d| d.as_secs_f64()),
            last_exit: i.last_exit(),
            failure: i.failure(),
        }
    }
}

impl Upstream {
    fn of(e: &Endpoint, group: Option<String>) -> Upstream {
        Upstream {
            group,
            id: e.id.clone(),
            address: e.addr.to_string(),
            weight: e.weight,
            health: e.health_word().health().as_str().to_string(),
            last_check: Check::of(e),
            ejections: e.ejections(),
            in_flight: e.in_flight(),
            requests: e.requests(),
            connections_opened: e.pool.opened(),
            protocol: e.pool.speaking(),
        }
    }
}

impl Check {
    fn of(e: &Endpoint) -> Option<Check> {
        e.last_check().map(|c| Check {
            passed: c.passed,
            detail: c.detail,
            duration_ms: c.duration.as_secs_f64() * 1000.0,
            at: c
                .at
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or(0.0),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
        let check = Check {
            passed: false,
            detail: "status 500".into(),
            duration_ms: 1.5,
            at: 1_700_000_000.25,
        };
        let app = App {
            name: "app".into(),
            instances: 2,
            target: 2,
            generation: 2,
            running_generations: vec![1, 2],
            last_rollout: Some(Rollout {
                generation: 2,
                ok: false,
                message: "app-1 did not become healthy".into(),
            }),
            operation: None,
            min: Some(1),
            max: None,
            autoscale: None,
        };
        Status {
            version: "0.1.0".into(),
            uptime_secs: 12.5,
            shutting_down: false,
            listen: Some("127.0.0.1:8080".into()),
            listeners: Vec::new(),
            balance: Algorithm::RoundRobin,
            retries: 2,
            app: Some(app.clone()),
            apps: vec![app],
            instances: vec![Instance {
                id: "app-1".into(),
                app: "app".into(),
                slot: 1,
                generation: 1,
                pid: None,
                port: 40001,
                state: ProcState::Backoff,
                health: "stopped".into(),
                last_check: Some(check.clone()),
                ejections: 0,
                restarts: 3,
                in_flight: 0,
                requests: 10,
                connections_opened: 1,
                protocol: UpstreamProtocol::Http1,
                rss_bytes: 0,
                cpu_percent: Some(12.5),
                requests_per_sec: Some(40.0),
                errors_per_sec: Some(0.0),
                p95_ms: None,
                uptime_secs: None,
                last_exit: Some("exit code 1".into()),
                failure: None,
            }],
            upstreams: vec![Upstream {
                id: "u1".into(),
                address: "10.0.0.1:80".into(),
                weight: 5,
                health: "up".into(),
                last_check: None,
                ejections: 1,
                in_flight: 2,
                requests: 3,
                connections_opened: 4,
                protocol: UpstreamProtocol::H2,
                group: Some("api".into()),
            }],
            replica: ReplicaId {
                id: "one".into(),
                hostname: "host".into(),
                pid: 7,
            },
            peers: vec![crate::app::replica::Peer {
                id: "two".into(),
                hostname: "host".into(),
                pid: 8,
                version: "0.1.0".into(),
                listen: Some("127.0.0.1:8081".into()),
                admin: None,
                seen_ms: 1,
            }],
        }
    }

    #[test]
    fn status_round_trips_through_json() {
        let status = sample();
        let text = serde_json::to_string_pretty(&status).unwrap();
        let back: Status = serde_json::from_str(&text).unwrap();
        assert_eq!(back, status);
    }

    #[test]
    fn a_document_without_the_newer_fields_still_reads() {
        let mut v = serde_json::to_value(sample()).unwrap();
        for key in [
            "cpu_percent",
            "requests_per_sec",
            "errors_per_sec",
            "p95_ms",
        ] {
            v["instances"][0].as_object_mut().unwrap().remove(key);
        }
        let back: Status = serde_json::from_value(v).unwrap();
        assert_eq!(back.instances[0].cpu_percent, None);
        assert_eq!(back.instances[0].requests_per_sec, None);
    }

    #[test]
    fn field_names_are_the_api() {
        let v = serde_json::to_value(sample()).unwrap();
        assert_eq!(v["balance"], "round_robin");
        assert_eq!(v["app"]["last_rollout"]["ok"], false);
        assert_eq!(v["app"]["max"], serde_json::Value::Null);
        assert_eq!(v["instances"][0]["state"], "backoff");
        assert_eq!(v["instances"][0]["pid"], serde_json::Value::Null);
        assert_eq!(v["instances"][0]["cpu_percent"], 12.5);
        assert_eq!(v["instances"][0]["requests_per_sec"], 40.0);
        assert_eq!(v["instances"][0]["p95_ms"], serde_json::Value::Null);
        assert_eq!(v["instances"][0]["last_check"]["detail"], "status 500");
        assert_eq!(v["upstreams"][0]["last_check"], serde_json::Value::Null);
        assert_eq!(v["upstreams"][0]["address"], "10.0.0.1:80");
        assert_eq!(v["upstreams"][0]["protocol"], "h2");
        let no_app = Status {
            app: None,
            ..sample()
        };
        assert_eq!(
            serde_json::to_value(no_app).unwrap()["app"],
            serde_json::Value::Null
        );
    }
}
