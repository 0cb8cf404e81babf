//! The checks of `shoal verify`, in the order they run.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::admin::status::Status;
use crate::supervisor::ProcState;

use super::probe::Probe;
use super::{Check, Outcome, Replica};

pub struct Ask<'a> {
    pub requests: usize,
    pub path: &'a str,
    pub chaos: bool,
    pub sticky_cookies: &'a [String],
}

/// Requests the sticky check sends with the cookie.
const STICKY_REQUESTS: usize = 10;
/// The chaos check's load: clients, and how long.
const CHAOS_CLIENTS: usize = 4;
const CHAOS_FOR: Duration = Duration::from_secs(5);

pub async fn all(replicas: &[Replica], ask: &Ask<'_>) -> Vec<Check> {
    let mut out = Vec::new();
    let mut statuses = Vec::new();
    for r in replicas {
        let label = |what: &str| {
            if replicas.len() > 1 {
                format!("{what} ({})", r.name)
            } else {
                what.to_string()
            }
        };
        match r.admin.get_json::<serde_json::Value>("/health").await {
            Ok(_) => out.push(Check::new(
                label("balancer health"),
                Outcome::Pass,
                "/health answers 200",
            )),
            Err(e) => {
                out.push(Check::new(
                    label("balancer health"),
                    Outcome::Fail,
                    e.to_string(),
                ));
                continue;
            }
        }
        match r.admin.get_json::<serde_json::Value>("/ready").await {
            Ok(v) => out.push(Check::new(
                label("balancer ready"),
                Outcome::Pass,
                format!(
                    "{} of {} backends in rotation",
                    v["healthy_backends"], v["backends"]
                ),
            )),
            Err(e) => out.push(Check::new(
                label("balancer ready"),
                Outcome::Fail,
                e.to_string(),
            )),
        }
        match r.admin.get_json::<Status>("/api/v1/status").await {
            Ok(s) => {
                out.push(backends_healthy(&label("backends healthy"), &s));
                statuses.push(Some(s));
            }
            Err(e) => {
                out.push(Check::new(
                    label("backends healthy"),
                    Outcome::Fail,
                    e.to_string(),
                ));
                statuses.push(None);
            }
        }
    }
    if statuses.iter().all(Option::is_none) {
        return out;
    }
    let mut probes: Vec<Probe> = replicas
        .iter()
        .map(|r| Probe::new(r.proxy, r.proxy.to_string()))
        .collect();
    out.push(spread(replicas, &mut probes, ask).await);
    out.push(sticky(replicas, &mut probes, ask).await);
    out.extend(redis(replicas).await);
    out.push(shared_limits(replicas).await);
    if ask.chaos {
        out.push(chaos(replicas, ask).await);
    }
    out
}

/// Instances leaving (draining, stopping) are not counted.
fn leaving(state: ProcState) -> bool {
    matches!(
        state,
        ProcState::Draining | ProcState::Stopping | ProcState::Stopped
    )
}

fn backends_healthy(name: &str, s: &Status) -> Check {
    let mut bad = Vec::new();
    let mut total = 0;
    for i in s.instances.iter().filter(|i| !leaving(i.state)) {
        total += 1;
        if i.health != "up" {
            let why = i
                .failure
                .clone()
                .or_else(|| i.last_check.as_ref().map(|c| c.detail.clone()))
                .unwrap_or_default();
            bad.push(format!("{} is {} ({why})", i.id, i.health));
        }
    }
    for u in &s.upstreams {
        total += 1;
        if u.health != "up" {
            let why = u
                .last_check
                .as_ref()
                .map(|c| c.detail.clone())
                .unwrap_or_default();
            bad.push(format!("{} is {} ({why})", u.address, u.health));
        }
    }
    if total == 0 {
        Check::new(name, Outcome::Fail, "no instance and no upstream")
    } else if bad.is_empty() {
        Check::new(name, Outcome::Pass, format!("{total} of {total} up"))
    } else {
        Check::new(name, Outcome::Fail, bad.join("; "))
    }
}

