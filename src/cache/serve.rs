//! The *lookup* and *respond* phases on hyper's path (`proxy::forward`
//! calls them; the native engine hands a caching route's requests over).
//!
//! *lookup*, before a backend is picked: a usable stored response answers
//! at once (`HIT`, `STALE`, a 304 to the client's conditionals, a `HEAD`
//! from a stored `GET`); otherwise the request goes on, its own
//! conditionals taken out and the stored response's validators put in
//! when one is to be revalidated, and concurrent misses of one key wait
//! for the first. *respond*, when the backend's head is in: a 304
//! refreshes the stored response, which answers; a 5xx gives way to a
//! stale one (`stale-if-error`); a storable response streams to the
//! client through a tee into the store; an unsafe method's success
//! invalidates its URL.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::Body as _;
use shoal_config::CacheConfig;

use super::body::{Pending, Tee};
use super::coalesce::{Lead, Turn};
use super::key::{self, KeyParts};
use super::policy::{self, Directives, StoreRules, Times, Usable};
use super::stats::{self, Outcome};
use super::store::{self, Entry, Store};
use crate::proxy::body::ProxyBody;
use crate::proxy::request_id::X_REQUEST_ID;

/// A route's `cache`, compiled, over the process's store.
pub struct RouteCache {
    pub store: Arc<Store>,
    get: bool,
    head: bool,
    /// `cache.header` (`X-Cache`).
    pub header: HeaderName,
    key: KeyParts,
    rules: StoreRules,
    coalesce: Duration,
}

impl std::fmt::Debug for RouteCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteCache")
            .field("header", &self.header)
            .finish_non_exhaustive()
    }
}

impl RouteCache {
    pub fn new(config: &CacheConfig) -> RouteCache {
        let has = |m: &str| config.methods.iter().any(|x| x == m);
        RouteCache {
            store: store::shared(&config.memory),
            get: has("GET"),
            head: has("HEAD"),
            header: HeaderName::from_bytes(config.header.as_bytes())
                .unwrap_or(HeaderName::from_static("x-cache")),
            key: KeyParts {
                headers: config
                    .key
                    .headers
                    .iter()
                    .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok())
                    .collect(),
                cookies: config.key.cookies.clone(),
            },
            rules: StoreRules {
                default_ttl: config.default_ttl,
                store_set_cookie: config.store_set_cookie,
            },
            coalesce: config.coalesce.wait,
        }
    }

    fn answers(&self, method: &Method) -> bool {
        (*method == Method::GET && self.get) || (*method == Method::HEAD && self.head)
    }

    /// The *lookup* phase for the simplest request, which the native
    /// engine answers itself: a `GET` (or `HEAD`) whose headers say
    /// nothing to the cache (the caller checks: no conditionals,
    /// `Range`, `Cache-Control`, `Authorization`), on a route without
    /// `cache.key` extras. A fresh response stored in memory for a URL
    /// whose responses do not vary, counted as a hit; `None`: anything
    /// else (a miss, stale, in Redis only…), for hyper's path and its
    /// whole lookup.
    pub fn plain_hit(
        &self,
        head: bool,
        scheme: &str,
        host: &str,
        target: &str,
    ) -> Option<(Arc<Entry>, Duration)> {
        let answers = if head { self.head } else { self.get };
        if !answers || !self.key.headers.is_empty() || !self.key.cookies.is_empty() {
            return None;
        }
        let entry = self.store.get_plain(&key::url_of(scheme, host, target))?;
        let age = entry.times.age(SystemTime::now());
        let usable = policy::usable(&entry.cc, &Directives::default(), entry.lifetime, age);
        if usable != Usable::Fresh {
            return None;
        }
        stats::count(Outcome::Hit);
        Some((entry, age))
    }
}

/// What the *lookup* phase decided.
pub enum Lookup<'c> {
    /// Answer with this; `Some(refresh)`: a stale response was served
    /// within `stale-while-revalidate`, fetch a new one in the background.
    Answer(Response<ProxyBody>, Outcome, Option<Box<Refresh>>),
    /// Go to the backend; the *respond* phase takes it from there.
    Fetch(Fetch<'c>),
}

