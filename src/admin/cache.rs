//! `/api/v1/cache`: the response cache's numbers, and purges.
//!
//! | method | path | |
//! |---|---|---|
//! | GET | /api/v1/cache | stats: entries, bytes, requests by outcome, stores, evictions |
//! | DELETE | /api/v1/cache?key=URL | every stored response of URL (`http://host/path?query`) |
//! | DELETE | /api/v1/cache?prefix=URL | every stored response whose URL starts with this |
//! | DELETE | /api/v1/cache | everything |
//!
//! With `cache.redis`, a purge deletes from Redis too and tells every
//! replica sharing it (each drops the same from its memory within
//! 250 ms); when Redis does not answer, the answer is 502 with what this
//! replica purged.
//!
//! A DELETE needs the admin token (when one is set), as every mutating
//! endpoint does (`admin/routes.rs`).

use std::sync::atomic::Ordering::Relaxed;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::json;

use super::reply::{self, AdminBody};
use crate::cache::stats::{requests, OUTCOMES};
use crate::cache::store::{self, Purge};

pub const PATH: &str = "/api/v1/cache";

pub async fn route(req: &Request<Incoming>) -> Response<AdminBody> {
    let Some(store) = store::current() else {
        return reply::json(
            StatusCode::NOT_FOUND,
            json!({"error": "the cache is off (no `cache` in the config)"}),
        );
    };
    match *req.method() {
        Method::GET | Method::HEAD => {
            let tiers: Vec<_> = store
                .tiers()
                .iter()
                .map(|t| json!({"tier": t.name, "entries": t.entries, "bytes": t.bytes}))
                .collect();
            let outcomes: serde_json::Map<String, serde_json::Value> = OUTCOMES
                .iter()
                .map(|o| (o.label().to_string(), requests(*o).into()))
                .collect();
            reply::json(
                StatusCode::OK,
                json!({
                    "tiers": tiers,
                    "max_size": store.memory.max_size,
                    "max_item_size": store.memory.max_item_size,
                    "requests": outcomes,
                    "stores": store.counts.stores.load(Relaxed),
                    "evictions": store.counts.evictions.load(Relaxed),
                    "coalescing": store.coalescer.in_flight(),
                    "redis": store.l2().map(|l2| json!({
                        "max_item_size": l2.settings.max_item_size,
                        "hits": l2.counts.hits.load(Relaxed),
                        "misses": l2.counts.misses.load(Relaxed),
                        "stores": l2.counts.stores.load(Relaxed),
                        "written_bytes": l2.counts.written_bytes.load(Relaxed),
                        "errors": l2.counts.errors.load(Relaxed),
                    })),
                }),
            )
        }
        Method::DELETE => {
            let query = req.uri().query().unwrap_or("");
            let purge = match (param(query, "key"), param(query, "prefix")) {
                (Some(k), None) => Purge::Url(k),
                (None, Some(p)) => Purge::Prefix(p),
                (None, None) => Purge::All,
                (Some(_), Some(_)) => {
                    return reply::json(
                        StatusCode::BAD_REQUEST,
                        json!({"error": "give `key` or `prefix`, not both"}),
                    )
                }
            };
            let purged = store.purge(&purge).await;
            match purged.redis {
                None => reply::json(StatusCode::OK, json!({"purged": purged.memory})),
                Some(Ok(n)) => reply::json(
                    StatusCode::OK,
                    json!({"purged": purged.memory, "purged_redis": n, "replicas": "told through Redis"}),
                ),
                // This replica's memory is purged; Redis and the other
                // replicas are not: the caller must know and try again.
                Some(Err(e)) => reply::json(
                    StatusCode::BAD_GATEWAY,
                    json!({"purged": purged.memory, "error": format!("the shared tier (Redis) was not purged: {e}")}),
                ),
            }
        }
        _ => reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            json!({"error": format!("{} not allowed here", req.method())}),
        ),
    }
}

/// The value of `name` in the query: the whole rest of it, percent-decoded
/// (a URL's own `?` and `&` need no escaping when it is the only
/// parameter, and may be escaped).
fn param(query: &str, name: &str) -> Option<String> {
    let rest = query.strip_prefix(name)?.strip_prefix('=')?;
    Some(percent_decode(rest))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_is_the_rest_of_the_query() {
        assert_eq!(
            param("key=http://a/x?y=1&z=2", "key").as_deref(),
            Some("http://a/x?y=1&z=2")
        );
        assert_eq!(
            param("key=http%3A%2F%2Fa%2Fx%3Fy%3D1", "key").as_deref(),
            Some("http://a/x?y=1")
        );
        assert_eq!(param("prefix=http://a/", "key"), None);
        assert_eq!(percent_decode("%4"), "%4");
    }
}
