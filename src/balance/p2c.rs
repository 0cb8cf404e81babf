//! `p2c_ewma`: the power of two choices over peak-EWMA latency, as Finagle's
//! and linkerd's balancers (and tower's `p2c` + `PeakEwma`).
//!
//! A pick draws two distinct eligible endpoints at random and takes the one
//! with the lower cost, `latency × (in_flight + 1) / weight`, latency being
//! the endpoint's peak-EWMA of response-header time (see `ewma.rs`). Two
//! random choices already avoid the worst endpoint almost always, without
//! the herding that "always the best" causes when every pick sees the same
//! stale numbers, and a pick is O(1) whatever the number of endpoints.
//!
//! An endpoint with no latency sample yet (new, or just added) is costed with
//! the other candidate's latency, so it competes on in-flight requests alone:
//! neither flooded (as a zero prior would) nor starved (as a large one would).

use super::random::{scan_from_random, DRAWS};
use super::{eligible, Balance, Endpoint, EndpointSet, Tried};
use crate::clock::now_ns;

#[derive(Default)]
pub struct P2cEwma;

impl P2cEwma {
    /// The pick at time `now` on the endpoints' latency clock.
    pub(super) fn pick_at(&self, set: &EndpointSet, tried: &Tried, now: u64) -> Option<usize> {
        let n = set.endpoints.len();
        if n <= 1 {
            return (n == 1 && eligible(&set.endpoints[0], tried)).then_some(0);
        }
        let a = draw(set, tried, None)?;
        let Some(b) = draw(set, tried, Some(a)) else {
            return Some(a);
        };
        let (ea, eb) = (&set.endpoints[a], &set.endpoints[b]);
        let (la, lb) = match (ea.latency_at(now), eb.latency_at(now)) {
            (Some(x), Some(y)) => (x, y),
            (Some(x), None) => (x, x),
            (None, Some(y)) => (y, y),
            (None, None) => (1.0, 1.0),
        };
        Some(if cost(eb, lb) < cost(ea, la) { b } else { a })
    }
}

#[inline]
fn cost(e: &Endpoint, latency: f64) -> f64 {
    latency * (e.in_flight() as f64 + 1.0) / f64::from(e.weight)
}

/// A random eligible endpoint other than `not`.
#[inline]
fn draw(set: &EndpointSet, tried: &Tried, not: Option<usize>) -> Option<usize> {
    let n = set.endpoints.len();
    for _ in 0..DRAWS {
        let i = match not {
            None => fastrand::usize(..n),
            Some(x) => {
                // Uniform over the n - 1 others.
                let j = fastrand::usize(..n - 1);
                if j >= x {
                    j + 1
                } else {
                    j
                }
            }
        };
        if eligible(&set.endpoints[i], tried) {
            return Some(i);
        }
    }
    // Most are ineligible: the first eligible one from a random place.
    let i = scan_from_random(set, tried)?;
    if Some(i) != not {
        return Some(i);
    }
    let n = set.endpoints.len();
    (i + 1..n)
        .chain(0..i)
        .find(|&j| eligible(&set.endpoints[j], tried))
}

