//! The signals the policy reads, and how they are smoothed.
//!
//! Once a second the driver turns the counters that already exist — each
//! endpoint's request count and response-time histogram, its in-flight count
//! (read ten times a second), each instance's process group in /proc — into
//! one [`Sample`] of what happened in that second. A [`Window`] keeps the samples of the last
//! `autoscale.window` and averages them into [`Signals`]. Nothing here runs
//! on the request path: the data plane only bumps the atomics it always did.
//!
//! There is no `queue` signal: shoal has no per-backend `max_conns` cap, so
//! a request never waits for a free backend (see docs/AUTOSCALING.md).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::metrics::histogram::BOUNDS;

/// Buckets of the response-time histogram, `+Inf` last.
pub const BUCKETS: usize = BOUNDS.len() + 1;

/// What the app did in one sampling step (about a second).
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    /// When the step ended, on the policy clock (ms).
    pub at_ms: u64,
    /// How long the step was, in seconds.
    pub secs: f64,
    /// Requests the app's instances started in the step.
    pub requests: u64,
    /// Responses timed in the step, per histogram bucket.
    pub latency: [u64; BUCKETS],
    /// CPU time the instances' process groups used in the step, in seconds.
    pub cpu_secs: f64,
    /// Instances whose CPU time was read (both ends of the step).
    pub cpu_instances: u32,
    /// Resident memory of every instance's process group, summed.
    pub rss_bytes: u64,
    /// Instances whose memory was read.
    pub rss_instances: u32,
    /// Requests in flight, all instances: the mean of the step's peeks
    /// (ten a second).
    pub in_flight: f64,
    /// Instances in rotation at the end of the step.
    pub ready: u32,
}

impl Sample {
    /// A step with nothing in it: no request, no process read.
    pub fn idle(at_ms: u64, secs: f64, ready: u32) -> Sample {
        Sample {
            at_ms,
            secs,
            requests: 0,
            latency: [0; BUCKETS],
            cpu_secs: 0.0,
            cpu_instances: 0,
            rss_bytes: 0,
            rss_instances: 0,
            in_flight: 0.0,
            ready,
        }
    }
}

/// The smoothed signals, per instance in rotation where that is how a
/// target is written. `None`: no data (no instance read, no response timed).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Signals {
    /// Instances in rotation now: the count the per-instance values are of.
    pub ready: u32,
    /// CPU per instance, percent of one core.
    pub cpu_percent: Option<f64>,
    /// Resident memory per instance, bytes.
    pub memory_bytes: Option<f64>,
    /// Requests per second, whole app.
    pub rps_total: Option<f64>,
    /// Requests per second per instance.
    pub rps_per_instance: Option<f64>,
    /// Requests in flight per instance (the window's mean).
    pub in_flight_per_instance: Option<f64>,
    /// p95 response time over the window, milliseconds.
    pub p95_latency_ms: Option<f64>,
    /// Seconds of samples the values are averaged over.
    pub window_secs: f64,
}

/// The samples of the last `window`.
#[derive(Debug, Default)]
pub struct Window {
    samples: VecDeque<Sample>,
}

impl Window {
    pub fn push(&mut self, s: Sample, window_ms: u64) {
        let now = s.at_ms;
        self.samples.push_back(s);
        while self
            .samples
            .front()
            .is_some_and(|f| f.at_ms + window_ms <= now)
        {
            self.samples.pop_front();
        }
    }

    pub fn clear(&mut self) {
        self.samples.clear();
    }

