//! `GET /cpu?ms=N`: burn N ms of CPU time (at most 10 s) before answering —
//! a CPU-bound endpoint for the autoscaler's and `shoal plan`'s tests. The
//! time is the thread's own CPU clock, not the wall clock, so a busy
//! machine makes the answer slower but not cheaper: N requests cost N × ms
//! of CPU.
//!
//! `DEMO_CPU_WORKERS=K` lets at most K requests burn at once (the others
//! wait their turn), so one instance's capacity is known: with K = 1 it is
//! 1000 ÷ ms requests per second, as long as the burning thread has a core
//! to itself. `GET /cpu/stats` says what the burns really got: how many,
//! their CPU time and the wall time they took (on a busy machine, more
//! than their CPU time), since the start and each of the latest 1000's, from
//! which a test computes the capacity the instance really had.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::StatusCode;
use nix::time::{clock_gettime, ClockId};
use serde_json::json;
use tokio::sync::Semaphore;

use crate::body::{self, Body};

const MAX_CPU_MS: u64 = 10_000;

/// The burns' turnstile and their totals.
pub(crate) struct Cpu {
    /// `DEMO_CPU_WORKERS`: how many may burn at once; unbounded without.
    turns: Option<Arc<Semaphore>>,
    workers: Option<usize>,
    burns: AtomicU64,
    cpu_ns: AtomicU64,
    wall_ns: AtomicU64,
    /// The wall times of the latest [`RECENT`] burns, newest last.
    recent: Mutex<VecDeque<Duration>>,
}

/// How many of the latest burns `/cpu/stats` lists one by one, so that a
/// test can take the wall time of any stretch of a load it made (a step
/// of `shoal plan`) apart from the rest.
const RECENT: usize = 1000;

impl Cpu {
    pub(crate) fn new(workers: Option<usize>) -> Cpu {
        Cpu {
            turns: workers.map(|k| Arc::new(Semaphore::new(k.max(1)))),
            workers,
            burns: AtomicU64::new(0),
            cpu_ns: AtomicU64::new(0),
            wall_ns: AtomicU64::new(0),
            recent: Mutex::new(VecDeque::with_capacity(RECENT)),
        }
    }

    pub(crate) async fn handle(&self, instance: &str, ms: u64) -> hyper::Response<Body> {
        let ms = ms.min(MAX_CPU_MS);
        // Held while the burn runs, even if the request is dropped
        // meanwhile: the blocking task goes on burning.
        let permit = match &self.turns {
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        let (noise, cpu, wall) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let (noise, cpu) = burn(ms);
            drop(permit);
            (noise, cpu, started.elapsed())
        })
        .await
        .unwrap_or_default();
        self.burns.fetch_add(1, Ordering::Relaxed);
        self.cpu_ns.fetch_add(nanos(cpu), Ordering::Relaxed);
        self.wall_ns.fetch_add(nanos(wall), Ordering::Relaxed);
        if let Ok(mut recent) = self.recent.lock() {
            if recent.len() == RECENT {
                recent.pop_front();
            }
            recent.push_back(wall);
        }
        body::json(
            StatusCode::OK,
            &json!({
                "instance": instance,
                "cpu_ms": ms,
                "wall_ms": wall.as_secs_f64() * 1000.0,
                "noise": noise % 1000,
            }),
        )
    }

    /// `GET /cpu/stats`: the totals since the start.
    pub(crate) fn stats(&self, instance: &str) -> hyper::Response<Body> {
        let ms = |a: &AtomicU64| a.load(Ordering::Relaxed) as f64 / 1e6;
        let recent: Vec<f64> = self.recent.lock().map_or(Vec::new(), |r| {
            r.iter().map(|d| d.as_secs_f64() * 1000.0).collect()
        });
        body::json(
            StatusCode::OK,
            &json!({
                "instance": instance,
                "workers": self.workers,
                "burns": self.burns.load(Ordering::Relaxed),
                "cpu_ms": ms(&self.cpu_ns),
                "wall_ms": ms(&self.wall_ns),
                "recent_wall_ms": recent,
            }),
        )
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Spin until this thread has used `ms` of CPU; the noise and the CPU time
/// it took.
fn burn(ms: u64) -> (u64, Duration) {
    let start = thread_cpu();
    let until = start + Duration::from_millis(ms);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut now = start;
    while now < until {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        now = thread_cpu();
    }
    (x, now - start)
}
