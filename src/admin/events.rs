//! `GET /api/v1/events`: the kept events, oldest first (`?since=ID`: only
//! those after it). `?follow`: a Server-Sent Events stream — the kept
//! events (after `?since` or `Last-Event-ID`), then each new one as it
//! happens, one `id:`/`data:` (JSON) message each.

use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;
use tokio::sync::broadcast::error::RecvError;

use super::control::query_param;
use super::reply::{self, AdminBody};
use crate::events;

pub const PATH: &str = "/api/v1/events";

pub fn route(req: &Request<Incoming>) -> Response<AdminBody> {
    let since = query_param(req, "since")
        .or_else(|| {
            req.headers()
                .get("last-event-id")
                .and_then(|v| v.to_str().ok())
        })
        .map(|s| s.trim().parse::<u64>());
    let since = match since {
        None => 0,
        Some(Ok(n)) => n,
        Some(Err(_)) => {
            return reply::json(
                StatusCode::BAD_REQUEST,
                json!({"error": "since: expected an event id (a whole number)"}),
            )
        }
    };
    let (kept, rx) = events::bus().since(since);
    if query_param(req, "follow").is_none() {
        return reply::json(
            StatusCode::OK,
            json!({ "events": kept.iter().map(|e| &**e).collect::<Vec<_>>() }),
        );
    }
    let stream =
        futures_util::stream::unfold((kept.into_iter(), rx), |(mut kept, mut rx)| async move {
            if let Some(e) = kept.next() {
                return Some((reply::sse_message(Some(e.id), &*e), (kept, rx)));
            }
            match rx.recv().await {
                Ok(e) => Some((reply::sse_message(Some(e.id), &*e), (kept, rx))),
                // Too slow a reader: say so, and go on from the oldest
                // event the channel still holds.
                Err(RecvError::Lagged(n)) => {
                    let note = reply::sse_comment(&format!("missed {n} events"));
                    Some((note, (kept, rx)))
                }
                Err(RecvError::Closed) => None,
            }
        });
    reply::sse(stream)
}
