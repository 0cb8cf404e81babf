//! One request's trip: prepare headers, pick a backend, send, retry on
//! another backend when that is safe, hand back the response.

use std::net::SocketAddr;
use std::sync::Arc;

use super::limits::RequestBody;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::{self, Authority, PathAndQuery, Scheme, Uri};
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{BodyExt, Either, Full};

use super::body::{Lease, ProxyBody};
use super::error::{wants_json, ProxyError};
use super::headers::{
    ambiguous_framing, client_ip, forward, strip_hop_by_hop, te_trailers, upgrade_offer,
    TrustedProxies,
};
use super::pool::{refusal, Refusal, Sender, UpstreamBody};
use super::request_id::{self, X_REQUEST_ID};
use super::request_rules;
use super::retry_budget::RetryBudget;
use super::upgrade;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use std::time::Duration;

use crate::balance::{
    panic, slow_start, Balance, Endpoint, EndpointSet, EndpointTable, Headers, PassiveHealth,
    RequestView, Tried,
};
use arc_swap::ArcSwap;
use shoal_config::{Algorithm, BalanceConfig, Engine, ProxyConfig, UpstreamProtocol};

pub struct Proxy {
    table: Arc<EndpointTable>,
    routing: ArcSwap<Routing>,
    budget: RetryBudget,
}

/// The settings a config reload may swap while requests are in flight.
pub struct Routing {
    pub trusted: TrustedProxies,
    pub retry_budget_percent: u32,
    pub retry_budget_min: u32,
    pub retry_budget_window: Duration,
    pub balancer: Box<dyn Balance>,
    pub algorithm: Algorithm,
    pub retries: u32,
    pub replay_body_size: u64,
    pub response_header_timeout: Duration,
    pub read_timeout: Duration,
    pub passive: PassiveHealth,
    pub fail_statuses: Vec<u16>,
    /// `proxy.slow_start`, or zero for the hashing algorithms (see
    /// `balance::slow_start`).
    pub slow_start: Duration,
    pub panic_mode: bool,
    pub tunnel_idle_timeout: Duration,
    /// `proxy.engine`, read per accepted connection.
    pub engine: Engine,
}

impl Routing {
    pub fn new(balance: &BalanceConfig, proxy: &ProxyConfig) -> Routing {
        Routing {
            trusted: TrustedProxies::default(),
            retry_budget_percent: proxy.retry_budget_percent,
            retry_budget_min: proxy.retry_budget_min,
            retry_budget_window: proxy.retry_budget_window,
            balancer: crate::balance::from_config(balance),
            algorithm: balance.algorithm,
            retries: proxy.retries,
            replay_body_size: proxy.replay_body_size,
            response_header_timeout: proxy.response_header_timeout,
            read_timeout: proxy.read_timeout,
            passive: PassiveHealth {
                max_fails: proxy.max_fails,
                fail_timeout: proxy.fail_timeout,
                max_ejection_time: proxy.max_ejection_time,
            },
            fail_statuses: proxy.fail_statuses.clone(),
            slow_start: match balance.algorithm {
                Algorithm::Hash | Algorithm::IpHash => Duration::ZERO,
                _ => proxy.slow_start,
            },
            panic_mode: balance.panic_mode,
            tunnel_idle_timeout: proxy.tunnel_idle_timeout,
            engine: proxy.engine,
        }
    }

    /// Everything a config decides: `balance`, `proxy` and
    /// `trusted_proxies`. Startup and every reload build it here, so a
    /// reload cannot drop a part of it.
    pub fn for_config(config: &shoal_config::Config) -> Routing {
        Routing::new(&config.balance, &config.proxy)
            .with_trusted(TrustedProxies::new(&config.trusted_proxies))
    }

    /// The peers whose forwarding headers are believed (`trusted_proxies`).
    pub fn with_trusted(mut self, trusted: TrustedProxies) -> Routing {
        self.trusted = trusted;
        self
    }

