//! RFC 9111 as pure functions of headers and times, for a shared cache:
//! may a response be stored (§3), how long is it fresh (§4.2.1, §4.2.2),
//! how old is it (§4.2.3), may a stored response answer this request
//! without asking the backend (§4.2, §5.2.1, §5.2.2), and do a client's
//! conditionals match it (RFC 9110 §13.1).
//!
//! Nothing here touches the store or the network; `cache::serve` asks.

use std::time::{Duration, SystemTime};

use http::header::{self, HeaderMap, HeaderName};
use http::{Method, StatusCode};

/// `Cache-Control` directives, of a request or a response (each side
/// reads its own).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Directives {
    pub no_store: bool,
    /// `no-cache`, with or without field names (a shared cache treats the
    /// qualified form as the unqualified one: it must revalidate).
    pub no_cache: bool,
    /// `private`, with or without field names.
    pub private: bool,
    pub public: bool,
    pub max_age: Option<u64>,
    pub s_maxage: Option<u64>,
    pub must_revalidate: bool,
    pub proxy_revalidate: bool,
    pub stale_while_revalidate: Option<u64>,
    pub stale_if_error: Option<u64>,
    /// Request: `max-stale` (`Some(None)`: any staleness).
    pub max_stale: Option<Option<u64>>,
    pub min_fresh: Option<u64>,
    pub only_if_cached: bool,
    /// `must-understand`: store only a status code this cache knows.
    pub must_understand: bool,
}

/// A delta-seconds value (RFC 9111 §1.2.2): digits; too large a number is
/// 2^31 ("infinity"); anything else is not a value.
fn delta_seconds(v: &str) -> Option<u64> {
    let v = v.trim().trim_matches('"');
    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(v.parse::<u64>().unwrap_or(1 << 31).min(1 << 31))
}

impl Directives {
    /// Every `Cache-Control` line of `headers`, its directives split at
    /// commas outside quotes. A directive given a value it cannot take
    /// (`max-age=abc`) is read as the strictest: a max-age of 0.
    pub fn of(headers: &HeaderMap) -> Directives {
        Directives::of_field(headers, &header::CACHE_CONTROL)
    }

    /// A response's directives for this cache: `Surrogate-Control`'s when
    /// it has one (it is addressed to a cache in front of the origin, as
    /// shoal is, and replaces `Cache-Control` for it, as RFC 9213's
    /// targeted fields do), else `Cache-Control`'s.
    pub fn of_response(headers: &HeaderMap) -> Directives {
        if headers.contains_key(SURROGATE_CONTROL) {
            return Directives::of_field(headers, &HeaderName::from_static(SURROGATE_CONTROL));
        }
        Directives::of(headers)
    }

    fn of_field(headers: &HeaderMap, field: &HeaderName) -> Directives {
        let mut d = Directives::default();
        for line in headers.get_all(field) {
            let Ok(text) = line.to_str() else { continue };
            for item in split_quoted(text) {
                let (name, value) = match item.split_once('=') {
                    Some((n, v)) => (n.trim(), Some(v)),
                    None => (item.trim(), None),
                };
                let secs = || value.and_then(delta_seconds);
                match name.to_ascii_lowercase().as_str() {
                    "no-store" => d.no_store = true,
                    "no-cache" => d.no_cache = true,
                    "private" => d.private = true,
                    "public" => d.public = true,
                    "max-age" => d.max_age = Some(secs().unwrap_or(0)),
                    "s-maxage" => d.s_maxage = Some(secs().unwrap_or(0)),
                    "must-revalidate" => d.must_revalidate = true,
                    "proxy-revalidate" => d.proxy_revalidate = true,
                    "stale-while-revalidate" => d.stale_while_revalidate = secs(),
                    "stale-if-error" => d.stale_if_error = secs(),
                    "max-stale" => d.max_stale = Some(secs()),
                    "min-fresh" => d.min_fresh = secs(),
                    "only-if-cached" => d.only_if_cached = true,
                    "must-understand" => d.must_understand = true,
                    _ => {}
                }
            }
        }
        d
    }

    /// A request's directives, with `Pragma: no-cache` read as `no-cache`
    /// when there is no `Cache-Control` (RFC 9111 §5.4, for HTTP/1.0
    /// clients).
    pub fn of_request(headers: &HeaderMap) -> Directives {
        let mut d = Directives::of(headers);
        if !headers.contains_key(header::CACHE_CONTROL)
            && headers.get_all(header::PRAGMA).iter().any(|v| {
                v.to_str().is_ok_and(|s| {
                    s.split(',')
                        .any(|t| t.trim().eq_ignore_ascii_case("no-cache"))
                })
            })
        {
            d.no_cache = true;
        }
        d
    }

