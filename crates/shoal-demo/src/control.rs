//! The knobs shoal's tests turn: health status, memory ballast, crash on demand.
//!
//! - `POST /control/health?status=503` sets what `GET /health` answers (200 heals).
//! - `POST /control/fail?status=500` makes every other route (all but `/health`
//!   and `/control/...`) answer that status, as a broken app whose health
//!   endpoint still passes; `status=0` ends it.
//! - `POST /control/allocate?mb=N` allocates N MiB more and keeps it; every page is
//!   written so the resident set really grows.
//! - `POST /control/free` drops everything `allocate` kept.
//! - `POST /control/exit?code=N` exits the process at once with code N (default 1),
//!   without answering: a crash, as the supervisor sees it.

use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use http::{Method, Response, StatusCode};
use serde_json::json;

use crate::body::{self, Body};
use crate::options::parse_status;
use crate::query;
use crate::routes::App;

const MIB: usize = 1024 * 1024;
/// Largest single allocation accepted, so `mb * MIB` cannot overflow.
const MAX_ALLOCATE_MB: usize = 1024 * 1024;

/// Runtime-adjustable state behind the control routes.
pub(crate) struct Knobs {
    health: AtomicU16,
    /// Non-zero: the status every app route answers (`/control/fail`).
    fail: AtomicU16,
    ballast: Mutex<Vec<Vec<u8>>>,
}

impl Knobs {
    pub(crate) fn new(health: u16) -> Self {
        Self {
            health: AtomicU16::new(health),
            fail: AtomicU16::new(0),
            ballast: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn health(&self) -> u16 {
        self.health.load(Ordering::Relaxed)
    }

    /// The status app routes are made to fail with, if any.
    pub(crate) fn fail(&self) -> Option<u16> {
        Some(self.fail.load(Ordering::Relaxed)).filter(|s| *s != 0)
    }

    fn set_health(&self, status: u16) {
        self.health.store(status, Ordering::Relaxed);
    }

    /// MiB currently held as ballast.
    fn ballast_mb(&self) -> usize {
        self.lock_ballast().iter().map(|b| b.len() / MIB).sum()
    }

    fn lock_ballast(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // Nothing can leave the ballast half-updated, so a poisoned lock is still usable.
        self.ballast.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Handles `/control/<what>`; `None` if `what` is not a control route.
pub(crate) async fn handle(
    app: &Arc<App>,
    method: &Method,
    what: &str,
    query: Option<&str>,
) -> Option<Response<Body>> {
    let knob = match what {
        "health" | "fail" | "allocate" | "free" | "exit" => what,
        _ => return None,
    };
    if method != Method::POST {
        return Some(app.method_not_allowed("POST"));
    }
    Some(match knob {
        "health" => set_health(app, query),
        "fail" => set_fail(app, query),
        "allocate" => allocate(app, query).await,
        "free" => free(app),
        _ => exit(app, query),
    })
}

fn set_health(app: &App, query: Option<&str>) -> Response<Body> {
    let Some(status) = query::param(query, "status").and_then(parse_status) else {
        return app.bad_request("status must be an HTTP status in 200-599");
    };
    app.knobs.set_health(status);
    body::json(
        StatusCode::OK,
        &json!({"instance": app.instance, "health_status": status}),
    )
}

fn set_fail(app: &App, query: Option<&str>) -> Response<Body> {
    let status = match query::param(query, "status") {
        Some("0") => 0,
        Some(v) => match parse_status(v) {
            Some(s) => s,
            None => return app.bad_request("status must be 0 (off) or an HTTP status in 200-599"),
        },
        None => return app.bad_request("status must be 0 (off) or an HTTP status in 200-599"),
    };
    app.knobs.fail.store(status, Ordering::Relaxed);
    body::json(
        StatusCode::OK,
        &json!({"instance": app.instance, "fail_status": status}),
    )
}

async fn allocate(app: &App, query: Option<&str>) -> Response<Body> {
    let parsed = query::param(query, "mb").and_then(|v| v.parse::<usize>().ok());
    let Some((mb, bytes)) = parsed
        .filter(|mb| *mb <= MAX_ALLOCATE_MB)
        .and_then(|mb| Some((mb, mb.checked_mul(MIB)?)))
    else {
        return app.bad_request("mb must be a whole number of MiB up to 1048576");
    };
    // Writing gigabytes takes a while; keep it off the async workers.
    let filled = tokio::task::spawn_blocking(move || {
        let mut block = Vec::new();
        block.try_reserve_exact(bytes).ok()?;
        // A non-zero fill touches every page, so the resident set grows by `mb` MiB.
        block.resize(bytes, 0xa5);
        Some(block)
    })
    .await;
    let Ok(Some(block)) = filled else {
        return body::json(
            StatusCode::INSUFFICIENT_STORAGE,
            &json!({"instance": app.instance, "error": format!("cannot allocate {mb} MiB")}),
        );
    };
    app.knobs.lock_ballast().push(block);
    body::json(
        StatusCode::OK,
        &json!({
            "instance": app.instance,
            "allocated_mb": mb,
            "total_mb": app.knobs.ballast_mb(),
        }),
    )
}

fn free(app: &App) -> Response<Body> {
    let freed: usize = std::mem::take(&mut *app.knobs.lock_ballast())
        .iter()
        .map(|b| b.len() / MIB)
        .sum();
    body::json(
        StatusCode::OK,
        &json!({"instance": app.instance, "freed_mb": freed, "total_mb": 0}),
    )
}

fn exit(app: &App, query: Option<&str>) -> Response<Body> {
    let code = match query::param(query, "code").map(|v| v.parse::<u8>()) {
        None => 1,
        Some(Ok(code)) => i32::from(code),
        Some(Err(_)) => return app.bad_request("code must be a number in 0-255"),
    };
    crate::access_log::line(&format!(
        "{} POST /control/exit: exiting with code {code}",
        app.instance
    ));
    std::process::exit(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_knob_round_trips() {
        let knobs = Knobs::new(200);
        assert_eq!(knobs.health(), 200);
        knobs.set_health(503);
        assert_eq!(knobs.health(), 503);
    }

    #[test]
    fn fail_knob_is_off_by_default() {
        let knobs = Knobs::new(200);
        assert_eq!(knobs.fail(), None);
        knobs.fail.store(500, Ordering::Relaxed);
        assert_eq!(knobs.fail(), Some(500));
    }

    #[test]
    fn ballast_counts_mib() {
        let knobs = Knobs::new(200);
        knobs.lock_ballast().push(vec![1; 2 * MIB]);
        knobs.lock_ballast().push(vec![1; MIB]);
        assert_eq!(knobs.ballast_mb(), 3);
    }
}
