//! Instances' recent output: `GET /api/v1/instances/{id}/logs` (one
//! instance) and `GET /api/v1/logs` (every instance, in the order the lines
//! came), as NDJSON — one object a line: `seq`, `time`, `instance`,
//! `generation`, `pid`, `stream`, `line`. `?lines=N` (default 100, at most
//! 1000 per instance kept), `?since=5m`, `?follow` streams new lines as
//! they come (as `pm2 logs`), until the client goes.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Incoming;
use serde_json::json;

use super::control::{bad_request, query_param};
use super::reply::{self, AdminBody};
use crate::app::State;
use crate::supervisor::output::LogLine;

const DEFAULT_LINES: usize = 100;
/// How often a follower looks for new lines.
const FOLLOW_EVERY: Duration = Duration::from_millis(200);

/// `id`: one instance's (`None`: every instance's).
pub fn route(state: &Arc<State>, req: &Request<Incoming>, id: Option<&str>) -> Response<AdminBody> {
    if let Some(id) = id {
        if instances(state, Some(id)).is_empty() && !known(state, id) {
            return reply::json(
                StatusCode::NOT_FOUND,
                json!({"error": format!("no instance is named `{id}`")}),
            );
        }
    }
    let lines = match query_param(req, "lines").map(str::parse::<usize>) {
        None => DEFAULT_LINES,
        Some(Ok(n)) => n,
        Some(Err(_)) => return bad_request("`lines` must be a whole number".into()),
    };
    let since = match query_param(req, "since").map(shoal_config::units::parse_duration) {
        None => None,
        Some(Ok(d)) => Some(SystemTime::now() - d),
        Some(Err(why)) => return bad_request(format!("`since`: {why}")),
    };
    let follow = query_param(req, "follow").is_some_and(|v| v != "0" && v != "false");
    let mut backlog = collect(state, id, 0);
    if let Some(since) = since {
        backlog.retain(|l| l.at >= since);
    }
    let skip = backlog.len().saturating_sub(lines);
    let backlog: Vec<Arc<LogLine>> = backlog.into_iter().skip(skip).collect();
    let last = backlog.last().map_or_else(|| latest(state, id), |l| l.seq);
    let first = Bytes::from(ndjson(&backlog));
    let body = if follow {
        let state = state.clone();
        let id = id.map(str::to_owned);
        let more = futures_util::stream::unfold(last, move |seen| {
            let state = state.clone();
            let id = id.clone();
            async move {
                let mut seen = seen;
                loop {
                    tokio::time::sleep(FOLLOW_EVERY).await;
                    if state.is_shutting_down() {
                        return None;
                    }
                    let new = collect(&state, id.as_deref(), seen);
                    if let Some(l) = new.last() {
                        seen = l.seq;
                        let frame = Frame::data(Bytes::from(ndjson(&new)));
                        return Some((Ok::<_, Infallible>(frame), seen));
                    }
                }
            }
        });
        let head = futures_util::stream::iter([Ok::<_, Infallible>(Frame::data(first))]);
        StreamBody::new(futures_util::StreamExt::chain(head, more)).boxed()
    } else {
        StreamBody::new(futures_util::stream::iter([Ok::<_, Infallible>(
            Frame::data(first),
        )]))
        .boxed()
    };
    reply::ndjson(body)
}

/// The instances whose lines are asked for (every generation running).
fn instances(state: &State, id: Option<&str>) -> Vec<Arc<crate::supervisor::Instance>> {
    state
        .supervisors
        .iter()
        .flat_map(|s| s.instances())
        .filter(|i| id.is_none_or(|id| i.id == id))
        .collect()
}

/// An instance id some app could have (`NAME-N`), running or not now.
fn known(state: &State, id: &str) -> bool {
    state.supervisors.iter().any(|s| {
        id.strip_prefix(s.name())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|n| n.parse::<u32>().is_ok())
    })
}

/// The kept lines after `seq`, oldest first, across the instances asked for.
fn collect(state: &State, id: Option<&str>, seq: u64) -> Vec<Arc<LogLine>> {
    let mut all: Vec<Arc<LogLine>> = instances(state, id)
        .iter()
        .flat_map(|i| i.output().lines_after(seq))
        .collect();
    all.sort_by_key(|l| l.seq);
    all
}

fn latest(state: &State, id: Option<&str>) -> u64 {
    collect(state, id, 0).last().map_or(0, |l| l.seq)
}

fn ndjson(lines: &[Arc<LogLine>]) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lines {
        if serde_json::to_writer(&mut out, &**l).is_ok() {
            out.push(b'\n');
        }
    }
    out
}