    /// A stale response may not be served without revalidation, whatever
    /// the request allows (§4.2.4, §5.2.2.2, §5.2.2.8, §5.2.2.10: a shared
    /// cache honours `proxy-revalidate` and `s-maxage` as `must-revalidate`).
    pub fn never_stale(&self) -> bool {
        self.must_revalidate || self.proxy_revalidate || self.s_maxage.is_some()
    }
}

/// The field a cache in front of an origin reads in place of
/// `Cache-Control` (Akamai, Fastly, Varnish; W3C Edge Architecture).
pub const SURROGATE_CONTROL: &str = "surrogate-control";

/// Comma-separated items, commas inside double quotes kept.
fn split_quoted(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let mut quoted = false;
        let mut end = rest.len();
        for (i, b) in rest.bytes().enumerate() {
            match b {
                b'"' => quoted = !quoted,
                b',' if !quoted => {
                    end = i;
                    break;
                }
                _ => {}
            }
        }
        let item = rest[..end].trim();
        rest = if end < rest.len() {
            &rest[end + 1..]
        } else {
            ""
        };
        if !item.is_empty() {
            return Some(item);
        }
    })
}

/// Status codes a response may be stored with without explicit freshness
/// (RFC 9110 §15.1: "heuristically cacheable").
pub fn heuristically_cacheable(status: StatusCode) -> bool {
    matches!(
        status.as_u16(),
        200 | 203 | 204 | 206 | 300 | 301 | 308 | 404 | 405 | 410 | 414 | 501
    )
}

/// Status codes whose caching rules this cache knows (`must-understand`).
pub fn understood(status: StatusCode) -> bool {
    heuristically_cacheable(status)
        || matches!(
            status.as_u16(),
            302 | 303 | 307 | 400 | 403 | 500 | 502 | 503 | 504
        )
}

/// What the cache's settings say about storing.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreRules {
    /// `cache.default_ttl`: heuristic freshness allowed, at most this.
    pub default_ttl: Option<Duration>,
    /// `cache.store_set_cookie`.
    pub store_set_cookie: bool,
}

/// Why a response is not stored, for the log and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotStored {
    Method,
    Status,
    NoStore,
    Private,
    Authorization,
    SetCookie,
    VaryStar,
    /// No explicit freshness, no heuristic allowed, no validator to
    /// revalidate with.
    NoFreshness,
}

/// May a shared cache store this response to this request (RFC 9111 §3)?
/// Only `GET` responses are stored (a `HEAD` is answered from them). A
/// response fresh for no time at all is stored only when it carries a
/// validator, so that the next request can be a cheap revalidation.
pub fn storable(
    method: &Method,
    req: &HeaderMap,
    req_cc: &Directives,
    status: StatusCode,
    resp: &HeaderMap,
    resp_cc: &Directives,
    rules: &StoreRules,
) -> Result<(), NotStored> {
    if method != Method::GET {
        return Err(NotStored::Method);
    }
    // 206 needs range merging and 304 is not a whole response; 1xx are
    // not final. Anything else needs explicit freshness (below).
    if status.is_informational()
        || status == StatusCode::PARTIAL_CONTENT
        || status == StatusCode::NOT_MODIFIED
    {
        return Err(NotStored::Status);
    }
    // must-understand (§5.2.2.3): a status this cache knows the caching
    // rules of may be stored whatever `no-store` says; any other, never.
    if resp_cc.must_understand {
        if !understood(status) {
            return Err(NotStored::Status);
        }
    } else if resp_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if req_cc.no_store {
        return Err(NotStored::NoStore);
    }
    if resp_cc.private {
        return Err(NotStored::Private);
    }
    if req.contains_key(header::AUTHORIZATION)
        && !(resp_cc.public || resp_cc.s_maxage.is_some() || resp_cc.must_revalidate)
    {
        return Err(NotStored::Authorization);
    }
    if !rules.store_set_cookie && resp.contains_key(header::SET_COOKIE) {
        return Err(NotStored::SetCookie);
    }
    if vary_star(resp) {
        return Err(NotStored::VaryStar);
    }
    let explicit = resp_cc.s_maxage.is_some()
        || resp_cc.max_age.is_some()
        || resp.contains_key(header::EXPIRES);
    // §3: explicit freshness, `public`, or a status cacheable by default.
    // Without explicit freshness the lifetime is the heuristic's (none
    // unless `default_ttl` allows it): worth storing only to revalidate.
    if !(explicit || heuristically_cacheable(status) || resp_cc.public) {
        return Err(NotStored::NoFreshness);
    }
    let fresh = freshness_lifetime(status, resp, resp_cc, rules.default_ttl) > Duration::ZERO;
    let validator = resp.contains_key(header::ETAG) || resp.contains_key(header::LAST_MODIFIED);
    if !fresh && !validator && resp_cc.stale_if_error.is_none() {
        return Err(NotStored::NoFreshness);
    }
    Ok(())
}

