//! The scaling policy as pure functions of the config, the signals and the
//! time (passed in, on the policy clock): no I/O, no sleeping, so tests and
//! the simulation drive it tick by tick.
//!
//! One decision:
//! 1. each signal with a target asks for a count: `ceil(ready × value ÷
//!    target)` outside the tolerance (proportional), or `target ± step`
//!    past a threshold (threshold); the highest ask wins, clamped to
//!    `min..=max`;
//! 2. stabilization (HPA's): the lowest recommendation of the up window and
//!    the highest of the down window bound the move;
//! 3. a manual-scale pause, the cooldown and a failure backoff hold it;
//! 4. step limits cap it: at most `max_instances` or `max_percent` % of the
//!    count at the period's start added (removed) per `period`.

use std::collections::VecDeque;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shoal_config::{AutoscaleConfig, AutoscaleMode};

use super::signals::Signals;

/// What one decision is made on.
#[derive(Debug, Clone)]
pub struct Input {
    /// The policy clock, ms.
    pub now_ms: u64,
    /// The count the supervisor keeps now (`shoal status`'s target).
    pub target: u32,
    pub signals: Signals,
}

/// One signal's ask.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Desire {
    /// `cpu`, `memory`, `rps_per_instance`, `p95_latency` or `in_flight_per_instance`.
    pub signal: String,
    /// In the target's unit (percent, bytes, requests/s, ms, requests).
    pub value: f64,
    pub target: f64,
    /// `value ÷ target`.
    pub ratio: f64,
    pub desired: u32,
}

/// What the policy decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outcome {
    pub per_signal: Vec<Desire>,
    /// The highest ask, within `min..=max` (the target when no signal has data).
    pub recommended: u32,
    /// After the stabilization windows.
    pub stabilized: u32,
    /// What to scale to now (the target: no change).
    pub desired: u32,
    pub reason: String,
}

/// What the policy remembers between decisions.
#[derive(Debug, Default, Clone)]
pub struct PolicyState {
    /// `(at, recommended)`, as long as the longer stabilization window.
    recommendations: VecDeque<(u64, u32)>,
    /// `(at, change)` of each operation started, for the step limits.
    changes: VecDeque<(u64, i64)>,
    /// When the last operation finished (cooldown).
    settled_ms: Option<u64>,
    paused_until_ms: Option<u64>,
    no_up_until_ms: Option<u64>,
    failures_in_row: u32,
}

const DAY_MS: u64 = 86_400_000;

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

impl PolicyState {
    /// An operation from `from` to `to` instances started.
    pub fn started(&mut self, now_ms: u64, from: u32, to: u32) {
        self.changes
            .push_back((now_ms, i64::from(to) - i64::from(from)));
        while self
            .changes
            .front()
            .is_some_and(|(at, _)| at + DAY_MS < now_ms)
        {
            self.changes.pop_front();
        }
    }

    /// The operation ended (new instances healthy, old ones drained), or
    /// failed: then no scale-up for `failure_backoff`, doubled for each
    /// failure in a row, at most 16×.
    pub fn finished(&mut self, now_ms: u64, ok: bool, cfg: &AutoscaleConfig) {
        self.settled_ms = Some(now_ms);
        if ok {
            self.failures_in_row = 0;
            return;
        }
        self.failures_in_row += 1;
        let factor = 1u64 << (self.failures_in_row - 1).min(4);
        self.no_up_until_ms =
            Some(now_ms + ms(cfg.behavior.failure_backoff).saturating_mul(factor));
    }

    /// A manual scale: hands off until `now + manual_pause`.
    pub fn pause(&mut self, now_ms: u64, cfg: &AutoscaleConfig) {
        self.paused_until_ms = Some(now_ms + ms(cfg.manual_pause));
        // What was recommended for the old count says nothing of the new.
        self.recommendations.clear();
    }

    pub fn paused_until_ms(&self) -> Option<u64> {
        self.paused_until_ms
    }

    pub fn no_up_until_ms(&self) -> Option<u64> {
        self.no_up_until_ms
    }
}

