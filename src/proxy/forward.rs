//! One request's trip: prepare headers, pick a backend, send, retry on
//! another backend when that is safe, hand back the response.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Weak};

use super::limits::RequestBody;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Uri;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};

use super::admit::{admit, rate_limited, Answered, Ready};
use super::attempt::{Attempts, Next, Reach, Resend};
use super::body::{Lease, ProxyBody};
use super::error::ProxyError;
use super::h1::upstream::{self, RawBody};
use super::headers::strip_hop_by_hop;
use super::pool::{refusal, PooledConn, Sender, UpstreamBody};
use super::protocol::for_protocol;
use super::request_id::X_REQUEST_ID;
use super::request_rules;
use super::retry_budget::RetryBudget;
use super::routing::{Routing, Target};
use super::upgrade;
use crate::access_log::body::LoggedBody;
use crate::access_log::{AccessLog, Facts, Report};
use crate::cache::{Fetch, Lookup, Refresh};
use crate::compress::Compression;
use crate::ratelimit::{Asked, Outcome, RateNote};
use crate::routes::{Action, HeaderEdits, Policy};
use crate::sticky::Sticky;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use shoal_config::{Codec, Engine, UpstreamProtocol};
use std::time::Duration;

use crate::balance::{Endpoint, InFlight};
use arc_swap::ArcSwap;

pub struct Proxy {
    routing: ArcSwap<Routing>,
    budget: RetryBudget,
    /// Itself, for work that outlives a request (the cache's background
    /// refresh); empty for a `Proxy::new` not made by `Proxy::shared`.
    me: Weak<Proxy>,
}

/// Whether a request can be sent again after an attempt consumed it.
// The size of `Option<Replay>` before it; boxing `Kept` would cost an
// allocation on every request hyper's client sends.
#[allow(clippy::large_enum_variant)]
enum Again {
    /// No: its body streamed, or it upgrades.
    No,
    /// A bodyless request, not copied yet: the copy is made when a send
    /// that consumes the request begins (hyper's client), and never on the
    /// raw path, which only reads the request.
    Bodyless,
    Kept(Replay),
}

/// What is needed to send a request again after the first attempt consumed
/// it: a bodyless request, or one whose body was small enough to be read in
/// full first (`proxy.replay_body_size`).
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    /// Empty for a bodyless request (a `Full` of nothing is at its end).
    body: Bytes,
}

impl Replay {
    /// The copy of a bodyless request.
    fn of_bodyless(req: &Request<UpstreamBody>) -> Replay {
        Replay {
            method: req.method().clone(),
            uri: req.uri().clone(),
            headers: req.headers().clone(),
            body: Bytes::new(),
        }
    }