    /// Passive health: count a failed request against `endpoint`. As nginx
    /// never marks a lone server unavailable, the last endpoint in rotation
    /// is never ejected: a struggling backend beats a 503 for everyone.
    pub(super) fn failed(&self, table: &EndpointTable, endpoint: &Arc<Endpoint>, why: &ProxyError) {
        let others = table
            .snapshot()
            .endpoints
            .iter()
            .any(|e| e.key() != endpoint.key() && e.in_rotation());
        if !others {
            return;
        }
        if let Some(ejected_for) = endpoint.record_failure(&self.passive) {
            tracing::warn!(
                backend = %endpoint.id, error = %why, max_fails = self.passive.max_fails,
                ejections = endpoint.ejections(), ejected_for = ?ejected_for,
                "out of rotation after failed requests (passive health)"
            );
        }
    }

    /// The endpoint for the next attempt: the algorithm's pick with slow
    /// start applied, or, with none in rotation and `panic_mode` on, any
    /// running endpoint not tried yet.
    pub(super) fn pick(&self, set: &EndpointSet, tried: &Tried, key: Option<u64>) -> Option<usize> {
        if let Some(i) = slow_start::pick(&*self.balancer, set, tried, key, self.slow_start) {
            return Some(i);
        }
        if !self.panic_mode || set.any_in_rotation() {
            return None;
        }
        let i = panic::pick(set, tried)?;
        if panic::warning_due() {
            tracing::warn!(backend = %set.endpoints[i].id, "no backend in rotation; panic mode sends requests to failing ones");
        }
        Some(i)
    }
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
async fn send_within(
    sender: &mut Sender,
    mut req: Request<UpstreamBody>,
    timeout: Duration,
) -> Option<Result<Response<Incoming>, TrySendError<Request<UpstreamBody>>>> {
    let body_read = match req.body_mut() {
        Either::Left(body) if !body.is_end_stream() => Some(body.when_read()),
        _ => None,
    };
    let Some(body_read) = body_read else {
        return tokio::time::timeout(timeout, sender.send(req)).await.ok();
    };
    let send = sender.send(req);
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

/// How many times one request may be put on a new connection to the same
/// backend after its stream was above a GOAWAY. Bounded, so a backend that
/// sends GOAWAY on every connection at once cannot keep a request forever.
const MAX_GOAWAY_RECONNECTS: u32 = 3;

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A request that is sent on but whose connections are not reused
/// afterwards, on either side, as http_desync_guardian's "defensive" mode
/// does for the requests it grades Ambiguous: a body on GET or HEAD has no
/// defined meaning (RFC 9110 §9.3.1, §9.3.2), so a backend may ignore it
/// and read it as the next request. (A repeated identical Content-Length,
/// the other Ambiguous framing hyper accepts, is merged into one by hyper
/// as RFC 9112 §6.3 allows; shoal never sees the repeat.) A plain GET costs
/// one check.
fn isolated(req: &Request<RequestBody>) -> bool {
    !req.body().is_end_stream() && matches!(*req.method(), Method::GET | Method::HEAD)
}

/// The request target as a backend expects it: origin-form (`/path?query`).
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let pq = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    pq.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

/// Put a request in the form the backend's protocol takes. Requests are
/// prepared as HTTP/1.1 (origin-form target, `Host`); only a request that
/// goes to an h2 backend, or comes back unsent from one, is converted.
#[inline]
fn for_protocol(req: &mut Request<UpstreamBody>, protocol: UpstreamProtocol, backend: &str) {
    match protocol {
        UpstreamProtocol::Http1 if req.version() != Version::HTTP_11 => to_h1(req),
        UpstreamProtocol::H2 if req.version() != Version::HTTP_2 => to_h2(req, backend),
        _ => {}
    }
}

/// HTTP/1.1 → h2. hyper's h2 client sends `:scheme` and `:authority` from
/// the URI, so the target becomes `http://AUTHORITY/path`, where AUTHORITY is
/// the request's `Host` (the client's `:authority` for an h2 client), and
/// `Host` itself is dropped: as Envoy and nginx (`grpc_pass`) do, and as RFC
/// 9113 §8.3.1 asks of an intermediary. Without a usable `Host`, the
/// backend's own address. `:scheme` is `http`: the hop to the backend is
/// cleartext (the client's scheme is in `X-Forwarded-Proto`).
/// Connection-specific fields must not appear in HTTP/2 (RFC 9113 §8.2.2):
/// `strip_hop_by_hop` removed them; `Connection: te` (set for HTTP/1.1
/// backends) and an `Upgrade` go too, `TE: trailers` stays.
fn to_h2(req: &mut Request<UpstreamBody>, backend: &str) {
    let headers = req.headers_mut();
    let host = headers.remove(header::HOST);
    headers.remove(header::CONNECTION);
    headers.remove(header::UPGRADE);
    let authority = host
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .or_else(|| Authority::try_from(backend).ok());
    let mut parts = uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = authority;
    parts.path_and_query = Some(
        req.uri()
            .path_and_query()
            .filter(|p| p.as_str().starts_with('/'))
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/")),
    );
    if let Ok(uri) = Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
    *req.version_mut() = Version::HTTP_2;
}

/// h2 → HTTP/1.1, for a request an h2 backend gave back unsent that now
/// goes to an HTTP/1.1 backend.
fn to_h1(req: &mut Request<UpstreamBody>) {
    if let Some(host) = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
    {
        req.headers_mut().entry(header::HOST).or_insert(host);
    }
    *req.uri_mut() = origin_form(req.uri());
    *req.version_mut() = Version::HTTP_11;
    if req.headers().contains_key(header::TE) {
        req.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("te"));
    }
}

impl Proxy {
    pub fn new(table: Arc<EndpointTable>, routing: Routing) -> Proxy {
        Proxy {
            table,
            routing: ArcSwap::from_pointee(routing),
            budget: RetryBudget::default(),
        }
    }

