//! `/api/v1/rate-limits`: the rules as they are now, changed at run time,
//! and one key's count forgotten.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | /api/v1/rate-limits | every rule: settings now, the config's, counts |
//! | PUT | /api/v1/rate-limits/{name} | `{"rate": "100/min", "burst": 50, "enabled": true}`, any of them |
//! | DELETE | /api/v1/rate-limits/{name}?key=K | forget key K's count (`10.0.0.1`, or the parts joined by `\|`) |
//! | DELETE | /api/v1/rate-limits/{name}/override | back to the config's settings |

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::{json, Value};
use shoal_config::Rate;

use super::control::{bad_request, query_param, MAX_BODY};
use super::reply::{self, AdminBody};
use crate::app::State;
use crate::ratelimit::{Live, Setting};

pub const PREFIX: &str = "/api/v1/rate-limits";

pub async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<AdminBody> {
    let path = req.uri().path().to_string();
    let rest = path[PREFIX.len()..].trim_start_matches('/');
    let method = req.method().clone();
    match (rest.split_once('/'), &method) {
        (None, &Method::GET | &Method::HEAD) if rest.is_empty() => list(state),
        (None, &Method::PUT) if !rest.is_empty() => change(state, rest, req).await,
        (None, &Method::DELETE) if !rest.is_empty() => forget(state, rest, &req).await,
        (Some((name, "override")), &Method::DELETE) => {
            let Some(live) = state.limiter.rule(name) else {
                return no_rule(name);
            };
            state.limiter.set_override(name, &live, None).await;
            reply::json(StatusCode::OK, rule_json(state, name, &live))
        }
        _ if rest.is_empty() => not_allowed(&method),
        _ => reply::json(StatusCode::NOT_FOUND, json!({"error": "not found"})),
    }
}

fn not_allowed(method: &Method) -> Response<AdminBody> {
    reply::json(
        StatusCode::METHOD_NOT_ALLOWED,
        json!({"error": format!("{method} not allowed here")}),
    )
}

fn no_rule(name: &str) -> Response<AdminBody> {
    reply::json(
        StatusCode::NOT_FOUND,
        json!({"error": format!("no rate limit is named `{name}`")}),
    )
}

fn setting_json(s: &Setting) -> Value {
    json!({"rate": s.rate.to_string(), "burst": s.burst, "enabled": s.enabled})
}

fn rule_json(state: &State, name: &str, live: &Live) -> Value {
    let (configured, overridden) = live.settings();
    let now = overridden.unwrap_or(configured);
    let config = state.config();
    let rule = config.rate_limits.iter().find(|r| r.name == name);
    json!({
        "name": name,
        "rate": now.rate.to_string(),
        "burst": now.burst,
        "enabled": now.enabled,
        "configured": setting_json(&configured),
        "overridden": overridden.is_some(),
        "key": rule.map(|r| r.key.iter().map(|k| k.to_string()).collect::<Vec<_>>()),
        "routes": rule.map(|r| r.routes.clone()),
        "headers": live.headers.load(Relaxed),
        "allowed": live.allowed.load(Relaxed),
        "limited": live.limited.load(Relaxed),
        "errors": live.errors.load(Relaxed),
    })
}

fn list(state: &State) -> Response<AdminBody> {
    let rules: Vec<Value> = state
        .limiter
        .snapshot()
        .iter()
        .map(|(name, live)| rule_json(state, name, live))
        .collect();
    reply::json(
        StatusCode::OK,
        json!({"backend": state.limiter.backend(), "rules": rules}),
    )
}

/// `PUT`'s body: what changes; the rest stays as it is now.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Change {
    rate: Option<String>,
    burst: Option<u32>,
    enabled: Option<bool>,
}

async fn change(state: &Arc<State>, name: &str, req: Request<Incoming>) -> Response<AdminBody> {
    let Some(live) = state.limiter.rule(name) else {
        return no_rule(name);
    };
    let body: Bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return bad_request(format!("cannot read the request body: {e}")),
    };
    let change: Change = match serde_json::from_slice(&body) {
        Ok(c) => c,
        Err(e) => {
            return bad_request(format!(
                "expected a JSON body like {{\"rate\": \"100/min\", \"burst\": 50, \"enabled\": true}}: {e}"
            ))
        }
    };
    let (configured, overridden) = live.settings();
    let mut s = overridden.unwrap_or(configured);
    if let Some(text) = change.rate {
        match Rate::parse(&text) {
            Ok(r) if !r.interval().is_zero() => s.rate = r,
            Ok(_) => {
                return bad_request(format!(
                    "rate `{text}` is more than one request per nanosecond"
                ))
            }
            Err(why) => return bad_request(why),
        }
    }
    if let Some(burst) = change.burst {
        if burst == 0 {
            return bad_request("burst must be at least 1".into());
        }
        s.burst = burst;
    }
    if let Some(enabled) = change.enabled {
        s.enabled = enabled;
    }
    state.limiter.set_override(name, &live, Some(s)).await;
    tracing::info!(rule = name, rate = %s.rate, burst = s.burst, enabled = s.enabled, "rate limit changed through the admin API");
    reply::json(StatusCode::OK, rule_json(state, name, &live))
}

async fn forget(state: &Arc<State>, name: &str, req: &Request<Incoming>) -> Response<AdminBody> {
    if state.limiter.rule(name).is_none() {
        return no_rule(name);
    }
    let Some(raw) = query_param(req, "key") else {
        return bad_request(format!(
            "name the key to reset: ?key=… (the client address, or the rule's key parts joined by `|`); \
             DELETE {PREFIX}/{name}/override returns the rule to its config"
        ));
    };
    let key = match crate::files::path::percent_decode(raw.as_bytes()).map(String::from_utf8) {
        Some(Ok(k)) if !k.is_empty() => k,
        _ => return bad_request("`key` is not valid percent-encoded UTF-8".into()),
    };
    let routing = state.proxy.routing();
    let bytes = match routing.limits.key_of(name, &key) {
        Some(Ok(bytes)) => bytes,
        Some(Err(why)) => return bad_request(why),
        None => return no_rule(name),
    };
    match state.limiter.forget(&bytes).await {
        Ok(had) => reply::json(
            StatusCode::OK,
            json!({"rule": name, "key": key, "reset": had}),
        ),
        Err(e) => reply::json(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": e.to_string()}),
        ),
    }
}