/// `Vary: *`: the response varies on things outside the request.
pub fn vary_star(resp: &HeaderMap) -> bool {
    resp.get_all(header::VARY).iter().any(|v| {
        v.to_str()
            .is_ok_and(|s| s.split(',').any(|t| t.trim() == "*"))
    })
}

fn date(headers: &HeaderMap, name: HeaderName) -> Option<SystemTime> {
    let v = headers.get(name)?.to_str().ok()?;
    httpdate::parse_http_date(v).ok()
}

fn since(later: SystemTime, earlier: SystemTime) -> Duration {
    later.duration_since(earlier).unwrap_or(Duration::ZERO)
}

/// The freshness lifetime (RFC 9111 §4.2.1): `s-maxage`, else `max-age`,
/// else `Expires` − `Date` (an `Expires` that does not parse: already
/// expired), else the heuristic — 10% of `Date` − `Last-Modified`, at most
/// `heuristic`, or `heuristic` itself without `Last-Modified` — only when
/// `heuristic` is given and the status allows it (§4.2.2).
pub fn freshness_lifetime(
    status: StatusCode,
    resp: &HeaderMap,
    cc: &Directives,
    heuristic: Option<Duration>,
) -> Duration {
    if let Some(s) = cc.s_maxage {
        return Duration::from_secs(s);
    }
    if let Some(s) = cc.max_age {
        return Duration::from_secs(s);
    }
    if resp.contains_key(header::EXPIRES) {
        let Some(expires) = date(resp, header::EXPIRES) else {
            return Duration::ZERO;
        };
        let date = date(resp, header::DATE).unwrap_or_else(SystemTime::now);
        return since(expires, date);
    }
    match heuristic {
        Some(ttl) if heuristically_cacheable(status) || cc.public => {
            match (date(resp, header::LAST_MODIFIED), date(resp, header::DATE)) {
                (Some(lm), date) => {
                    let date = date.unwrap_or_else(SystemTime::now);
                    (since(date, lm) / 10).min(ttl)
                }
                (None, _) => ttl,
            }
        }
        _ => Duration::ZERO,
    }
}

/// The age of a response whose `Age` does not parse.
const UNKNOWN_AGE: Duration = Duration::from_secs(1 << 31);

/// The times a stored response's age is computed from (§4.2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Times {
    /// When the request that fetched it was sent.
    pub request: SystemTime,
    /// When its head arrived.
    pub response: SystemTime,
    /// `corrected_initial_age`, worked out once at `response`.
    pub initial_age: Duration,
}

impl Times {
    /// `Age` and `Date` of the response, and the times around it.
    pub fn new(resp: &HeaderMap, request: SystemTime, response: SystemTime) -> Times {
        // One `Age` of digits; anything else (two lines, a list, a sign,
        // a fraction, a parameter) says the response is of unknown age:
        // read as too old to be fresh.
        let mut lines = resp.get_all(header::AGE).iter();
        let age_value = match (lines.next(), lines.next()) {
            (None, _) => Duration::ZERO,
            (Some(v), None) => v
                .to_str()
                .ok()
                .map(str::trim)
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
                .map_or(UNKNOWN_AGE, |s| {
                    Duration::from_secs(s.parse::<u64>().unwrap_or(1 << 31).min(1 << 31))
                }),
            (Some(_), Some(_)) => UNKNOWN_AGE,
        };
        let date_value = date(resp, header::DATE).unwrap_or(response);
        let apparent_age = since(response, date_value);
        let response_delay = since(response, request);
        let corrected_age_value = age_value + response_delay;
        Times {
            request,
            response,
            initial_age: apparent_age.max(corrected_age_value),
        }
    }

