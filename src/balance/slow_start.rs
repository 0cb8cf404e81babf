//! Slow start: a backend that just entered rotation (a new instance, or one
//! back from `down` or `ejected`) gets a share of traffic that ramps from 10%
//! to its full share over `proxy.slow_start`, as nginx's and HAProxy's
//! `slow_start`.
//!
//! It works on top of any algorithm, without touching what they precompute:
//! when the algorithm picks a ramping endpoint whose ramp is at `f`, the
//! pick is kept with probability `f`, and otherwise the algorithm picks again
//! without it. A few re-picks at most, so the cost stays bounded even when
//! every endpoint is ramping (all instances started together); then the
//! last pick stands. The hashing algorithms are left alone: moving a key
//! away from its backend for a while would break the affinity they exist
//! for (HAProxy does not slow-start its static algorithms either).

use std::time::Duration;

use super::{Balance, EndpointSet, Tried};

/// How many times a pick may be turned down for one request.
const MAX_SKIPS: usize = 3;

/// `balancer.pick`, with slow start applied (`slow_start` zero: exactly
/// `balancer.pick`).
#[inline]
pub fn pick(
    balancer: &dyn Balance,
    set: &EndpointSet,
    tried: &Tried,
    key: Option<u64>,
    slow_start: Duration,
) -> Option<usize> {
    let first = balancer.pick(set, tried, key)?;
    if slow_start.is_zero() {
        return Some(first);
    }
    let mut choice = first;
    let mut skipped: Option<Tried> = None;
    for _ in 0..MAX_SKIPS {
        let ramp = set.endpoints[choice].ramp(slow_start);
        if ramp >= 1.0 || fastrand::f64() < ramp {
            return Some(choice);
        }
        let skip = skipped.get_or_insert_with(|| tried.clone());
        skip.push(set.endpoints[choice].key());
        match balancer.pick(set, skip, key) {
            Some(next) => choice = next,
            // Nothing else to send it to: the ramping one it is.
            None => return Some(choice),
        }
    }
    Some(choice)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::balance::test_support::endpoints;
    use crate::balance::{Health, LeastConn, RoundRobin};
    use crate::clock::test_clock;

    /// Endpoint 0 re-enters rotation now; the others have been up for
    /// longer than `slow_start`, so their ramp is over. On the test clock.
    fn one_returning(slow_start: Duration) -> EndpointSet {
        test_clock::set();
        let set = endpoints(&[1, 1, 1, 1]);
        test_clock::advance(slow_start);
        set.endpoints[0].begin_epoch(Health::Up);
        set
    }

    fn share_of_first(b: &dyn Balance, set: &EndpointSet, slow_start: Duration) -> f64 {
        let mut first = 0;
        for _ in 0..10_000 {
            if pick(b, set, &Tried::default(), None, slow_start) == Some(0) {
                first += 1;
            }
        }
        f64::from(first) / 10_000.0
    }

    #[test]
    fn a_returning_backend_starts_at_a_tenth_of_its_share() {
        let slow_start = Duration::from_millis(300);
        let set = one_returning(slow_start);
        // Equal weights: a full share is 25%; 10% of it is 2.5%.
        for b in [
            &RoundRobin::default() as &dyn Balance,
            &LeastConn::default() as &dyn Balance,
        ] {
            let share = share_of_first(b, &set, slow_start);
            assert!((0.01..0.05).contains(&share), "share {share}");
        }
        // Without slow start it gets its full share at once.
        let share = share_of_first(&RoundRobin::default(), &set, Duration::ZERO);
        assert!((share - 0.25).abs() < 0.02, "share {share}");
    }

    #[test]
    fn the_share_grows_with_time_and_is_full_at_the_end() {
        let slow_start = Duration::from_millis(400);
        let set = one_returning(slow_start);
        let b = RoundRobin::default();
        let early = share_of_first(&b, &set, slow_start);
        test_clock::advance(Duration::from_millis(200));
        // Half way: a ramp of 0.5, 12.5% of picks.
        let middle = share_of_first(&b, &set, slow_start);
        test_clock::advance(Duration::from_millis(200));
        let late = share_of_first(&b, &set, slow_start);
        assert!((0.01..0.05).contains(&early), "early {early}");
        assert!((0.10..0.15).contains(&middle), "middle {middle}");
        assert!((late - 0.25).abs() < 0.02, "late {late}");
    }

    #[test]
    fn a_lone_ramping_backend_still_gets_every_request() {
        let set = endpoints(&[1]);
        let b = RoundRobin::default();
        for _ in 0..100 {
            assert_eq!(
                pick(&b, &set, &Tried::default(), None, Duration::from_secs(60)),
                Some(0)
            );
        }
    }
}
