//! `app.autoscale`: bounds inside `app.min`/`app.max`, at least one target,
//! thresholds that leave a band between them, windows and periods that a
//! once-a-second sampler can honour.

use std::time::Duration;

use super::{Checker, MAX_WAIT};
use crate::error::ErrorKind;
use crate::model::{AppConfig, AutoscaleConfig, ScaleRule};

const MAX_INSTANCES: u32 = 1024;
/// Signals are sampled once a second: shorter steps would see one sample.
const MIN_STEP: Duration = Duration::from_secs(1);
/// A window holds one sample a second; longer ones are kept in memory.
const MAX_WINDOW: Duration = Duration::from_secs(3600);

pub(super) fn autoscale(c: &mut Checker<'_>, app: &AppConfig) {
    let Some(a) = &app.autoscale else { return };
    bounds(c, app, a);
    targets(c, a);
    if !(0.0..1.0).contains(&a.tolerance) {
        c.invalid(
            "app.autoscale.tolerance",
            format!(
                "must be at least 0 and below 1 (a fraction: 0.1 is 10 %) (got {})",
                a.tolerance
            ),
        );
    }
    thresholds(c, a);
    c.at_least("app.autoscale.interval", a.interval, MIN_STEP);
    c.at_most("app.autoscale.interval", a.interval, MAX_WAIT);
    c.at_least("app.autoscale.window", a.window, MIN_STEP);
    c.at_most("app.autoscale.window", a.window, MAX_WINDOW);
    c.at_most("app.autoscale.manual_pause", a.manual_pause, MAX_WAIT);
    rule(c, "app.autoscale.behavior.scale_up", &a.behavior.scale_up);
    rule(
        c,
        "app.autoscale.behavior.scale_down",
        &a.behavior.scale_down,
    );
    c.at_most(
        "app.autoscale.behavior.cooldown",
        a.behavior.cooldown,
        MAX_WAIT,
    );
    c.at_most(
        "app.autoscale.behavior.failure_backoff",
        a.behavior.failure_backoff,
        MAX_WAIT,
    );
}

fn bounds(c: &mut Checker<'_>, app: &AppConfig, a: &AutoscaleConfig) {
    if !c.has("app.autoscale.max") {
        c.report(
            ErrorKind::Missing,
            "app.autoscale.max",
            "is required: the most instances the autoscaler may run".into(),
        );
        return;
    }
    c.range("app.autoscale.min", a.min, 1, MAX_INSTANCES);
    c.range("app.autoscale.max", a.max, 1, MAX_INSTANCES);
    if a.min > a.max {
        c.invalid(
            "app.autoscale.min",
            format!(
                "must not be greater than `app.autoscale.max` ({}) (got {})",
                a.max, a.min
            ),
        );
        return;
    }
    if let Some(min) = app.min.filter(|&m| a.min < m) {
        c.invalid(
            "app.autoscale.min",
            format!("must be at least `app.min` ({min}) (got {})", a.min),
        );
    }
    if let Some(max) = app.max.filter(|&m| a.max > m) {
        c.invalid(
            "app.autoscale.max",
            format!("must be at most `app.max` ({max}) (got {})", a.max),
        );
    }
}

fn targets(c: &mut Checker<'_>, a: &AutoscaleConfig) {
    let t = &a.targets;
    if t.is_empty() {
        let path = if c.has("app.autoscale.targets") {
            "app.autoscale.targets"
        } else {
            "app.autoscale"
        };
        c.report(
            ErrorKind::Missing,
            path,
            "needs at least one target: cpu, memory, rps_per_instance, p95_latency or \
             in_flight_per_instance"
                .into(),
        );
        return;
    }
    for (key, value) in [
        ("cpu", t.cpu),
        ("rps_per_instance", t.rps_per_instance),
        ("in_flight_per_instance", t.in_flight_per_instance),
    ] {
        if let Some(v) = value.filter(|v| !(v.is_finite() && *v > 0.0)) {
            c.invalid(
                &format!("app.autoscale.targets.{key}"),
                format!("must be greater than 0 (got {v})"),
            );
        }
    }
    if t.memory == Some(0) {
        c.invalid(
            "app.autoscale.targets.memory",
            "must be greater than 0 (got 0B)".into(),
        );
    }
    if t.p95_latency.is_some_and(|d| d.is_zero()) {
        c.invalid(
            "app.autoscale.targets.p95_latency",
            "must be greater than 0 (got 0s)".into(),
        );
    }
}

fn thresholds(c: &mut Checker<'_>, a: &AutoscaleConfig) {
    let (up, down) = (a.scale_up_threshold, a.scale_down_threshold);
    let mut ok = true;
    for (key, v) in [("scale_up_threshold", up), ("scale_down_threshold", down)] {
        if !(v.is_finite() && v > 0.0 && v <= 10.0) {
            ok = false;
            c.invalid(
                &format!("app.autoscale.{key}"),
                format!("must be greater than 0 and at most 10 (× the target) (got {v})"),
            );
        }
    }
    if ok && down >= up {
        let (path, other, got, than) = if c.has("app.autoscale.scale_down_threshold")
            || !c.has("app.autoscale.scale_up_threshold")
        {
            (
                "app.autoscale.scale_down_threshold",
                "scale_up_threshold",
                down,
                up,
            )
        } else {
            (
                "app.autoscale.scale_up_threshold",
                "scale_down_threshold",
                up,
                down,
            )
        };
        c.invalid(
            path,
            format!(
                "must leave a band with `app.autoscale.{other}` ({than}): down below up (got {got})"
            ),
        );
    }
    c.range("app.autoscale.step", a.step, 1, MAX_INSTANCES);
}

fn rule(c: &mut Checker<'_>, at: &str, r: &ScaleRule) {
    if let Some(s) = r.stabilization {
        c.at_most(&format!("{at}.stabilization"), s, MAX_WAIT);
    }
    if let Some(p) = r.period {
        c.at_least(&format!("{at}.period"), p, MIN_STEP);
        c.at_most(&format!("{at}.period"), p, MAX_WAIT);
    }
    if let Some(n) = r.max_instances {
        c.range(&format!("{at}.max_instances"), n, 1, MAX_INSTANCES);
    }
    if let Some(p) = r.max_percent {
        c.range(&format!("{at}.max_percent"), p, 1, 1000);
    }
}
