//! The admin API's routes.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | /health | liveness: 200 while the process runs |
//! | GET | /ready | 200 when a backend is in rotation and shoal is not shutting down |
//! | GET | /api/v1/status | instances, upstreams, the running operation |
//! | GET | /metrics | Prometheus metrics (OpenMetrics text) |
//! | POST | /api/v1/scale | `{"instances": N}` (or `?instances=N`); NDJSON progress |
//! | POST | /api/v1/reload | rolling reload of the app; `?config=1`: re-read shoal's config |

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{json, Value};

use super::control;
use super::reply::{self, AdminBody};
use crate::app::State;
use crate::balance::Endpoint;
use crate::metrics;

pub async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<AdminBody> {
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    match req.uri().path() {
        "/health" if get => reply::json(StatusCode::OK, json!({"status": "ok"})),
        "/ready" if get => ready(state),
        "/api/v1/status" if get => reply::json(StatusCode::OK, status(state)),
        "/metrics" if get => reply::text(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::render(state),
        ),
        "/api/v1/scale" if post => control::scale(state, req).await,
        "/api/v1/reload" if post => control::reload(state, req).await,
        "/health" | "/ready" | "/api/v1/status" | "/metrics" | "/api/v1/scale"
        | "/api/v1/reload" => reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{method} not allowed here")}),
        ),
        _ => reply::json(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

fn ready(state: &State) -> Response<AdminBody> {
    if state.is_shutting_down() {
        return reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "shutting down"}),
        );
    }
    let set = state.table.snapshot();
    let healthy = set.endpoints.iter().filter(|e| e.in_rotation()).count();
    if healthy == 0 {
        return reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "no healthy backend", "backends": set.endpoints.len()}),
        );
    }
    reply::json(
        StatusCode::OK,
        json!({"ready": true, "healthy_backends": healthy, "backends": set.endpoints.len()}),
    )
}

/// The latest active check of an endpoint: passed or not, why, how long it
/// took and when (seconds since the Unix epoch); `null` before the first.
fn last_check(e: &Endpoint) -> Value {
    match e.last_check() {
        None => Value::Null,
        Some(c) => json!({
            "passed": c.passed,
            "detail": c.detail,
            "duration_ms": c.duration.as_secs_f64() * 1000.0,
            "at": c.at.duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0),
        }),
    }
}

fn status(state: &State) -> Value {
    let (instances, app) = match &state.supervisor {
        Some(s) => {
            let list: Vec<Value> = s
                .instances()
                .iter()
                .map(|i| {
                    json!({
                        "id": i.id,
                        "slot": i.slot,
                        "generation": i.generation,
                        "pid": i.pid(),
                        "port": i.port,
                        "state": i.state().as_str(),
                        "health": i.endpoint.health_word().health().as_str(),
                        "last_check": last_check(&i.endpoint),
                        "ejections": i.endpoint.ejections(),
                        "restarts": i.restarts(),
                        "in_flight": i.endpoint.in_flight(),
                        "requests": i.endpoint.requests(),
                        "connections_opened": i.endpoint.pool.opened(),
                        "protocol": i.endpoint.pool.protocol().as_str(),
                        "rss_bytes": i.rss(),
                        "uptime_secs": i.uptime().map(|d| d.as_secs_f64()),
                        "last_exit": i.last_exit(),
                        "failure": i.failure(),
                    })
                })
                .collect();
            let spec = s.spec();
            let mut running: Vec<u64> = s.active().iter().map(|i| i.generation).collect();
            running.sort_unstable();
            running.dedup();
            let rollout = s.last_rollout().map(|r| {
                json!({
                    "generation": r.generation,
                    "ok": r.ok,
                    "message": r.message,
                })
            });
            let app = json!({
                "instances": s.active().len(),
                "target": s.target(),
                "generation": s.generation(),
                "running_generations": running,
                "last_rollout": rollout,
                "operation": s.operation(),
                "min": spec.min,
                "max": spec.max,
            });
            (list, app)
        }
        None => (Vec::new(), Value::Null),
    };
    let upstreams: Vec<Value> = state
        .upstreams()
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "address": e.addr.to_string(),
                "weight": e.weight,
                "health": e.health_word().health().as_str(),
                "last_check": last_check(e),
                "ejections": e.ejections(),
                "in_flight": e.in_flight(),
                "requests": e.requests(),
                "connections_opened": e.pool.opened(),
                "protocol": e.pool.protocol().as_str(),
            })
        })
        .collect();
    let config = state.config();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs_f64(),
        "shutting_down": state.is_shutting_down(),
        "listen": state.proxy_addr().map(|a| a.to_string()),
        "balance": state.proxy.routing().algorithm,
        "retries": config.proxy.retries,
        "app": app,
        "instances": instances,
        "upstreams": upstreams,
    })
}
