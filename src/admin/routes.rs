//! `GET /health`, `GET /ready`, `GET /api/v1/status`.

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{json, Value};

use crate::app::State;

pub async fn route(state: &State, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    match (req.uri().path(), get) {
        ("/health", true) => json_response(StatusCode::OK, json!({"status": "ok"})),
        ("/ready", true) => ready(state),
        ("/api/v1/status", true) => json_response(StatusCode::OK, status(state)),
        ("/health" | "/ready" | "/api/v1/status", false) => json_response(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": "method not allowed"}),
        ),
        _ => json_response(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

fn ready(state: &State) -> Response<Full<Bytes>> {
    if state.is_shutting_down() {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "shutting down"}),
        );
    }
    let set = state.table.snapshot();
    let healthy = set.endpoints.iter().filter(|e| e.in_rotation()).count();
    if healthy == 0 {
        return json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"ready": false, "reason": "no healthy backend", "backends": set.endpoints.len()}),
        );
    }
    json_response(
        StatusCode::OK,
        json!({"ready": true, "healthy_backends": healthy, "backends": set.endpoints.len()}),
    )
}

fn status(state: &State) -> Value {
    let instances: Vec<Value> = state
        .supervisor
        .as_ref()
        .map(|s| {
            s.instances()
                .iter()
                .map(|i| {
                    json!({
                        "id": i.id,
                        "pid": i.pid(),
                        "port": i.port,
                        "state": i.state().as_str(),
                        "health": i.endpoint.health_word().health().as_str(),
                        "restarts": i.restarts(),
                        "in_flight": i.endpoint.in_flight(),
                        "requests": i.endpoint.requests(),
                        "uptime_secs": i.uptime().map(|d| d.as_secs_f64()),
                        "last_exit": i.last_exit(),
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    let upstreams: Vec<Value> = state
        .upstreams
        .iter()
        .map(|e| {
            json!({
                "id": e.id,
                "address": e.addr.to_string(),
                "weight": e.weight,
                "health": e.health_word().health().as_str(),
                "in_flight": e.in_flight(),
                "requests": e.requests(),
            })
        })
        .collect();
    json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_secs": state.started.elapsed().as_secs_f64(),
        "shutting_down": state.is_shutting_down(),
        "listen": state.proxy_addr.to_string(),
        "balance": state.algorithm,
        "instances": instances,
        "upstreams": upstreams,
    })
}

fn json_response(status: StatusCode, body: Value) -> Response<Full<Bytes>> {
    let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    text.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    resp.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    resp
}
