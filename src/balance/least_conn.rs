//! Least connections, weight-aware: the endpoint with the fewest in-flight
//! requests per unit of weight. Ties rotate (the scan starts one further on each
//! pick) rather than being broken at random: with sequential requests every
//! endpoint is tied at zero, and rotation spreads them exactly evenly where a
//! random tie-break would pile up by chance (the end-to-end test relies on it).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::{eligible, Balance, EndpointSet, Tried};

#[derive(Default)]
pub struct LeastConn {
    next: AtomicUsize,
}

impl Balance for LeastConn {
    fn pick(&self, set: &EndpointSet, tried: &Tried, _key: Option<u64>) -> Option<usize> {
        let n = set.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        let mut best: Option<(usize, u64, u64)> = None;
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
            let weight = e.weight as u64;
            // a/wa < b/wb  <=>  a*wb < b*wa
            let better = match best {
                None => true,
                Some((_, bl, bw)) => load * bw < bl * weight,
            };
            if better {
                best = Some((i, load, weight));
            }
        }
        best.map(|(i, _, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::endpoints;
    use super::*;

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