/// Each signal with a target and data, with its value in the target's unit.
fn readings(cfg: &AutoscaleConfig, s: &Signals) -> Vec<(&'static str, f64, f64)> {
    let t = &cfg.targets;
    let mut out = Vec::new();
    let mut add = |name, value: Option<f64>, target: Option<f64>| {
        if let (Some(v), Some(t)) = (value, target) {
            out.push((name, v, t));
        }
    };
    add("cpu", s.cpu_percent, t.cpu);
    add("memory", s.memory_bytes, t.memory.map(|m| m as f64));
    add("rps_per_instance", s.rps_per_instance, t.rps_per_instance);
    add(
        "p95_latency",
        s.p95_latency_ms,
        t.p95_latency.map(|d| d.as_secs_f64() * 1000.0),
    );
    add(
        "in_flight_per_instance",
        s.in_flight_per_instance,
        t.in_flight_per_instance,
    );
    out
}

/// One signal's ask in `cfg.mode`; `ready` is the count in rotation, whose
/// load the value measures, `target` the count kept now.
fn ask(cfg: &AutoscaleConfig, ratio: f64, ready: u32, target: u32) -> u32 {
    match cfg.mode {
        AutoscaleMode::Proportional => {
            if (ratio - 1.0).abs() <= cfg.tolerance {
                target
            } else {
                // A hair under so that 3 × 20/20 is 3, not 4.
                let want = (f64::from(ready) * ratio - 1e-9).ceil();
                want.clamp(0.0, f64::from(u32::MAX)) as u32
            }
        }
        AutoscaleMode::Threshold => {
            if ratio >= cfg.scale_up_threshold {
                target.saturating_add(cfg.step)
            } else if ratio < cfg.scale_down_threshold {
                target.saturating_sub(cfg.step)
            } else {
                target
            }
        }
    }
}

pub fn show(signal: &str, v: f64) -> String {
    match signal {
        "cpu" => format!("{v:.1}%"),
        "memory" => format!("{:.0}MiB", v / (1024.0 * 1024.0)),
        "rps_per_instance" => format!("{v:.1}/s"),
        "p95_latency" => format!("{v:.0}ms"),
        _ => format!("{v:.2}"),
    }
}

fn secs(ms: u64) -> String {
    shoal_config::units::format_duration(Duration::from_millis(ms))
}

