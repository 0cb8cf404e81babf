//! The engine's idle connections — waiting for a request's first bytes —
//! with their deadlines and the listener's drain kept outside their tasks.
//!
//! Every open connection's task is held in memory for the connection's
//! life, and most of them are idle. A tokio timer (`Sleep`, 112 bytes) and
//! a drain wake-up (`Notified`, 72) inside each task made it two cache
//! lines larger; and arming and dropping the timer for every wait took the
//! timer wheel's lock twice per request. Here an idle wait is an entry in
//! one of a few sharded slabs (its deadline and the task's waker, 48 bytes
//! outside the task; the task keeps a 32-byte handle), inserted when the
//! wait begins and removed when it ends. A sweeper task per listener wakes
//! the waits past their deadline every `tick`, as nginx's lazy timers
//! (300 ms) and HAProxy's coarse expiry do: an idle connection closes up to
//! one tick late (the tick follows the listener's limits when they are
//! reloaded). The drain wakes every idle wait at once; busy connections
//! read the flag when their request ends. Deadlines are on the real
//! (coarse) clock: these waits do not follow a paused tokio clock.
//!
//! A plain connection idle for `park_after` is told to park: its task ends
//! and the socket waits in the listener's `Parker` (`park.rs`) without one.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use slab::Slab;

/// Slabs: connections pick one in turn, so worker threads rarely meet on
/// the same lock.
const SHARDS: usize = 16;

pub struct Idle {
    draining: AtomicBool,
    /// How long a connection waits for its next request in its own task
    /// before it parks (`park.rs`); `None`: never.
    park_after: Option<Duration>,
    next: AtomicUsize,
    /// The sweeper's interval in ms ([`Idle::set_tick`]).
    tick_ms: AtomicU64,
    shards: Box<[Mutex<Slab<Entry>>]>,
}

struct Entry {
    due: Instant,
    /// When the wait should end to park the connection, if it may.
    park_at: Option<Instant>,
    waker: Waker,
    /// Set by the sweeper: why the wait is over.
    over: Option<Over>,
}

/// Why an idle wait ended, other than a request's bytes or the drain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Over {
    /// Its deadline passed.
    Expired,
    /// Idle for `park_after`: the connection parks.
    Park,
}

impl Default for Idle {
    fn default() -> Idle {
        Idle {
            draining: AtomicBool::new(false),
            park_after: None,
            next: AtomicUsize::new(0),
            tick_ms: AtomicU64::new(250),
            shards: (0..SHARDS).map(|_| Mutex::new(Slab::new())).collect(),
        }
    }
}

impl Idle {
    /// Waits that tell a connection to park once idle for `after`.
    pub fn parking_after(after: Duration) -> Idle {
        Idle {
            park_after: Some(after),
            ..Idle::default()
        }
    }

    /// When a connection that begins waiting at `now` for a request due at
    /// `due` should park instead: `None` if parking is off or the wait
    /// ends first.
    fn park_at(&self, now: Instant, due: Instant) -> Option<Instant> {
        let at = now + self.park_after?;
        (at < due).then_some(at)
    }

    /// How often the sweeper should run for these timeouts: an eighth of
    /// the shortest, between 10 ms and 250 ms.
    fn tick_for(timeouts: &[Duration]) -> Duration {
        let shortest = timeouts
            .iter()
            .copied()
            .min()
            .unwrap_or(Duration::from_secs(1));
        (shortest / 8).clamp(Duration::from_millis(10), Duration::from_millis(250))
    }

