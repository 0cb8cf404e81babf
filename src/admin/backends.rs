//! `/api/v1/backends`: the registry of the upstream groups with
//! `registry: true` (`discovery/registry.rs`).
//!
//! - `POST` `{"group": "api", "address": "10.0.0.5:8080", "weight": 1, "ttl": "10s"}`
//!   registers a backend, or renews it (send it again before `ttl` lapses:
//!   the heartbeat); 201 when new, 200 when renewed;
//! - `DELETE ?group=api&address=10.0.0.5:8080` takes it out at once;
//! - `GET` lists the live registrations.
//!
//! Changing them needs the admin token, as every mutating endpoint does.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use serde::Deserialize;
use serde_json::json;

use super::control::{bad_request, query_param, MAX_BODY};
use super::reply::{self, AdminBody};
use crate::app::State;
use crate::discovery::registry::{RegisterError, DEFAULT_TTL, MAX_TTL, MIN_TTL};

pub const PATH: &str = "/api/v1/backends";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Registration {
    group: String,
    address: String,
    #[serde(default)]
    weight: Option<u32>,
    /// `"10s"`, or a number of seconds.
    #[serde(default)]
    ttl: Option<serde_json::Value>,
}

pub async fn route(state: &Arc<State>, req: Request<Incoming>) -> Response<AdminBody> {
    let registry = &state.discovery.registry;
    match *req.method() {
        Method::GET | Method::HEAD => {
            reply::json(StatusCode::OK, json!({ "backends": registry.list() }))
        }
        Method::POST => {
            let body: Bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
                Ok(b) => b.to_bytes(),
                Err(e) => return bad_request(format!("cannot read the request body: {e}")),
            };
            let r: Registration = match serde_json::from_slice(&body) {
                Ok(r) => r,
                Err(e) => {
                    return bad_request(format!(
                        "expected a JSON body like {{\"group\": \"api\", \"address\": \"10.0.0.5:8080\", \"ttl\": \"10s\"}}: {e}"
                    ))
                }
            };
            let address = match address(&r.address) {
                Ok(a) => a,
                Err(e) => return bad_request(e),
            };
            let weight = r.weight.unwrap_or(1);
            if !(1..=1000).contains(&weight) {
                return bad_request(format!("weight {weight} is not from 1 to 1000"));
            }
            let ttl = match ttl(r.ttl.as_ref()) {
                Ok(t) => t,
                Err(e) => return bad_request(e),
            };
            match registry.register(&r.group, address, weight, ttl) {
                Ok(new) => reply::json(
                    if new {
                        StatusCode::CREATED
                    } else {
                        StatusCode::OK
                    },
                    json!({
                        "group": r.group,
                        "address": address,
                        "weight": weight,
                        "ttl_secs": ttl.as_secs_f64(),
                        "registered": new,
                    }),
                ),
                Err(e) => not_a_registry(e),
            }
        }
        Method::DELETE => {
            let (Some(group), Some(addr)) =
                (query_param(&req, "group"), query_param(&req, "address"))
            else {
                return bad_request("give ?group=NAME&address=IP:PORT".into());
            };
            let address = match address(addr) {
                Ok(a) => a,
                Err(e) => return bad_request(e),
            };
            match registry.deregister(group, address) {
                Ok(removed) => reply::json(StatusCode::OK, json!({ "removed": removed })),
                Err(e) => not_a_registry(e),
            }
        }
        ref other => reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{other} not allowed here")}),
        ),
    }
}

fn not_a_registry(e: RegisterError) -> Response<AdminBody> {
    reply::json(StatusCode::NOT_FOUND, json!({"error": e.to_string()}))
}

fn address(text: &str) -> Result<SocketAddr, String> {
    text.parse()
        .map_err(|_| format!("address `{text}` is not IP:PORT (e.g. 10.0.0.5:8080)"))
}

fn ttl(value: Option<&serde_json::Value>) -> Result<Duration, String> {
    let ttl = match value {
        None => DEFAULT_TTL,
        Some(serde_json::Value::Number(n)) => n
            .as_f64()
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64)
            .ok_or_else(|| format!("ttl {n} is not a number of seconds"))?,
        Some(serde_json::Value::String(s)) => shoal_config::units::parse_duration(s)?,
        Some(other) => return Err(format!("ttl {other} is not a duration like \"10s\"")),
    };
    if !(MIN_TTL..=MAX_TTL).contains(&ttl) {
        return Err(format!(
            "ttl {} is outside {} … {}",
            shoal_config::units::format_duration(ttl),
            shoal_config::units::format_duration(MIN_TTL),
            shoal_config::units::format_duration(MAX_TTL)
        ));
    }
    Ok(ttl)
}
