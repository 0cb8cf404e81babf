//! The admin API's routes.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | /health | liveness: 200 while the process runs |
//! | GET | /ready | 200 when a backend is in rotation and shoal is not shutting down |
//! | GET | /api/v1/status | instances, upstreams, the running operation |
//! | GET | /metrics | Prometheus metrics (OpenMetrics text) |
//! | GET | /api/v1/autoscale | each app's autoscaler: signals, statistics, decision history (`?app=NAME`: one) |
//! | POST | /api/v1/scale | `{"instances": N}` (or `?instances=N`); NDJSON progress |
//! | POST | /api/v1/reload | rolling reload of the app; `?config=1`: re-read shoal's config |
//! | GET | /api/v1/logs, /api/v1/instances/{id}/logs | instances' recent output, NDJSON; `?lines=N&since=5m&follow` (`admin/logs.rs`) |
//! | GET, PUT, DELETE | /api/v1/rate-limits… | the rate limits now; changed at run time (`admin/rate_limits.rs`) |
//! | GET, DELETE | /api/v1/cache | the response cache's numbers; purge by `?key=URL`, `?prefix=URL`, or all (`admin/cache.rs`) |
//! | GET | /api/v1/events | lifecycle events (`?since=ID`); `?follow`: Server-Sent Events (`admin/events.rs`) |
//! | GET | /api/v1/metrics/history | the dashboard's samples, one a second; `?follow`: SSE (`dashboard/`) |
//! | GET, POST, DELETE | /api/v1/backends | the registry of `registry: true` groups: register, heartbeat, leave (`admin/backends.rs`) |
//! | GET | /, /dashboard.js, /dashboard.css | the dashboard (no token needed: the page holds no data) |

use std::sync::Arc;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::auth;
use super::backends;
use super::cache;
use super::control;
use super::events;
use super::logs;
use super::rate_limits;
use super::reply::{self, AdminBody};
use super::status::Status;
use crate::app::State;
use crate::dashboard;
use crate::metrics;
use shoal_config::AdminRead;

pub async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<AdminBody> {
    let method = req.method().clone();
    let get = method == Method::GET || method == Method::HEAD;
    let post = method == Method::POST;
    if let Some(token) = state.admin_token() {
        let path = req.uri().path();
        let probe = matches!(path, "/health" | "/ready") || dashboard::is_asset(path);
        let needed = !probe && (!get || state.config().admin.read == AdminRead::Token);
        if needed && !auth::authorized(req.headers(), &token) {
            let mut resp = reply::json(StatusCode::UNAUTHORIZED, json!({"error": "unauthorized"}));
            resp.headers_mut().insert(
                http::header::WWW_AUTHENTICATE,
                http::HeaderValue::from_static("Bearer"),
            );
            return resp;
        }
    }
    match req.uri().path() {
        "/health" if get => reply::json(StatusCode::OK, json!({"status": "ok"})),
        "/ready" if get => ready(state),
        "/api/v1/status" if get => reply::json(
            StatusCode::OK,
            serde_json::to_value(Status::of(state)).unwrap_or_default(),
        ),
        p if get && dashboard::is_asset(p) => dashboard::asset(p),
        events::PATH if get => events::route(&req),
        dashboard::HISTORY_PATH if get => dashboard::history_route(state, &req),
        "/metrics" if get => reply::text(
            StatusCode::OK,
            metrics::CONTENT_TYPE,
            metrics::render(state),
        ),
        "/api/v1/autoscale" if get => autoscale(state, req.uri().query()),
        p if p == rate_limits::PREFIX || p.starts_with("/api/v1/rate-limits/") => {
            rate_limits::route(state, req).await
        }
        cache::PATH => cache::route(&req).await,
        "/api/v1/logs" if get => logs::route(state, &req, None),
        p if get && p.starts_with("/api/v1/instances/") && p.ends_with("/logs") => {
            let id = &p["/api/v1/instances/".len()..p.len() - "/logs".len()];
            logs::route(state, &req, Some(id))
        }
        backends::PATH => backends::route(state, req).await,
        "/api/v1/scale" if post => control::scale(state, req).await,
        "/api/v1/reload" if post => control::reload(state, req).await,
        "/health"
        | "/ready"
        | "/api/v1/status"
        | "/metrics"
        | "/api/v1/scale"
        | "/api/v1/reload"
        | "/api/v1/autoscale"
        | events::PATH
        | dashboard::HISTORY_PATH => reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{method} not allowed here")}),
        ),
        _ => reply::json(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

/// `{"apps": [report, …]}`; `?app=NAME`: that app's only.
fn autoscale(state: &State, query: Option<&str>) -> Response<AdminBody> {
    let wanted = query.and_then(|q| {
        q.split('&')
            .find_map(|kv| kv.strip_prefix("app="))
            .map(str::to_owned)
    });
    let reports: Vec<_> = state
        .autoscalers
        .iter()
        .filter(|a| wanted.as_deref().is_none_or(|w| a.app() == w))
        .map(|a| a.report())
        .collect();
    if let (Some(w), true) = (&wanted, reports.is_empty()) {
        return reply::json(
            StatusCode::NOT_FOUND,
            json!({"error": format!("no app named `{w}`")}),
        );
    }
    reply::json(StatusCode::OK, json!({ "apps": reports }))
}

fn ready(state: &State) -> Response<AdminBody> {
    if state.is_shutting_down() {
        return reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "shutting down"}),
        );
    }
    let (healthy, backends) = state.readiness();
    if healthy == 0 {
        return reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "no healthy backend", "backends": backends}),
        );
    }
    reply::json(
        StatusCode::OK,
        json!({"ready": true, "healthy_backends": healthy, "backends": backends}),
    )
}
