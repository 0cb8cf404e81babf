//! The loop: every second a sample of the counters; every `interval` a
//! decision, recorded whatever it is; a change is carried out by the
//! supervisor's `scale` under its operation lock (new instances count once
//! healthy; removed ones are drained), in a task of its own so sampling
//! goes on meanwhile.
//!
//! A change of the count the autoscaler did not make (`shoal scale`, or a
//! reload that changed `app.instances`) is a manual scale: the autoscaler
//! keeps its hands off for `autoscale.manual_pause` (docs/AUTOSCALING.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use shoal_config::AutoscaleConfig;
use tokio_util::sync::CancellationToken;

use super::history::{Action, Decision, Event, History, Stats};
use super::policy::{self, Input, Outcome, PolicyState};
use super::signals::{Sample, Signals, Window, BUCKETS};
use super::Autoscaler;
use crate::clock;
use crate::supervisor::procfs::{self, GroupUsage};
use crate::supervisor::{Instance, OpGuard, Progress, Supervisor};

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
/// In-flight counts are a level, not a counter: read ten times per sample
/// so that a steady load does not read as bursts.
const PEEKS_PER_SAMPLE: u32 = 10;

/// The counters of one instance at the last sample.
#[derive(Clone, Copy)]
struct Seen {
    requests: u64,
    latency: [u64; BUCKETS],
}

pub(super) struct Inner {
    policy: PolicyState,
    window: Window,
    pub(super) history: History,
    pub(super) stats: Stats,
    pub(super) signals: Option<Signals>,
    /// The autoscaler's own operation, while it runs.
    pub(super) operation: Option<String>,
    /// The count the autoscaler expects the supervisor to keep: anything
    /// else was set by someone else.
    expected_target: u32,
    last_sample_ms: Option<u64>,
    last_decision_ms: Option<u64>,
    seen: HashMap<usize, Seen>,
    cpu_seen: HashMap<u32, u64>,
}

impl Inner {
    pub(super) fn new(target: u32) -> Inner {
        Inner {
            policy: PolicyState::default(),
            window: Window::default(),
            history: History::default(),
            stats: Stats::default(),
            signals: None,
            operation: None,
            expected_target: target,
            last_sample_ms: None,
            last_decision_ms: None,
            seen: HashMap::new(),
            cpu_seen: HashMap::new(),
        }
    }

    pub(super) fn paused_secs(&self) -> Option<f64> {
        let now = clock::now_ms();
        self.policy
            .paused_until_ms()
            .filter(|u| *u > now)
            .map(|u| (u - now) as f64 / 1000.0)
    }
}

/// An instance, for as long as it lives (its `Arc`'s address).
fn key(i: &Arc<Instance>) -> usize {
    Arc::as_ptr(i) as usize
}

pub(super) async fn run(a: Arc<Autoscaler>, stop: CancellationToken) {
    let mut tick = tokio::time::interval(SAMPLE_EVERY / PEEKS_PER_SAMPLE);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let ticks_per_sec = procfs::ticks_per_sec();
    let (mut peeks, mut in_flight) = (0u32, 0u64);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let spec = a.sup.spec();
        let Some(cfg) = spec.autoscale.clone() else {
            (peeks, in_flight) = (0, 0);
            if let Ok(mut inner) = a.inner.lock() {
                inner.window.clear();
                inner.last_sample_ms = None;
                inner.expected_target = a.sup.target();
            }
            continue;
        };
        in_flight += a
            .sup
            .instances()
            .iter()
            .map(|i| i.endpoint.in_flight() as u64)
            .sum::<u64>();
        peeks += 1;
        if peeks < PEEKS_PER_SAMPLE {
            continue;
        }
        let mean_in_flight = in_flight as f64 / f64::from(peeks);
        (peeks, in_flight) = (0, 0);
        let t = &cfg.targets;
        let usage = if t.cpu.is_some() || t.memory.is_some() {
            tokio::task::spawn_blocking(procfs::usage_by_group)
                .await
                .unwrap_or_default()
        } else {
            HashMap::new()
        };
        let now = clock::now_ms();
        let decide_now = {
            let Ok(mut inner) = a.inner.lock() else {
                return;
            };
            let step = Step {
                usage: &usage,
                ticks_per_sec,
                in_flight: mean_in_flight,
                now,
            };
            sample(&a.sup, &mut inner, &cfg, &step);
            let due = inner
                .last_decision_ms
                .is_none_or(|l| now >= l + cfg.interval.as_millis() as u64);
            if due {
                inner.last_decision_ms = Some(now);
            }
            due
        };
        if decide_now {
            decide(&a, &cfg, now);
        }
    }
}

