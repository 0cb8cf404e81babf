//! Peak-EWMA latency of one endpoint, as Finagle's and linkerd's
//! (tower's) `PeakEwma`, kept in two atomics instead of behind a mutex.
//!
//! - A sample larger than the estimate replaces it at once (the "peak"): a
//!   backend that turns slow is avoided from its first slow response.
//! - A smaller sample pulls the estimate toward it with weight
//!   `1 - e^(-Δt/τ)`, Δt being the time since the previous sample: an
//!   average over time (τ = [`DECAY`]), however many requests there are.
//! - Read, the estimate is decayed toward zero by the time since the last
//!   sample. A backend that gets no traffic because it was slow therefore
//!   looks cheaper and cheaper and is tried again after a while (one 20×
//!   slower than the rest, after about τ·ln 20 ≈ 30 s); its next sample then
//!   tells the truth. tower does the same by recording a zero sample on
//!   every read; computing it on read instead keeps reads free of writes.
//!
//! The estimate and its time are two separate words: a reader can see one
//! updated and not the other, and two writers can lose one sample. Both only
//! nudge a heuristic, so no lock is taken.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The EWMA's time constant: linkerd's, tower's and Finagle's default.
pub(super) const DECAY: Duration = Duration::from_secs(10);
const DECAY_NS: f64 = DECAY.as_nanos() as f64;

/// No sample yet (not a valid `f64` estimate: it is a NaN pattern).
const NONE: u64 = u64::MAX;

pub(super) struct PeakEwma {
    /// `f64` nanoseconds, or [`NONE`].
    nanos: AtomicU64,
    /// When `nanos` was last updated, on [`clock_ns`].
    at: AtomicU64,
}

impl Default for PeakEwma {
    fn default() -> Self {
        PeakEwma {
            nanos: AtomicU64::new(NONE),
            at: AtomicU64::new(0),
        }
    }
}

impl PeakEwma {
    /// Record one latency sample taken at `now` ([`clock_ns`]).
    #[inline]
    pub(super) fn observe_at(&self, rtt: Duration, now: u64) {
        let rtt = rtt.as_nanos() as f64;
        let prev = self.nanos.load(Ordering::Relaxed);
        let next = if prev == NONE {
            rtt
        } else {
            let current = f64::from_bits(prev);
            if rtt >= current {
                rtt
            } else {
                let elapsed = now.saturating_sub(self.at.load(Ordering::Relaxed)) as f64;
                let keep = (-elapsed / DECAY_NS).exp();
                current * keep + rtt * (1.0 - keep)
            }
        };
        self.nanos.store(next.to_bits(), Ordering::Relaxed);
        self.at.store(now, Ordering::Relaxed);
    }

    /// The estimate at `now` in nanoseconds, decayed toward zero since the
    /// last sample; `None` before the first sample.
    #[inline]
    pub(super) fn estimate_at(&self, now: u64) -> Option<f64> {
        let bits = self.nanos.load(Ordering::Relaxed);
        if bits == NONE {
            return None;
        }
        let elapsed = now.saturating_sub(self.at.load(Ordering::Relaxed));
        let value = f64::from_bits(bits);
        if elapsed < 1_000_000 {
            // Within a millisecond the decay is below 1e-4: skip the exp.
            return Some(value);
        }
        Some(value * (-(elapsed as f64) / DECAY_NS).exp())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn first_sample_is_the_estimate_and_peaks_jump() {
        let e = PeakEwma::default();
        assert_eq!(e.estimate_at(0), None);
        e.observe_at(ms(10), 0);
        assert_eq!(e.estimate_at(0), Some(10.0 * MS as f64));
        e.observe_at(ms(50), MS);
        assert_eq!(e.estimate_at(MS), Some(50.0 * MS as f64));
    }

    #[test]
    fn lower_samples_pull_over_time_not_count() {
        let e = PeakEwma::default();
        e.observe_at(ms(100), 0);
        // 1000 samples of 10 ms within 1 ms barely move it ...
        for i in 0..1000 {
            e.observe_at(ms(10), i * 1000);
        }
        let after_burst = e.estimate_at(MS).unwrap() / MS as f64;
        assert!(after_burst > 99.0, "{after_burst}");
        // ... samples over one τ move it most of the way (1 - 1/e).
        for i in 1..=100u64 {
            e.observe_at(ms(10), MS + i * 100 * MS);
        }
        let after_tau = e.estimate_at(MS + 10_000 * MS).unwrap() / MS as f64;
        assert!((40.0..50.0).contains(&after_tau), "{after_tau}");
    }

    #[test]
    fn reads_decay_toward_zero_without_samples() {
        let e = PeakEwma::default();
        e.observe_at(ms(20), 0);
        let later = e.estimate_at(30_000 * MS).unwrap() / MS as f64;
        // 20 ms · e^-3
        assert!((0.9..1.1).contains(&later), "{later}");
        // A read never changes the stored estimate.
        assert_eq!(e.estimate_at(0), Some(20.0 * MS as f64));
    }
}
