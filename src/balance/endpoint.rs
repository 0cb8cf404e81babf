//! One backend the balancer can send requests to, and its live state.
//!
//! Health and lifecycle are kept in one atomic word (state + epoch) so that a
//! health check that started before an instance restarted can never put the
//! new, unchecked process into rotation: the check's result is applied only if
//! the epoch it began under is still current.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::ewma::{clock_ns, clock_ns_at, PeakEwma};
use crate::metrics::histogram::{Histogram, Snapshot};
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
    /// back in rotation when its ejection time has passed.
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
    /// For a supervised instance, `app.max_fails`: failures in a row (a
    /// successful response starts the count over) replace `max_fails`.
    /// [`NOT_LOCAL`] for other backends.
    local_max_fails: AtomicU32,
    /// Outlier ejection: ejections in a row (each lasts longer), and when
    /// the last one ended (`clock_ms`); the count decays while it behaves.
    ejections: AtomicU32,
    returned_at: AtomicU64,
    /// When it last entered rotation (`clock_ms`), for slow start.
    up_since: AtomicU64,
    /// The latest active health check, for the status API.
    last_check: Mutex<Option<CheckReport>>,
    in_flight: AtomicUsize,
    /// Peak-EWMA of response-header latency, for `p2c_ewma`.
    latency: PeakEwma,
    requests: AtomicU64,
    /// Responses by status class (1xx … 5xx), and their times to headers.
    responses: [AtomicU64; 5],
    response_times: Histogram,
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
            local_max_fails: AtomicU32::new(NOT_LOCAL),
            ejections: AtomicU32::new(0),
            returned_at: AtomicU64::new(0),
            up_since: AtomicU64::new(0),
            last_check: Mutex::new(None),
            in_flight: AtomicUsize::new(0),
            latency: PeakEwma::default(),
            requests: AtomicU64::new(0),
            responses: Default::default(),
            response_times: Histogram::default(),
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
        // A new process starts with a clean record.
        self.ejections.store(0, Ordering::Relaxed);
        self.fails.store(0, Ordering::Relaxed);
        loop {
            let next = ((current >> STATE_BITS) + 1) << STATE_BITS | health.code();
            match self.health.compare_exchange_weak(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        if health == Health::Up {
            self.up_since.store(clock_ms(), Ordering::Relaxed);
        }
    }

    /// Move to `health` if the word is still `seen`; false when something
    /// (a restart, another transition) happened in between.
    pub fn transition(&self, seen: HealthWord, health: Health) -> bool {
        let next = seen.0 & !STATE_MASK | health.code();
        let moved = self
            .health
            .compare_exchange(seen.0, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok();
        if moved && health == Health::Up && seen.health() != Health::Up {
            self.up_since.store(clock_ms(), Ordering::Relaxed);
        }
        moved
    }

    /// Slow start: the share of its normal traffic this endpoint should get
    /// now, ramping linearly from 10% when it entered rotation to 100% after
    /// `slow_start` (1.0 when slow start is off or over).
    #[inline]
    pub fn ramp(&self, slow_start: Duration) -> f64 {
        if slow_start.is_zero() {
            return 1.0;
        }
        let since = clock_ms().saturating_sub(self.up_since.load(Ordering::Relaxed));
        let total = slow_start.as_millis() as u64;
        if since >= total {
            return 1.0;
        }
        (since as f64 / total as f64).max(MIN_RAMP)
    }

    /// Time since it last entered rotation, when it has passed a check in
    /// its current life (up, or down or ejected since); `None` while it is
    /// starting or stopped. The supervisor tells a process that served a
    /// while from one that dies at start-up with it.
    pub fn since_up(&self) -> Option<Duration> {
        match self.health_word().health() {
            Health::Up | Health::Down | Health::Ejected => {
                let since = clock_ms().saturating_sub(self.up_since.load(Ordering::Relaxed));
                Some(Duration::from_millis(since))
            }
            Health::Starting | Health::Stopped => None,
        }
    }

    /// Passive ejections in a row (0 when it has behaved for long enough).
    pub fn ejections(&self) -> u32 {
        self.ejections.load(Ordering::Relaxed)
    }

    /// Record the outcome of an active health check (for the status API).
    pub fn set_last_check(&self, report: CheckReport) {
        if let Ok(mut slot) = self.last_check.lock() {
            *slot = Some(report);
        }
    }

    pub fn last_check(&self) -> Option<CheckReport> {
        self.last_check.lock().ok().and_then(|s| s.clone())
    }

    /// Make this a supervised instance's endpoint: passive ejection after
    /// `max_fails` failed requests in a row (`app.max_fails`), instead of
    /// `proxy.max_fails` within the window. Set again on a config reload.
    pub fn set_local_max_fails(&self, max_fails: u32) {
        self.local_max_fails
            .store(max_fails.min(NOT_LOCAL - 1), Ordering::Relaxed);
    }

    /// Count a failed request (connect error, reset, timeout, a status in
    /// `fail_statuses`). `max_fails` of them within `fail_timeout` eject the
    /// endpoint, as nginx's `max_fails`/`fail_timeout`; the ejection lasts
    /// `fail_timeout` × the number of ejections in a row, up to
    /// `max_ejection_time` (Envoy's outlier detection), so a backend that
    /// keeps failing is tried less and less often. Each `fail_timeout` it
    /// then stays in rotation without being ejected takes one off the count.
    /// Returns the ejection time when this failure ejected it.
    pub fn record_failure(self: &Arc<Self>, passive: &PassiveHealth) -> Option<Duration> {
        let PassiveHealth {
            mut max_fails,
            fail_timeout,
            max_ejection_time,
        } = *passive;
        let local = self.local_max_fails.load(Ordering::Relaxed);
        if local != NOT_LOCAL {
            max_fails = local;
        }
        if max_fails == 0 {
            return None;
        }
        let now = clock_ms();
        let window = (fail_timeout.as_millis() as u64).max(1);
        let start = self.fail_window.load(Ordering::Relaxed);
        let fails = if now.saturating_sub(start) > window {
            self.fail_window.store(now, Ordering::Relaxed);
            self.fails.store(1, Ordering::Relaxed);
            1
        } else {
            self.fails.fetch_add(1, Ordering::Relaxed) + 1
        };
        if fails < max_fails {
            return None;
        }
        let seen = self.health_word();
        if seen.health() != Health::Up || !self.transition(seen, Health::Ejected) {
            return None;
        }
        self.fails.store(0, Ordering::Relaxed);
        let behaved = match self.returned_at.load(Ordering::Relaxed) {
            0 => 0,
            at => now.saturating_sub(at) / window,
        };
        let previous = self.ejections.load(Ordering::Relaxed);
        let count = previous
            .saturating_sub(u32::try_from(behaved).unwrap_or(u32::MAX))
            .saturating_add(1);
        self.ejections.store(count, Ordering::Relaxed);
        let eject_for = fail_timeout
            .saturating_mul(count)
            .min(max_ejection_time.max(fail_timeout));
        let ejected = HealthWord(seen.0 & !STATE_MASK | Health::Ejected.code());
        let me = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(eject_for).await;
            // Only if nothing else happened meanwhile (a restart, a check).
            if me.transition(ejected, Health::Up) {
                me.returned_at.store(clock_ms().max(1), Ordering::Relaxed);
                tracing::info!(backend = %me.id, ejected_for = ?eject_for, "back in rotation after ejection");
            }
        });
        Some(eject_for)
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

    /// A response's headers arrived now, for a request sent at `sent`:
    /// feeds the peak-EWMA and the metrics (status class, time histogram).
    /// One clock reading serves all of them.
    #[inline]
    pub fn record_response(&self, status: u16, sent: Instant) {
        let now = Instant::now();
        let rtt = now.saturating_duration_since(sent);
        self.latency.observe_at(rtt, clock_ns_at(now));
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Ordering::Relaxed);
        // A supervised instance counts failures in a row: an answer starts
        // the count over. (One load, and a branch, while nothing failed.)
        if status < 400
            && self.fails.load(Ordering::Relaxed) != 0
            && self.local_max_fails.load(Ordering::Relaxed) != NOT_LOCAL
        {
            self.fails.store(0, Ordering::Relaxed);
        }
        self.response_times.record(rtt);
    }

    /// Responses so far by class, in the order of [`RESPONSE_CLASSES`].
    pub fn responses(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }

    pub fn response_times(&self) -> Snapshot {
        self.response_times.snapshot()
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

/// `local_max_fails` of a backend that is not a supervised instance.
const NOT_LOCAL: u32 = u32::MAX;

/// The status classes [`Endpoint::responses`] counts.
pub const RESPONSE_CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// The lowest share slow start gives a backend that just entered rotation
/// (Envoy's `min_weight_percent`): enough for it to prove itself.
const MIN_RAMP: f64 = 0.1;

/// Passive health settings (`proxy.max_fails`, `fail_timeout`,
/// `max_ejection_time`).
#[derive(Debug, Clone, Copy)]
pub struct PassiveHealth {
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub max_ejection_time: Duration,
}

/// The outcome of one active health check.
#[derive(Debug, Clone)]
pub struct CheckReport {
    pub passed: bool,
    /// `ok`, or why it failed (`status 500`, `timed out`, …).
    pub detail: String,
    pub duration: Duration,
    pub at: std::time::SystemTime,
}

/// Milliseconds on the balancer's clock (`ewma::clock_ns`): failure
/// windows, panic-mode warnings, and slow start when it is on; never read on
/// the success path otherwise.
pub(super) fn clock_ms() -> u64 {
    clock_ns() / 1_000_000
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

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Arc<Endpoint> {
        let e = Endpoint::new(
            "e".into(),
            ([127, 0, 0, 1], 1).into(),
            1,
            &PoolSettings::default(),
        );
        e.begin_epoch(Health::Up);
        e
    }

    async fn wait_up(e: &Endpoint) {
        while e.health_word().health() != Health::Up {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test]
    async fn each_ejection_in_a_row_lasts_longer_up_to_the_cap() {
        let step = Duration::from_millis(40);
        let passive = PassiveHealth {
            max_fails: 1,
            fail_timeout: step,
            max_ejection_time: step * 3,
        };
        let e = endpoint();
        let mut lengths = Vec::new();
        for _ in 0..4 {
            lengths.push(e.record_failure(&passive).expect("ejected"));
            assert_eq!(e.health_word().health(), Health::Ejected);
            // Ejected endpoints are not counted again.
            assert_eq!(e.record_failure(&passive), None);
            wait_up(&e).await;
        }
        assert_eq!(lengths, [step, step * 2, step * 3, step * 3]);
        assert_eq!(e.ejections(), 4);

        // Each fail_timeout in rotation without an ejection takes one off.
        tokio::time::sleep(step * 3 + step / 2).await;
        assert_eq!(e.record_failure(&passive), Some(step * 2));
        wait_up(&e).await;

        // A new process starts with a clean record.
        e.begin_epoch(Health::Up);
        assert_eq!(e.ejections(), 0);
        assert_eq!(e.record_failure(&passive), Some(step));
    }

    #[tokio::test]
    async fn max_fails_counts_within_fail_timeout_only() {
        let passive = PassiveHealth {
            max_fails: 3,
            fail_timeout: Duration::from_millis(100),
            max_ejection_time: Duration::from_secs(1),
        };
        let e = endpoint();
        assert_eq!(e.record_failure(&passive), None);
        assert_eq!(e.record_failure(&passive), None);
        tokio::time::sleep(Duration::from_millis(150)).await;
        // The window ran out: counting starts over.
        assert_eq!(e.record_failure(&passive), None);
        assert_eq!(e.record_failure(&passive), None);
        assert!(e.record_failure(&passive).is_some());
    }

    #[tokio::test]
    async fn an_instance_is_ejected_only_after_failures_in_a_row() {
        // proxy.max_fails: 1, as nginx; the instance's own threshold wins.
        let passive = PassiveHealth {
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
            max_ejection_time: Duration::from_secs(60),
        };
        let e = endpoint();
        e.set_local_max_fails(3);
        let sent = Instant::now();
        // One worker of a pre-fork server killed now and then: never ejected.
        for _ in 0..5 {
            assert_eq!(e.record_failure(&passive), None);
            assert_eq!(e.record_failure(&passive), None);
            e.record_response(200, sent);
        }
        // A status that is not an answer (a 5xx in fail_statuses) does not
        // start the count over.
        e.record_response(503, sent);
        assert_eq!(e.record_failure(&passive), None);
        assert_eq!(e.record_failure(&passive), None);
        assert!(e.record_failure(&passive).is_some(), "3 in a row eject");
        assert_eq!(e.health_word().health(), Health::Ejected);

        let off = endpoint();
        off.set_local_max_fails(0);
        for _ in 0..10 {
            assert_eq!(off.record_failure(&passive), None);
        }
        // A static upstream keeps proxy.max_fails and its window.
        let upstream = endpoint();
        assert!(upstream.record_failure(&passive).is_some());
    }

    #[test]
    fn slow_start_ramps_from_a_tenth_to_full() {
        let e = endpoint();
        assert_eq!(e.ramp(Duration::ZERO), 1.0);
        let r = e.ramp(Duration::from_secs(100));
        assert!((0.1..0.11).contains(&r), "{r}");
        std::thread::sleep(Duration::from_millis(60));
        let r = e.ramp(Duration::from_millis(100));
        assert!((0.5..0.9).contains(&r), "{r}");
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(e.ramp(Duration::from_millis(100)), 1.0);
        // Coming back from ejection (or down) starts a new ramp.
        let seen = e.health_word();
        assert!(e.transition(seen, Health::Ejected));
        assert!(e.transition(e.health_word(), Health::Up));
        assert!(e.ramp(Duration::from_millis(100)) < 0.5);
    }
}
