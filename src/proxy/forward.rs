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

use super::attempt::{Attempts, Next, Reach, Resend};
use super::body::{Lease, ProxyBody};
use super::error::{wants_json, ProxyError};
use super::headers::{
    ambiguous_framing, client_ip, forward, strip_hop_by_hop, te_trailers, upgrade_offer,
};
use super::pool::{refusal, PooledConn, Sender, UpstreamBody};
use super::request_id::{self, X_REQUEST_ID};
use super::request_rules;
use super::retry_budget::RetryBudget;
use super::routing::Routing;
use super::upgrade;
use hyper::body::Incoming;
use hyper::client::conn::TrySendError;
use std::time::Duration;

use crate::balance::{Endpoint, EndpointTable, Headers, InFlight, RequestView};
use arc_swap::ArcSwap;
use shoal_config::UpstreamProtocol;

pub struct Proxy {
    table: Arc<EndpointTable>,
    routing: ArcSwap<Routing>,
    budget: RetryBudget,
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
        // Owned: it lives across the awaits below (arc-swap's guards are
        // meant for short borrows).
        let routing = self.routing.load_full();
        let (ready, body) = match admit(req, &routing, peer, local, proto) {
            Ok(admitted) => admitted,
            Err(refused) => return *refused,
        };
        let Ready {
            parts,
            key,
            request_id,
            json,
            upgrading,
            client_upgrade,
        } = ready;
        let (first_body, replay) = match keep_body(body, &parts, upgrading, &routing).await {
            Ok(kept) => kept,
            Err(e) => {
                tracing::warn!(request_id = ?request_id, %peer, error = %e, "request failed");
                return e.to_response(&request_id, json);
            }
        };
        let mut ex = Exchange {
            routing: &routing,
            request_id: &request_id,
            idempotent: request_rules::idempotent(parts.method.as_str().as_bytes()),
            replay,
            isolate,
            client_upgrade,
        };
        let mut pending = Some(Request::from_parts(parts, first_body));
        let mut attempts = Attempts::new(self, &routing, key);
        let mut last_error = ProxyError::NoBackend;
        while let Some(endpoint) = attempts.pick(&request_id) {
            // Every way round the loop leaves in `pending` what may be
            // sent next: the unsent request, a replay, or nothing.
            let Some(req) = pending.take() else {
                break;
            };
            let in_flight = attempts.begin(&endpoint);
            match self
                .on_backend(&mut ex, &mut attempts, &endpoint, in_flight, req)
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
        last_error.to_response(&request_id, json)
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
        let routing = ex.routing;
        let mut conn = match endpoint.pool.checkout().await {
            Ok(c) => c,
            Err(source) => {
                tracing::debug!(backend = %endpoint.id, error = %source, "connect failed, trying another backend");
                let e = ProxyError::Connect {
                    backend: endpoint.id.clone(),
                    source,
                };
                // Nothing was sent: the request, body and all, can go elsewhere.
                attempts.failed(endpoint, &e, Reach::Unsent, false, ex.resend(true));
                return Err((e, Some(req)));
            }
        };
        let mut req = req;
        loop {
            for_protocol(&mut req, conn.protocol(), &endpoint.authority);
            let started = std::time::Instant::now();
            let sent = send_within(&mut conn.sender, req, routing.response_header_timeout).await;
            let (error, reach, unsent) = match sent {
                Some(Ok(resp)) => {
                    routing.observe(self.table(), endpoint, resp.status().as_u16(), started);
                    return Ok(ex.respond(resp, endpoint, conn, in_flight));
                }
                // Dropping the exchange closed its connection (HTTP/1.1) or
                // reset its stream (h2): the request may have been processed.
                None => {
                    let e = ProxyError::Timeout {
                        backend: endpoint.id.clone(),
                        after: routing.response_header_timeout,
                    };
                    (e, Reach::TimedOut, None)
                }
                Some(Err(mut e)) => {
                    let unsent = e.take_message();
                    let source = e.into_error();
                    // An h2 backend that refused the stream or sent GOAWAY
                    // before it did not process the request (RFC 9113 §8.7).
                    let reach = match (refusal(&source), &unsent) {
                        (Some(r), _) => Reach::Refused(r),
                        (None, Some(_)) => Reach::Unsent,
                        (None, None) => Reach::Sent {
                            response_started: false,
                        },
                    };
                    tracing::debug!(backend = %endpoint.id, reused = conn.reused, ?reach, error = %source, "upstream request failed");
                    if source.is_user() {
                        // Our side failed: the client's body was malformed
                        // or cut. Not the backend's fault; nothing to retry.
                        return Err((ProxyError::ClientBody(source), None));
                    }
                    let e = ProxyError::Upstream {
                        backend: endpoint.id.clone(),
                        source,
                    };
                    (e, reach, unsent)
                }
            };
            let resend = ex.resend(unsent.is_some());
            let next = attempts.failed(endpoint, &error, reach, conn.reused, resend);
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
                    let e = ProxyError::Connect {
                        backend: endpoint.id.clone(),
                        source,
                    };
                    return Err((e, Some(again)));
                }
            }
        }
    }
}

