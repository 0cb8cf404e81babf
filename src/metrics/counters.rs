//! Process-wide counters for what no single backend owns: the answers shoal
//! makes itself (errors, refusals), retries, and client connections. They
//! are touched on error paths and once per connection, never per request
//! on the success path.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// The statuses shoal answers with itself, in the order they are exported.
pub const GENERATED_STATUSES: [u16; 9] = [400, 408, 413, 414, 431, 500, 502, 503, 504];

static GENERATED: [AtomicU64; GENERATED_STATUSES.len() + 1] =
    [const { AtomicU64::new(0) }; GENERATED_STATUSES.len() + 1];
static RETRIES: AtomicU64 = AtomicU64::new(0);
static RETRY_BUDGET_EXHAUSTED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_ACCEPTED: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_OPEN: AtomicI64 = AtomicI64::new(0);
static NATIVE_HANDOFFS: AtomicU64 = AtomicU64::new(0);
static CONNECTIONS_PARKED: AtomicI64 = AtomicI64::new(0);

/// shoal answered a client with `status` itself (not a backend's answer).
pub fn generated(status: u16) {
    let i = GENERATED_STATUSES
        .iter()
        .position(|s| *s == status)
        .unwrap_or(GENERATED_STATUSES.len());
    GENERATED[i].fetch_add(1, Ordering::Relaxed);
}

/// `(status, count)` for each status shoal answered with; `None` is any
/// other status.
pub fn generated_counts() -> Vec<(Option<u16>, u64)> {
    GENERATED
        .iter()
        .enumerate()
        .map(|(i, c)| {
            (
                GENERATED_STATUSES.get(i).copied(),
                c.load(Ordering::Relaxed),
            )
        })
        .collect()
}

pub fn retry() {
    RETRIES.fetch_add(1, Ordering::Relaxed);
}

pub fn retries() -> u64 {
    RETRIES.load(Ordering::Relaxed)
}

pub fn retry_budget_exhausted() {
    RETRY_BUDGET_EXHAUSTED.fetch_add(1, Ordering::Relaxed);
}

pub fn retry_budget_exhausted_count() -> u64 {
    RETRY_BUDGET_EXHAUSTED.load(Ordering::Relaxed)
}

/// A client connection was accepted; it counts as open until the guard drops.
pub fn connection_opened() -> ConnectionGuard {
    CONNECTIONS_ACCEPTED.fetch_add(1, Ordering::Relaxed);
    CONNECTIONS_OPEN.fetch_add(1, Ordering::Relaxed);
    ConnectionGuard(())
}

pub fn connections_accepted() -> u64 {
    CONNECTIONS_ACCEPTED.load(Ordering::Relaxed)
}

pub fn connections_open() -> i64 {
    CONNECTIONS_OPEN.load(Ordering::Relaxed)
}

/// A client connection moved from the native HTTP/1.1 engine to hyper (at
/// most once per connection).
pub fn native_handoff() {
    NATIVE_HANDOFFS.fetch_add(1, Ordering::Relaxed);
}

pub fn native_handoffs() -> u64 {
    NATIVE_HANDOFFS.load(Ordering::Relaxed)
}

/// Idle client connections that parked (`+n`) or left parking (`-n`).
pub fn parked(delta: i64) {
    CONNECTIONS_PARKED.fetch_add(delta, Ordering::Relaxed);
}

pub fn connections_parked() -> i64 {
    CONNECTIONS_PARKED.load(Ordering::Relaxed)
}

pub struct ConnectionGuard(());

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        CONNECTIONS_OPEN.fetch_sub(1, Ordering::Relaxed);
    }
}