/// A background refresh of a stored response (`stale-while-revalidate`),
/// owned: it outlives the request that started it.
pub struct Refresh {
    primary: String,
    scheme: &'static str,
    /// The client's request headers (for `Vary`).
    request: HeaderMap,
    /// What is sent: those, with the stored response's validators.
    pub headers: HeaderMap,
    req_cc: Directives,
    stale: Arc<Entry>,
    /// One refresh per key at a time.
    lead: Lead,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Cacheable: store what may be stored.
    Store,
    /// An unsafe method: invalidate its URL when it succeeds.
    Invalidate,
    /// Neither: passed through, marked.
    Bypass,
}

/// What the *respond* phase needs of a request that went to the backend.
pub struct Fetch<'c> {
    cache: &'c RouteCache,
    mode: Mode,
    method: Method,
    scheme: &'static str,
    primary: String,
    /// The request's headers as sent (for `Vary`), its own conditionals
    /// back in (to answer them).
    request: HeaderMap,
    req_cc: Directives,
    /// The stored response being revalidated.
    stale: Option<Arc<Entry>>,
    lead: Option<Lead>,
    requested: SystemTime,
}

const CONDITIONALS: [HeaderName; 2] = [header::IF_NONE_MATCH, header::IF_MODIFIED_SINCE];

impl RouteCache {
    /// The *lookup* phase. `target`: the request's path and query as the
    /// client sent it; `parts`: the request on its way to the backend
    /// (its conditionals may change).
    pub async fn lookup<'c>(
        &'c self,
        parts: &mut http::request::Parts,
        scheme: &'static str,
        target: &str,
    ) -> Lookup<'c> {
        let mode = if self.answers(&parts.method) {
            Mode::Store
        } else if parts.method.is_safe() {
            Mode::Bypass
        } else {
            Mode::Invalidate
        };
        let mut fetch = Fetch {
            cache: self,
            mode,
            method: parts.method.clone(),
            scheme,
            primary: String::new(),
            request: HeaderMap::new(),
            req_cc: Directives::default(),
            stale: None,
            lead: None,
            requested: SystemTime::now(),
        };
        if mode == Mode::Invalidate {
            fetch.primary = key::primary(scheme, &parts.headers, target, &KeyParts::default());
            return Lookup::Fetch(fetch);
        }
        if mode == Mode::Bypass || parts.headers.contains_key(header::RANGE) {
            fetch.mode = Mode::Bypass;
            return Lookup::Fetch(fetch);
        }
        let req_cc = Directives::of_request(&parts.headers);
        let primary = key::primary(scheme, &parts.headers, target, &self.key);
        let head = parts.method == Method::HEAD;
        let mut found = self.store.get(&primary, &parts.headers).await;
        if found.is_none() && !head && !self.coalesce.is_zero() && !req_cc.only_if_cached {
            match self.store.coalescer.join(&primary) {
                Turn::Lead(lead) => fetch.lead = Some(lead),
                Turn::Wait(flight) => {
                    flight.wait(self.coalesce).await;
                    found = self.store.get(&primary, &parts.headers).await;
                }
            }
        }
        let now = SystemTime::now();
        if let Some(entry) = found {
            let age = entry.times.age(now);
            let usable = policy::usable(&entry.cc, &req_cc, entry.lifetime, age);
            let served = match usable {
                Usable::Fresh => Some(Outcome::Hit),
                Usable::StaleAllowed | Usable::StaleWhileRevalidate => Some(Outcome::Stale),
                Usable::Revalidate => None,
            };
            if let Some(outcome) = served {
                let resp = self.answer(&entry, &parts.headers, head, now, outcome);
                let refresh = (usable == Usable::StaleWhileRevalidate)
                    .then(|| self.refresh(&primary, parts, (scheme, &entry), &req_cc))
                    .flatten();
                return Lookup::Answer(resp, outcome, refresh);
            }
            if req_cc.only_if_cached {
                return Lookup::Answer(self.gateway_timeout(), Outcome::Miss, None);
            }
            fetch.stale = Some(entry);
        } else if req_cc.only_if_cached {
            return Lookup::Answer(self.gateway_timeout(), Outcome::Miss, None);
        }
        // The client's conditionals are answered here, from what the
        // backend sends in full (or confirms).
        fetch.request = parts.headers.clone();
        for name in &CONDITIONALS {
            parts.headers.remove(name);
        }
        if let Some(stale) = &fetch.stale {
            validators(&mut parts.headers, &stale.headers);
        }
        fetch.req_cc = req_cc;
        fetch.primary = primary;
        Lookup::Fetch(fetch)
    }

    /// One background refresh per key at a time: `None` when one is
    /// already under way.
    fn refresh(
        &self,
        primary: &str,
        parts: &http::request::Parts,
        (scheme, entry): (&'static str, &Arc<Entry>),
        req_cc: &Directives,
    ) -> Option<Box<Refresh>> {
        let Turn::Lead(lead) = self.store.coalescer.join(&format!("{primary}\nrefresh")) else {
            return None;
        };
        let mut headers = parts.headers.clone();
        for name in &CONDITIONALS {
            headers.remove(name);
        }
        let request = headers.clone();
        validators(&mut headers, &entry.headers);
        Some(Box::new(Refresh {
            primary: primary.to_string(),
            scheme,
            request,
            headers,
            req_cc: *req_cc,
            stale: entry.clone(),
            lead,
        }))
    }

    /// The *respond* phase's side of a background refresh.
    pub fn refreshing(&self, r: Box<Refresh>) -> Fetch<'_> {
        Fetch {
            cache: self,
            mode: Mode::Store,
            method: Method::GET,
            scheme: r.scheme,
            primary: r.primary,
            request: r.request,
            req_cc: r.req_cc,
            stale: Some(r.stale),
            lead: Some(r.lead),
            requested: SystemTime::now(),
        }
    }

    /// A stored response as the client gets it: `Age`, the cache's
    /// header, no body for `HEAD`, a 304 when the client's conditionals
    /// match.
    fn answer(
        &self,
        entry: &Entry,
        req: &HeaderMap,
        head: bool,
        now: SystemTime,
        outcome: Outcome,
    ) -> Response<ProxyBody> {
        stats::count(outcome);
        let not_modified =
            entry.status == StatusCode::OK && policy::not_modified(req, &entry.headers);
        let mut resp = Response::new(if head || not_modified {
            ProxyBody::empty()
        } else {
            ProxyBody::full(entry.body.clone())
        });
        *resp.headers_mut() = entry.headers.clone();
        if not_modified {
            *resp.status_mut() = StatusCode::NOT_MODIFIED;
            resp.headers_mut().remove(header::CONTENT_LENGTH);
        } else {
            *resp.status_mut() = entry.status;
            resp.headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(entry.body.len()));
        }
        let age = entry.times.age(now).as_secs().min(1 << 31);
        resp.headers_mut()
            .insert(header::AGE, HeaderValue::from(age));
        self.mark(resp.headers_mut(), outcome);
        resp
    }

    fn gateway_timeout(&self) -> Response<ProxyBody> {
        stats::count(Outcome::Miss);
        let mut resp = Response::new(ProxyBody::full(Bytes::from_static(
            b"not in the cache (only-if-cached)\n",
        )));
        *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
        self.mark(resp.headers_mut(), Outcome::Miss);
        resp
    }

    fn mark(&self, headers: &mut HeaderMap, outcome: Outcome) {
        headers.insert(
            self.header.clone(),
            HeaderValue::from_static(outcome.word()),
        );
    }
}

