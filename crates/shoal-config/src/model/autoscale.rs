//! `app.autoscale:` — the autoscaler's bounds, targets, mode and behavior
//! (docs/AUTOSCALING.md explains each; docs/CONFIG.md lists them).

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscaleConfig {
    /// Never fewer instances than this.
    pub min: u32,
    /// Never more instances than this (required).
    pub max: u32,
    pub mode: AutoscaleMode,
    pub targets: AutoscaleTargets,
    /// Proportional mode: a signal within this fraction of its target
    /// (`|value ÷ target − 1| ≤ tolerance`) asks for no change.
    pub tolerance: f64,
    /// Threshold mode: scale up when a signal reaches this × its target.
    pub scale_up_threshold: f64,
    /// Threshold mode: scale down when every signal is below this × its target.
    pub scale_down_threshold: f64,
    /// Threshold mode: instances added or removed per decision.
    pub step: u32,
    /// Time between two decisions (signals are sampled every second).
    #[serde(with = "crate::units::duration")]
    pub interval: Duration,
    /// The sliding window the per-second samples are averaged over.
    #[serde(with = "crate::units::duration")]
    pub window: Duration,
    /// A manual `shoal scale` pauses the autoscaler for this long.
    #[serde(with = "crate::units::duration")]
    pub manual_pause: Duration,
    pub behavior: AutoscaleBehavior,
}

impl Default for AutoscaleConfig {
    fn default() -> Self {
        AutoscaleConfig {
            min: 1,
            max: 0,
            mode: AutoscaleMode::Proportional,
            targets: AutoscaleTargets::default(),
            tolerance: 0.1,
            scale_up_threshold: 0.8,
            scale_down_threshold: 0.3,
            step: 1,
            interval: Duration::from_secs(15),
            window: Duration::from_secs(30),
            manual_pause: Duration::from_secs(300),
            behavior: AutoscaleBehavior::default(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AutoscaleMode {
    /// Kubernetes HPA's formula: ceil(current × value ÷ target).
    #[default]
    Proportional,
    /// Up at `scale_up_threshold` × target, down below
    /// `scale_down_threshold` × target, `step` at a time.
    Threshold,
}

/// What one instance should carry; any subset, at least one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscaleTargets {
    /// CPU per instance, in percent of one core (its whole process group).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
    /// Resident memory per instance (its whole process group).
    #[serde(
        with = "crate::units::size_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub memory: Option<u64>,
    /// Requests per second per instance in rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rps_per_instance: Option<f64>,
    /// The app's p95 response time over the window.
    #[serde(
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub p95_latency: Option<Duration>,
    /// Requests in flight per instance in rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_flight_per_instance: Option<f64>,
}

impl AutoscaleTargets {
    pub fn is_empty(&self) -> bool {
        self.cpu.is_none()
            && self.memory.is_none()
            && self.rps_per_instance.is_none()
            && self.p95_latency.is_none()
            && self.in_flight_per_instance.is_none()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AutoscaleBehavior {
    pub scale_up: ScaleRule,
    pub scale_down: ScaleRule,
    /// After a scale operation has finished (new instances healthy, old
    /// ones drained), no other one starts for this long.
    #[serde(with = "crate::units::duration")]
    pub cooldown: Duration,
    /// After a failed operation (a new instance not healthy in
    /// `app.ready_timeout`), no scale-up for this long, doubled after each
    /// failure in a row (at most 16×).
    #[serde(with = "crate::units::duration")]
    pub failure_backoff: Duration,
}

impl Default for AutoscaleBehavior {
    fn default() -> Self {
        AutoscaleBehavior {
            scale_up: ScaleRule::default(),
            scale_down: ScaleRule::default(),
            cooldown: Duration::ZERO,
            failure_backoff: Duration::from_secs(60),
        }
    }
}

/// One direction's stabilization and step limits; a key left out takes the
/// direction's default (see [`ScaleRule::up`] and [`ScaleRule::down`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ScaleRule {
    /// The highest (down) or lowest (up) recommendation within this window
    /// is what is acted on.
    #[serde(
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub stabilization: Option<Duration>,
    /// At most this many instances added (removed) per `period`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_instances: Option<u32>,
    /// At most this percentage of the count at the period's start added
    /// (removed) per `period`; with `max_instances` too, the larger change wins.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_percent: Option<u32>,
    #[serde(
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub period: Option<Duration>,
}

/// A [`ScaleRule`] with every default filled in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleLimits {
    pub stabilization: Duration,
    pub max_instances: Option<u32>,
    pub max_percent: Option<u32>,
    pub period: Duration,
}

impl ScaleRule {
    /// Up: no stabilization; +4 instances or +100 % per 15 s (HPA's).
    pub fn up(&self) -> ScaleLimits {
        let neither = self.max_instances.is_none() && self.max_percent.is_none();
        ScaleLimits {
            stabilization: self.stabilization.unwrap_or(Duration::ZERO),
            max_instances: if neither { Some(4) } else { self.max_instances },
            max_percent: if neither { Some(100) } else { self.max_percent },
            period: self.period.unwrap_or(Duration::from_secs(15)),
        }
    }

    /// Down: 5 min stabilization; −1 instance per 15 s.
    pub fn down(&self) -> ScaleLimits {
        let neither = self.max_instances.is_none() && self.max_percent.is_none();
        ScaleLimits {
            stabilization: self.stabilization.unwrap_or(Duration::from_secs(300)),
            max_instances: if neither { Some(1) } else { self.max_instances },
            max_percent: self.max_percent,
            period: self.period.unwrap_or(Duration::from_secs(15)),
        }
    }
}