/// Requests each backend has taken, over every replica: upstreams by
/// address (the replicas share them), instances by replica and id.
async fn taken(replicas: &[Replica]) -> Result<BTreeMap<String, (u64, bool)>, String> {
    let mut out: BTreeMap<String, (u64, bool)> = BTreeMap::new();
    for r in replicas {
        let s: Status = r
            .admin
            .get_json("/api/v1/status")
            .await
            .map_err(|e| format!("{}: {e}", r.name))?;
        for i in s.instances.iter().filter(|i| !leaving(i.state)) {
            let key = if replicas.len() > 1 {
                format!("{}/{}", r.name, i.id)
            } else {
                i.id.clone()
            };
            let e = out.entry(key).or_default();
            e.0 += i.requests;
            e.1 |= i.health == "up";
        }
        for u in &s.upstreams {
            let e = out.entry(u.address.clone()).or_default();
            e.0 += u.requests;
            e.1 |= u.health == "up";
        }
    }
    Ok(out)
}

fn delta(
    before: &BTreeMap<String, (u64, bool)>,
    after: &BTreeMap<String, (u64, bool)>,
) -> BTreeMap<String, (u64, bool)> {
    after
        .iter()
        .map(|(k, (n, up))| {
            let was = before.get(k).map_or(0, |b| b.0);
            (k.clone(), (n.saturating_sub(was), *up))
        })
        .collect()
}

/// Send `n` requests, round robin over the replicas; the answers' statuses.
async fn send(
    probes: &mut [Probe],
    n: usize,
    path: &str,
    cookie: Option<&str>,
) -> BTreeMap<String, usize> {
    let mut statuses = BTreeMap::new();
    for i in 0..n {
        let p = i % probes.len();
        let key = match probes[p].get(path, cookie).await {
            Ok(got) => got.status.as_u16().to_string(),
            Err(e) => e,
        };
        *statuses.entry(key).or_insert(0) += 1;
    }
    statuses
}

fn failed(statuses: &BTreeMap<String, usize>) -> Vec<String> {
    statuses
        .iter()
        .filter(|(k, _)| !k.starts_with('2') && !k.starts_with('3'))
        .map(|(k, n)| format!("{k} ×{n}"))
        .collect()
}

