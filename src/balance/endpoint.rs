//! One backend the balancer can send requests to, and its live state.
//!
//! Health and lifecycle are kept in one atomic word (state + epoch) so that a
//! health check that started before an instance restarted can never put the
//! new, unchecked process into rotation: the check's result is applied only if
//! the epoch it began under is still current.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use super::ewma::{clock_ns, PeakEwma};
use crate::proxy::pool::{Pool, PoolSettings};

/// Health of an endpoint as the balancer sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Not yet passed a check since it (re)started: no traffic.
    Starting,
    /// In rotation.
    Up,
    /// Failed `fall` checks in a row: no traffic until `rise` passes.
    Down,
    /// The process behind it is not running (crashed, backing off, stopped).
    Stopped,
    /// Passive health: `max_fails` failed requests within `fail_timeout`;
    /// back in rotation when `fail_timeout` has passed.
    Ejected,
}

impl Health {
    fn code(self) -> u64 {
        match self {
            Health::Starting => 0,
            Health::Up => 1,
            Health::Down => 2,
            Health::Stopped => 3,
            Health::Ejected => 4,
        }
    }

    fn from_code(code: u64) -> Health {
        match code {
            0 => Health::Starting,
            1 => Health::Up,
            2 => Health::Down,
            4 => Health::Ejected,
            _ => Health::Stopped,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Health::Starting => "starting",
            Health::Up => "up",
            Health::Down => "down",
            Health::Stopped => "stopped",
            Health::Ejected => "ejected",
        }
    }
}

const STATE_BITS: u64 = 4;
const STATE_MASK: u64 = (1 << STATE_BITS) - 1;

/// A snapshot of the health word: which state, under which epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthWord(u64);

impl HealthWord {
    pub fn health(self) -> Health {
        Health::from_code(self.0 & STATE_MASK)
    }

    pub fn epoch(self) -> u64 {
        self.0 >> STATE_BITS
    }
}

static NEXT_KEY: AtomicU64 = AtomicU64::new(1);

pub struct Endpoint {
    /// Unique for the life of the process; lets a retry skip backends it tried.
    key: u64,
    /// `app-2` for an instance, the URL for a static upstream.
    pub id: String,
    pub addr: SocketAddr,
    /// The `Host` a health check sends.
    pub authority: String,
    pub weight: u32,
    health: AtomicU64,
    /// Passive health: failures in the current window, and when it began.
    fails: AtomicU32,
    fail_window: AtomicU64,
    in_flight: AtomicUsize,
    /// Peak-EWMA of response-header latency, for `p2c_ewma`.
    latency: PeakEwma,
    requests: AtomicU64,
    pub pool: Pool,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("id", &self.id)
            .field("addr", &self.addr)
            .field("health", &self.health_word().health())
            .finish()
    }
}

impl Endpoint {
    pub fn new(id: String, addr: SocketAddr, weight: u32, pool: &PoolSettings) -> Arc<Endpoint> {
        Arc::new(Endpoint {
            pool: Pool::new(addr, pool.clone()),
            key: NEXT_KEY.fetch_add(1, Ordering::Relaxed),
            authority: addr.to_string(),
            id,
            addr,
            weight: weight.max(1),
            health: AtomicU64::new(Health::Starting.code()),
            fails: AtomicU32::new(0),
            fail_window: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            latency: PeakEwma::default(),
            requests: AtomicU64::new(0),
        })
    }

    pub fn key(&self) -> u64 {
        self.key
    }

    /// True when the balancer may pick this endpoint.
    #[inline]
    pub fn in_rotation(&self) -> bool {
        self.health.load(Ordering::Acquire) & STATE_MASK == Health::Up.code()
    }

    pub fn health_word(&self) -> HealthWord {
        HealthWord(self.health.load(Ordering::Acquire))
    }

    /// Start a new life (a process (re)started or stopped): bumps the epoch so
    /// results of checks begun before now are discarded.
    pub fn begin_epoch(&self, health: Health) {
        let mut current = self.health.load(Ordering::Acquire);
        loop {
            let next = ((current >> STATE_BITS) + 1) << STATE_BITS | health.code();
            match self.health.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    /// Move to `health` if the word is still `seen`; false when something
    /// (a restart, another transition) happened in between.
    pub fn transition(&self, seen: HealthWord, health: Health) -> bool {
        let next = seen.0 & !STATE_MASK | health.code();
        self.health
            .compare_exchange(seen.0, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Count a failed request (connect error, reset, timeout, a status in
    /// `fail_statuses`). `max_fails` of them within `fail_timeout` eject the
    /// endpoint for `fail_timeout`, as nginx's `max_fails`/`fail_timeout`.
    /// Returns true when this failure ejected it.
    pub fn record_failure(self: &Arc<Self>, max_fails: u32, fail_timeout: Duration) -> bool {
        if max_fails == 0 {
            return false;
        }
        let now = clock_ms();
        let window = fail_timeout.as_millis() as u64;
        let start = self.fail_window.load(Ordering::Relaxed);
        let fails = if now.saturating_sub(start) > window {
            self.fail_window.store(now, Ordering::Relaxed);
            self.fails.store(1, Ordering::Relaxed);
            1
        } else {
            self.fails.fetch_add(1, Ordering::Relaxed) + 1
        };
        if fails < max_fails {
            return false;
        }
        let seen = self.health_word();
        if seen.health() != Health::Up || !self.transition(seen, Health::Ejected) {
            return false;
        }
        self.fails.store(0, Ordering::Relaxed);
        let ejected = HealthWord(seen.0 & !STATE_MASK | Health::Ejected.code());
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(fail_timeout).await;
            // Only if nothing else happened meanwhile (a restart, a check).
            if me.transition(ejected, Health::Up) {
                tracing::info!(backend = %me.id, "back in rotation after fail_timeout");
            }
        });
        true
    }

    #[inline]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Record the time from sending a request to its response headers (the
    /// proxy calls this for every response). Feeds the peak-EWMA that
    /// `p2c_ewma` balances on; lock-free, a few nanoseconds.
    #[inline]
    pub fn observe_latency(&self, rtt: Duration) {
        self.latency.observe_at(rtt, clock_ns());
    }

    /// The current peak-EWMA latency estimate (decayed since the last
    /// response); `None` before the first response.
    pub fn latency(&self) -> Option<Duration> {
        self.latency
            .estimate_at(clock_ns())
            .map(|ns| Duration::from_nanos(ns as u64))
    }

    /// [`latency`](Self::latency) at `now` on the balancer's clock, in ns.
    #[inline]
    pub(super) fn latency_at(&self, now: u64) -> Option<f64> {
        self.latency.estimate_at(now)
    }

    #[cfg(test)]
    pub(super) fn observe_latency_at(&self, rtt: Duration, now: u64) {
        self.latency.observe_at(rtt, now);
    }

    /// Count a request as in flight until the returned guard is dropped.
    #[inline]
    pub fn start_request(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }
}

/// Milliseconds on a process-wide monotonic clock (failure windows only;
/// never read on the success path).
fn clock_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64
}

/// Holds one unit of an endpoint's in-flight count.
pub struct InFlight(Arc<Endpoint>);

impl InFlight {
    pub fn endpoint(&self) -> &Arc<Endpoint> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}
