//! The policy's rules one by one, on hand-made signals and a hand-moved
//! clock (the time is an argument: nothing sleeps).

use super::*;
use shoal_config::{AutoscaleTargets, ScaleRule};

fn cfg(yaml: &str) -> AutoscaleConfig {
    serde_yaml_ng::from_str(yaml).expect("autoscale yaml")
}

fn cpu(ready: u32, percent: f64) -> Signals {
    Signals {
        ready,
        cpu_percent: Some(percent),
        ..Signals::default()
    }
}

fn at(secs: u64, target: u32, signals: Signals) -> Input {
    Input {
        now_ms: secs * 1000,
        target,
        signals,
    }
}

#[test]
fn proportional_is_hpas_formula_with_a_tolerance() {
    let c = cfg("{ min: 1, max: 20, targets: { cpu: 50 } }");
    let mut st = PolicyState::default();
    // 4 × 90/50 = 7.2 → 8.
    let o = decide(&c, &mut st, &at(0, 4, cpu(4, 90.0)));
    assert_eq!((o.recommended, o.desired), (8, 8), "{}", o.reason);
    assert!(
        o.reason
            .starts_with("scale up 4 → 8: cpu 90.0% vs target 50.0% wants 8"),
        "{}",
        o.reason
    );
    // Within 10 %: no change, even though 4 × 54/50 = 4.32 would round up.
    let o = decide(&c, &mut PolicyState::default(), &at(0, 4, cpu(4, 54.0)));
    assert_eq!(o.desired, 4);
    assert!(o.reason.contains("within 10%"), "{}", o.reason);
    // Exactly on target: 3 × 20/20 is 3, not 4 (no float creep).
    let c = cfg("{ min: 1, max: 20, targets: { rps_per_instance: 20 } }");
    let s = Signals {
        ready: 3,
        rps_per_instance: Some(60.0 / 3.0),
        ..Signals::default()
    };
    assert_eq!(
        decide(&c, &mut PolicyState::default(), &at(0, 3, s)).desired,
        3
    );
}

#[test]
fn the_highest_signal_wins_and_bounds_clamp() {
    let c = cfg(
        "{ min: 2, max: 6, targets: { cpu: 50, in_flight_per_instance: 2, p95_latency: 100ms } }",
    );
    let s = Signals {
        ready: 3,
        cpu_percent: Some(40.0),
        in_flight_per_instance: Some(5.0), // wants ceil(7.5) = 8
        p95_latency_ms: Some(150.0),       // wants ceil(4.5) = 5
        ..Signals::default()
    };
    let o = decide(&c, &mut PolicyState::default(), &at(0, 3, s));
    let asks: Vec<(String, u32)> = o
        .per_signal
        .iter()
        .map(|d| (d.signal.clone(), d.desired))
        .collect();
    assert_eq!(
        asks,
        [
            ("cpu".into(), 3),
            ("p95_latency".into(), 5),
            ("in_flight_per_instance".into(), 8)
        ]
    );
    assert_eq!((o.recommended, o.desired), (6, 6), "clamped to max");
    assert!(o.reason.contains("in_flight_per_instance"), "{}", o.reason);
}

#[test]
fn no_data_keeps_the_count() {
    let c = cfg("{ min: 1, max: 5, targets: { p95_latency: 100ms } }");
    let o = decide(
        &c,
        &mut PolicyState::default(),
        &at(
            0,
            3,
            Signals {
                ready: 3,
                ..Signals::default()
            },
        ),
    );
    assert_eq!(o.desired, 3);
    assert!(o.reason.contains("no data"), "{}", o.reason);
    // No instance in rotation: nothing to measure with.
    let o = decide(&c, &mut PolicyState::default(), &at(0, 3, cpu(0, 0.0)));
    assert_eq!(o.desired, 3);
}

#[test]
fn below_min_scales_up_to_min_without_data() {
    let c = cfg("{ min: 3, max: 5, targets: { cpu: 50 } }");
    let o = decide(
        &c,
        &mut PolicyState::default(),
        &at(0, 1, Signals::default()),
    );
    assert_eq!(o.desired, 3, "{}", o.reason);
}

#[test]
fn threshold_mode_steps_past_its_thresholds() {
    let c = cfg(
        "{ mode: threshold, min: 3, max: 10, targets: { cpu: 70 }, scale_up_threshold: 0.8, \
         scale_down_threshold: 0.3, step: 2, behavior: { scale_down: { stabilization: 0s, max_instances: 5 } } }",
    );
    let d = |p: f64| decide(&c, &mut PolicyState::default(), &at(0, 5, cpu(5, p))).desired;
    assert_eq!(d(56.0), 7, "56 = 0.8 × 70: up by step");
    assert_eq!(d(55.0), 5, "in the band");
    assert_eq!(d(21.0), 5, "21 = 0.3 × 70 is not below");
    assert_eq!(d(20.0), 3, "down by step");
}