/// The stored response's validators as the backend's conditionals.
fn validators(headers: &mut HeaderMap, stored: &HeaderMap) {
    if let Some(etag) = stored.get(header::ETAG) {
        headers.insert(header::IF_NONE_MATCH, etag.clone());
    }
    if let Some(lm) = stored.get(header::LAST_MODIFIED) {
        headers.insert(header::IF_MODIFIED_SINCE, lm.clone());
    }
}

impl Fetch<'_> {
    /// What the cache did, for the access log once known.
    fn outcome_of(&self) -> Outcome {
        match self.mode {
            Mode::Store => Outcome::Miss,
            _ => Outcome::Bypass,
        }
    }

    /// The *respond* phase: the backend's response (hop-by-hop headers
    /// gone) as the client gets it, and what the cache did.
    pub fn respond(mut self, mut resp: Response<ProxyBody>) -> (Response<ProxyBody>, Outcome) {
        let cache = self.cache;
        let status = resp.status();
        match self.mode {
            Mode::Bypass => {
                stats::count(Outcome::Bypass);
                cache.mark(resp.headers_mut(), Outcome::Bypass);
                return (resp, Outcome::Bypass);
            }
            Mode::Invalidate => {
                if policy::invalidates(&self.method, status) {
                    self.invalidate(resp.headers());
                }
                stats::count(Outcome::Bypass);
                cache.mark(resp.headers_mut(), Outcome::Bypass);
                return (resp, Outcome::Bypass);
            }
            Mode::Store => {}
        }
        let now = SystemTime::now();
        let head = self.method == Method::HEAD;
        if let (StatusCode::NOT_MODIFIED, Some(stale)) = (status, &self.stale) {
            // Still good: the stored body with the 304's headers.
            let entry = Arc::new(self.updated(stale, resp.headers(), now));
            cache.store.put(&self.primary, &self.request, entry.clone());
            let resp = cache.answer(&entry, &self.request, head, now, Outcome::Revalidated);
            return (resp, Outcome::Revalidated);
        }
        if policy::is_error(status) {
            if let Some(resp) = self.stale_answer(now) {
                return (resp, Outcome::Stale);
            }
        }
        let resp_cc = Directives::of_response(resp.headers());
        let storable = policy::storable(
            &self.method,
            &self.request,
            &self.req_cc,
            status,
            resp.headers(),
            &resp_cc,
            &cache.rules,
        );
        let limit = cache.store.memory.max_item_size;
        let too_large = resp.body().size_hint().lower() > limit;
        if storable.is_ok() && !too_large {
            let lifetime = policy::freshness_lifetime(
                status,
                resp.headers(),
                &resp_cc,
                cache.rules.default_ttl,
            );
            let mut headers = store::owned(resp.headers());
            headers.remove(&X_REQUEST_ID);
            headers.remove(&cache.header);
            let pending = Pending {
                store: cache.store.clone(),
                primary: self.primary.clone(),
                request: self.request.clone(),
                status,
                headers,
                times: Times::new(resp.headers(), self.requested, now),
                lifetime,
                lead: self.lead.take(),
            };
            resp = resp.map(|body| ProxyBody::boxed(Tee::new(body, pending, limit as usize)));
        } else if storable.is_ok() || status.is_success() {
            // A new response that is not stored replaces none.
            if self.stale.is_some() && storable.is_err() {
                cache.store.invalidate(key::url(&self.primary));
            }
        }
        let outcome = self.outcome_of();
        stats::count(outcome);
        cache.mark(resp.headers_mut(), outcome);
        (resp, outcome)
    }

    /// No backend answered: a stale response, if one may stand in.
    pub fn on_error(self) -> Option<(Response<ProxyBody>, Outcome)> {
        let resp = self.stale_answer(SystemTime::now())?;
        Some((resp, Outcome::Stale))
    }

    fn stale_answer(&self, now: SystemTime) -> Option<Response<ProxyBody>> {
        let stale = self.stale.as_ref()?;
        let age = stale.times.age(now);
        policy::stale_if_error(&stale.cc, &self.req_cc, stale.lifetime, age).then(|| {
            self.cache.answer(
                stale,
                &self.request,
                self.method == Method::HEAD,
                now,
                Outcome::Stale,
            )
        })
    }

    /// The stored response updated by a 304's headers (RFC 9111 §4.3.4).
    fn updated(&self, stale: &Entry, fresh: &HeaderMap, now: SystemTime) -> Entry {
        let mut headers = stale.headers.clone();
        for name in fresh.keys() {
            if policy::kept_on_update(name) || *name == X_REQUEST_ID || *name == self.cache.header {
                continue;
            }
            headers.remove(name);
            for v in fresh.get_all(name) {
                let own = HeaderValue::from_bytes(v.as_bytes()).unwrap_or_else(|_| v.clone());
                headers.append(name.clone(), own);
            }
        }
        let cc = Directives::of_response(&headers);
        let lifetime =
            policy::freshness_lifetime(stale.status, &headers, &cc, self.cache.rules.default_ttl);
        let times = Times::new(fresh, self.requested, now);
        Entry::new(stale.status, headers, stale.body.clone(), times, lifetime)
    }

    /// An unsafe method succeeded: its URL, and its `Location` and
    /// `Content-Location` on the same origin, are stored no more.
    fn invalidate(&self, resp: &HeaderMap) {
        let store = &self.cache.store;
        store.invalidate(key::url(&self.primary));
        let host = self
            .request
            .get(header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_else(|| host_of(&self.primary, self.scheme));
        for name in [header::LOCATION, header::CONTENT_LOCATION] {
            if let Some(loc) = resp.get(&name).and_then(|v| v.to_str().ok()) {
                if let Some(url) = key::same_origin(self.scheme, host, loc) {
                    store.invalidate(&url);
                }
            }
        }
    }
}

/// The host of a key's URL.
fn host_of<'a>(primary: &'a str, scheme: &str) -> &'a str {
    let rest = primary
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .unwrap_or("");
    rest.split(['/', '\n']).next().unwrap_or("")
}