/// What one sampling step read besides the counters.
struct Step<'a> {
    usage: &'a HashMap<u32, GroupUsage>,
    ticks_per_sec: f64,
    /// The mean of the step's in-flight peeks.
    in_flight: f64,
    now: u64,
}

/// One second's sample into the window.
fn sample(sup: &Supervisor, inner: &mut Inner, cfg: &AutoscaleConfig, step: &Step<'_>) {
    let Step {
        usage,
        ticks_per_sec,
        now,
        ..
    } = *step;
    let instances = sup.instances();
    let secs = inner
        .last_sample_ms
        .map_or(0.0, |l| now.saturating_sub(l) as f64 / 1000.0);
    let mut s = Sample::idle(now, secs, 0);
    s.in_flight = step.in_flight;
    let mut seen = HashMap::with_capacity(instances.len());
    let mut cpu_seen = HashMap::with_capacity(instances.len());
    for inst in &instances {
        let e = &inst.endpoint;
        let hist = e.response_times();
        let mut now_seen = Seen {
            requests: e.requests(),
            latency: [0; BUCKETS],
        };
        for (b, (_, n)) in now_seen.latency.iter_mut().zip(&hist.buckets) {
            *b = *n;
        }
        if let Some(before) = inner.seen.get(&key(inst)) {
            s.requests += now_seen.requests.saturating_sub(before.requests);
            for (i, b) in s.latency.iter_mut().enumerate() {
                *b += now_seen.latency[i].saturating_sub(before.latency[i]);
            }
        }
        seen.insert(key(inst), now_seen);
        if inst.is_retiring() {
            continue;
        }
        if e.in_rotation() {
            s.ready += 1;
        }
        let Some(u) = inst.pid().and_then(|p| usage.get(&p).map(|u| (p, u))) else {
            continue;
        };
        let (pid, u) = u;
        s.rss_bytes += u.rss_bytes;
        s.rss_instances += 1;
        cpu_seen.insert(pid, u.cpu_ticks);
        if let Some(before) = inner.cpu_seen.get(&pid) {
            s.cpu_secs += u.cpu_ticks.saturating_sub(*before) as f64 / ticks_per_sec;
            s.cpu_instances += 1;
        }
    }
    inner.seen = seen;
    inner.cpu_seen = cpu_seen;
    if inner.last_sample_ms.is_some() && secs > 0.0 {
        let ready = s.ready;
        inner.window.push(s, cfg.window.as_millis() as u64);
        inner.signals = Some(inner.window.signals(ready));
    }
    inner.last_sample_ms = Some(now);
}

