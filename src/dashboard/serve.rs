//! The page's files, and `GET /api/v1/metrics/history[?follow]`: the kept
//! samples as JSON, or (`?follow`) a Server-Sent Events stream with one
//! message a second: the new sample and the status document.

use std::sync::Arc;

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use crate::admin::reply::{self, AdminBody};
use crate::admin::status::Status;
use crate::app::State;

pub const HISTORY_PATH: &str = "/api/v1/metrics/history";

const INDEX: &str = include_str!("assets/index.html");
const SCRIPT: &str = include_str!("assets/dashboard.js");
const STYLE: &str = include_str!("assets/dashboard.css");

/// The page's own files: served to anyone (they hold no data; what they
/// read needs the token when `admin.read: token`).
pub fn is_asset(path: &str) -> bool {
    matches!(path, "/" | "/dashboard.js" | "/dashboard.css")
}

pub fn asset(path: &str) -> Response<AdminBody> {
    let (body, kind) = match path {
        "/dashboard.js" => (SCRIPT, "text/javascript; charset=utf-8"),
        "/dashboard.css" => (STYLE, "text/css; charset=utf-8"),
        _ => (INDEX, "text/html; charset=utf-8"),
    };
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())).boxed());
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

pub fn history_route(state: &Arc<State>, req: &Request<Incoming>) -> Response<AdminBody> {
    let follow = req.uri().query().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv == "follow" || kv.starts_with("follow="))
    });
    if !follow {
        return reply::json(
            StatusCode::OK,
            json!({
                "every_secs": 1,
                "samples": state.history.samples().iter().map(|s| &**s).collect::<Vec<_>>(),
            }),
        );
    }
    let rx = state.history.subscribe();
    let state = Arc::downgrade(state);
    // The first message at once (the status, the latest sample), so the
    // page fills without waiting a second.
    let first = state.upgrade().map(|s| {
        let latest = s.history.samples().last().cloned();
        message(&s, latest.as_deref())
    });
    let stream =
        futures_util::stream::unfold((first, rx, state), |(first, mut rx, state)| async move {
            if let Some(m) = first {
                return Some((m, (None, rx, state)));
            }
            let sample = loop {
                match rx.recv().await {
                    Ok(s) => break s,
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return None,
                }
            };
            let s = state.upgrade()?;
            let m = message(&s, Some(&sample));
            Some((m, (None, rx, state)))
        });
    reply::sse(stream)
}

fn message(state: &State, sample: Option<&super::Sample>) -> Bytes {
    reply::sse_message(
        None,
        &json!({ "sample": sample, "status": Status::of(state) }),
    )
}