#[test]
fn down_stabilization_keeps_the_highest_recommendation_of_its_window() {
    let c = cfg("{ min: 1, max: 10, targets: { cpu: 50 }, behavior: { scale_down: { stabilization: 60s, max_instances: 10 } } }");
    let mut st = PolicyState::default();
    assert_eq!(decide(&c, &mut st, &at(0, 4, cpu(4, 50.0))).desired, 4);
    // Load halves at t=10: the window still remembers 4.
    for t in (10..=60).step_by(10) {
        let o = decide(&c, &mut st, &at(t, 4, cpu(4, 25.0)));
        assert_eq!(o.desired, 4, "t={t}: {}", o.reason);
        assert!(o.reason.contains("down stabilization"), "{}", o.reason);
    }
    // t=70: the recommendation of t=0 left the window.
    let o = decide(&c, &mut st, &at(70, 4, cpu(4, 25.0)));
    assert_eq!(o.desired, 2, "{}", o.reason);
}

#[test]
fn up_stabilization_needs_the_whole_window_high() {
    let c = cfg(
        "{ min: 1, max: 10, targets: { cpu: 50 }, behavior: { scale_up: { stabilization: 30s } } }",
    );
    let mut st = PolicyState::default();
    assert_eq!(decide(&c, &mut st, &at(0, 2, cpu(2, 50.0))).desired, 2);
    assert_eq!(decide(&c, &mut st, &at(15, 2, cpu(2, 100.0))).desired, 2);
    assert_eq!(decide(&c, &mut st, &at(30, 2, cpu(2, 100.0))).desired, 2);
    assert_eq!(decide(&c, &mut st, &at(45, 2, cpu(2, 100.0))).desired, 4);
}

#[test]
fn a_noisy_signal_around_the_target_does_not_flap() {
    // ±8 % noise around the target, deterministic: within the tolerance.
    let c = cfg("{ min: 1, max: 10, targets: { cpu: 60 } }");
    let mut st = PolicyState::default();
    let mut target = 4;
    for t in 0..600u64 {
        let noise = ((t * 7919) % 17) as f64 / 16.0 * 2.0 - 1.0; // -1..1
        let o = decide(
            &c,
            &mut st,
            &at(t * 15, target, cpu(target, 60.0 + noise * 4.8)),
        );
        target = o.desired;
        assert_eq!(target, 4, "t={t}: {}", o.reason);
    }
    // ±25 % noise: outside the tolerance, but the 5 min down window holds
    // the highest recommendation: it goes up once and stays there.
    let mut st = PolicyState::default();
    let mut changes = 0;
    let mut target = 4;
    for t in 0..200u64 {
        let noise = if t % 2 == 0 { 1.25 } else { 0.75 };
        let load = 4.0 * 60.0; // total: 4 instances at target
        let per = load / f64::from(target) * noise;
        let o = decide(&c, &mut st, &at(t * 15, target, cpu(target, per)));
        if o.desired != target {
            changes += 1;
            st.started(t * 15_000, target, o.desired);
            st.finished(t * 15_000, true, &c);
        }
        target = o.desired;
    }
    assert!(changes <= 1, "{changes} changes on a noisy signal");
}

#[test]
fn step_limits_cap_each_period() {
    let c = cfg(
        "{ min: 1, max: 50, targets: { cpu: 50 }, behavior: { scale_up: { max_instances: 2, period: 60s }, \
         scale_down: { stabilization: 0s, max_percent: 50, period: 60s } } }",
    );
    let mut st = PolicyState::default();
    let o = decide(&c, &mut st, &at(0, 2, cpu(2, 500.0)));
    assert_eq!(o.desired, 4, "+2 per period: {}", o.reason);
    assert!(o.reason.contains("limited from 20"), "{}", o.reason);
    st.started(0, 2, 4);
    st.finished(1000, true, &c);
    let o = decide(&c, &mut st, &at(30, 4, cpu(4, 250.0)));
    assert_eq!(o.desired, 4, "the period's +2 is used: {}", o.reason);
    let o = decide(&c, &mut st, &at(61, 4, cpu(4, 250.0)));
    assert_eq!(o.desired, 6, "a new period");
    // Down: 50 % of the count at the period's start.
    let mut st = PolicyState::default();
    let o = decide(&c, &mut st, &at(0, 10, cpu(10, 1.0)));
    assert_eq!(o.desired, 5, "{}", o.reason);
    st.started(0, 10, 5);
    st.finished(0, true, &c);
    assert_eq!(decide(&c, &mut st, &at(30, 5, cpu(5, 1.0))).desired, 5);
    // 50 % of 5 is 2.5: at most 2 go (HPA removes ceil(2.5) = 3, leaving 2 as well).
    assert_eq!(decide(&c, &mut st, &at(61, 5, cpu(5, 1.0))).desired, 2);
}

