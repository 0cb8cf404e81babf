//! Round robin, weighted the way nginx's smooth weighted round robin is
//! (`round_robin`, and `weighted`, nginx users' name for the same thing).
//!
//! nginx updates per-peer counters under a lock on every pick. Here the smooth
//! sequence is computed once per endpoint set and walked with one atomic
//! counter, so a pick takes no lock; with equal weights it is plain rotation.

use std::sync::atomic::{AtomicUsize, Ordering};

use super::cache::PerSet;
use super::{eligible, Balance, EndpointSet, Tried};

#[derive(Default)]
pub struct RoundRobin {
    next: AtomicUsize,
    /// The schedule for the set it was built from.
    schedule: PerSet<Schedule>,
}

struct Schedule {
    order: Vec<u32>,
}

impl Schedule {
    fn build(set: &EndpointSet) -> Schedule {
        let weights: Vec<i64> = set.endpoints.iter().map(|e| e.weight as i64).collect();
        let all_equal = weights.windows(2).all(|w| w[0] == w[1]);
        let order = if all_equal {
            (0..weights.len() as u32).collect()
        } else {
            smooth_weighted_order(&weights)
        };
        Schedule { order }
    }
}

/// nginx's smooth weighted round robin, run for one full cycle.
fn smooth_weighted_order(weights: &[i64]) -> Vec<u32> {
    // Cap the cycle so a set with large weights doesn't build a huge table;
    // scaling weights down keeps their proportions closely enough.
    let total: i64 = weights.iter().sum();
    let scale = (total / 4096).max(1);
    let weights: Vec<i64> = weights.iter().map(|w| (w / scale).max(1)).collect();
    let total: i64 = weights.iter().sum();
    let mut current = vec![0i64; weights.len()];
    let mut order = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..weights.len() {
            current[i] += weights[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        order.push(best as u32);
    }
    order
}

impl Balance for RoundRobin {
    fn pick(&self, set: &EndpointSet, tried: &Tried, _key: Option<u64>) -> Option<usize> {
        let n = set.endpoints.len();
        if n == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        self.schedule.with(set, Schedule::build, |schedule| {
            let order = &schedule.order;
            let len = order.len();
            // Walk the schedule from our slot; at most one cycle finds any
            // eligible endpoint, since every endpoint appears in it.
            let mut at = start % len;
            for _ in 0..len {
                let i = order[at] as usize;
                if eligible(&set.endpoints[i], tried) {
                    return Some(i);
                }
                at += 1;
                if at == len {
                    at = 0;
                }
            }
            None
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{assert_weight_shares, endpoints};
    use super::super::{for_algorithm, Health};
    use super::*;
    use shoal_config::Algorithm;

    #[test]
    fn equal_weights_rotate_exactly() {
        let set = endpoints(&[1, 1, 1]);
        let rr = RoundRobin::default();
        let mut counts = [0; 3];
        for _ in 0..30 {
            counts[rr.pick(&set, &Tried::default(), None).unwrap()] += 1;
        }
        assert_eq!(counts, [10, 10, 10]);
    }

    #[test]
    fn weights_are_smooth_and_proportional() {
        let order = smooth_weighted_order(&[5, 1, 1]);
        assert_eq!(order, vec![0, 0, 1, 0, 2, 0, 0]);
        let set = endpoints(&[2, 1]);
        let rr = RoundRobin::default();
        let mut counts = [0; 2];
        for _ in 0..300 {
            counts[rr.pick(&set, &Tried::default(), None).unwrap()] += 1;
        }
        assert_eq!(counts, [200, 100]);
    }

    /// The property: weight shares within ±2 points over 10,000
    /// picks, for `round_robin` and its alias `weighted`.
    #[test]
    fn weight_shares_within_two_points() {
        for algorithm in [Algorithm::RoundRobin, Algorithm::Weighted] {
            let b = for_algorithm(algorithm);
            assert_weight_shares(b.as_ref(), &[1, 2, 3, 4, 10], &format!("{algorithm:?}"));
        }
    }

    #[test]
    fn skips_endpoints_out_of_rotation_and_tried() {
        let set = endpoints(&[1, 1, 1]);
        set.endpoints[1].begin_epoch(Health::Down);
        let rr = RoundRobin::default();
        for _ in 0..10 {
            assert_ne!(rr.pick(&set, &Tried::default(), None), Some(1));
        }
        let mut tried = Tried::default();
        tried.push(set.endpoints[0].key());
        tried.push(set.endpoints[2].key());
        assert_eq!(rr.pick(&set, &tried, None), None);
    }
}