    /// The sweeper's interval now.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms.load(Ordering::Relaxed))
    }

    /// Sweep every `tick_for(timeouts)` from now on (the listener's limits
    /// were set or reloaded).
    pub fn set_tick(&self, timeouts: &[Duration]) {
        let ms = Self::tick_for(timeouts).as_millis() as u64;
        self.tick_ms.store(ms, Ordering::Relaxed);
    }

    /// The sweeper: wakes the waits past their deadline every tick, until
    /// dropped. (Real time, as the deadlines: these waits do not follow a
    /// paused tokio clock.)
    pub async fn sweeper(&self) {
        loop {
            let tick = Duration::from_millis(self.tick_ms.load(Ordering::Relaxed));
            tokio::time::sleep(tick).await;
            self.sweep(crate::clock::coarse());
        }
    }

    /// Begin the drain: idle connections close at once, busy ones after
    /// their request (answered with `Connection: close`).
    pub fn begin_drain(&self) {
        // Set before the wake-ups: a wait woken by them, or registered
        // after its shard was visited, sees the flag.
        self.draining.store(true, Ordering::Release);
        for shard in self.shards.iter() {
            // Woken after the lock is let go: a waker may do anything.
            let wakers: Vec<Waker> = lock(shard).iter().map(|(_, e)| e.waker.clone()).collect();
            wakers.into_iter().for_each(Waker::wake);
        }
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Wake the waits whose deadline is before `now`, and those that
    /// should park.
    pub fn sweep(&self, now: Instant) {
        let mut due = Vec::new();
        for shard in self.shards.iter() {
            let mut entries = lock(shard);
            for (_, e) in entries.iter_mut() {
                if e.over.is_some() {
                    continue;
                }
                e.over = if e.due <= now {
                    Some(Over::Expired)
                } else if e.park_at.is_some_and(|at| at <= now) {
                    Some(Over::Park)
                } else {
                    continue;
                };
                due.push(e.waker.clone());
            }
            // After a burst: give back what the trailing free slots hold.
            if entries.len() < entries.capacity() / 4 {
                entries.shrink_to_fit();
            }
            drop(entries);
            // Woken after the lock is let go: a waker may do anything.
            due.drain(..).for_each(Waker::wake);
        }
    }

    /// The shard a new connection's waits go to.
    pub fn shard(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % SHARDS
    }

    /// A wait until `due` (on the coarse clock), not yet registered;
    /// `parks`: it may end with `Over::Park`, `park_after` after it is.
    pub fn wait(&self, shard: usize, due: Instant, parks: bool) -> Wait<'_> {
        Wait {
            idle: self,
            due,
            shard: shard as u32,
            key: NO_KEY,
            parks,
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shards.iter().map(|s| lock(s).len()).sum()
    }
}

fn lock(shard: &Mutex<Slab<Entry>>) -> std::sync::MutexGuard<'_, Slab<Entry>> {
    // A panic while holding it cannot leave an entry half-written.
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

/// `Wait::key` before the wait is registered.
const NO_KEY: u32 = u32::MAX;

/// One idle wait; removed from its slab when dropped. (Compact: every
/// idle connection's task carries one.)
pub struct Wait<'a> {
    idle: &'a Idle,
    due: Instant,
    shard: u32,
    /// Its entry in the shard's slab, once registered.
    key: u32,
    parks: bool,
}

impl Wait<'_> {
    /// What is left of it at `now`.
    pub fn left(&self, now: Instant) -> Duration {
        self.due.saturating_duration_since(now)
    }

    /// Ready when the wait is over for want of a request: its deadline
    /// passed (within a sweeper tick) or the drain began (`Expired`), or
    /// it is time to park. Pending registers (or refreshes) the task's
    /// waker.
    pub fn poll_over(&mut self, cx: &mut Context<'_>) -> Poll<Over> {
        if self.idle.is_draining() {
            return Poll::Ready(Over::Expired);
        }
        let mut shard = lock(&self.idle.shards[self.shard as usize]);
        match self.key {
            NO_KEY => {
                let park_at = self
                    .parks
                    .then(|| self.idle.park_at(crate::clock::coarse(), self.due))
                    .flatten();
                let key = shard.insert(Entry {
                    due: self.due,
                    park_at,
                    waker: cx.waker().clone(),
                    over: None,
                });
                // (Over four billion idle connections in one shard: the
                // wait ends as if expired rather than lose track.)
                let Ok(key) = u32::try_from(key) else {
                    shard.remove(key);
                    return Poll::Ready(Over::Expired);
                };
                self.key = key;
                drop(shard);
                // The drain may have visited this shard just before.
                if self.idle.is_draining() {
                    return Poll::Ready(Over::Expired);
                }
            }
            key => {
                let e = &mut shard[key as usize];
                if let Some(over) = e.over {
                    return Poll::Ready(over);
                }
                if !e.waker.will_wake(cx.waker()) {
                    e.waker = cx.waker().clone();
                }
            }
        }
        Poll::Pending
    }
}

