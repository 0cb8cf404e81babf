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
    next: AtomicUsize,
    /// The sweeper's interval in ms ([`Idle::set_tick`]).
    tick_ms: AtomicU64,
    shards: Box<[Mutex<Slab<Entry>>]>,
}

struct Entry {
    due: Instant,
    waker: Waker,
    expired: bool,
}

impl Default for Idle {
    fn default() -> Idle {
        Idle {
            draining: AtomicBool::new(false),
            next: AtomicUsize::new(0),
            tick_ms: AtomicU64::new(250),
            shards: (0..SHARDS).map(|_| Mutex::new(Slab::new())).collect(),
        }
    }
}

impl Idle {
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

    /// Wake the waits whose deadline is before `now`.
    pub fn sweep(&self, now: Instant) {
        let mut due = Vec::new();
        for shard in self.shards.iter() {
            let mut entries = lock(shard);
            for (_, e) in entries.iter_mut() {
                if !e.expired && e.due <= now {
                    e.expired = true;
                    due.push(e.waker.clone());
                }
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

    /// A wait until `due` (on the coarse clock), not yet registered.
    pub fn wait(&self, shard: usize, due: Instant) -> Wait<'_> {
        Wait {
            idle: self,
            shard,
            key: None,
            due,
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

/// One idle wait; removed from its slab when dropped.
pub struct Wait<'a> {
    idle: &'a Idle,
    shard: usize,
    key: Option<usize>,
    due: Instant,
}

impl Wait<'_> {
    /// Ready when the wait is over for want of a request: its deadline
    /// passed (within a sweeper tick) or the drain began. Pending registers
    /// (or refreshes) the task's waker.
    pub fn poll_over(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.idle.is_draining() {
            return Poll::Ready(());
        }
        let mut shard = lock(&self.idle.shards[self.shard]);
        match self.key {
            None => {
                self.key = Some(shard.insert(Entry {
                    due: self.due,
                    waker: cx.waker().clone(),
                    expired: false,
                }));
                drop(shard);
                // The drain may have visited this shard just before.
                if self.idle.is_draining() {
                    return Poll::Ready(());
                }
            }
            Some(key) => {
                let e = &mut shard[key];
                if e.expired {
                    return Poll::Ready(());
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
        if let Some(key) = self.key {
            // The entry's waker is dropped after the lock is let go.
            let entry = lock(&self.idle.shards[self.shard]).remove(key);
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
            let mut wait = idle.wait(shard, due);
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