impl Balance for P2cEwma {
    fn pick(&self, set: &EndpointSet, tried: &Tried, _key: Option<u64>) -> Option<usize> {
        self.pick_at(set, tried, now_ns())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;
    use std::time::Duration;

    use super::super::test_support::endpoints;
    use super::super::InFlight;
    use super::*;

    const MS: u64 = 1_000_000;

    /// A simulated run on a virtual clock: a request arrives every
    /// `gap_ns`, holds its endpoint's in-flight count for that endpoint's
    /// latency, and its latency is observed when it completes. Returns the
    /// number of requests each endpoint got.
    fn simulate(latencies_ms: &[u64], requests: usize, gap_ns: u64, start: u64) -> Vec<usize> {
        let set = endpoints(&vec![1; latencies_ms.len()]);
        simulate_on(&set, latencies_ms, requests, gap_ns, start)
    }

    fn simulate_on(
        set: &EndpointSet,
        latencies_ms: &[u64],
        requests: usize,
        gap_ns: u64,
        start: u64,
    ) -> Vec<usize> {
        let b = P2cEwma;
        let mut counts = vec![0; latencies_ms.len()];
        // (done at, endpoint, guard), in arrival order; completions are
        // processed in time order below.
        let mut running: VecDeque<(u64, usize, InFlight)> = VecDeque::new();
        for r in 0..requests {
            let now = start + r as u64 * gap_ns;
            running.make_contiguous().sort_by_key(|(done, _, _)| *done);
            while running.front().is_some_and(|(done, _, _)| *done <= now) {
                let (done, i, guard) = running.pop_front().unwrap();
                // ±10% jitter, deterministic.
                let jitter = 0.9 + 0.2 * ((r * 7 + i * 13) % 11) as f64 / 10.0;
                let rtt =
                    Duration::from_nanos((latencies_ms[i] as f64 * MS as f64 * jitter) as u64);
                set.endpoints[i].observe_latency_at(rtt, done);
                drop(guard);
            }
            let i = b.pick_at(set, &Tried::default(), now).unwrap();
            counts[i] += 1;
            let done = now + latencies_ms[i] * MS;
            running.push_back((done, i, set.endpoints[i].start_request()));
        }
        counts
    }

    /// The property: a backend 20× slower than the others gets less
    /// than 10% of the traffic.
    #[test]
    fn a_backend_twenty_times_slower_gets_under_ten_percent() {
        fastrand::seed(11);
        for (n, gap_ns) in [(3, 200_000), (5, 100_000), (10, 50_000)] {
            let mut latencies = vec![2; n];
            latencies[1] = 40;
            let counts = simulate(&latencies, 10_000, gap_ns, 0);
            let share = counts[1] as f64 / 10_000.0;
            assert!(share < 0.10, "n={n}: {counts:?}");
            // And the fast ones share the rest fairly evenly.
            let fast: Vec<_> = counts.iter().enumerate().filter(|(i, _)| *i != 1).collect();
            let mean = (10_000 - counts[1]) as f64 / (n - 1) as f64;
            for (_, c) in fast {
                assert!((*c as f64 - mean).abs() < mean * 0.25, "n={n}: {counts:?}");
            }
        }
    }

    #[test]
    fn a_slow_backend_that_recovers_is_tried_again() {
        fastrand::seed(12);
        let set = endpoints(&[1, 1, 1]);
        let slow = simulate_on(&set, &[2, 40, 2], 5000, 200_000, 0);
        assert!(slow[1] < 500, "{slow:?}");
        // A minute later (the slow one idle all along), it is fast again.
        let later = simulate_on(&set, &[2, 2, 2], 5000, 200_000, 60_000 * MS);
        assert!(later[1] > 1000, "{later:?}");
    }

    #[test]
    fn in_flight_counts_and_weights() {
        fastrand::seed(13);
        let set = endpoints(&[1, 1]);
        for e in &set.endpoints {
            e.observe_latency_at(Duration::from_millis(10), 0);
        }
        let _busy: Vec<_> = (0..3).map(|_| set.endpoints[0].start_request()).collect();
        for _ in 0..50 {
            assert_eq!(P2cEwma.pick_at(&set, &Tried::default(), 0), Some(1));
        }
        // Weight divides the cost: weight 4 with 2 in flight (10·3/4 = 7.5)
        // beats weight 1 with none (10·1/1).
        let heavy = endpoints(&[4, 1]);
        for e in &heavy.endpoints {
            e.observe_latency_at(Duration::from_millis(10), 0);
        }
        let _busy: Vec<_> = (0..2).map(|_| heavy.endpoints[0].start_request()).collect();
        for _ in 0..50 {
            assert_eq!(P2cEwma.pick_at(&heavy, &Tried::default(), 0), Some(0));
        }
    }

    #[test]
    fn new_endpoints_compete_on_in_flight_alone() {
        fastrand::seed(14);
        let set = endpoints(&[1, 1]);
        set.endpoints[0].observe_latency_at(Duration::from_millis(50), 0);
        // Endpoint 1 has no sample: costed at 50 ms too, so in-flight decides.
        let _busy = set.endpoints[1].start_request();
        for _ in 0..20 {
            assert_eq!(P2cEwma.pick_at(&set, &Tried::default(), 0), Some(0));
        }
    }
}