    pub(super) fn table(&self) -> &EndpointTable {
        &self.table
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
    pub async fn handle(
        &self,
        req: Request<RequestBody>,
        peer: SocketAddr,
        local: SocketAddr,
        proto: &'static str,
    ) -> Response<ProxyBody> {
        let isolate = isolated(&req);
        let client_h1 = req.version() < Version::HTTP_2;
        // Boxed: the exchange's future is several KiB (the request, its
        // replay and the upstream send live in it across awaits). Inline,
        // hyper would keep that much in every client connection's state,
        // idle or not, and copy it on each move; boxed it is allocated per
        // request and never moved.
        let mut resp = Box::pin(self.send(req, peer, local, proto, isolate)).await;
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
        peer: SocketAddr,
        local: SocketAddr,
        proto: &'static str,
        isolate: bool,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        // Owned: it lives across the awaits below (arc-swap's guards are
        // meant for short borrows).
        let routing = self.routing.load_full();
        self.budget.request();
        let client = client_ip(peer.ip(), &parts.headers, &routing.trusted);
        // What the balancer needs of the request (hash, ip_hash), as the
        // client sent it, reduced to a u64 before `parts` moves on.
        let key = routing.balancer.request_key(&RequestView {
            client,
            method: parts.method.as_str(),
            target: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
            headers: Headers::Map(&parts.headers),
        });
        let request_id = request_id::ensure(&mut parts.headers);
        let json = wants_json(&parts.headers);
        if let Some(why) = ambiguous_framing(&parts.headers) {
            let e = ProxyError::BadFraming(why);
            tracing::warn!(request_id = ?request_id, %peer, error = %e, "request rejected");
            return e.to_response(&request_id, json);
        }
        if let Some(why) =
            request_rules::refusal(&parts.method, &parts.uri, parts.version, &parts.headers)
        {
            let e = ProxyError::BadRequest(why);
            tracing::info!(request_id = ?request_id, %peer, error = %e, "request rejected");
            return e.to_response(&request_id, json);
        }
        let offer = if parts.version == Version::HTTP_11 {
            upgrade_offer(&parts.headers)
        } else {
            None
        };
        let upgrading = offer.is_some();
        let te_trailers = !upgrading && te_trailers(&parts.headers);

        // The target's authority wins over `Host`: an h2 client's
        // `:authority` (RFC 9113 §8.3.1), or an absolute-form target (RFC
        // 9112 §3.2.2), as Envoy and nginx. Before `forward`, which copies
        // `Host` into `X-Forwarded-Host`.
        if let Some(a) = parts.uri.authority() {
            if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                parts.headers.insert(header::HOST, v);
            }
        } else if !parts.headers.contains_key(header::HOST) {
            // HTTP/1.0 (or h2 without `:authority`) may come without one,
            // and the backend gets HTTP/1.1, which needs it: the address
            // the client reached, as nginx's `$host` falls back to the
            // server's own name.
            // (`ip:port`, `[v6]:port`.)
            if let Ok(v) = HeaderValue::from_str(&local.to_string()) {
                parts.headers.insert(header::HOST, v);
            }
        }
        strip_hop_by_hop(&mut parts.headers, offer);
        if te_trailers {
            // A gRPC client's `te: trailers`; HTTP/1.1 wants `TE` named in
            // `Connection` too (RFC 9110 §10.1.4). h2 backends get only `te`.
            parts
                .headers
                .insert(header::TE, HeaderValue::from_static("trailers"));
            parts
                .headers
                .insert(header::CONNECTION, HeaderValue::from_static("te"));
        }
        // hyper met `Expect: 100-continue` on this hop (it answers 100
        // Continue when the body is first read); not passed on, as nginx
        // and Envoy do.
        parts.headers.remove(header::EXPECT);
        forward(
            &mut parts.headers,
            peer.ip(),
            client,
            &routing.trusted,
            proto,
        );
        parts.uri = origin_form(&parts.uri);
        parts.version = Version::HTTP_11;

        let client_upgrade = upgrading.then(|| {
            // The client's side of the upgrade resolves once we answer 101.
            let mut stub = Request::new(());
            *stub.extensions_mut() = std::mem::take(&mut parts.extensions);
            hyper::upgrade::on(stub)
        });

        // A small body is read in full before anything is sent, so that
        // the request can go to another backend if one does not process it
        // (nginx buffers request bodies by default; Envoy buffers for retries).
        let small = body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= routing.replay_body_size);
        let (first_body, buffered) = if !upgrading && !body.is_end_stream() && small {
            // Boxed: a cold path, kept out of every request's future.
            match Box::pin(body.collect()).await {
                Ok(collected) => {
                    let bytes = collected.to_bytes();
                    (Either::Right(Full::new(bytes.clone())), Some(bytes))
                }
                Err(e) => {
                    let e = ProxyError::ClientBodyRead(e);
                    tracing::warn!(request_id = ?request_id, %peer, error = %e, "request failed");
                    return e.to_response(&request_id, json);
                }
            }
        } else {
            (Either::Left(body), None)
        };
        let idempotent = is_idempotent(&parts.method);
        let replay =
            (!upgrading && (buffered.is_some() || first_body.is_end_stream())).then(|| Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
                body: buffered.unwrap_or_default(),
            });
        let mut pending = Some(Request::from_parts(parts, first_body));

