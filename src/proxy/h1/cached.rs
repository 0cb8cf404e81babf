//! Cache hits on the native engine: a plain `GET`/`HEAD` whose fresh
//! response is in memory is answered here — the stored head written as
//! HTTP/1.1 bytes, the stored body after it in the same `writev`, never
//! copied — instead of being handed to hyper's path. Everything else on a
//! caching route (a miss, a conditional, `Range`, a response that varies,
//! one only in Redis, revalidation, purges' invalidations) still goes to
//! hyper's path, where the cache's *lookup* and *respond* phases live
//! (`cache::serve`); this is that lookup's first case, answered the same
//! way (`tests/e2e/cache.rs` runs under both engines).

use bytes::Bytes;
use http::header;

use super::head::{header as line, status_line};
use crate::cache::RouteCache;
use crate::routes::Route;

/// Request headers that need the whole lookup: conditionals, ranges,
/// the request's own cache directives, credentials.
const LOOKUP: [&str; 9] = [
    "authorization",
    "cache-control",
    "pragma",
    "range",
    "if-range",
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
];

/// What the request is, for the lookup.
pub(super) struct CacheRequest<'a> {
    pub method: &'a str,
    pub scheme: &'a str,
    pub host: &'a [u8],
    /// As the client sent it (the key is the client's URL).
    pub target: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    pub request_id: &'a [u8],
    pub keep_alive: bool,
}

/// The hit's head into `out` (cleared first) and its body to write after
/// it; `None` when hyper's path is to look the request up.
pub(super) fn answer(
    cache: &RouteCache,
    route: &Route,
    req: &CacheRequest<'_>,
    out: &mut Vec<u8>,
) -> Option<Bytes> {
    // Compression and request header edits (which may change the key's
    // `Host`) are hyper's path's.
    if route.compress.is_some() || !route.request_headers.is_empty() {
        return None;
    }
    let head_only = match req.method {
        "GET" => false,
        "HEAD" => true,
        _ => return None,
    };
    if req
        .headers
        .iter()
        .any(|h| LOOKUP.iter().any(|n| h.name.eq_ignore_ascii_case(n)))
    {
        return None;
    }
    let host = std::str::from_utf8(req.host).ok()?;
    let (entry, age) = cache.plain_hit(head_only, req.scheme, host, req.target)?;
    out.clear();
    status_line(
        out,
        entry.status,
        entry.status.canonical_reason().unwrap_or(""),
    );
    let write = |out: &mut Vec<u8>, headers: &http::HeaderMap| {
        for (name, value) in headers {
            if name != header::CONNECTION && name != header::CONTENT_LENGTH && name != header::AGE {
                line(out, name.as_str().as_bytes(), value.as_bytes());
            }
        }
    };
    if route.response_headers.is_empty() {
        write(out, &entry.headers);
    } else {
        let mut headers = entry.headers.clone();
        route.response_headers.apply(&mut headers);
        write(out, &headers);
    }
    let mut digits = itoa::Buffer::new();
    line(
        out,
        b"content-length",
        digits.format(entry.body.len()).as_bytes(),
    );
    line(
        out,
        b"age",
        digits.format(age.as_secs().min(1 << 31)).as_bytes(),
    );
    line(out, cache.header.as_str().as_bytes(), b"HIT");
    line(out, b"x-request-id", req.request_id);
    if !req.keep_alive {
        line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    Some(if head_only {
        Bytes::new()
    } else {
        entry.body.clone()
    })
}