impl Drop for Wait<'_> {
    fn drop(&mut self) {
        if self.key != NO_KEY {
            // The entry's waker is dropped after the lock is let go.
            let entry = lock(&self.idle.shards[self.shard as usize]).remove(self.key as usize);
            drop(entry);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn waiting_task(idle: &Arc<Idle>, due: Instant) -> tokio::task::JoinHandle<()> {
        let idle = idle.clone();
        tokio::spawn(async move {
            let shard = idle.shard();
            let mut wait = idle.wait(shard, due, false);
            std::future::poll_fn(|cx| wait.poll_over(cx)).await;
        })
    }

    #[tokio::test]
    async fn a_wait_ends_when_the_sweeper_finds_it_past_due() {
        let idle = Arc::new(Idle::default());
        let start = Instant::now();
        let task = waiting_task(&idle, start + Duration::from_millis(100));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(idle.waiting(), 1);
        // Before its deadline: not woken.
        idle.sweep(start + Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!task.is_finished());
        idle.sweep(start + Duration::from_millis(100));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the sweep did not wake the wait")
            .unwrap();
        assert_eq!(idle.waiting(), 0, "the ended wait left its entry");
    }

    #[tokio::test]
    async fn a_wait_told_to_park_ends_with_park_before_its_deadline() {
        let idle = Arc::new(Idle::parking_after(Duration::from_millis(100)));
        let start = crate::clock::coarse();
        let due = start + Duration::from_secs(60);
        let park_at = idle.park_at(start, due);
        assert_eq!(park_at, Some(start + Duration::from_millis(100)));
        // A deadline before the park time: no parking.
        assert_eq!(idle.park_at(start, start + Duration::from_millis(50)), None);
        assert_eq!(Idle::default().park_at(start, due), None, "parking off");
        let task = tokio::spawn({
            let idle = idle.clone();
            async move {
                let mut wait = idle.wait(idle.shard(), due, true);
                std::future::poll_fn(|cx| wait.poll_over(cx)).await
            }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Registered at the coarse clock's "now" (up to a tick after start).
        idle.sweep(start + Duration::from_millis(50));
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!task.is_finished(), "woken before its park time");
        idle.sweep(crate::clock::coarse() + Duration::from_millis(200));
        let over = tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the sweep did not tell the wait to park")
            .unwrap();
        assert_eq!(over, Over::Park);
        assert_eq!(idle.waiting(), 0);
    }

    #[tokio::test]
    async fn the_drain_wakes_every_wait_and_later_ones_end_at_once() {
        let idle = Arc::new(Idle::default());
        let far = Instant::now() + Duration::from_secs(3600);
        let tasks: Vec<_> = (0..40).map(|_| waiting_task(&idle, far)).collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(idle.waiting(), 40);
        idle.begin_drain();
        for t in tasks {
            tokio::time::timeout(Duration::from_secs(5), t)
                .await
                .expect("the drain did not wake a wait")
                .unwrap();
        }
        tokio::time::timeout(Duration::from_secs(5), waiting_task(&idle, far))
            .await
            .expect("a wait begun during the drain did not end")
            .unwrap();
        assert_eq!(idle.waiting(), 0);
    }

    #[tokio::test]
    async fn the_sweeper_ends_waits_at_the_tick_it_was_last_set_to() {
        let idle = Arc::new(Idle::default());
        // A reload to short timeouts: 10 ms ticks instead of 250 ms.
        idle.set_tick(&[Duration::from_millis(40)]);
        let sweeper = tokio::spawn({
            let idle = idle.clone();
            async move { idle.sweeper().await }
        });
        let start = Instant::now();
        let task = waiting_task(&idle, crate::clock::coarse() + Duration::from_millis(30));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the sweeper did not end the wait")
            .unwrap();
        // Its deadline, a coarse-clock tick and a sweeper tick, with room
        // for a loaded machine; far below the default 250 ms tick's worst.
        assert!(
            start.elapsed() < Duration::from_millis(200),
            "{:?}",
            start.elapsed()
        );
        sweeper.abort();
    }

    #[test]
    fn the_tick_follows_the_shortest_timeout_within_bounds() {
        let s = Duration::from_secs;
        assert_eq!(Idle::tick_for(&[s(75), s(10)]), Duration::from_millis(250));
        assert_eq!(
            Idle::tick_for(&[s(75), Duration::from_millis(400)]),
            Duration::from_millis(50)
        );
        assert_eq!(
            Idle::tick_for(&[Duration::from_millis(20)]),
            Duration::from_millis(10)
        );
    }
}