        let mut tried = Tried::default();
        let mut last_error = ProxyError::NoBackend;
        // Set when the last attempt reached a backend: trying again costs
        // backends work, so it must fit the retry budget.
        let mut charge = false;
        for attempt in 0..=routing.retries {
            if charge {
                if !self.budget.try_retry(
                    routing.retry_budget_percent,
                    routing.retry_budget_min,
                    routing.retry_budget_window,
                ) {
                    crate::metrics::counters::retry_budget_exhausted();
                    tracing::warn!(request_id = ?request_id, "retry budget exhausted; not retrying");
                    break;
                }
                charge = false;
            }
            let set = self.table.snapshot();
            let Some(i) = routing.pick(&set, &tried, key) else {
                break;
            };
            let endpoint = set.endpoints[i].clone();
            drop(set);
            if attempt > 0 {
                crate::metrics::counters::retry();
            }
            tried.push(endpoint.key());
            let in_flight = endpoint.start_request();

            // Every way round the loop sets `pending` to what may be sent
            // next: the unsent request, a replay, or nothing.
            let Some(req) = pending.take() else {
                break;
            };
            let mut conn = match endpoint.pool.checkout().await {
                Ok(c) => c,
                Err(source) => {
                    // Nothing was sent: the request, body and all, can go elsewhere.
                    pending = Some(req);
                    tracing::debug!(backend = %endpoint.id, error = %source, "connect failed, trying another backend");
                    last_error = ProxyError::Connect {
                        backend: endpoint.id.clone(),
                        source,
                    };
                    routing.failed(&self.table, &endpoint, &last_error);
                    continue;
                }
            };
            let mut req = req;
            // New connections to this backend after a failure on one.
            let mut reconnects = 0u32;
            loop {
                for_protocol(&mut req, conn.protocol(), &endpoint.authority);
                let started = std::time::Instant::now();
                let sent =
                    send_within(&mut conn.sender, req, routing.response_header_timeout).await;
                let Some(sent) = sent else {
                    // Dropping the exchange closes its connection (HTTP/1.1)
                    // or resets its stream (h2). The request may have been
                    // processed: only a replay may go elsewhere.
                    last_error = ProxyError::Timeout {
                        backend: endpoint.id.clone(),
                        after: routing.response_header_timeout,
                    };
                    routing.failed(&self.table, &endpoint, &last_error);
                    // As slow as the timeout, at least: p2c_ewma steers away.
                    endpoint.observe_latency(routing.response_header_timeout);
                    pending = replay.as_ref().filter(|_| idempotent).map(Replay::build);
                    charge = true;
                    break;
                };
                match sent {
                    Ok(mut resp) => {
                        endpoint.record_response(resp.status().as_u16(), started);
                        if !routing.fail_statuses.is_empty()
                            && routing.fail_statuses.contains(&resp.status().as_u16())
                        {
                            let why = ProxyError::Status {
                                backend: endpoint.id.clone(),
                                status: resp.status().as_u16(),
                            };
                            routing.failed(&self.table, &endpoint, &why);
                        }
                        let id = request_id.clone();
                        resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
                        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                            if let Some(client) = client_upgrade {
                                let upstream = hyper::upgrade::on(&mut resp);
                                upgrade::splice(
                                    client,
                                    upstream,
                                    endpoint.id.clone(),
                                    in_flight,
                                    routing.tunnel_idle_timeout,
                                );
                                let (parts, _) = resp.into_parts();
                                return Response::from_parts(parts, ProxyBody::empty());
                            }
                        }
                        strip_hop_by_hop(resp.headers_mut(), None);
                        if resp.version() == Version::HTTP_2 {
                            // From an h2 backend; hyper's HTTP/1.1 side would
                            // coerce it anyway, and takes its fast path for 1.1.
                            *resp.version_mut() = Version::HTTP_11;
                        }
                        let (parts, body) = resp.into_parts();
                        let lease = Lease {
                            conn: Some(conn),
                            _in_flight: in_flight,
                            reuse: !isolate,
                        };
                        return Response::from_parts(
                            parts,
                            ProxyBody::upstream(body, lease, routing.read_timeout),
                        );
                    }
                    Err(mut e) => {
                        let unsent = e.take_message();
                        let source = e.into_error();
                        // An h2 backend that refused the stream or sent
                        // GOAWAY before it did not process the request
                        // (RFC 9113 §8.7): as if it had never been sent.
                        let refused = refusal(&source);
                        let reached_backend = unsent.is_none() && refused.is_none();
                        tracing::debug!(backend = %endpoint.id, reused = conn.reused, sent = unsent.is_none(), refused = ?refused, error = %source, "upstream request failed");
                        // Sent again: what was never sent; a request the
                        // backend did not process (refused), whatever its
                        // method; or an idempotent one.
                        let again = unsent.or_else(|| {
                            replay
                                .as_ref()
                                .filter(|_| idempotent || refused.is_some())
                                .map(Replay::build)
                        });
                        let same_backend = match refused {
                            // The connection is going away, the backend is
                            // not (a graceful restart, a per-connection
                            // request limit): a new connection takes the
                            // request it did not process.
                            Some(Refusal::GoAway) => reconnects < MAX_GOAWAY_RECONNECTS,
                            // The backend sheds load: another one should
                            // take it.
                            Some(Refusal::RefusedStream) => false,
                            // Most likely the backend closed this idle
                            // keep-alive connection just as we used it:
                            // once, a new connection before moving on.
                            None => conn.reused && reconnects == 0,
                        };
                        if same_backend {
                            if let Some(r) = again {
                                reconnects += 1;
                                match endpoint.pool.reconnect(&conn).await {
                                    Ok(fresh) => {
                                        conn = fresh;
                                        req = r;
                                        continue;
                                    }
                                    Err(source) => {
                                        pending = Some(r);
                                        last_error = ProxyError::Connect {
                                            backend: endpoint.id.clone(),
                                            source,
                                        };
                                        break;
                                    }
                                }
                            }
                        }
                        if source.is_user() {
                            // Our side failed: the client's body was
                            // malformed or cut. Not the backend's fault, and
                            // nothing to retry.
                            last_error = ProxyError::ClientBody(source);
                            pending = None;
                            break;
                        }
                        last_error = ProxyError::Upstream {
                            backend: endpoint.id.clone(),
                            source,
                        };
                        if refused.is_none() {
                            // A refusal is the backend shedding load or
                            // going away cleanly, not a failure.
                            routing.failed(&self.table, &endpoint, &last_error);
                        }
                        charge = reached_backend;
                        // `again` is the unsent request or a replay; without
                        // one, a body was (partly) consumed or the method is
                        // not safe to repeat: answer with the error.
                        pending = again;
                        break;
                    }
                }
            }
            if pending.is_none() {
                break;
            }
        }
        tracing::warn!(request_id = ?request_id, error = %last_error, status = last_error.status().as_u16(), "request failed");
        last_error.to_response(&request_id, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(host: Option<&str>, te: bool) -> Request<UpstreamBody> {
        let mut req = Request::new(Either::Right(Full::new(Bytes::new())));
        *req.uri_mut() = "/p?q=1".parse().unwrap();
        if let Some(h) = host {
            req.headers_mut().insert(header::HOST, h.parse().unwrap());
        }
        if te {
            req.headers_mut()
                .insert(header::TE, HeaderValue::from_static("trailers"));
            req.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("te"));
        }
        req
    }

    #[test]
    fn h2_backends_get_authority_and_no_connection_headers() {
        let mut req = request(Some("api.test:8443"), true);
        for_protocol(&mut req, UpstreamProtocol::H2, "127.0.0.1:9000");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.uri(), "http://api.test:8443/p?q=1");
        assert!(
            req.headers().get(header::HOST).is_none(),
            "Host → :authority"
        );
        assert!(req.headers().get(header::CONNECTION).is_none());
        assert_eq!(req.headers()[header::TE], "trailers");

        // Unsent, then to an HTTP/1.1 backend: back as it was.
        for_protocol(&mut req, UpstreamProtocol::Http1, "127.0.0.1:9001");
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri(), "/p?q=1");
        assert_eq!(req.headers()[header::HOST], "api.test:8443");
        assert_eq!(req.headers()[header::CONNECTION], "te");

        // No usable Host: the backend's own address.
        let mut req = request(None, false);
        for_protocol(&mut req, UpstreamProtocol::H2, "127.0.0.1:9000");
        assert_eq!(req.uri(), "http://127.0.0.1:9000/p?q=1");
        let mut req = request(Some("bad host"), false);
        for_protocol(&mut req, UpstreamProtocol::H2, "127.0.0.1:9000");
        assert_eq!(req.uri(), "http://127.0.0.1:9000/p?q=1");
    }

    #[test]
    fn http1_requests_are_left_alone() {
        let mut req = request(Some("a.test"), false);
        for_protocol(&mut req, UpstreamProtocol::Http1, "127.0.0.1:9000");
        assert_eq!(req.uri(), "/p?q=1");
        assert_eq!(req.headers()[header::HOST], "a.test");
        assert_eq!(req.headers().len(), 1);
    }

    #[test]
    fn absolute_targets_become_origin_form() {
        assert_eq!(origin_form(&"http://a.b/x?y=1".parse().unwrap()), "/x?y=1");
        assert_eq!(origin_form(&"http://a.b".parse().unwrap()), "/");
        assert_eq!(origin_form(&"/p".parse().unwrap()), "/p");
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
        let proxy = super::Proxy::new(
            table,
            super::Routing::new(&Default::default(), &Default::default()),
        );
        let handle = |req: http::Request<super::RequestBody>| {
            proxy.handle(
                req,
                ([127, 0, 0, 1], 1).into(),
                ([127, 0, 0, 1], 2).into(),
                "http",
            )
        };
        let size = size_of_return(&handle);
        assert!(size <= 1024, "Proxy::handle's future is {size} bytes");
        let pool = crate::proxy::pool::Pool::new(([127, 0, 0, 1], 1).into(), Default::default());
        let checkout = |_: ()| pool.checkout();
        let size = size_of_return(&checkout);
        assert!(size <= 128, "Pool::checkout's future is {size} bytes");
    }
}
