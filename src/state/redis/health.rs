//! Whether Redis answers, said once per change: one log line when it
//! becomes unreachable and one when it is back (never one per request),
//! the `shoal_state_backend_up` gauge, an error count and the round-trip
//! histogram.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering::Relaxed};
use std::time::Duration;

use crate::metrics::histogram::Snapshot;

const UP: u8 = 1;
const DOWN: u8 = 2;

/// Upper bounds in seconds: Redis on a LAN answers in tenths of a
/// millisecond, so the buckets start finer than the backends' ones.
pub const BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
pub struct Health {
    /// 0 until Redis first answers or fails, then `UP` or `DOWN`.
    state: AtomicU8,
    /// Calls that failed or timed out (each answered by `on_error`).
    pub errors: AtomicU64,
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

impl Health {
    pub fn up(&self) -> bool {
        self.state.load(Relaxed) == UP
    }

    /// Redis answered.
    pub fn answered(&self, took: Duration, what: &str) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS.partition_point(|b| *b < took.as_secs_f64());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.reachable(what);
    }

    /// A call answered.
    pub fn reachable(&self, what: &str) {
        if self.state.swap(UP, Relaxed) != UP {
            tracing::info!(
                redis = what,
                "state backend: Redis is reachable; rate limits are shared"
            );
        }
    }

    /// A call failed or timed out, or no connection could be made.
    pub fn failed(&self, what: &str, why: &str, on_error: &str) {
        if self.state.swap(DOWN, Relaxed) != DOWN {
            tracing::warn!(
                redis = what,
                error = why,
                on_error,
                "state backend: Redis is unreachable; on_error decides until it answers again"
            );
        }
    }

    pub fn latency(&self) -> Snapshot {
        let mut count = 0;
        let buckets = self
            .buckets
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let n = b.load(Relaxed);
                count += n;
                (BOUNDS.get(i).copied().unwrap_or(f64::MAX), n)
            })
            .collect();
        Snapshot {
            buckets,
            count,
            sum_seconds: self.sum_ns.load(Relaxed) as f64 / 1e9,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_state_change_is_seen_once() {
        let h = Health::default();
        assert!(!h.up());
        h.answered(Duration::from_micros(150), "t");
        assert!(h.up());
        h.failed("t", "gone", "local");
        h.failed("t", "gone", "local");
        assert!(!h.up());
        h.reachable("t");
        assert!(h.up());
        let s = h.latency();
        assert_eq!(s.count, 1);
        assert_eq!(s.buckets[1].1, 1, "150 µs is in the 250 µs bucket");
    }
}
