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

use super::ewma::PeakEwma;
use crate::clock::{now_ms, now_ns, ns_at};
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
    /// What a sticky cookie names (`sticky`): a stable hash of `id` and
    /// `addr`, the same in every shoal process for the same backend, and
    /// another for an instance started anew on another port.
    sticky_id: u64,
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
    /// Outlier ejection: ejections in a row (each lasts longer), when the
    /// current one ends and when the last one ended (`clock::now_ms`); the
    /// count decays while it behaves.
    ejections: AtomicU32,
    ejected_until: AtomicU64,
    returned_at: AtomicU64,
    /// When it last entered rotation (`clock::now_ms`), for slow start.
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
            sticky_id: super::stable_hash(format!("{id}@{addr}").as_bytes()),
            authority: addr.to_string(),
            id,
            addr,
            weight: weight.max(1),
            health: AtomicU64::new(Health::Starting.code()),
            fails: AtomicU32::new(0),
            fail_window: AtomicU64::new(0),
            local_max_fails: AtomicU32::new(NOT_LOCAL),
            ejections: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
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

    /// What a sticky cookie names this backend by (see `sticky`).
    #[inline]
    pub fn sticky_id(&self) -> u64 {
        self.sticky_id
    }

    /// True when the balancer may pick this endpoint.
    #[inline]
    pub fn in_rotation(&self) -> bool {
        let word = self.health.load(Ordering::Acquire);
        match word & STATE_MASK {
            s if s == Health::Up.code() => true,
            s if s == Health::Ejected.code() => self.ejection_over(HealthWord(word)),
            _ => false,
        }
    }

    /// The health word; an ejection whose time is over ends here, when
    /// it is first looked at (no timer: the deadline is stored).
    pub fn health_word(&self) -> HealthWord {
        let word = HealthWord(self.health.load(Ordering::Acquire));
        if word.health() == Health::Ejected && self.ejection_over(word) {
            return HealthWord(self.health.load(Ordering::Acquire));
        }
        word
    }

    /// Ends the ejection `seen` if its time is over; true when the
    /// endpoint is back in rotation. The deadline is claimed (swapped for
    /// 0) before the state moves, so exactly one reader ends an ejection,
    /// and a reader that read an earlier ejection's word cannot end a later
    /// one whose word is the same bits: that one has another deadline.
    #[cold]
    fn ejection_over(&self, seen: HealthWord) -> bool {
        let is_up = || self.health.load(Ordering::Acquire) & STATE_MASK == Health::Up.code();
        let until = self.ejected_until.load(Ordering::Acquire);
        if until == 0 {
            // Another reader is ending it.
            return is_up();
        }
        if now_ms() < until {
            return false;
        }
        if self
            .ejected_until
            .compare_exchange(until, 0, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return is_up();
        }
        // Only if nothing else happened meanwhile (a restart).
        if self.transition(seen, Health::Up) {
            // Back since the deadline, however late it was looked at.
            self.returned_at.store(until, Ordering::Relaxed);
            tracing::info!(backend = %self.id, ejections = self.ejections(), "back in rotation after ejection");
            crate::events::emit(
                crate::events::Kind::Returned,
                None,
                Some(&self.id),
                format!("{} back in rotation after its ejection", self.id),
            );
            return true;
        }
        is_up()
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
            self.up_since.store(now_ms(), Ordering::Relaxed);
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
            self.up_since.store(now_ms(), Ordering::Relaxed);
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
        let since = now_ms().saturating_sub(self.up_since.load(Ordering::Relaxed));
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
                let since = now_ms().saturating_sub(self.up_since.load(Ordering::Relaxed));
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
        let now = now_ms();
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
        if seen.health() != Health::Up {
            return None;
        }
        let behaved = match self.returned_at.load(Ordering::Relaxed) {
            0 => 0,
            at => now.saturating_sub(at) / window,
        };
        let previous = self.ejections.load(Ordering::Relaxed);
        let count = previous
            .saturating_sub(u32::try_from(behaved).unwrap_or(u32::MAX))
            .saturating_add(1);
        let eject_for = fail_timeout
            .saturating_mul(count)
            .min(max_ejection_time.max(fail_timeout));
        // The deadline before the state: a reader that sees `Ejected`
        // reads this ejection's end, not an earlier one's.
        let until = now.saturating_add(eject_for.as_millis() as u64);
        self.ejected_until.store(until, Ordering::Release);
        if !self.transition(seen, Health::Ejected) {
            return None;
        }
        self.fails.store(0, Ordering::Relaxed);
        self.ejections.store(count, Ordering::Relaxed);
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
        self.latency.observe_at(rtt, now_ns());
    }

    /// A response's headers arrived now, for a request sent at `sent`:
    /// feeds the peak-EWMA and the metrics (status class, time histogram).
    /// One clock reading serves all of them.
    #[inline]
    pub fn record_response(&self, status: u16, sent: Instant) {
        let now = Instant::now();
        let rtt = now.saturating_duration_since(sent);
        self.latency.observe_at(rtt, ns_at(now));
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
            .estimate_at(now_ns())
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
    use crate::clock::test_clock;

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

    fn health(e: &Endpoint) -> Health {
        e.health_word().health()
    }

    /// On the test clock: each ejection ends exactly when its time is up,
    /// with no timer, when the endpoint is next looked at.
    #[test]
    fn each_ejection_in_a_row_lasts_longer_up_to_the_cap() {
        test_clock::set();
        let step = Duration::from_millis(40);
        let passive = PassiveHealth {
            max_fails: 1,
            fail_timeout: step,
            max_ejection_time: step * 3,
        };
        let e = endpoint();
        let mut lengths = Vec::new();
        for _ in 0..4 {
            let ejected_for = e.record_failure(&passive).expect("ejected");
            lengths.push(ejected_for);
            assert_eq!(health(&e), Health::Ejected);
            assert!(!e.in_rotation());
            // Ejected endpoints are not counted again.
            assert_eq!(e.record_failure(&passive), None);
            test_clock::advance(ejected_for - Duration::from_millis(1));
            assert!(!e.in_rotation(), "1 ms before the end");
            test_clock::advance(Duration::from_millis(1));
            assert!(e.in_rotation(), "at the end");
            assert_eq!(health(&e), Health::Up);
        }
        assert_eq!(lengths, [step, step * 2, step * 3, step * 3]);
        assert_eq!(e.ejections(), 4);

        // Each fail_timeout in rotation without an ejection takes one off.
        test_clock::advance(step * 2);
        assert_eq!(e.record_failure(&passive), Some(step * 3), "4 - 2 + 1");
        test_clock::advance(step * 3);
        assert_eq!(health(&e), Health::Up);
        test_clock::advance(step * 3);
        assert_eq!(e.record_failure(&passive), Some(step), "3 - 3 + 1");

        // A new process starts with a clean record.
        e.begin_epoch(Health::Up);
        assert_eq!(e.ejections(), 0);
        assert_eq!(e.record_failure(&passive), Some(step));
    }

    /// Good behaviour counts from the ejection's end, not from when the
    /// endpoint was next looked at (with little traffic, much later).
    #[test]
    fn an_ejection_ends_at_its_deadline_however_late_it_is_seen() {
        test_clock::set();
        let step = Duration::from_millis(40);
        let passive = PassiveHealth {
            max_fails: 1,
            fail_timeout: step,
            max_ejection_time: step * 10,
        };
        let e = endpoint();
        assert_eq!(e.record_failure(&passive), Some(step));
        // Nobody looks for 5 steps; the ejection ended after 1, so 4 of
        // good behaviour take the count back to 0 before this failure.
        test_clock::advance(step * 5);
        assert_eq!(health(&e), Health::Up);
        assert_eq!(e.record_failure(&passive), Some(step), "not 2 steps");
    }

    /// An ejection that a restart (a new epoch) overtook does not end in
    /// `Up` on its own: the new process is checked first.
    #[test]
    fn a_restart_overrides_an_ejection() {
        test_clock::set();
        let passive = PassiveHealth {
            max_fails: 1,
            fail_timeout: Duration::from_secs(1),
            max_ejection_time: Duration::from_secs(1),
        };
        let e = endpoint();
        assert!(e.record_failure(&passive).is_some());
        e.begin_epoch(Health::Starting);
        test_clock::advance(Duration::from_secs(2));
        assert_eq!(health(&e), Health::Starting);
    }

    #[test]
    fn max_fails_counts_within_fail_timeout_only() {
        test_clock::set();
        let passive = PassiveHealth {
            max_fails: 3,
            fail_timeout: Duration::from_millis(100),
            max_ejection_time: Duration::from_secs(1),
        };
        let e = endpoint();
        assert_eq!(e.record_failure(&passive), None);
        assert_eq!(e.record_failure(&passive), None);
        test_clock::advance(Duration::from_millis(101));
        // The window ran out: counting starts over.
        assert_eq!(e.record_failure(&passive), None);
        assert_eq!(e.record_failure(&passive), None);
        test_clock::advance(Duration::from_millis(100));
        assert!(e.record_failure(&passive).is_some(), "three within 100 ms");
    }

    #[test]
    fn an_instance_is_ejected_only_after_failures_in_a_row() {
        test_clock::set();
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
        test_clock::set();
        let e = endpoint();
        assert_eq!(e.ramp(Duration::ZERO), 1.0);
        assert_eq!(e.ramp(Duration::from_secs(100)), 0.1);
        test_clock::advance(Duration::from_millis(60));
        assert_eq!(e.ramp(Duration::from_millis(100)), 0.6);
        test_clock::advance(Duration::from_millis(40));
        assert_eq!(e.ramp(Duration::from_millis(100)), 1.0);
        // Coming back from ejection (or down) starts a new ramp.
        let seen = e.health_word();
        assert!(e.transition(seen, Health::Ejected));
        assert!(e.transition(e.health_word(), Health::Up));
        assert_eq!(e.ramp(Duration::from_millis(100)), 0.1);
    }
}
