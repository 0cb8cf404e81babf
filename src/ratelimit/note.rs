//! The `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset`
//! headers (the IETF httpapi draft's names, as GitHub, Cloudflare and
//! Envoy send them) and `Retry-After` on a refusal, written once for both
//! engines: into an `http::HeaderMap` or as HTTP/1.1 header lines.

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};

/// What a response says of the limit that decided it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateNote {
    /// The rule's burst: requests a full bucket lets through.
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again (rounded up).
    pub reset_s: u64,
    /// A refusal: seconds until one more request would pass (rounded up,
    /// at least 1).
    pub retry_after_s: Option<u64>,
}

static LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
pub(crate) static REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
pub(crate) static RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl RateNote {
    pub fn insert(&self, h: &mut HeaderMap) {
        h.insert(LIMIT.clone(), HeaderValue::from(self.limit));
        h.insert(REMAINING.clone(), HeaderValue::from(self.remaining));
        h.insert(RESET.clone(), HeaderValue::from(self.reset_s));
        if let Some(s) = self.retry_after_s {
            h.insert(RETRY_AFTER, HeaderValue::from(s));
        }
    }

    /// As header lines (`name: value\r\n`) at the end of `out`: composed
    /// on the stack, then one copy.
    pub fn write_h1(&self, out: &mut Vec<u8>) {
        let mut buf = [0u8; 160];
        let mut len = 0;
        let mut put = |bytes: &[u8]| {
            buf[len..len + bytes.len()].copy_from_slice(bytes);
            len += bytes.len();
        };
        let mut n = itoa::Buffer::new();
        put(b"ratelimit-limit: ");
        put(n.format(self.limit).as_bytes());
        put(b"\r\nratelimit-remaining: ");
        put(n.format(self.remaining).as_bytes());
        put(b"\r\nratelimit-reset: ");
        put(n.format(self.reset_s).as_bytes());
        put(b"\r\n");
        if let Some(s) = self.retry_after_s {
            put(b"retry-after: ");
            put(n.format(s).as_bytes());
            put(b"\r\n");
        }
        out.extend_from_slice(&buf[..len]);
    }
}

/// Nanoseconds as whole seconds, rounded up.
pub fn secs_up(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}
