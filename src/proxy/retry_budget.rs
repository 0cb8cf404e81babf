//! The retry budget: retries may add at most `retry_budget_percent` of the
//! requests seen in the current window, plus `retry_budget_min`, so that when
//! every backend is failing, retries cannot multiply the load (as Finagle's
//! and linkerd's budgets). Retries of requests that never reached a backend
//! (connect refused, not sent) are free: they add no load to any backend.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::now_ms;

#[derive(Default)]
pub struct RetryBudget {
    requests: AtomicU64,
    window_start_ms: AtomicU64,
    requests_at_start: AtomicU64,
    retries: AtomicU64,
}

impl RetryBudget {
    /// Count a request (one relaxed add; the clock is read only on retries).
    #[inline]
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// May one more retry go out now? Takes it from the budget if so.
    pub fn try_retry(&self, percent: u32, min: u32, window: Duration) -> bool {
        let now = now_ms();
        let start = self.window_start_ms.load(Ordering::Relaxed);
        let total = self.requests.load(Ordering::Relaxed);
        if now.saturating_sub(start) > window.as_millis() as u64 {
            // Races between threads here only blur the window's edge.
            self.window_start_ms.store(now, Ordering::Relaxed);
            self.requests_at_start.store(total, Ordering::Relaxed);
            self.retries.store(0, Ordering::Relaxed);
        }
        let seen = total.saturating_sub(self.requests_at_start.load(Ordering::Relaxed));
        let allowed = min as u64 + seen * percent as u64 / 100;
        if self.retries.fetch_add(1, Ordering::Relaxed) < allowed {
            true
        } else {
            self.retries.fetch_sub(1, Ordering::Relaxed);
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_share_of_requests_plus_a_minimum() {
        let b = RetryBudget::default();
        let w = Duration::from_secs(60);
        assert!(!b.try_retry(20, 0, w), "no requests yet, no minimum");
        for _ in 0..100 {
            b.request();
        }
        let granted = (0..100).filter(|_| b.try_retry(20, 3, w)).count();
        assert_eq!(granted, 23, "20% of 100 plus 3");
    }

    #[test]
    fn a_new_window_starts_over() {
        crate::clock::test_clock::set();
        let b = RetryBudget::default();
        let w = Duration::from_secs(10);
        for _ in 0..10 {
            b.request();
        }
        assert_eq!((0..10).filter(|_| b.try_retry(50, 0, w)).count(), 5);
        crate::clock::test_clock::advance(Duration::from_secs(9));
        assert!(!b.try_retry(50, 0, w), "the same window");
        crate::clock::test_clock::advance(Duration::from_secs(2));
        // Requests before the new window do not count in it.
        assert!(!b.try_retry(50, 0, w), "a new window, no requests yet");
        for _ in 0..4 {
            b.request();
        }
        assert_eq!((0..10).filter(|_| b.try_retry(50, 0, w)).count(), 2);
    }
}
