//! The dashboard's charts: once a second, the counters the data plane
//! already keeps (each backend's responses by class and response-time
//! histogram, the answers shoal made itself) are read and the difference
//! from the last reading becomes one [`Sample`]; the last [`KEEP`] are
//! kept. Nothing is added to the request path.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::balance::Endpoint;
use crate::metrics::histogram::BOUNDS;

/// Samples kept: ten minutes at one a second.
pub const KEEP: usize = 600;

/// How often a sample is taken.
pub const EVERY: Duration = Duration::from_secs(1);

/// One second of traffic (all backends together).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// Responses (a backend's, or shoal's own) per second.
    pub requests_per_sec: f64,
    /// The share of them that were 5xx, 0 to 1.
    pub error_rate: f64,
    /// Backend response time percentiles over the interval, in ms
    /// (estimated within the histogram's buckets); none without responses.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Requests being served by a backend now.
    pub in_flight: u64,
    /// Backends in rotation, of all backends.
    pub in_rotation: usize,
    pub backends: usize,
}

/// The kept samples and the followers of new ones.
pub struct History {
    ring: Mutex<VecDeque<Arc<Sample>>>,
    tx: broadcast::Sender<Arc<Sample>>,
}

impl Default for History {
    fn default() -> Self {
        History {
            ring: Mutex::new(VecDeque::with_capacity(KEEP)),
            tx: broadcast::channel(16).0,
        }
    }
}

impl History {
    pub fn push(&self, sample: Sample) {
        let sample = Arc::new(sample);
        let mut ring = match self.ring.lock() {
            Ok(r) => r,
            Err(poisoned) => poisoned.into_inner(),
        };
        if ring.len() == KEEP {
            ring.pop_front();
        }
        ring.push_back(sample.clone());
        let _ = self.tx.send(sample);
    }

