//! Panic mode (`balance.panic_mode`): when no backend is in rotation, a
//! request goes to one that is running but failing (down, ejected, or not yet
//! checked) rather than getting a 503, as Envoy does below its panic
//! threshold: the checks may be wrong, and a failing backend may still
//! answer. Stopped backends (no process) are never picked; the retry loop
//! moves on from one that does not answer.

use std::sync::atomic::{AtomicU64, Ordering};

use super::{EndpointSet, Health, Tried};
use crate::clock::now_ms;

/// True at most once a second: panic mode is worth a warning, not one per
/// request.
pub fn warning_due() -> bool {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = now_ms() / 1000 + 1;
    let last = LAST.load(Ordering::Relaxed);
    now > last
        && LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

/// An endpoint that is not stopped and not yet tried, spread at random;
/// `None` when there is none.
pub fn pick(set: &EndpointSet, tried: &Tried) -> Option<usize> {
    let n = set.endpoints.len();
    if n == 0 {
        return None;
    }
    let start = fastrand::usize(..n);
    (0..n).map(|i| (start + i) % n).find(|&i| {
        let e = &set.endpoints[i];
        e.health_word().health() != Health::Stopped && !tried.contains(e.key())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::test_support::endpoints;

    #[test]
    fn picks_running_backends_out_of_rotation_and_never_stopped_ones() {
        let set = endpoints(&[1, 1, 1]);
        set.endpoints[0].begin_epoch(Health::Down);
        set.endpoints[1].begin_epoch(Health::Stopped);
        set.endpoints[2].begin_epoch(Health::Starting);
        let mut seen = [0; 3];
        for _ in 0..300 {
            seen[pick(&set, &Tried::default()).unwrap()] += 1;
        }
        assert!(seen[0] > 50 && seen[1] == 0 && seen[2] > 50, "{seen:?}");
        let mut tried = Tried::default();
        tried.push(set.endpoints[0].key());
        tried.push(set.endpoints[2].key());
        assert_eq!(pick(&set, &tried), None);
    }
}