    fn build(&self) -> Request<UpstreamBody> {
        let mut req = Request::new(Either::Right(Full::new(self.body.clone())));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

/// Send `req` and wait for the response headers, at most `timeout` from the
/// moment the request has been sent: at once for a request without a
/// streamed body, and for one with a body once the client's last byte has
/// gone upstream — an upload may take longer than the timeout (nginx's
/// `proxy_read_timeout` also starts after the request is sent). `None`
/// when the time ran out.
fn send_within(
    sender: &mut Sender,
    mut req: Request<UpstreamBody>,
    timeout: Duration,
) -> impl Future<Output = Option<Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>>>
       + Send
       + use<'_> {
    let body_read = match req.body_mut() {
        Either::Left(body) if !body.is_end_stream() => Some(body.when_read()),
        _ => None,
    };
    // Handed to the connection now; what is awaited holds no copy of it.
    let send = sender.send(req);
    async move {
        let Some(body_read) = body_read else {
            return tokio::time::timeout(timeout, send).await.ok();
        };
        tokio::pin!(send);
        tokio::select! {
            biased;
            sent = &mut send => Some(sent),
            _ = async {
                body_read.notified().await;
                tokio::time::sleep(timeout).await;
            } => None,
        }
    }
}

/// hyper's error for one attempt: the proxy's error, how far the attempt
/// got, and the request if hyper gave it back unsent. `Err`: our side
/// failed (the client's body was malformed or cut), not the backend.
#[allow(clippy::result_large_err)]
fn classify(
    e: TrySendError<Request<UpstreamBody>>,
    backend: &str,
    reused: bool,
) -> Result<(ProxyError, Reach, Option<Request<UpstreamBody>>), ProxyError> {
    let mut e = e;
    let unsent = e.take_message();
    let source = e.into_error();
    // An h2 backend that refused the stream or sent GOAWAY before it did
    // not process the request (RFC 9113 §8.7).
    let reach = match (refusal(&source), &unsent) {
        (Some(r), _) => Reach::Refused(r),
        (None, Some(_)) => Reach::Unsent,
        (None, None) => Reach::Sent {
            response_started: false,
        },
    };
    tracing::debug!(backend, reused, ?reach, error = %source, "upstream request failed");
    if source.is_user() {
        return Err(ProxyError::ClientBody(source));
    }
    let backend = backend.to_string();
    Ok((ProxyError::Upstream { backend, source }, reach, unsent))
}

/// A request that is sent on a backend connection of its own (none before
/// it, none after) and whose client connection is not reused afterwards,
/// as http_desync_guardian's "defensive" mode
/// does for the requests it grades Ambiguous: a body on GET or HEAD has no
/// defined meaning (RFC 9110 §9.3.1, §9.3.2), so a backend may ignore it
/// and read it as the next request. (A repeated identical Content-Length,
/// the other Ambiguous framing hyper accepts, is merged into one by hyper
/// as RFC 9112 §6.3 allows; shoal never sees the repeat.) A plain GET costs
/// one check.
fn isolated(req: &Request<RequestBody>) -> bool {
    !req.body().is_end_stream() && matches!(*req.method(), Method::GET | Method::HEAD)
}

impl Proxy {
    pub fn new(routing: Routing) -> Proxy {
        Proxy {
            routing: ArcSwap::from_pointee(routing),
            budget: RetryBudget::default(),
            me: Weak::new(),
        }
    }

    /// A proxy that can start work of its own (the cache's background
    /// refreshes).
    pub fn shared(routing: Routing) -> Arc<Proxy> {
        Arc::new_cyclic(|me| Proxy {
            routing: ArcSwap::from_pointee(routing),
            budget: RetryBudget::default(),
            me: me.clone(),
        })
    }

    pub(super) fn budget(&self) -> &RetryBudget {
        &self.budget
    }

    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    pub fn set_routing(&self, routing: Routing) {
        self.routing.store(Arc::new(routing));
    }

