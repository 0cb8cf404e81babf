//! `POST /api/v1/scale` and `POST /api/v1/reload`: start an operation, stream
//! its progress. The operation runs in its own task, so a client that goes
//! away does not stop it halfway.

use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde_json::json;

use super::reply::{self, AdminBody};
use crate::app::{self, State};
use crate::supervisor::Progress;

const MAX_BODY: usize = 64 * 1024;

fn query_param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn bad_request(message: String) -> Response<AdminBody> {
    reply::json(StatusCode::BAD_REQUEST, json!({"error": message}))
}

pub async fn scale(state: &Arc<State>, req: Request<Incoming>) -> Response<AdminBody> {
    let Some(sup) = state.supervisor.clone() else {
        return reply::json(
            StatusCode::CONFLICT,
            json!({"error": "no app section: shoal runs no instances to scale"}),
        );
    };
    let from_query = query_param(&req, "instances").map(str::to_owned);
    let body: Bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_request(format!("cannot read the request body: {e}")),
    };
    let n = match from_query {
        Some(q) => q
            .parse::<u32>()
            .map_err(|_| format!("instances={q:?} is not a whole number")),
        None => serde_json::from_slice::<serde_json::Value>(&body)
            .map_err(|e| format!("expected a JSON body like {{\"instances\": 5}}: {e}"))
            .and_then(|v| {
                v["instances"]
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| "`instances` must be a whole number".to_string())
            }),
    };
    let n = match n {
        Ok(n) => n,
        Err(e) => return bad_request(e),
    };
    if state.is_shutting_down() {
        return reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "shutting down"}),
        );
    }
    if let Err(e) = sup.check_scale(n) {
        return reply::json(
            StatusCode::UNPROCESSABLE_ENTITY,
            json!({"error": e.to_string()}),
        );
    }
    let (progress, rx) = Progress::channel();
    // Take the lock here so a concurrent request gets 409 rather than a wait.
    match sup.try_begin(&format!("scale to {n}")) {
        Err(e) => reply::json(StatusCode::CONFLICT, json!({"error": e.to_string()})),
        Ok(op) => {
            tokio::spawn(async move {
                let r = sup.scale(n, &progress).await;
                drop(op);
                progress.finish(&r);
            });
            reply::progress_stream(rx)
        }
    }
}

pub async fn reload(state: &Arc<State>, req: Request<Incoming>) -> Response<AdminBody> {
    let config = matches!(query_param(&req, "config"), Some("1" | "true" | ""));
    if state.is_shutting_down() {
        return reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "shutting down"}),
        );
    }
    let (progress, rx) = Progress::channel();
    if config {
        if !state.can_reload_config() {
            return reply::json(
                StatusCode::CONFLICT,
                json!({"error": "shoal was not started from a config file; nothing to reload"}),
            );
        }
        let state = state.clone();
        tokio::spawn(async move {
            let r = app::reload_config(&state, &progress).await;
            progress.finish(&r);
        });
        return reply::progress_stream(rx);
    }
    let Some(sup) = state.supervisor.clone() else {
        return reply::json(
            StatusCode::CONFLICT,
            json!({"error": "no app section: shoal runs no instances to reload"}),
        );
    };
    match sup.try_begin("rolling reload") {
        Err(e) => reply::json(StatusCode::CONFLICT, json!({"error": e.to_string()})),
        Ok(op) => {
            tokio::spawn(async move {
                let r = sup.rolling_reload(&progress).await;
                drop(op);
                progress.finish(&r);
            });
            reply::progress_stream(rx)
        }
    }
}
