//! The cache's counters, process-wide (the store is): requests by what
//! the cache did, read by `/metrics` and `GET /api/v1/cache`.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// What the cache did with a request: the `X-Cache` value, the access
/// log's `cache` field and the metric's `outcome` label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Answered from the store, fresh.
    Hit,
    /// Fetched from the backend (and stored if it may be).
    Miss,
    /// Answered from the store, stale (`stale-while-revalidate`,
    /// `stale-if-error`, a request's `max-stale`).
    Stale,
    /// A stored response the backend confirmed (304).
    Revalidated,
    /// Not for the cache (a method, a `Range`, a request it cannot
    /// answer).
    Bypass,
}

pub const OUTCOMES: [Outcome; 5] = [
    Outcome::Hit,
    Outcome::Miss,
    Outcome::Stale,
    Outcome::Revalidated,
    Outcome::Bypass,
];

impl Outcome {
    pub fn word(self) -> &'static str {
        match self {
            Outcome::Hit => "HIT",
            Outcome::Miss => "MISS",
            Outcome::Stale => "STALE",
            Outcome::Revalidated => "REVALIDATED",
            Outcome::Bypass => "BYPASS",
        }
    }

    /// The metric's label.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Revalidated => "revalidated",
            Outcome::Bypass => "bypass",
        }
    }
}

static REQUESTS: [AtomicU64; 5] = [const { AtomicU64::new(0) }; 5];

pub fn count(outcome: Outcome) {
    REQUESTS[outcome as usize].fetch_add(1, Relaxed);
}

/// Requests so far, by outcome.
pub fn requests(outcome: Outcome) -> u64 {
    REQUESTS[outcome as usize].load(Relaxed)
}