    /// One request from `peer` on the listener's address `local`; `proto`
    /// (`http` or `https`) is how it arrived, for `X-Forwarded-Proto`.
    /// `listener`: the name of the public listener it came on (its own
    /// routes, if it has any).
    pub async fn handle(
        &self,
        req: Request<RequestBody>,
        peer: SocketAddr,
        local: SocketAddr,
        proto: &'static str,
        listener: &str,
    ) -> Response<ProxyBody> {
        let isolate = isolated(&req);
        let client_h1 = req.version() < Version::HTTP_2;
        // Boxed: the exchange's future is several KiB (the request, its
        // replay and the upstream send live in it across awaits). Inline,
        // hyper would keep that much in every client connection's state,
        // idle or not, and copy it on each move; boxed it is allocated per
        // request and never moved.
        let mut entry = Entry::default();
        let mut resp =
            Box::pin(self.send(req, (peer, local, proto), listener, isolate, &mut entry)).await;
        if let Some((log, facts)) = entry.facts {
            // The *log* phase, once the body is done with.
            let mut report = entry.report;
            report.status = resp.status().as_u16();
            resp = resp.map(|body| ProxyBody::boxed(LoggedBody::new(body, log, facts, report)));
        }
        if isolate && client_h1 && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // Nothing after this request on the client's connection is read
            // (a proxy in front may have framed it otherwise).
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    async fn send(
        &self,
        req: Request<RequestBody>,
        (peer, local, proto): (SocketAddr, SocketAddr, &'static str),
        listener: &str,
        isolate: bool,
        entry: &mut Entry,
    ) -> Response<ProxyBody> {
        // Owned: it lives across the awaits below (arc-swap's guards are
        // meant for short borrows).
        let routing = self.routing.load_full();
        let (ready, body) = match admit(req, &routing, (peer, local, proto), listener) {
            Ok(admitted) => admitted,
            Err(mut answered) => {
                entry.take(&routing, answered.facts.take());
                return answered_limited(&routing, *answered, &mut entry.report).await;
            }
        };
        let Ready {
            mut parts,
            route: ready_route,
            key,
            pin,
            request_id,
            json,
            upgrading,
            client_upgrade,
            limits,
            facts,
            tally,
            cache_target,
        } = ready;
        entry.take(&routing, facts);
        entry.report.tally = tally;
        let rate = match rate_limits(&routing, limits, &request_id, json, &mut entry.report).await {
            Ok(note) => note,
            Err(refused) => return refused,
        };
        let route = routing.routes.get(ready_route);
        // The *respond* phase's compression: the coding this request
        // takes, if the route compresses.
        let codec = route.compress.as_ref().and_then(|c| {
            let accept = parts.headers.get_all(header::ACCEPT_ENCODING);
            c.negotiate(parts.method.as_str(), accept.iter().map(|v| v.as_bytes()))
                .map(|codec| (c, codec))
        });
        if let Action::Files(files) = &route.action {
            let mut resp = files.serve(
                &parts.method,
                parts.uri.path(),
                parts.uri.query(),
                &parts.headers,
                &request_id,
                json,
            );
            route.response_headers.apply(resp.headers_mut());
            if let Some(note) = &rate {
                note.insert(resp.headers_mut());
            }
            return compressed(resp, codec);
        }
        let Some(target) = routing.target(ready_route) else {
            return ProxyError::NoBackend.to_response(&request_id, json);
        };
        if entry.facts.is_some() {
            entry.report.pool = Some(target.pool.name.clone());
        }
        // The *lookup* phase: a stored response answers, or the request
        // goes on (its conditionals changed for a revalidation).
        let mut fetch = None;
        if let (Some(cache), Some(path)) = (route.cache.as_deref(), cache_target.as_deref()) {
            match cache.lookup(&mut parts, proto, path).await {
                Lookup::Answer(mut resp, outcome, refresh) => {
                    if let Some(refresh) = refresh {
                        self.refresh(&routing, ready_route, &parts, refresh, (key, pin));
                    }
                    entry.report.cache = Some(outcome.word());
                    resp.headers_mut()
                        .insert(X_REQUEST_ID.clone(), request_id.clone());
                    route.response_headers.apply(resp.headers_mut());
                    if let Some(note) = &rate {
                        note.insert(resp.headers_mut());
                    }
                    return compressed(resp, codec);
                }
                Lookup::Fetch(f) => fetch = Some(f),
            }
        }
        let (first_body, replay) = match keep_body(body, &parts, upgrading, target.policy).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(request_id = ?request_id, %peer, error = %e, "request failed");
                return e.to_response(&request_id, json);
            }
        };
        let mut ex = Exchange {
            routing: &routing,
            target,
            response_headers: &route.response_headers,
            sticky: route.sticky.as_deref().map(|s| (s, pin)),
            rate,
            codec,
            request_id: &request_id,
            idempotent: request_rules::idempotent(parts.method.as_str().as_bytes()),
            replay,
            isolate,
            client_upgrade,
            report: &mut entry.report,
            logging: entry.facts.is_some(),
            cache: fetch,
        };
        let first = Request::from_parts(parts, first_body);
        self.attempts(&mut ex, first, (key, pin), json).await
    }

