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
static REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

impl RateNote {
    pub fn insert(&self, h: &mut HeaderMap) {
        h.insert(LIMIT.clone(), HeaderValue::from(self.limit));
        h.insert(REMAINING.clone(), HeaderValue::from(self.remaining));
        h.insert(RESET.clone(), HeaderValue::from(self.reset_s));
        if let Some(s) = self.retry_after_s {
            h.insert(RETRY_AFTER, HeaderValue::from(s));
        }
    }

    /// As header lines (`name: value\r\n`) at the end of `out`.
    pub fn write_h1(&self, out: &mut Vec<u8>) {
        let mut n = itoa::Buffer::new();
        let mut line = |name: &[u8], value: u64| {
            out.extend_from_slice(name);
            out.extend_from_slice(n.format(value).as_bytes());
            out.extend_from_slice(b"\r\n");
        };
        line(b"ratelimit-limit: ", u64::from(self.limit));
        line(b"ratelimit-remaining: ", u64::from(self.remaining));
        line(b"ratelimit-reset: ", self.reset_s);
        if let Some(s) = self.retry_after_s {
            line(b"retry-after: ", s);
        }
    }
}

/// Nanoseconds as whole seconds, rounded up.
pub fn secs_up(ns: u64) -> u64 {
    ns.div_ceil(1_000_000_000)
}