    /// `current_age` at `now`: the corrected initial age plus the time it
    /// has been stored.
    pub fn age(&self, now: SystemTime) -> Duration {
        self.initial_age + since(now, self.response)
    }
}

/// How a stored response may answer a request (§4.2, §4.2.4, §5.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usable {
    /// As it is.
    Fresh,
    /// Stale, served as it is because the request allows (`max-stale`).
    StaleAllowed,
    /// Stale within `stale-while-revalidate`: served as it is, refreshed
    /// in the background.
    StaleWhileRevalidate,
    /// Only after the backend says it is still good (or a new one).
    Revalidate,
}

/// May a stored response with `lifetime`, `age` and directives `resp_cc`
/// answer a request with directives `req_cc`?
pub fn usable(
    resp_cc: &Directives,
    req_cc: &Directives,
    lifetime: Duration,
    age: Duration,
) -> Usable {
    if req_cc.no_cache || resp_cc.no_cache {
        return Usable::Revalidate;
    }
    let secs = Duration::from_secs;
    if req_cc.max_age.is_some_and(|m| age > secs(m)) {
        return Usable::Revalidate;
    }
    let fresh = age < lifetime;
    if fresh {
        let left = lifetime - age;
        if req_cc.min_fresh.is_some_and(|m| left < secs(m)) {
            return Usable::Revalidate;
        }
        return Usable::Fresh;
    }
    if resp_cc.never_stale() {
        return Usable::Revalidate;
    }
    let stale_for = age - lifetime;
    match req_cc.max_stale {
        Some(None) => return Usable::StaleAllowed,
        Some(Some(m)) if stale_for <= secs(m) => return Usable::StaleAllowed,
        _ => {}
    }
    if resp_cc
        .stale_while_revalidate
        .is_some_and(|w| stale_for < secs(w))
    {
        return Usable::StaleWhileRevalidate;
    }
    Usable::Revalidate
}

/// May a stale response answer in place of an error (5xx, or no backend
/// reached) — `stale-if-error` of the response or the request (RFC 5861
/// §4), never past `must-revalidate`?
pub fn stale_if_error(
    resp_cc: &Directives,
    req_cc: &Directives,
    lifetime: Duration,
    age: Duration,
) -> bool {
    if resp_cc.never_stale() || resp_cc.no_cache {
        return false;
    }
    let stale_for = age.saturating_sub(lifetime);
    let window = match (resp_cc.stale_if_error, req_cc.stale_if_error) {
        (Some(a), Some(b)) => a.max(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return false,
    };
    stale_for <= Duration::from_secs(window)
}

/// A 5xx a stale response may stand in for (RFC 5861 §4: 500, 502, 503, 504).
pub fn is_error(status: StatusCode) -> bool {
    matches!(status.as_u16(), 500 | 502 | 503 | 504)
}

/// Do the client's conditionals match the stored response (RFC 9110
/// §13.1.2, §13.1.3; `If-None-Match` decides when present)? `true`:
/// answer 304.
pub fn not_modified(req: &HeaderMap, stored: &HeaderMap) -> bool {
    if let Some(inm) = req.get(header::IF_NONE_MATCH) {
        let Some(etag) = stored.get(header::ETAG).and_then(|v| v.to_str().ok()) else {
            return false;
        };
        let Ok(list) = inm.to_str() else { return false };
        return list
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || weak_eq(t, etag));
    }
    let (Some(ims), Some(lm)) = (
        date(req, header::IF_MODIFIED_SINCE),
        date(stored, header::LAST_MODIFIED).or_else(|| date(stored, header::DATE)),
    ) else {
        return false;
    };
    lm <= ims
}

/// The weak comparison of two entity tags (RFC 9110 §8.8.3.2).
pub fn weak_eq(a: &str, b: &str) -> bool {
    let opaque = |t: &str| t.trim().strip_prefix("W/").unwrap_or(t.trim()).to_owned();
    opaque(a) == opaque(b)
}

/// Unsafe methods whose success invalidates the URL (§4.4).
pub fn invalidates(method: &Method, status: StatusCode) -> bool {
    !method.is_safe() && (status.is_success() || status.is_redirection())
}

/// Headers of a 304 that do not replace the stored ones (§3.2: the
/// framing of the stored body stays).
pub fn kept_on_update(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "content-length"
            | "content-encoding"
            | "transfer-encoding"
            | "content-range"
            | "content-md5"
            | "etag"
    )
}

#[cfg(test)]
#[path = "policy_tests.rs"]
mod tests;