    /// The cache's background refresh of a stored response it served
    /// stale (`stale-while-revalidate`): the request again, with the
    /// stored response's validators, through the same attempts; its
    /// response is read to the end (so stored) by nobody's client.
    fn refresh(
        &self,
        routing: &Arc<Routing>,
        route_index: usize,
        parts: &http::request::Parts,
        refresh: Box<Refresh>,
        keys: (Option<u64>, Option<u64>),
    ) {
        let Some(me) = self.me.upgrade() else {
            return;
        };
        let routing = routing.clone();
        let uri = parts.uri.clone();
        tokio::spawn(async move {
            let route = routing.routes.get(route_index);
            let (Some(cache), Some(target)) = (route.cache.as_deref(), routing.target(route_index))
            else {
                return;
            };
            let request_id = refresh
                .headers
                .get(&X_REQUEST_ID)
                .cloned()
                .unwrap_or(HeaderValue::from_static("cache-refresh"));
            let replay = Replay {
                method: Method::GET,
                uri,
                headers: refresh.headers.clone(),
                body: Bytes::new(),
            };
            let first = replay.build();
            let mut report = Report::default();
            let mut ex = Exchange {
                routing: &routing,
                target,
                response_headers: &route.response_headers,
                sticky: None,
                rate: None,
                codec: None,
                request_id: &request_id,
                idempotent: true,
                replay: Again::Kept(replay),
                isolate: false,
                client_upgrade: None,
                report: &mut report,
                logging: false,
                cache: Some(cache.refreshing(refresh)),
            };
            let resp = me.attempts(&mut ex, first, keys, false).await;
            // Read to the end: the tee stores it.
            let _ = resp.into_body().collect().await;
        });
    }

    /// The *pick* and *exchange* phases: backends in turn, as the retry
    /// rules allow; the response, or the error's.
    async fn attempts(
        &self,
        ex: &mut Exchange<'_>,
        first: Request<UpstreamBody>,
        keys: (Option<u64>, Option<u64>),
        json: bool,
    ) -> Response<ProxyBody> {
        let (routing, target, request_id) = (ex.routing, ex.target, ex.request_id);
        let mut pending = Some(first);
        let mut attempts = Attempts::new(self, routing, target, keys);
        let mut last_error = ProxyError::NoBackend;
        while let Some(endpoint) = attempts.pick(&request_id) {
            // Every way round the loop leaves in `pending` what may be
            // sent next: the unsent request, a replay, or nothing.
            let Some(req) = pending.take() else {
                break;
            };
            let in_flight = attempts.begin(&endpoint);
            ex.report.attempts += 1;
            match self
                .on_backend(ex, &mut attempts, &endpoint, in_flight, req)
                .await
            {
                Ok(resp) => return resp,
                Err((error, next)) => {
                    last_error = error;
                    pending = next;
                }
            }
            if pending.is_none() {
                break;
            }
        }
        tracing::warn!(request_id = ?request_id, error = %last_error, status = last_error.status().as_u16(), "request failed");
        if let Some((mut resp, outcome)) = ex.cache.take().and_then(Fetch::on_error) {
            // `stale-if-error`: a stored response stands in.
            ex.report.cache = Some(outcome.word());
            resp.headers_mut()
                .insert(X_REQUEST_ID.clone(), request_id.clone());
            ex.response_headers.apply(resp.headers_mut());
            if let Some(note) = &ex.rate {
                note.insert(resp.headers_mut());
            }
            return compressed(resp, ex.codec);
        }
        last_error.to_response(request_id, json)
    }

    /// The attempt on one backend, with new connections to it as
    /// `attempt::next` allows: the response, or the error and what may be
    /// sent to the next backend.
    async fn on_backend(
        &self,
        ex: &mut Exchange<'_>,
        attempts: &mut Attempts<'_>,
        endpoint: &Arc<Endpoint>,
        in_flight: InFlight,
        req: Request<UpstreamBody>,
    ) -> Result<Response<ProxyBody>, (ProxyError, Option<Request<UpstreamBody>>)> {
        // Each way is boxed: inline, every request's future would be the
        // size of the larger (hyper's send, several KiB), and that future
        // is copied whole into its box once per request.
        if ex.routing.engine == Engine::Native
            && endpoint.pool.raw_ok()
            && !ex.isolate
            && ex.client_upgrade.is_none()
            && upstream::eligible(&req)
        {
            let raw = self.on_raw_socket(ex, attempts, endpoint, in_flight, req);
            return Box::pin(raw).await;
        }
        Box::pin(self.on_hyper_client(ex, attempts, endpoint, in_flight, req)).await
    }

