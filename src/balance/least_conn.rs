//! Least connections, weight-aware: the endpoint with the fewest in-flight
//! requests per unit of weight.
//!
//! Up to [`SCAN_MAX`] endpoints, every pick scans them all and takes the
//! least loaded, as nginx's `least_conn`. Ties rotate (the scan starts one
//! further on each pick) rather than being broken at random: with sequential
//! requests every endpoint is tied at zero, and rotation spreads them exactly
//! evenly where a random tie-break would pile up by chance (the end-to-end
//! test relies on it).
//!
//! Above that, a full scan per request costs more than the rest of the pick
//! (about 1.7 ns per endpoint), so the pick compares two endpoints drawn at
//! random and takes the less loaded one — power of two choices, as Envoy's
//! `LEAST_REQUEST` does. It keeps the busiest backends nearly as empty as a
//! full scan would (a backend that is the most loaded of `n` is picked with
//! probability about 1/n²) in constant time.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{eligible, Balance, EndpointSet, Tried};

/// The most endpoints that are scanned in full on every pick.
pub const SCAN_MAX: usize = 16;

/// Random draws allowed to find two eligible endpoints before falling back
/// to a scan (many out of rotation or already tried).
const MAX_DRAWS: usize = 8;

#[derive(Default)]
pub struct LeastConn {
    next: AtomicUsize,
}

/// `a` carries less load per unit of weight than `b`: a/wa < b/wb.
#[inline]
fn lighter(a: (u64, u64), b: (u64, u64)) -> bool {
    a.0 * b.1 < b.0 * a.1
}

impl LeastConn {
    /// The full scan: the least loaded eligible endpoint, ties rotating.
    fn scan(&self, set: &EndpointSet, tried: &Tried) -> Option<usize> {
        let n = set.endpoints.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, (u64, u64))> = None;
        // From `start` to the end, then from the start: no division per step.
        for i in (start..n).chain(0..start) {
            let e = &set.endpoints[i];
            if !eligible(e, tried) {
                continue;
            }
            let load = e.in_flight() as u64;
            if load == 0 {
                // Nothing beats an idle endpoint, and the scan keeps the
                // first of equals: this is the one it would end with.
                return Some(i);
            }
            let this = (load, u64::from(e.weight));
            if best.is_none_or(|(_, b)| lighter(this, b)) {
                best = Some((i, this));
            }
        }
        best.map(|(i, _)| i)
    }

    /// Power of two choices: the lighter of two eligible endpoints drawn at
    /// random; `None` if the draws found fewer than two.
    fn two_choices(set: &EndpointSet, tried: &Tried) -> Option<usize> {
        let n = set.endpoints.len();
        let mut first: Option<(usize, (u64, u64))> = None;
        for _ in 0..MAX_DRAWS {
            let i = fastrand::usize(..n);
            let e = &set.endpoints[i];
            if !eligible(e, tried) || first.is_some_and(|(f, _)| f == i) {
                continue;
            }
            let this = (e.in_flight() as u64, u64::from(e.weight));
            match first {
                None => first = Some((i, this)),
                Some((f, other)) => return Some(if lighter(this, other) { i } else { f }),
            }
        }
        None
    }
}

impl Balance for LeastConn {
    fn pick(&self, set: &EndpointSet, tried: &Tried, _key: Option<u64>) -> Option<usize> {
        let n = set.endpoints.len();
        if n == 0 {
            return None;
        }
        if n > SCAN_MAX {
            if let Some(i) = Self::two_choices(set, tried) {
                return Some(i);
            }
        }
        self.scan(set, tried)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::endpoints;
    use super::*;

    #[test]
    fn above_the_scan_limit_two_choices_avoid_the_busy_ones() {
        let n = 100;
        let set = endpoints(&vec![1; n]);
        // A quarter of them busy (5 in flight each), the rest idle.
        let _held: Vec<_> = (0..n / 4)
            .flat_map(|i| (0..5).map(move |_| i))
            .map(|i| set.endpoints[i].start_request())
            .collect();
        let lc = LeastConn::default();
        let mut busy = 0;
        let mut seen = vec![0u32; n];
        for _ in 0..20_000 {
            let i = lc.pick(&set, &Tried::default(), None).unwrap();
            seen[i] += 1;
            busy += usize::from(i < n / 4);
        }
        // Both draws must land on busy ones: (1/4)² = 6.25 % (a full scan: 0).
        let share = busy as f64 / 20_000.0;
        assert!((0.04..0.09).contains(&share), "busy share {share}");
        // Every idle one gets traffic.
        assert!(seen[n / 4..].iter().all(|c| *c > 0), "{seen:?}");

        // Tried and out-of-rotation endpoints are never picked, however
        // few are left (the draws fall back to the scan).
        for e in &set.endpoints[2..] {
            e.begin_epoch(crate::balance::Health::Down);
        }
        let mut tried = Tried::default();
        tried.push(set.endpoints[0].key());
        for _ in 0..100 {
            assert_eq!(lc.pick(&set, &tried, None), Some(1));
        }
    }

    #[test]
    fn idle_endpoints_share_evenly() {
        let set = endpoints(&[1, 1, 1]);
        let lc = LeastConn::default();
        let mut counts = [0; 3];
        for _ in 0..30 {
            counts[lc.pick(&set, &Tried::default(), None).unwrap()] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn prefers_fewest_in_flight_per_weight() {
        let set = endpoints(&[1, 1, 3]);
        let lc = LeastConn::default();
        let _a = set.endpoints[0].start_request();
        let _b = set.endpoints[2].start_request();
        let _c = set.endpoints[2].start_request();
        // loads per weight: 1, 0, 2/3 -> endpoint 1
        for _ in 0..5 {
            assert_eq!(lc.pick(&set, &Tried::default(), None), Some(1));
        }
        let _d = set.endpoints[1].start_request();
        // 1, 1, 2/3 -> endpoint 2
        assert_eq!(lc.pick(&set, &Tried::default(), None), Some(2));
    }
}
