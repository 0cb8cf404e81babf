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

pub(super) const MAX_BODY: usize = 64 * 1024;

pub(super) fn query_param<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

pub(super) fn bad_request(message: String) -> Response<AdminBody> {
    reply::json(StatusCode::BAD_REQUEST, json!({"error": message}))
}

/// The app an operation is for: `?app=NAME` (or `"app"` in a JSON body),
/// or the only one.
fn chosen_app(
    state: &State,
    name: Option<&str>,
    what: &str,
) -> Result<Arc<crate::supervisor::Supervisor>, Box<Response<AdminBody>>> {
    state.app(name).map_err(|e| {
        let status = match e {
            app::AppChoice::NoApps => StatusCode::CONFLICT,
            app::AppChoice::Several(_) => StatusCode::BAD_REQUEST,
            app::AppChoice::Unknown { .. } => StatusCode::NOT_FOUND,
        };
        let message = match e {
            app::AppChoice::NoApps => format!("no app section: shoal runs no instances to {what}"),
            other => other.to_string(),
        };
        Box::new(reply::json(status, json!({"error": message})))
    })
}

pub async fn scale(state: &Arc<State>, req: Request<Incoming>) -> Response<AdminBody> {
    let from_query = query_param(&req, "instances").map(str::to_owned);
    let app_query = query_param(&req, "app").map(str::to_owned);
    let body: Bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_request(format!("cannot read the request body: {e}")),
    };
    let app_body = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["app"].as_str().map(str::to_owned));
    let sup = match chosen_app(state, app_query.or(app_body).as_deref(), "scale") {
        Ok(sup) => sup,
        Err(refused) => return *refused,
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
    let sup = match chosen_app(state, query_param(&req, "app"), "reload") {
        Ok(sup) => sup,
        Err(refused) => return *refused,
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