/// A request admitted and rewritten for the backend, with what the
/// attempts need of it.
struct Ready {
    parts: http::request::Parts,
    /// The balancer's key (`hash`, `ip_hash`).
    key: Option<u64>,
    request_id: HeaderValue,
    /// Errors are answered in JSON.
    json: bool,
    upgrading: bool,
    /// The client's side of an upgrade, resolved once it is answered 101.
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

/// The *admit* phase (framing and `request_rules`), the balancer's key,
/// and the request's head rewritten for the backend (`proxy::headers`):
/// hop-by-hop headers, `Host`, the forwarding headers, origin-form,
/// HTTP/1.1. `Err`: the answer to a refused request.
#[allow(clippy::result_large_err)]
fn admit(
    req: Request<RequestBody>,
    routing: &Routing,
    peer: SocketAddr,
    local: SocketAddr,
    proto: &'static str,
) -> Result<(Ready, RequestBody), Box<Response<ProxyBody>>> {
    let (mut parts, body) = req.into_parts();
    let client = client_ip(peer.ip(), &parts.headers, &routing.trusted);
    // What the balancer needs of the request (hash, ip_hash), as the
    // client sent it, reduced to a u64 before `parts` is rewritten.
    let key = routing.balancer.request_key(&RequestView {
        client,
        method: parts.method.as_str(),
        target: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        headers: Headers::Map(&parts.headers),
    });
    let request_id = request_id::ensure(&mut parts.headers);
    let json = wants_json(&parts.headers);
    let refused = ambiguous_framing(&parts.headers)
        .map(ProxyError::BadFraming)
        .or_else(|| {
            request_rules::refusal(&parts.method, &parts.uri, parts.version, &parts.headers)
                .map(ProxyError::BadRequest)
        });
    if let Some(e) = refused {
        tracing::info!(request_id = ?request_id, %peer, error = %e, "request rejected");
        return Err(Box::new(e.to_response(&request_id, json)));
    }
    let offer = if parts.version == Version::HTTP_11 {
        upgrade_offer(&parts.headers)
    } else {
        None
    };
    let upgrading = offer.is_some();
    let te_trailers = !upgrading && te_trailers(&parts.headers);
    set_host(&mut parts, local);
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
    // Continue when the body is first read); not passed on, as nginx and
    // Envoy do.
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
        let mut stub = Request::new(());
        *stub.extensions_mut() = std::mem::take(&mut parts.extensions);
        hyper::upgrade::on(stub)
    });
    let ready = Ready {
        parts,
        key,
        request_id,
        json,
        upgrading,
        client_upgrade,
    };
    Ok((ready, body))
}

/// The target's authority wins over `Host`: an h2 client's `:authority`
/// (RFC 9113 §8.3.1), or an absolute-form target (RFC 9112 §3.2.2), as
/// Envoy and nginx. Without either (HTTP/1.0, or h2 without `:authority`)
/// the backend, which gets HTTP/1.1, is given the address the client
/// reached (`ip:port`, `[v6]:port`), as nginx's `$host` falls back to the
/// server's own name. Before `forward`, which copies `Host` into
/// `X-Forwarded-Host`.
fn set_host(parts: &mut http::request::Parts, local: SocketAddr) {
    if let Some(a) = parts.uri.authority() {
        if let Ok(v) = HeaderValue::from_str(a.as_str()) {
            parts.headers.insert(header::HOST, v);
        }
    } else if !parts.headers.contains_key(header::HOST) {
        if let Ok(v) = HeaderValue::from_str(&local.to_string()) {
            parts.headers.insert(header::HOST, v);
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
    routing: &Routing,
) -> Result<(UpstreamBody, Option<Replay>), ProxyError> {
    let small = body
        .size_hint()
        .exact()
        .is_some_and(|n| n <= routing.replay_body_size);
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
    let replay =
        (!upgrading && (buffered.is_some() || first_body.is_end_stream())).then(|| Replay {
            method: parts.method.clone(),
            uri: parts.uri.clone(),
            headers: parts.headers.clone(),
            body: buffered.unwrap_or_default(),
        });
    Ok((first_body, replay))
}

/// What the attempts of one request share on hyper's path.
struct Exchange<'r> {
    routing: &'r Routing,
    request_id: &'r HeaderValue,
    idempotent: bool,
    /// What to send again after the first attempt consumed the request.
    replay: Option<Replay>,
    /// Neither connection is reused after this request (`isolated`).
    isolate: bool,
    client_upgrade: Option<hyper::upgrade::OnUpgrade>,
}

impl Exchange<'_> {
    /// What the request allows; `given_back`: the failed attempt returned
    /// it unsent.
    fn resend(&self, given_back: bool) -> Resend {
        Resend {
            idempotent: self.idempotent,
            replayable: given_back || self.replay.is_some(),
        }
    }

    fn replay(&self) -> Option<Request<UpstreamBody>> {
        self.replay.as_ref().map(Replay::build)
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
        Response::from_parts(
            parts,
            ProxyBody::upstream(body, lease, self.routing.read_timeout),
        )
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