async fn spread(replicas: &[Replica], probes: &mut [Probe], ask: &Ask<'_>) -> Check {
    let name = format!("traffic spread ({} requests)", ask.requests);
    let before = match taken(replicas).await {
        Ok(b) => b,
        Err(e) => return Check::new(name, Outcome::Fail, e),
    };
    let statuses = send(probes, ask.requests, ask.path, None).await;
    let after = match taken(replicas).await {
        Ok(a) => a,
        Err(e) => return Check::new(name, Outcome::Fail, e),
    };
    let d = delta(&before, &after);
    let shares: Vec<String> = d.iter().map(|(k, (n, _))| format!("{k} {n}")).collect();
    let in_rotation: Vec<u64> = d.values().filter(|(_, up)| *up).map(|(n, _)| *n).collect();
    let (min, max) = (
        in_rotation.iter().copied().min().unwrap_or(0),
        in_rotation.iter().copied().max().unwrap_or(0),
    );
    let mut problems = Vec::new();
    let bad = failed(&statuses);
    if !bad.is_empty() {
        problems.push(format!("failed requests: {}", bad.join(", ")));
    }
    // Each backend in rotation should have had its turn, when there were
    // enough requests for two each.
    if ask.requests >= 2 * in_rotation.len() {
        let idle: Vec<&String> = d
            .iter()
            .filter(|(_, (n, up))| *up && *n == 0)
            .map(|(k, _)| k)
            .collect();
        if !idle.is_empty() {
            problems.push(format!(
                "in rotation but took no request: {}",
                idle.iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    let evenness = if min > 0 {
        format!("; busiest/quietest {:.1}", max as f64 / min as f64)
    } else {
        String::new()
    };
    let detail = format!("{}{evenness}", shares.join(", "));
    if problems.is_empty() {
        Check::new(name, Outcome::Pass, detail)
    } else {
        Check::new(
            name,
            Outcome::Fail,
            format!("{} ({detail})", problems.join("; ")),
        )
    }
}

async fn sticky(replicas: &[Replica], probes: &mut [Probe], ask: &Ask<'_>) -> Check {
    let name = "session persistence";
    if ask.sticky_cookies.is_empty() {
        return Check::new(name, Outcome::Skip, "no sticky sessions in the config");
    }
    let first = match probes[0].get(ask.path, None).await {
        Ok(g) => g,
        Err(e) => return Check::new(name, Outcome::Fail, e),
    };
    let Some(cookie) = first.cookies.iter().find(|c| {
        ask.sticky_cookies
            .iter()
            .any(|n| c.starts_with(&format!("{n}=")))
    }) else {
        return Check::new(
            name,
            Outcome::Fail,
            format!(
                "the first response set no `{}` cookie (status {})",
                ask.sticky_cookies.join("`/`"),
                first.status
            ),
        );
    };
    let before = match taken(replicas).await {
        Ok(b) => b,
        Err(e) => return Check::new(name, Outcome::Fail, e),
    };
    let statuses = send(probes, STICKY_REQUESTS, ask.path, Some(cookie)).await;
    let after = match taken(replicas).await {
        Ok(a) => a,
        Err(e) => return Check::new(name, Outcome::Fail, e),
    };
    let served: Vec<(String, u64)> = delta(&before, &after)
        .into_iter()
        .filter(|(_, (n, _))| *n > 0)
        .map(|(k, (n, _))| (k, n))
        .collect();
    let bad = failed(&statuses);
    let across = if replicas.len() > 1 {
        format!(" across {} replicas", replicas.len())
    } else {
        String::new()
    };
    match served.as_slice() {
        [(backend, n)] if bad.is_empty() => Check::new(
            name,
            Outcome::Pass,
            format!("{n} requests with the cookie{across}, all to {backend}"),
        ),
        _ => Check::new(
            name,
            Outcome::Fail,
            format!(
                "{STICKY_REQUESTS} requests with the cookie{across} went to {} backends ({}){}; is `sticky.key` the same on every replica?",
                served.len(),
                served
                    .iter()
                    .map(|(k, n)| format!("{k} {n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                if bad.is_empty() {
                    String::new()
                } else {
                    format!(", failed: {}", bad.join(", "))
                }
            ),
        ),
    }
}

/// `shoal_state_backend_up{backend="redis"}` on each replica that keeps
/// its state in Redis.
async fn redis(replicas: &[Replica]) -> Vec<Check> {
    let mut out = Vec::new();
    for r in replicas {
        let name = if replicas.len() > 1 {
            format!("redis ({})", r.name)
        } else {
            "redis".to_string()
        };
        let text = match r.admin.send(http::Method::GET, "/metrics", None).await {
            Ok(resp) => {
                use http_body_util::BodyExt;
                match resp.into_body().collect().await {
                    Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                    Err(e) => {
                        out.push(Check::new(name, Outcome::Fail, e.to_string()));
                        continue;
                    }
                }
            }
            Err(e) => {
                out.push(Check::new(name, Outcome::Fail, e.to_string()));
                continue;
            }
        };
        let up = text
            .lines()
            .find_map(|l| l.strip_prefix("shoal_state_backend_up{backend=\"redis\"} "));
        out.push(match up.map(str::trim) {
            None => Check::new(name, Outcome::Skip, "state is in memory (no Redis)"),
            Some("1") => Check::new(name, Outcome::Pass, "Redis answers"),
            Some(_) => Check::new(
                name,
                Outcome::Fail,
                "Redis does not answer (shoal_state_backend_up 0): limits and stickiness fall back to state.on_error",
            ),
        });
    }
    out
}

/// The rate limits each replica enforces, as `(backend, [(name, rate,
/// burst, enabled)])`.
type Limits = (String, Vec<(String, String, u64, bool)>);

async fn limits_of(r: &Replica) -> Result<Limits, String> {
    let v: serde_json::Value = r
        .admin
        .get_json("/api/v1/rate-limits")
        .await
        .map_err(|e| format!("{}: {e}", r.name))?;
    let rules = v["rules"]
        .as_array()
        .map(|rules| {
            rules
                .iter()
                .map(|x| {
                    (
                        x["name"].as_str().unwrap_or_default().to_string(),
                        x["rate"].as_str().unwrap_or_default().to_string(),
                        x["burst"].as_u64().unwrap_or_default(),
                        x["enabled"].as_bool().unwrap_or_default(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    Ok((v["backend"].as_str().unwrap_or_default().to_string(), rules))
}

/// With several replicas, a rate limit is one limit only when every
/// replica counts in the same Redis with the same rules; in memory each
/// replica allows the whole limit on its own.
async fn shared_limits(replicas: &[Replica]) -> Check {
    let name = "rate limits shared";
    let mut all = Vec::new();
    for r in replicas {
        match limits_of(r).await {
            Ok(l) => all.push((r.name.clone(), l)),
            Err(e) => return Check::new(name, Outcome::Fail, e),
        }
    }
    let Some((_, (backend, rules))) = all.first() else {
        return Check::new(name, Outcome::Skip, "no replica answered");
    };
    if rules.is_empty() {
        return Check::new(name, Outcome::Skip, "no rate limits in the config");
    }
    if replicas.len() == 1 {
        return Check::new(
            name,
            Outcome::Skip,
            format!("one replica, counting in {backend}"),
        );
    }
    let in_memory: Vec<&str> = all
        .iter()
        .filter(|(_, (b, _))| b != "redis")
        .map(|(n, _)| n.as_str())
        .collect();
    if !in_memory.is_empty() {
        return Check::new(
            name,
            Outcome::Fail,
            format!(
                "{} count in memory, so each allows the whole limit on its own (up to {}× it in all): set `state.backend: redis` on every replica",
                in_memory.join(", "),
                replicas.len()
            ),
        );
    }
    let differ: Vec<&str> = all
        .iter()
        .filter(|(_, (_, r))| r != rules)
        .map(|(n, _)| n.as_str())
        .collect();
    if !differ.is_empty() {
        return Check::new(
            name,
            Outcome::Fail,
            format!(
                "{} enforce other rules than {} (name, rate, burst or enabled differ)",
                differ.join(", "),
                all[0].0
            ),
        );
    }
    let names: Vec<&str> = rules.iter().map(|r| r.0.as_str()).collect();
    Check::new(
        name,
        Outcome::Pass,
        format!(
            "{} counted in Redis by all {} replicas",
            names.join(", "),
            replicas.len()
        ),
    )
}

/// Kill one instance of the first replica under a bounded load.
async fn chaos(replicas: &[Replica], ask: &Ask<'_>) -> Check {
    let name = "chaos (one instance killed under load)";
    let r = &replicas[0];
    let status: Status = match r.admin.get_json("/api/v1/status").await {
        Ok(s) => s,
        Err(e) => return Check::new(name, Outcome::Fail, e.to_string()),
    };
    let Some((id, pid)) = status
        .instances
        .iter()
        .filter(|i| i.health == "up")
        .find_map(|i| i.pid.map(|p| (i.id.clone(), p)))
    else {
        return Check::new(
            name,
            Outcome::Skip,
            "no local instance in rotation to kill (upstreams are not shoal's to kill)",
        );
    };
    let until = Instant::now() + CHAOS_FOR;
    let clients: Vec<_> = (0..CHAOS_CLIENTS)
        .map(|_| {
            let (proxy, path) = (r.proxy, ask.path.to_string());
            tokio::spawn(async move {
                let mut p = Probe::new(proxy, proxy.to_string());
                let mut statuses = BTreeMap::new();
                while Instant::now() < until {
                    let key = match p.get(&path, None).await {
                        Ok(g) => g.status.as_u16().to_string(),
                        Err(e) => e,
                    };
                    *statuses.entry(key).or_insert(0usize) += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                statuses
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let killed = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let mut all: BTreeMap<String, usize> = BTreeMap::new();
    for c in clients {
        if let Ok(s) = c.await {
            for (k, n) in s {
                *all.entry(k).or_insert(0) += n;
            }
        }
    }
    if let Err(e) = killed {
        return Check::new(
            name,
            Outcome::Fail,
            format!("cannot kill {id} (pid {pid}): {e}"),
        );
    }
    let total: usize = all.values().sum();
    let bad = failed(&all);
    if bad.is_empty() {
        Check::new(
            name,
            Outcome::Pass,
            format!("killed {id} (pid {pid}); {total} requests in {CHAOS_FOR:?}, none failed"),
        )
    } else {
        Check::new(
            name,
            Outcome::Fail,
            format!(
                "killed {id} (pid {pid}); of {total} requests, failed: {}",
                bad.join(", ")
            ),
        )
    }
}