    /// The kept samples, oldest first.
    pub fn samples(&self) -> Vec<Arc<Sample>> {
        match self.ring.lock() {
            Ok(r) => r.iter().cloned().collect(),
            Err(poisoned) => poisoned.into_inner().iter().cloned().collect(),
        }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Sample>> {
        self.tx.subscribe()
    }
}

/// What one backend had counted at the last reading.
struct Seen {
    /// Held so the key (its address) is not reused by another endpoint.
    _endpoint: Arc<Endpoint>,
    responses: [u64; 5],
    buckets: Vec<u64>,
}

/// The readings a sample is the difference from.
#[derive(Default)]
pub struct Sampler {
    seen: HashMap<usize, Seen>,
    generated: Vec<(Option<u16>, u64)>,
    last: Option<Instant>,
}

impl Sampler {
    /// Read the counters now; `None` the first time (nothing to compare with).
    pub fn sample(
        &mut self,
        endpoints: &[Arc<Endpoint>],
        generated: Vec<(Option<u16>, u64)>,
        now: Instant,
    ) -> Option<Sample> {
        let first = self.last.is_none();
        let elapsed = self.last.map(|l| now.duration_since(l));
        self.last = Some(now);
        let mut responses = 0u64;
        let mut errors = 0u64;
        let mut buckets = vec![0u64; BOUNDS.len() + 1];
        let mut seen = HashMap::with_capacity(endpoints.len());
        let (mut in_flight, mut in_rotation) = (0u64, 0usize);
        for e in endpoints {
            let key = Arc::as_ptr(e) as usize;
            let counts = e.responses();
            let hist: Vec<u64> = e.response_times().buckets.iter().map(|b| b.1).collect();
            // A backend new since the last reading counted from zero.
            if let Some(before) = self.seen.get(&key) {
                for (now, was) in counts.iter().zip(before.responses) {
                    responses += now.saturating_sub(was);
                }
                errors += counts[4].saturating_sub(before.responses[4]);
                for (i, (now, was)) in hist.iter().zip(&before.buckets).enumerate() {
                    buckets[i] += now.saturating_sub(*was);
                }
            } else if !first {
                responses += counts.iter().sum::<u64>();
                errors += counts[4];
                for (i, n) in hist.iter().enumerate() {
                    buckets[i] += n;
                }
            }
            in_flight += e.in_flight() as u64;
            in_rotation += usize::from(e.in_rotation());
            seen.insert(
                key,
                Seen {
                    _endpoint: e.clone(),
                    responses: counts,
                    buckets: hist,
                },
            );
        }
        self.seen = seen;
        for (status, n) in &generated {
            let was = self
                .generated
                .iter()
                .find(|(s, _)| s == status)
                .map_or(0, |(_, n)| *n);
            let delta = n.saturating_sub(was);
            responses += delta;
            if status.is_some_and(|s| s >= 500) {
                errors += delta;
            }
        }
        self.generated = generated;
        let elapsed = elapsed?.as_secs_f64().max(1e-3);
        Some(Sample {
            at: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map(|d| d.as_secs_f64())
                .unwrap_or_default(),
            requests_per_sec: responses as f64 / elapsed,
            error_rate: if responses == 0 {
                0.0
            } else {
                errors as f64 / responses as f64
            },
            p50_ms: quantile(&buckets, 0.50),
            p95_ms: quantile(&buckets, 0.95),
            p99_ms: quantile(&buckets, 0.99),
            in_flight,
            in_rotation,
            backends: endpoints.len(),
        })
    }
}

/// The `q` quantile of per-bucket counts (the last bucket `+Inf`), in ms,
/// interpolated linearly within its bucket as Prometheus'
/// `histogram_quantile` does.
pub fn quantile(buckets: &[u64], q: f64) -> Option<f64> {
    let total: u64 = buckets.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut below = 0u64;
    for (i, n) in buckets.iter().enumerate() {
        if *n > 0 && (below + n) as f64 >= rank {
            let Some(upper) = BOUNDS.get(i) else {
                // In +Inf: the highest finite bound is all we can say.
                return Some(BOUNDS[BOUNDS.len() - 1] * 1000.0);
            };
            let lower = if i == 0 { 0.0 } else { BOUNDS[i - 1] };
            let within = (rank - below as f64) / *n as f64;
            return Some((lower + (upper - lower) * within) * 1000.0);
        }
        below += n;
    }
    Some(BOUNDS[BOUNDS.len() - 1] * 1000.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate_within_a_bucket() {
        let mut b = vec![0u64; BOUNDS.len() + 1];
        assert_eq!(quantile(&b, 0.5), None);
        // 100 responses between 5 and 10 ms.
        b[3] = 100;
        let p50 = quantile(&b, 0.5).unwrap();
        assert!((p50 - 7.5).abs() < 1e-9, "{p50}");
        // One slow one past every bound.
        b[BOUNDS.len()] = 1;
        assert_eq!(quantile(&b, 1.0), Some(10_000.0));
        assert!(quantile(&b, 0.99).unwrap() < 10.0);
    }

    #[test]
    fn a_sample_is_the_difference_from_the_last_reading() {
        let settings = crate::proxy::pool::PoolSettings::default();
        let e = Endpoint::new("a-1".into(), "127.0.0.1:1".parse().unwrap(), 1, &settings);
        let mut s = Sampler::default();
        let t0 = Instant::now();
        e.record_response(200, Instant::now() - Duration::from_millis(3));
        assert_eq!(
            s.sample(std::slice::from_ref(&e), vec![(Some(502), 0)], t0),
            None
        );
        for _ in 0..9 {
            e.record_response(200, Instant::now() - Duration::from_millis(3));
        }
        e.record_response(503, Instant::now() - Duration::from_millis(3));
        let one = s
            .sample(
                std::slice::from_ref(&e),
                vec![(Some(502), 0)],
                t0 + Duration::from_secs(2),
            )
            .unwrap();
        assert_eq!(one.requests_per_sec, 5.0);
        assert!((one.error_rate - 0.1).abs() < 1e-9);
        assert!(one.p50_ms.unwrap() > 2.5 && one.p50_ms.unwrap() <= 5.0);
        let two = s
            .sample(
                std::slice::from_ref(&e),
                vec![(Some(502), 2)],
                t0 + Duration::from_secs(3),
            )
            .unwrap();
        assert_eq!(two.requests_per_sec, 2.0);
        assert_eq!(two.error_rate, 1.0);
        assert_eq!(two.p50_ms, None);
    }
}
