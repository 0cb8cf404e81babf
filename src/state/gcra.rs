//! GCRA (the generic cell rate algorithm): one number per key, the
//! *theoretical arrival time* (TAT) — when the key's bucket would be full
//! again if no request came. A request is allowed when, counting it, the
//! TAT is no further ahead of now than the burst allows; allowing it moves
//! the TAT one emission interval on. A key whose TAT is in the past is the
//! same as a key never seen, so idle keys can be forgotten without
//! changing any decision.
//!
//! The same arithmetic runs in Rust (the memory store) and in Redis's Lua
//! (`state::redis`); the behaviour suite checks that both agree.

use std::time::Duration;

/// A rule's settings as GCRA reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// The steady spacing between two requests: the rate's period divided
    /// by its count.
    pub interval_ns: u64,
    /// Requests that may come at once (the bucket's size, at least 1).
    pub burst: u32,
}

impl Quota {
    pub fn new(interval: Duration, burst: u32) -> Quota {
        Quota {
            interval_ns: (interval.as_nanos() as u64).max(1),
            burst: burst.max(1),
        }
    }

    /// How far ahead of now the TAT may be: the whole bucket.
    pub fn tolerance_ns(&self) -> u64 {
        self.interval_ns.saturating_mul(u64::from(self.burst))
    }
}

/// One decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    pub allowed: bool,
    /// Requests that could come right after this one (0 when refused).
    pub remaining: u32,
    /// Until the bucket is full again (`RateLimit-Reset`).
    pub reset_ns: u64,
    /// Until one more request would be allowed (`Retry-After`); 0 when
    /// this one was.
    pub retry_after_ns: u64,
}

impl Verdict {
    /// A request allowed without being counted (`on_error: allow`).
    pub fn uncounted(quota: Quota) -> Verdict {
        Verdict {
            allowed: true,
            remaining: quota.burst,
            reset_ns: 0,
            retry_after_ns: 0,
        }
    }

    /// A request refused without being counted (`on_error: deny`).
    pub fn refused(quota: Quota) -> Verdict {
        Verdict {
            allowed: false,
            remaining: 0,
            reset_ns: quota.tolerance_ns(),
            retry_after_ns: quota.interval_ns,
        }
    }
}

/// The decision for one request of `cost` (1 for a request) on a key whose
/// stored TAT is `tat` (`None`: never seen, or forgotten), at `now`, and
/// the TAT to store when it is allowed.
pub fn decide(tat: Option<u64>, now: u64, quota: Quota, cost: u32) -> (Verdict, Option<u64>) {
    let tolerance = quota.tolerance_ns();
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(quota.interval_ns.saturating_mul(u64::from(cost)));
    // The earliest moment the request fits: the bucket may be at most
    // `tolerance` ahead.
    let allow_at = new_tat.saturating_sub(tolerance);
    if now < allow_at {
        let ahead = tat - now;
        let verdict = Verdict {
            allowed: false,
            remaining: 0,
            reset_ns: ahead,
            retry_after_ns: allow_at - now,
        };
        return (verdict, None);
    }
    let ahead = new_tat - now;
    let remaining = (tolerance - ahead) / quota.interval_ns;
    let verdict = Verdict {
        allowed: true,
        remaining: remaining.min(u64::from(u32::MAX)) as u32,
        reset_ns: ahead,
        retry_after_ns: 0,
    };
    (verdict, Some(new_tat))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn run(quota: Quota, times: &[u64]) -> Vec<bool> {
        let mut tat = None;
        times
            .iter()
            .map(|&now| {
                let (v, stored) = decide(tat, now, quota, 1);
                if stored.is_some() {
                    tat = stored;
                }
                v.allowed
            })
            .collect()
    }

    #[test]
    fn a_burst_passes_at_once_then_the_steady_rate() {
        // 10/s, burst 5: five at t=0, the sixth refused; one more each 100 ms.
        let q = Quota::new(Duration::from_millis(100), 5);
        let got = run(q, &[0, 0, 0, 0, 0, 0, SEC / 10, SEC / 10, SEC / 5]);
        assert_eq!(
            got,
            [true, true, true, true, true, false, true, false, true]
        );
    }

    #[test]
    fn remaining_and_reset_count_down() {
        let q = Quota::new(Duration::from_secs(1), 3);
        let (v, tat) = decide(None, 10 * SEC, q, 1);
        assert_eq!((v.allowed, v.remaining, v.reset_ns), (true, 2, SEC));
        let (v, tat) = decide(tat, 10 * SEC, q, 1);
        assert_eq!((v.remaining, v.reset_ns), (1, 2 * SEC));
        let (v, tat) = decide(tat, 10 * SEC, q, 1);
        assert_eq!((v.remaining, v.reset_ns), (0, 3 * SEC));
        let (v, none) = decide(tat, 10 * SEC, q, 1);
        assert!(!v.allowed && none.is_none());
        assert_eq!(v.retry_after_ns, SEC);
        // Half a second later, still half a second to wait.
        let (v, _) = decide(tat, 10 * SEC + SEC / 2, q, 1);
        assert_eq!(v.retry_after_ns, SEC / 2);
    }

    #[test]
    fn a_tat_in_the_past_is_a_fresh_key() {
        let q = Quota::new(Duration::from_secs(1), 2);
        let fresh = decide(None, 100 * SEC, q, 1);
        let old = decide(Some(3 * SEC), 100 * SEC, q, 1);
        assert_eq!(fresh, old);
    }

    #[test]
    fn over_a_long_run_the_rate_holds() {
        // 100/min with burst 100 over 10 minutes of one request every 10 ms:
        // the burst plus the rate's share of the time.
        let q = Quota::new(Duration::from_millis(600), 100);
        let times: Vec<u64> = (0..60_000).map(|i| i * SEC / 100).collect();
        let allowed = run(q, &times).iter().filter(|a| **a).count();
        assert_eq!(allowed, 100 + 999);
    }
}
