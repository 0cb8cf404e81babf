//! `GET /cpu?ms=N`: burn N ms of CPU time (at most 10 s) before answering —
//! a CPU-bound endpoint for the autoscaler's tests. The time is the
//! thread's own CPU clock, not the wall clock, so a busy machine makes the
//! answer slower but not cheaper: N requests cost N × ms of CPU.

use std::time::Duration;

use hyper::StatusCode;
use nix::time::{clock_gettime, ClockId};
use serde_json::json;

use crate::body::{self, Body};

const MAX_CPU_MS: u64 = 10_000;

fn thread_cpu() -> Duration {
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .map(Duration::from)
        .unwrap_or_default()
}

/// Spin until this thread has used `ms` of CPU.
fn burn(ms: u64) -> u64 {
    let until = thread_cpu() + Duration::from_millis(ms);
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    while thread_cpu() < until {
        for _ in 0..1000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
    }
    x
}

pub(crate) async fn handle(instance: &str, ms: u64) -> hyper::Response<Body> {
    let ms = ms.min(MAX_CPU_MS);
    let noise = tokio::task::spawn_blocking(move || burn(ms))
        .await
        .unwrap_or_default();
    body::json(
        StatusCode::OK,
        &json!({"instance": instance, "cpu_ms": ms, "noise": noise % 1000}),
    )
}