    /// [`Proxy::on_backend`] on hyper's client: a pooled connection of any
    /// protocol, reconnected as `attempt::next` allows.
    async fn on_hyper_client(
        &self,
        ex: &mut Exchange<'_>,
        attempts: &mut Attempts<'_>,
        endpoint: &Arc<Endpoint>,
        in_flight: InFlight,
        req: Request<UpstreamBody>,
    ) -> Result<Response<ProxyBody>, (ProxyError, Option<Request<UpstreamBody>>)> {
        let (routing, policy) = (ex.routing, ex.target.policy);
        ex.keep_replay(&req);
        // An isolated request has a backend connection to itself: none
        // before it (an idle one), none after it (not pooled).
        let checkout = if ex.isolate {
            Box::pin(endpoint.pool.checkout_fresh()).await
        } else if ex.client_upgrade.is_some() {
            Box::pin(endpoint.pool.checkout_upgrade()).await
        } else {
            endpoint.pool.checkout().await
        };
        let mut conn = match checkout {
            Ok(c) => c,
            Err(source) => {
                // Nothing was sent: the request, body and all, can go elsewhere.
                let resend = ex.resend(true);
                let (e, _) = attempts.connect_failed(ex.request_id, endpoint, source, resend);
                return Err((e, Some(req)));
            }
        };
        let mut req = req;
        loop {
            for_protocol(&mut req, conn.protocol(), conn.tls(), &endpoint.authority);
            let started = std::time::Instant::now();
            let sent = send_within(&mut conn.sender, req, policy.response_header_timeout).await;
            let (error, reach, unsent) = match sent {
                Some(Ok(resp)) => {
                    routing.observe(
                        &ex.target.pool.table,
                        endpoint,
                        resp.status().as_u16(),
                        started,
                    );
                    ex.report.upstream = Some(started.elapsed());
                    if ex.logging {
                        ex.report.backend = Some(endpoint.clone());
                    }
                    return Ok(ex.respond(resp, endpoint, conn, in_flight));
                }
                // Dropping the exchange closed its connection (HTTP/1.1) or
                // reset its stream (h2): the request may have been processed.
                None => {
                    let e = ProxyError::Timeout {
                        backend: endpoint.id.clone(),
                        after: policy.response_header_timeout,
                    };
                    (e, Reach::TimedOut, None)
                }
                Some(Err(e)) => match classify(e, &endpoint.id, conn.reused) {
                    Ok(failed) => failed,
                    // The client's body failed: nothing to retry.
                    Err(e) => return Err((e, None)),
                },
            };
            let resend = ex.resend(unsent.is_some());
            let next = attempts.failed(
                ex.request_id,
                endpoint,
                &error,
                (reach, conn.reused),
                resend,
            );
            // Sent again: what was never sent, or else a replay.
            let again = match next {
                Next::Answer => None,
                Next::Reconnect | Next::Elsewhere => unsent.or_else(|| ex.replay()),
            };
            if next != Next::Reconnect {
                return Err((error, again));
            }
            let Some(again) = again else {
                return Err((error, None));
            };
            match endpoint.pool.reconnect(&conn).await {
                Ok(fresh) => {
                    conn = fresh;
                    req = again;
                }
                Err(source) => {
                    let e = ProxyError::connect(&endpoint.id, source);
                    return Err((e, Some(again)));
                }
            }
        }
    }

