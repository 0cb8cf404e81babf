//! Whether Redis answers, said once per change: one log line when it
//! becomes unreachable and one when it is back (never one per request),
//! the `shoal_state_backend_up` gauge, an error count and the round-trip
//! histogram.
//!
//! A call that was sent before Redis was last seen down says nothing of
//! now: its late answer (one read from the socket before the failure was
//! noticed) does not make Redis reachable again, so a stop under load
//! gives one line each way, not a flap.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use crate::metrics::histogram::Snapshot;

/// The low two bits of `Health::state`; the rest counts the times Redis
/// went down.
const UP: u64 = 1;
const DOWN: u64 = 2;
const STATE: u64 = 0b11;

/// Upper bounds in seconds: Redis on a LAN answers in tenths of a
/// millisecond, so the buckets start finer than the backends' ones.
pub const BOUNDS: [f64; 14] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Debug, Default)]
pub struct Health {
    /// 0 until Redis first answers or fails, then `UP` or `DOWN`, in the
    /// low bits; above them the number of times it went down (a call's
    /// `Since`).
    state: AtomicU64,
    /// Calls that failed or timed out (each answered by `on_error`).
    pub errors: AtomicU64,
    buckets: [AtomicU64; BOUNDS.len() + 1],
    sum_ns: AtomicU64,
}

/// How many times Redis had gone down when a call was sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Since(u64);

impl Health {
    pub fn up(&self) -> bool {
        self.state.load(Relaxed) & STATE == UP
    }

    /// Taken before a call is sent, handed back with its answer.
    pub fn since(&self) -> Since {
        Since(self.state.load(Relaxed) >> 2)
    }

    /// Redis answered a call sent at `since`.
    pub fn answered(&self, took: Duration, what: &str, since: Since) {
        let ns = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        let i = BOUNDS.partition_point(|b| *b < took.as_secs_f64());
        self.buckets[i].fetch_add(1, Relaxed);
        self.sum_ns.fetch_add(ns, Relaxed);
        self.reachable(what, since);
    }

    /// A call sent at `since` answered: Redis is reachable, unless it was
    /// seen down after the call was sent.
    pub fn reachable(&self, what: &str, since: Since) {
        let now_up = self.state.fetch_update(Relaxed, Relaxed, |s| {
            (s >> 2 == since.0 && s & STATE != UP).then_some(s & !STATE | UP)
        });
        if now_up.is_ok() {
            tracing::info!(
                redis = what,
                "state backend: Redis is reachable; rate limits are shared"
            );
        }
    }

    /// A call failed or timed out, or no connection could be made.
    pub fn failed(&self, what: &str, why: &str, on_error: &str) {
        let now_down = self.state.fetch_update(Relaxed, Relaxed, |s| {
            (s & STATE != DOWN).then_some(((s >> 2) + 1) << 2 | DOWN)
        });
        if now_down.is_ok() {
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
        h.answered(Duration::from_micros(150), "t", h.since());
        assert!(h.up());
        h.failed("t", "gone", "local");
        h.failed("t", "gone", "local");
        assert!(!h.up());
        h.reachable("t", h.since());
        assert!(h.up());
        let s = h.latency();
        assert_eq!(s.count, 1);
        assert_eq!(s.buckets[1].1, 1, "150 µs is in the 250 µs bucket");
    }

    #[test]
    fn a_late_answer_to_a_call_sent_before_redis_went_down_is_no_way_back() {
        let h = Health::default();
        h.reachable("t", h.since());
        // Two calls in flight; one fails, the other's answer comes after.
        let sent = h.since();
        h.failed("t", "broken pipe", "local");
        h.answered(Duration::from_micros(150), "t", sent);
        assert!(!h.up(), "the late answer says nothing of now");
        assert_eq!(h.latency().count, 1, "its round trip is still counted");
        // A call sent after the failure that answers: reachable again.
        h.answered(Duration::from_micros(150), "t", h.since());
        assert!(h.up());
        // And down again: a second failure is a new change.
        let sent = h.since();
        h.failed("t", "gone", "local");
        h.reachable("t", sent);
        assert!(!h.up());
    }
}