    /// The window's averages, per instance of `ready` (the count in
    /// rotation now: the load the window saw, spread over the instances that
    /// will carry it).
    pub fn signals(&self, ready: u32) -> Signals {
        let mut out = Signals {
            ready,
            ..Signals::default()
        };
        let secs: f64 = self.samples.iter().map(|s| s.secs).sum();
        if self.samples.is_empty() || secs <= 0.0 {
            return out;
        }
        out.window_secs = secs;
        let per = |total: f64| (ready > 0).then(|| total / f64::from(ready));
        let requests: u64 = self.samples.iter().map(|s| s.requests).sum();
        let rps = requests as f64 / secs;
        out.rps_total = Some(rps);
        out.rps_per_instance = per(rps);
        let n = self.samples.len() as f64;
        let in_flight = self.samples.iter().map(|s| s.in_flight).sum::<f64>() / n;
        out.in_flight_per_instance = per(in_flight);
        // CPU: the cores the app used over the steps where any instance
        // was read, spread over the instances now in rotation.
        let cpu_steps: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.cpu_instances > 0)
            .collect();
        let cpu_time: f64 = cpu_steps.iter().map(|s| s.secs).sum();
        if cpu_time > 0.0 {
            let cores = cpu_steps.iter().map(|s| s.cpu_secs).sum::<f64>() / cpu_time;
            out.cpu_percent = per(cores * 100.0);
        }
        // Memory is each instance's own: the mean per instance read.
        let rss: Vec<f64> = self
            .samples
            .iter()
            .filter(|s| s.rss_instances > 0)
            .map(|s| s.rss_bytes as f64 / f64::from(s.rss_instances))
            .collect();
        if !rss.is_empty() {
            out.memory_bytes = Some(rss.iter().sum::<f64>() / rss.len() as f64);
        }
        let mut buckets = [0u64; BUCKETS];
        for s in &self.samples {
            for (b, n) in buckets.iter_mut().zip(s.latency) {
                *b += n;
            }
        }
        out.p95_latency_ms = quantile(&buckets, 0.95).map(|s| s * 1000.0);
        out
    }
}

/// The `q` quantile of a bucketed histogram, in seconds, interpolated
/// linearly inside its bucket (as Prometheus' `histogram_quantile`); the
/// `+Inf` bucket answers with the highest finite bound.
pub fn quantile(buckets: &[u64; BUCKETS], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0u64;
    for (i, &n) in buckets.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let Some(&upper) = BOUNDS.get(i) else {
                return BOUNDS.last().copied();
            };
            let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
            let into = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower + (upper - lower) * into);
        }
        seen += n;
    }
    BOUNDS.last().copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn busy(at_ms: u64, requests: u64, cpu_secs: f64, ready: u32) -> Sample {
        Sample {
            requests,
            cpu_secs,
            cpu_instances: ready,
            in_flight: requests as f64 / 10.0,
            ..Sample::idle(at_ms, 1.0, ready)
        }
    }

    #[test]
    fn the_window_averages_its_samples_and_forgets_older_ones() {
        let mut w = Window::default();
        w.push(busy(1_000, 1000, 3.0, 2), 3_000);
        w.push(busy(2_000, 100, 0.5, 2), 3_000);
        w.push(busy(3_000, 100, 0.5, 2), 3_000);
        w.push(busy(4_000, 100, 0.5, 2), 3_000);
        let s = w.signals(2);
        assert_eq!(s.window_secs, 3.0, "the first sample left the window");
        assert_eq!(s.rps_total, Some(100.0));
        assert_eq!(s.rps_per_instance, Some(50.0));
        assert_eq!(s.cpu_percent, Some(25.0), "0.5 cores over 2 instances");
        assert_eq!(s.in_flight_per_instance, Some(5.0));
    }

    #[test]
    fn no_traffic_is_zero_requests_but_no_latency() {
        let mut w = Window::default();
        w.push(Sample::idle(1_000, 1.0, 3), 5_000);
        let s = w.signals(3);
        assert_eq!(s.rps_per_instance, Some(0.0));
        assert_eq!(s.p95_latency_ms, None);
        assert_eq!(s.cpu_percent, None, "no process read");
        assert_eq!(Window::default().signals(3).rps_total, None);
    }

    #[test]
    fn p95_interpolates_inside_its_bucket() {
        let mut b = [0u64; BUCKETS];
        b[4] = 100; // 10–25 ms
        let p = quantile(&b, 0.95).unwrap();
        assert!((p - 0.02425).abs() < 1e-9, "{p}");
        let mut b = [0u64; BUCKETS];
        b[0] = 95;
        b[13] = 5; // +Inf
        assert!((quantile(&b, 0.95).unwrap() - 0.001).abs() < 1e-12);
        b[0] = 90;
        assert_eq!(
            quantile(&b, 0.95),
            Some(10.0),
            "+Inf answers the last bound"
        );
    }
}