    /// [`Proxy::on_backend`] for a bodyless `GET` or `HEAD` to a cleartext
    /// HTTP/1.1 backend: sent on a raw pooled socket and answered in this
    /// task (`h1/upstream.rs`), with the same attempts, retries and passive
    /// health as a request hyper's client sends.
    async fn on_raw_socket(
        &self,
        ex: &mut Exchange<'_>,
        attempts: &mut Attempts<'_>,
        endpoint: &Arc<Endpoint>,
        in_flight: InFlight,
        mut req: Request<UpstreamBody>,
    ) -> Result<Response<ProxyBody>, (ProxyError, Option<Request<UpstreamBody>>)> {
        let (routing, policy) = (ex.routing, ex.target.policy);
        for_protocol(
            &mut req,
            UpstreamProtocol::Http1,
            false,
            &endpoint.authority,
        );
        // The request is only read: after any failure it can be sent again
        // as it is (`resend(true)`), as far as the retry rules allow.
        let (mut stream, mut reused) = match endpoint.pool.raw_stream().await {
            Ok(got) => got,
            Err(source) => {
                let resend = ex.resend(true);
                let (e, _) = attempts.connect_failed(ex.request_id, endpoint, source, resend);
                return Err((e, Some(req)));
            }
        };
        loop {
            let started = std::time::Instant::now();
            let (error, reach) = match upstream::send(&req, &mut stream, endpoint, policy, started)
                .await
            {
                Ok((head, rest)) => {
                    let table = &ex.target.pool.table;
                    routing.observe(table, endpoint, head.status.as_u16(), started);
                    ex.report.upstream = Some(started.elapsed());
                    if ex.logging {
                        ex.report.backend = Some(endpoint.clone());
                    }
                    let read_timeout = policy.read_timeout;
                    let body = RawBody::new(&head, rest, stream, endpoint, in_flight, read_timeout);
                    let mut resp = Response::new(ProxyBody::raw(body));
                    *resp.status_mut() = head.status;
                    *resp.headers_mut() = head.headers;
                    if let Some(reason) = head.reason {
                        resp.extensions_mut().insert(reason);
                    }
                    return Ok(ex.respond_raw(resp, endpoint));
                }
                Err(failed) => failed,
            };
            tracing::debug!(backend = %endpoint.id, reused, error = %error, "upstream request failed");
            let reach = (reach, reused);
            match attempts.failed(ex.request_id, endpoint, &error, reach, ex.resend(true)) {
                Next::Answer => return Err((error, None)),
                Next::Elsewhere => return Err((error, Some(req))),
                Next::Reconnect => match Box::pin(endpoint.pool.connect_raw()).await {
                    Ok(fresh) => {
                        stream = fresh;
                        reused = false;
                    }
                    Err(source) => {
                        let e = ProxyError::connect(&endpoint.id, source);
                        return Err((e, Some(req)));
                    }
                },
            }
        }
    }
}

/// A small body is read in full before anything is sent, so that the
/// request can go to another backend if one does not process it (nginx
/// buffers request bodies by default; Envoy buffers for retries): the body
/// to send first, and what to send again, if anything may be.
async fn keep_body(
    body: RequestBody,
    parts: &http::request::Parts,
    upgrading: bool,
    policy: &Policy,
) -> Result<(UpstreamBody, Again), ProxyError> {
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|n| n <= policy.replay_body_size);
    let (first_body, buffered) = if !upgrading && !body.is_end_stream() && small {
        // Boxed: a cold path, kept out of every request's future.
        let collected = Box::pin(body.collect())
            .await
            .map_err(ProxyError::ClientBodyRead)?;
        let bytes = collected.to_bytes();
        (Either::Right(Full::new(bytes.clone())), Some(bytes))
    } else {
        (Either::Left(body), None)
    };
    let again = match buffered {
        _ if upgrading => Again::No,
        Some(body) => Again::Kept(Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            body,
        }),
        None if first_body.is_end_stream() => Again::Bodyless,
        None => Again::No,
    };
    Ok((first_body, again))
}