/// One decision: recorded, and carried out if it changes the count.
fn decide(a: &Arc<Autoscaler>, cfg: &AutoscaleConfig, now: u64) {
    let sup = &a.sup;
    let target = sup.target();
    let Ok(mut inner) = a.inner.lock() else {
        return;
    };
    let signals = inner.signals.clone().unwrap_or_default();
    let input = Input {
        now_ms: now,
        target,
        signals: signals.clone(),
    };
    if inner.operation.is_none() && target != inner.expected_target {
        // Someone else set the count: hands off for a while.
        inner.policy.pause(now, cfg);
        inner.expected_target = target;
        let message = format!(
            "the count was set to {target} outside the autoscaler (shoal scale or a reload); paused for {}",
            shoal_config::units::format_duration(cfg.manual_pause)
        );
        crate::events::emit(
            crate::events::Kind::Autoscale,
            Some(sup.name()),
            None,
            format!("autoscale: {message}"),
        );
        inner.stats.manual(Event::now("manual", message.clone()));
        let outcome = policy::decide(cfg, &mut inner.policy, &input);
        record(
            &mut inner,
            target,
            signals,
            outcome,
            Action::Manual,
            message,
        );
        return;
    }
    let outcome = policy::decide(cfg, &mut inner.policy, &input);
    let busy = inner
        .operation
        .clone()
        .or_else(|| sup.operation())
        .map(|op| {
            format!(
                "no change: an operation is running ({op}); the policy wants {}",
                outcome.stabilized
            )
        });
    if let Some(reason) = busy {
        record(&mut inner, target, signals, outcome, Action::None, reason);
        return;
    }
    let desired = outcome.desired;
    if desired == target {
        tracing::debug!(app = %sup.name(), reason = %outcome.reason, "autoscale");
        let reason = outcome.reason.clone();
        record(&mut inner, target, signals, outcome, Action::None, reason);
        return;
    }
    let name = format!("autoscale to {desired}");
    let op = match sup.try_begin(&name) {
        Ok(op) => op,
        Err(e) => {
            let reason = format!("no change: {e}; the policy wants {desired}");
            record(&mut inner, target, signals, outcome, Action::None, reason);
            return;
        }
    };
    let up = desired > target;
    let reason = outcome.reason.clone();
    crate::events::emit(
        crate::events::Kind::Autoscale,
        Some(sup.name()),
        None,
        format!("autoscale: {target} → {desired}: {reason}"),
    );
    record(
        &mut inner,
        target,
        signals,
        outcome,
        if up {
            Action::ScaleUp
        } else {
            Action::ScaleDown
        },
        reason.clone(),
    );
    inner.policy.started(now, target, desired);
    inner.operation = Some(name);
    inner.expected_target = desired;
    drop(inner);

    tokio::spawn(carry_out(
        a.clone(),
        cfg.clone(),
        op,
        target,
        desired,
        reason,
    ));
}

/// Scale from `target` to `desired` under `op` (the supervisor's lock),
/// then count the outcome. A scale-up whose new instances do not come up is
/// undone: they are stopped, or a crash-looping build would restart for
/// ever; the failure backoff decides when to try again.
async fn carry_out(
    a: Arc<Autoscaler>,
    cfg: AutoscaleConfig,
    op: OpGuard,
    target: u32,
    desired: u32,
    reason: String,
) {
    let up = desired > target;
    let started = Instant::now();
    let log = Progress::log_only();
    let result = a.sup.scale(desired, &log).await;
    let back = match &result {
        Err(_) if up => Some(a.sup.scale(target, &log).await),
        _ => None,
    };
    drop(op);
    let Ok(mut inner) = a.inner.lock() else {
        return;
    };
    inner.operation = None;
    inner.expected_target = a.sup.target();
    inner.policy.finished(clock::now_ms(), result.is_ok(), &cfg);
    match result {
        Ok(_) if up => {
            let secs = started.elapsed().as_secs_f64();
            let message = format!("{target} → {desired} in {secs:.1}s ({reason})");
            inner.stats.scaled_up(secs, Event::now("scale_up", message));
        }
        Ok(_) => {
            let message = format!("{target} → {desired} ({reason})");
            inner.stats.scaled_down(Event::now("scale_down", message));
        }
        Err(e) => {
            let after = match back {
                Some(Ok(_)) => format!("; back to {target}"),
                Some(Err(e)) => format!("; going back to {target} failed too: {e}"),
                None => String::new(),
            };
            let message = format!("{target} → {desired} failed: {e}{after}");
            crate::events::emit(
                crate::events::Kind::Autoscale,
                Some(a.sup.name()),
                None,
                format!("autoscale: {message}"),
            );
            inner.stats.failed(Event::now("failed", message));
        }
    }
}

fn record(
    inner: &mut Inner,
    target: u32,
    signals: Signals,
    o: Outcome,
    action: Action,
    reason: String,
) {
    let desired = if matches!(action, Action::None | Action::Manual) {
        target
    } else {
        o.desired
    };
    inner.history.push(Decision {
        at: super::history::wall(),
        target,
        signals,
        per_signal: o.per_signal,
        recommended: o.recommended,
        stabilized: o.stabilized,
        desired,
        action,
        reason,
    });
}
