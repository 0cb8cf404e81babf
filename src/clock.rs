//! A coarse clock for deadlines and idle stamps measured in seconds.
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