/// What the attempts of one request share on hyper's path.
struct Exchange<'r> {
    routing: &'r Routing,
    target: Target<'r>,
    /// The route's `response_headers` rules.
    response_headers: &'r HeaderEdits,
    /// The route's sticky cookie, and the backend the request's names.
    sticky: Option<(&'r Sticky, Option<u64>)>,
    /// The rate limits' headers.
    rate: Option<RateNote>,
    /// The route's compression and the coding the request takes.
    codec: Option<(&'r Compression, Codec)>,
    request_id: &'r HeaderValue,
    idempotent: bool,
    /// What to send again after the first attempt consumed the request.
    replay: Again,
    /// Neither connection is reused after this request (`isolated`).
    isolate: bool,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// What the access log will say of it.
    report: &'r mut Report,
    /// The access log is on.
    logging: bool,
    /// The cache's *respond* phase, on a route that caches.
    cache: Option<Fetch<'r>>,
}

impl Exchange<'_> {
    /// What the request allows; `given_back`: the failed attempt returned
    /// it unsent.
    fn resend(&self, given_back: bool) -> Resend {
        Resend {
            idempotent: self.idempotent,
            replayable: given_back || !matches!(self.replay, Again::No),
        }
    }

    fn replay(&self) -> Option<Request<UpstreamBody>> {
        match &self.replay {
            Again::Kept(replay) => Some(replay.build()),
            Again::No | Again::Bodyless => None,
        }
    }

    /// Before a send that consumes `req`: the copy of a bodyless request
    /// that [`Exchange::replay`] builds again from.
    fn keep_replay(&mut self, req: &Request<UpstreamBody>) {
        if matches!(self.replay, Again::Bodyless) {
            self.replay = Again::Kept(Replay::of_bodyless(req));
        }
    }

    /// The *respond* phase: the backend's response as the client gets it
    /// (request id, hop-by-hop headers out, an upgrade spliced), its body
    /// holding the backend connection until it ends.
    fn respond(
        &mut self,
        mut resp: Response<Incoming>,
        endpoint: &Arc<Endpoint>,
        conn: PooledConn,
        in_flight: InFlight,
    ) -> Response<ProxyBody> {
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), self.request_id.clone());
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(client) = self.client_upgrade.take() {
                let upstream = hyper::upgrade::on(&mut resp);
                upgrade::splice(
                    client,
                    upstream,
                    endpoint.id.clone(),
                    in_flight,
                    self.routing.tunnel_idle_timeout,
                );
                let (parts, _) = resp.into_parts();
                return Response::from_parts(parts, ProxyBody::empty());
            }
        }
        strip_hop_by_hop(resp.headers_mut(), None);
        if resp.version() == Version::HTTP_2 {
            // From an h2 backend; hyper's HTTP/1.1 side would coerce it
            // anyway, and takes its fast path for 1.1.
            *resp.version_mut() = Version::HTTP_11;
        }
        let (parts, body) = resp.into_parts();
        let lease = Lease {
            conn: Some(conn),
            _in_flight: in_flight,
            reuse: !self.isolate,
        };
        let resp = Response::from_parts(
            parts,
            ProxyBody::upstream(body, lease, self.target.policy.read_timeout),
        );
        self.finish(resp, endpoint)
    }

    /// The *respond* phase for a response read from a raw socket
    /// (`on_raw_socket`): its head already holds no hop-by-hop header.
    fn respond_raw(
        &mut self,
        mut resp: Response<ProxyBody>,
        endpoint: &Arc<Endpoint>,
    ) -> Response<ProxyBody> {
        resp.headers_mut()
            .insert(X_REQUEST_ID.clone(), self.request_id.clone());
        self.finish(resp, endpoint)
    }

    /// The rest of the *respond* phase, whichever way the response came:
    /// the cache, the route's response headers, the sticky cookie, the
    /// rate-limit note, compression.
    fn finish(
        &mut self,
        mut resp: Response<ProxyBody>,
        endpoint: &Arc<Endpoint>,
    ) -> Response<ProxyBody> {
        if let Some(fetch) = self.cache.take() {
            // The cache's *respond* phase: stored as it streams, or a
            // stored response answers (revalidated, or stale for an error).
            let (cached, outcome) = fetch.respond(resp);
            resp = cached;
            self.report.cache = Some(outcome.word());
            resp.headers_mut()
                .insert(X_REQUEST_ID.clone(), self.request_id.clone());
        }
        self.response_headers.apply(resp.headers_mut());
        if let Some((sticky, pin)) = self.sticky {
            if let Some(v) = Sticky::renew(pin, endpoint)
                .then(|| sticky.header_value(endpoint))
                .flatten()
            {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        if let Some(note) = &self.rate {
            note.insert(resp.headers_mut());
        }
        compressed(resp, self.codec)
    }
}

/// The *admit* phase's rate limits on hyper's path: the note for the
/// response, or the 429 that answers instead.
async fn rate_limits(
    routing: &Routing,
    limits: Asked,
    request_id: &HeaderValue,
    json: bool,
    report: &mut Report,
) -> Result<Option<RateNote>, Response<ProxyBody>> {
    if limits.is_empty() {
        return Ok(None);
    }
    let outcome = match routing.limits.decide_now(&limits) {
        Some(outcome) => outcome,
        None => Box::pin(routing.limits.decide(limits)).await,
    };
    report.rate_limit = Some(outcome.word());
    match outcome {
        Outcome::Pass(note) => Ok(note),
        Outcome::Refuse(note) => Err(rate_limited(request_id.as_bytes(), json, note).to_response()),
    }
}

/// A request shoal answers itself, once the rate limits let it through.
async fn answered_limited(
    routing: &Routing,
    answered: Answered,
    report: &mut Report,
) -> Response<ProxyBody> {
    let Answered {
        mut resp,
        limits,
        request_id,
        json,
        ..
    } = answered;
    match rate_limits(routing, limits, &request_id, json, report).await {
        Ok(Some(note)) => {
            note.insert(resp.headers_mut());
            resp
        }
        Ok(None) => resp,
        Err(refused) => refused,
    }
}

/// What the *log* phase needs of one request on hyper's path: the facts
/// the *admit* phase took (when the access log is on) and the report the
/// exchange fills.
#[derive(Default)]
struct Entry {
    facts: Option<(Arc<AccessLog>, Box<Facts>)>,
    report: Report,
}

impl Entry {
    fn take(&mut self, routing: &Routing, facts: Option<Box<Facts>>) {
        if let (Some(log), Some(facts)) = (&routing.access_log, facts) {
            self.facts = Some((log.clone(), facts));
        }
    }
}

/// `resp` compressed, when the route compresses, the request takes a
/// coding and the response is one to compress.
fn compressed(
    resp: Response<ProxyBody>,
    codec: Option<(&Compression, Codec)>,
) -> Response<ProxyBody> {
    match codec {
        Some((c, codec)) => c.respond(resp, codec),
        None => resp,
    }
}

#[cfg(test)]
mod future_sizes {
    fn size_of_return<A, F, C: FnOnce(A) -> F>(_: &C) -> usize {
        std::mem::size_of::<F>()
    }

    /// hyper keeps a request's future inline in its client connection's
    /// state, idle or not: every byte here is a byte per open connection
    /// (and copied on each move). The exchange itself is boxed (see
    /// `handle`); this keeps it that way.
    #[test]
    fn the_per_connection_request_future_stays_small() {
        let table = std::sync::Arc::new(crate::balance::EndpointTable::new());
        let proxy = super::Proxy::new(super::Routing::single(table, &Default::default()));
        let handle = |req: http::Request<super::RequestBody>| {
            proxy.handle(
                req,
                ([127, 0, 0, 1], 1).into(),
                ([127, 0, 0, 1], 2).into(),
                "http",
                "",
            )
        };
        let size = size_of_return(&handle);
        assert!(size <= 1024, "Proxy::handle's future is {size} bytes");
        // The exchange's future is boxed per request: moving it into its
        // box copies all of it (6,920 bytes, 7,456 before the
        // upstream send stopped holding a copy of the request, #19). Each
        // layer's arguments stay in its state, so a request passed down
        // through four layers is held four times.
        let p: &super::Proxy = &proxy;
        let entry: &'static mut super::Entry = Box::leak(Box::default());
        let size = size_of_return(&move |req: http::Request<super::RequestBody>| {
            p.send(
                req,
                (
                    ([127, 0, 0, 1], 1).into(),
                    ([127, 0, 0, 1], 2).into(),
                    "http",
                ),
                "",
                false,
                entry,
            )
        });
        println!("Proxy::send: {size} bytes");
        assert!(size <= 7000, "Proxy::send's future is {size} bytes");
        let pool = crate::proxy::pool::Pool::new(([127, 0, 0, 1], 1).into(), Default::default());
        let checkout = |_: ()| pool.checkout();
        let size = size_of_return(&checkout);
        assert!(size <= 128, "Pool::checkout's future is {size} bytes");
    }
}