#[test]
fn default_limits_are_hpas_up_and_one_at_a_time_down() {
    let up = ScaleRule::default().up();
    assert_eq!((up.max_instances, up.max_percent), (Some(4), Some(100)));
    assert_eq!(up.stabilization, Duration::ZERO);
    let down = ScaleRule::default().down();
    assert_eq!((down.max_instances, down.max_percent), (Some(1), None));
    assert_eq!(down.stabilization, Duration::from_secs(300));
    // +4 or +100 %: from 10, +10 wins.
    let c = cfg("{ min: 1, max: 100, targets: { cpu: 10 } }");
    assert_eq!(
        decide(&c, &mut PolicyState::default(), &at(0, 10, cpu(10, 100.0))).desired,
        20
    );
    assert_eq!(
        decide(&c, &mut PolicyState::default(), &at(0, 2, cpu(2, 100.0))).desired,
        6
    );
}

#[test]
fn cooldown_pause_and_failure_backoff_hold() {
    let c = cfg(
        "{ min: 1, max: 10, targets: { cpu: 50 }, manual_pause: 60s, \
         behavior: { cooldown: 120s, failure_backoff: 10s } }",
    );
    let mut st = PolicyState::default();
    st.started(0, 2, 3);
    st.finished(5_000, true, &c);
    let o = decide(&c, &mut st, &at(100, 3, cpu(3, 100.0)));
    assert_eq!(o.desired, 3);
    assert!(o.reason.contains("cooldown (25s left)"), "{}", o.reason);
    assert_eq!(decide(&c, &mut st, &at(125, 3, cpu(3, 100.0))).desired, 6);

    let mut st = PolicyState::default();
    st.pause(0, &c);
    let o = decide(&c, &mut st, &at(59, 3, cpu(3, 100.0)));
    assert!(
        o.reason.contains("paused after a manual scale"),
        "{}",
        o.reason
    );
    assert_eq!(o.desired, 3);
    assert_eq!(decide(&c, &mut st, &at(60, 3, cpu(3, 100.0))).desired, 6);

    // Failures back off 10 s, 20 s, 40 s …
    let c = cfg("{ min: 1, max: 10, targets: { cpu: 50 }, behavior: { failure_backoff: 10s } }");
    let mut st = PolicyState::default();
    let mut t = 0;
    for expected in [10, 20, 40, 80, 160, 160] {
        st.started(t * 1000, 3, 4);
        st.finished(t * 1000, false, &c);
        let o = decide(&c, &mut st, &at(t + expected - 1, 3, cpu(3, 100.0)));
        assert_eq!(o.desired, 3, "{}", o.reason);
        assert!(o.reason.contains("backing off"), "{}", o.reason);
        assert_eq!(
            decide(&c, &mut st, &at(t + expected, 3, cpu(3, 100.0))).desired,
            6
        );
        t += expected;
    }
    // A backoff never holds a scale-down.
    let c = cfg("{ min: 1, max: 10, targets: { cpu: 50 }, behavior: { scale_down: { stabilization: 0s } } }");
    let mut st = PolicyState::default();
    st.finished(0, false, &c);
    assert_eq!(decide(&c, &mut st, &at(1, 3, cpu(3, 1.0))).desired, 2);
}

#[test]
fn targets_in_yaml_read_as_documented() {
    let c = cfg(
        "{ max: 4, targets: { cpu: 70, memory: 256MiB, rps_per_instance: 1000, p95_latency: 250ms, \
         in_flight_per_instance: 8 } }",
    );
    assert_eq!(
        c.targets,
        AutoscaleTargets {
            cpu: Some(70.0),
            memory: Some(256 << 20),
            rps_per_instance: Some(1000.0),
            p95_latency: Some(Duration::from_millis(250)),
            in_flight_per_instance: Some(8.0),
        }
    );
    assert_eq!(c.min, 1);
    assert_eq!(c.tolerance, 0.1);
    assert_eq!(c.interval, Duration::from_secs(15));
}

#[test]
fn threshold_mode_goes_up_on_any_signal_and_down_only_on_all() {
    let c = cfg(
        "{ mode: threshold, min: 1, max: 10, targets: { cpu: 50, rps_per_instance: 100 }, \
         behavior: { scale_down: { stabilization: 0s } } }",
    );
    let s = |cpu: f64, rps: f64| Signals {
        ready: 4,
        cpu_percent: Some(cpu),
        rps_per_instance: Some(rps),
        ..Signals::default()
    };
    let d = |sig| decide(&c, &mut PolicyState::default(), &at(0, 4, sig)).desired;
    assert_eq!(d(s(45.0, 10.0)), 5, "cpu past 0.8 × 50 is enough");
    assert_eq!(d(s(10.0, 50.0)), 4, "rps in the band holds the count");
    assert_eq!(d(s(10.0, 20.0)), 3, "both below 0.3 × target");
}