/// Decide, and remember the recommendation for the windows.
pub fn decide(cfg: &AutoscaleConfig, st: &mut PolicyState, input: &Input) -> Outcome {
    let now = input.now_ms;
    let target = input.target;
    let ready = input.signals.ready;
    let (min, max) = (cfg.min, cfg.max.max(cfg.min));

    let per_signal: Vec<Desire> = if ready == 0 {
        Vec::new()
    } else {
        readings(cfg, &input.signals)
            .into_iter()
            .map(|(name, value, t)| {
                let ratio = value / t;
                Desire {
                    signal: name.to_string(),
                    value,
                    target: t,
                    ratio,
                    desired: ask(cfg, ratio, ready, target),
                }
            })
            .collect()
    };
    let leader = per_signal.iter().max_by_key(|d| d.desired);
    let asked = leader.map_or(target, |d| d.desired);
    let recommended = asked.clamp(min, max);

    // Stabilization (HPA): up to the lowest recommendation of the up
    // window, down to the highest of the down window.
    let up = cfg.behavior.scale_up.up();
    let down = cfg.behavior.scale_down.down();
    st.recommendations.push_back((now, recommended));
    let keep = ms(up.stabilization.max(down.stabilization));
    while st
        .recommendations
        .front()
        .is_some_and(|(at, _)| at + keep < now)
    {
        st.recommendations.pop_front();
    }
    let within = |w: Duration| {
        let w = ms(w);
        st.recommendations
            .iter()
            .filter(move |(at, _)| at + w >= now)
            .map(|(_, r)| *r)
    };
    let up_rec = within(up.stabilization).min().unwrap_or(recommended);
    let down_rec = within(down.stabilization).max().unwrap_or(recommended);
    let mut stabilized = target;
    if stabilized < up_rec {
        stabilized = up_rec;
    }
    if stabilized > down_rec {
        stabilized = down_rec;
    }

    let why_signal = || match leader {
        Some(d) => format!(
            "{} {} vs target {} wants {}",
            d.signal,
            show(&d.signal, d.value),
            show(&d.signal, d.target),
            d.desired
        ),
        None => "no signal has data".to_string(),
    };
    let hold = |reason: String| (target, reason);

    let (desired, reason) = if let Some(until) = st.paused_until_ms.filter(|u| *u > now) {
        hold(format!(
            "no change: paused after a manual scale ({} left); the policy wants {stabilized}",
            secs(until - now)
        ))
    } else if stabilized == target {
        let reason = if per_signal.is_empty() {
            format!("no change: no data (no instance in rotation or no target with data); keeping {target}")
        } else if recommended == target {
            match cfg.mode {
                AutoscaleMode::Proportional if asked == target => format!(
                    "no change: every signal within {:.0}% of its target ({})",
                    cfg.tolerance * 100.0,
                    why_signal()
                ),
                _ if asked > max && target == max => {
                    format!("no change: at max {max} ({})", why_signal())
                }
                _ if asked < min && target == min => {
                    format!("no change: at min {min} ({})", why_signal())
                }
                _ => format!("no change: {}", why_signal()),
            }
        } else if recommended < target {
            format!(
                "no change: down stabilization ({}) keeps {down_rec}, the highest recommendation in the window ({})",
                secs(ms(down.stabilization)),
                why_signal()
            )
        } else {
            format!(
                "no change: up stabilization ({}) keeps {up_rec}, the lowest recommendation in the window ({})",
                secs(ms(up.stabilization)),
                why_signal()
            )
        };
        (target, reason)
    } else if let Some(until) = st
        .settled_ms
        .map(|s| s + ms(cfg.behavior.cooldown))
        .filter(|u| *u > now)
    {
        hold(format!(
            "no change: cooldown ({} left); the policy wants {stabilized}",
            secs(until - now)
        ))
    } else if let Some(until) = st
        .no_up_until_ms
        .filter(|u| *u > now && stabilized > target)
    {
        hold(format!(
            "no change: backing off after {} failed operation(s) ({} left); the policy wants {stabilized}",
            st.failures_in_row,
            secs(until - now)
        ))
    } else if stabilized > target {
        let period = ms(up.period);
        let added: i64 = st
            .changes
            .iter()
            .filter(|(at, c)| at + period > now && *c > 0)
            .map(|(_, c)| *c)
            .sum();
        let start = (i64::from(target) - added).max(0) as u32;
        let by_count = up.max_instances.map(|n| start.saturating_add(n));
        let by_percent = up.max_percent.map(|p| {
            let grown = (f64::from(start) * (1.0 + f64::from(p) / 100.0)).ceil() as u32;
            grown.max(start + 1)
        });
        let limit = by_count
            .into_iter()
            .chain(by_percent)
            .max()
            .unwrap_or(u32::MAX);
        let desired = stabilized.min(limit.max(target));
        let mut reason = format!("scale up {target} → {desired}: {}", why_signal());
        if desired < stabilized {
            reason.push_str(&format!(
                "; limited from {stabilized} by behavior.scale_up (count {start} at the period's start, {} per {})",
                limit_text(up.max_instances, up.max_percent, '+'),
                secs(period)
            ));
        }
        if desired == target {
            reason = format!("no change: {reason}");
        }
        (desired, reason)
    } else {
        let period = ms(down.period);
        let removed: i64 = st
            .changes
            .iter()
            .filter(|(at, c)| at + period > now && *c < 0)
            .map(|(_, c)| -*c)
            .sum();
        let start = target.saturating_add(removed as u32);
        let by_count = down.max_instances.map(|n| start.saturating_sub(n));
        let by_percent = down
            .max_percent
            .map(|p| (f64::from(start) * (1.0 - f64::from(p.min(100)) / 100.0)).floor() as u32);
        let limit = by_count.into_iter().chain(by_percent).min().unwrap_or(0);
        let desired = stabilized.max(limit.min(target));
        let mut reason = format!("scale down {target} → {desired}: {}", why_signal());
        if desired > stabilized {
            reason.push_str(&format!(
                "; limited from {stabilized} by behavior.scale_down (count {start} at the period's start, {} per {})",
                limit_text(down.max_instances, down.max_percent, '-'),
                secs(period)
            ));
        }
        if desired == target {
            reason = format!("no change: {reason}");
        }
        (desired, reason)
    };
    Outcome {
        per_signal,
        recommended,
        stabilized,
        desired,
        reason,
    }
}

fn limit_text(n: Option<u32>, p: Option<u32>, sign: char) -> String {
    match (n, p) {
        (Some(n), Some(p)) => format!("{sign}{n} or {sign}{p}%"),
        (Some(n), None) => format!("{sign}{n}"),
        (None, Some(p)) => format!("{sign}{p}%"),
        (None, None) => "no limit".into(),
    }
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
