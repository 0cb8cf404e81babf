//! shoal's clocks, in one place.
//!
//! - [`now_ms`] / [`now_ns`]: the policy clock — ejection windows and
//!   deadlines, slow start ramps, the retry budget's window, the
//!   peak-EWMA's decay. Monotonic time since the process started. Unit
//!   tests move it by hand ([`test_clock`]), so what depends on it is
//!   tested without sleeping.
//! - [`coarse`]: the engine's deadlines and idle stamps, measured in
//!   seconds, cheap to read (below).
//!
//! The coarse clock:
//!
//! `Instant::now()` reads the TSC through the vDSO: about 20 ns here, and
//! the engine used to read it nine times per request. What only needs to
//! know "is this idle socket older than 90 s" or "close this connection
//! 75 s from now" can use `CLOCK_MONOTONIC_COARSE` instead: the kernel's
//! time at its last tick (at most 4 ms old on a 250 Hz kernel), read from
//! the vDSO without touching the TSC, in about 3 ns. nginx (`ngx_time`)
//! and HAProxy (`now_ms`) cache their clock for the same reason.
//!
//! Latencies (the peak-EWMA, the response-time histogram) stay on the
//! precise clock. Neither follows a paused tokio clock (`tokio::time::
//! pause`): what is timed with them cannot be tested with paused time.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nix::time::{clock_gettime, ClockId};

/// Where the policy clock starts.
fn start() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// Nanoseconds on the policy clock.
#[inline]
pub fn now_ns() -> u64 {
    #[cfg(test)]
    if let Some(ns) = test_clock::now() {
        return ns;
    }
    ns_at(Instant::now())
}

/// Milliseconds on the policy clock.
#[inline]
pub fn now_ms() -> u64 {
    now_ns() / 1_000_000
}

/// `at` (a reading already taken, e.g. to time a response) on the policy
/// clock, in nanoseconds.
#[inline]
pub fn ns_at(at: Instant) -> u64 {
    #[cfg(test)]
    if let Some(ns) = test_clock::now() {
        return ns;
    }
    at.saturating_duration_since(start()).as_nanos() as u64
}

/// The policy clock under a unit test's hand: once [`set`](test_clock::set)
/// on a thread, it reads what the test says there, and moves only by
/// [`advance`](test_clock::advance).
#[cfg(test)]
pub mod test_clock {
    use std::cell::Cell;
    use std::time::Duration;

    thread_local! {
        static NOW: Cell<Option<u64>> = const { Cell::new(None) };
    }

    pub(super) fn now() -> Option<u64> {
        NOW.with(Cell::get)
    }

    /// Take this thread's clock in hand, at an arbitrary non-zero time.
    pub fn set() {
        NOW.with(|n| n.set(Some(1_000_000_000)));
    }

    pub fn advance(by: Duration) {
        NOW.with(|n| {
            let now = n.get().expect("test_clock::set first");
            n.set(Some(now + by.as_nanos() as u64));
        });
    }
}

/// Now, to within one kernel tick (it may be up to a tick behind or
/// ahead of `Instant::now()`); never goes backwards.
#[inline]
pub fn coarse() -> Instant {
    // `Instant` has no constructor from a timespec: keep one pair read at
    // the same moment and add what the coarse clock moved since. Both are
    // CLOCK_MONOTONIC underneath, so they move together.
    static BASE: OnceLock<(Instant, u64)> = OnceLock::new();
    let (base, base_ns) = *BASE.get_or_init(|| (Instant::now(), coarse_ns()));
    base + Duration::from_nanos(coarse_ns().saturating_sub(base_ns))
}

fn coarse_ns() -> u64 {
    match clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE) {
        Ok(t) => t.tv_sec() as u64 * 1_000_000_000 + t.tv_nsec() as u64,
        // Not on this kernel (it has been there since Linux 2.6.32): the
        // precise clock, on the same timeline.
        Err(_) => {
            static START: OnceLock<Instant> = OnceLock::new();
            START.get_or_init(Instant::now).elapsed().as_nanos() as u64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coarse_follows_the_precise_clock_within_a_tick() {
        // A tick is 1–10 ms (HZ 1000 to 100); allow two.
        let slack = Duration::from_millis(20);
        for _ in 0..5 {
            let precise = Instant::now();
            let coarse = coarse();
            let gap = if coarse > precise {
                coarse - precise
            } else {
                precise - coarse
            };
            assert!(
                gap <= slack,
                "coarse clock {gap:?} away from Instant::now()"
            );
            std::thread::sleep(Duration::from_millis(7));
        }
    }

    #[test]
    fn coarse_moves_forward() {
        let a = coarse();
        std::thread::sleep(Duration::from_millis(30));
        let b = coarse();
        assert!(b >= a + Duration::from_millis(15), "{:?}", b - a);
    }
}
