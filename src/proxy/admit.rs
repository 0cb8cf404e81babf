//! The *admit* phase on hyper's path: a request refused for its framing
//! or by `request_rules` is answered here and never forwarded; an admitted
//! one gets the balancer's key from its view and its head rewritten for
//! the backend by the header rule table (`proxy::headers`). The native
//! engine hands every request these rules would refuse to this path.

use std::net::SocketAddr;

use http::header::{self, HeaderValue};
use http::{Request, Response, Version};

use super::answer::Answer;
use super::body::ProxyBody;
use super::error::{wants_json, ProxyError};
use super::headers::{
    ambiguous_framing, client_ip, forward, strip_hop_by_hop, te_trailers, upgrade_offer,
};
use super::limits::RequestBody;
use super::protocol::origin_form;
use super::request_id;
use super::request_rules;
use super::routing::Routing;
use super::trace::{self, Trace};
use crate::access_log::Facts;
use crate::balance::{Headers, RequestView};
use crate::ratelimit::{Asked, RateNote};
use crate::routes::{Action, Fixed};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

/// A request admitted and rewritten for the backend, with what the
/// attempts need of it.
pub(super) struct Ready {
    pub(super) parts: http::request::Parts,
    /// The route it took (an index into `Routing::routes`), one that sends
    /// it to a pool.
    pub(super) route: usize,
    /// The balancer's key (`hash`, `ip_hash`).
    pub(super) key: Option<u64>,
    /// The backend the route's sticky cookie names (`sticky`).
    pub(super) pin: Option<u64>,
    pub(super) request_id: HeaderValue,
    /// Errors are answered in JSON.
    pub(super) json: bool,
    pub(super) upgrading: bool,
    /// The client's side of an upgrade, resolved once it is answered 101.
    pub(super) client_upgrade: Option<hyper::upgrade::OnUpgrade>,
    /// The keys the rate limits count it under.
    pub(super) limits: Asked,
    /// What the access log says of it (when it is on).
    pub(super) facts: Option<Box<Facts>>,
    /// Its body's bytes as they are read (when the access log is on).
    pub(super) tally: Option<Arc<AtomicU64>>,
    /// The path and query as the client sent them, for a route that
    /// caches (its key).
    pub(super) cache_target: Option<Box<str>>,
}

/// A request shoal answers itself: refused (no rate limit counts it), or
/// answered by its route or as having none (the rate limits decide first).
pub(super) struct Answered {
    pub(super) resp: Response<ProxyBody>,
    pub(super) limits: Asked,
    pub(super) request_id: HeaderValue,
    pub(super) json: bool,
    pub(super) facts: Option<Box<Facts>>,
}

impl Answered {
    fn refused(resp: Response<ProxyBody>, request_id: HeaderValue, json: bool) -> Box<Answered> {
        Box::new(Answered {
            resp,
            limits: Asked::default(),
            request_id,
            json,
            facts: None,
        })
    }
}

/// The *admit* phase (framing and `request_rules`), the balancer's key,
/// and the request's head rewritten for the backend (`proxy::headers`):
/// hop-by-hop headers, `Host`, the forwarding headers, origin-form,
/// HTTP/1.1. `Err`: the answer to a refused request.
pub(super) fn admit(
    req: Request<RequestBody>,
    routing: &Routing,
    (peer, local, proto): (SocketAddr, SocketAddr, &'static str),
    listener: &str,
) -> Result<(Ready, RequestBody), Box<Answered>> {
    let (mut parts, mut body) = req.into_parts();
    let version = parts.version;
    let client = client_ip(peer.ip(), &parts.headers, &routing.trusted);
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
        let resp = e.to_response(&request_id, json);
        return Err(Answered::refused(resp, request_id, json));
    }
    set_host(&mut parts, local);
    // Routes see the path as the application behind will read it (and
    // the backend gets that path): `..`, `//` and unreserved escapes
    // resolved (`request_rules::normalized`).
    if let Some(path) = request_rules::normalized(parts.uri.path()) {
        let target = match parts.uri.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        let mut uri = std::mem::take(&mut parts.uri).into_parts();
        uri.path_and_query = target.parse().ok();
        if let Ok(u) = http::Uri::from_parts(uri) {
            parts.uri = u;
        }
    }
    // The *route* phase, on the request as the client sent it (Host set).
    let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let view = RequestView {
        listener,
        host: parts.headers.get(header::HOST).map(|h| h.as_bytes()),
        client,
        method: parts.method.as_str(),
        target,
        headers: Headers::Map(&parts.headers),
    };
    let routed = route_of(routing, &view);
    if let Some(r) = routed.route() {
        routing.routes.get(r).stats.request();
    }
    let (route, key, pin) = match routed {
        Routed::To { route, key, pin } => (route, key, pin),
        Routed::Answer { route, answer } => {
            let Taken { limits, facts, .. } = take(
                routing,
                &view,
                route,
                request_id.as_bytes(),
                protocol(version),
            );
            let resp = match answer {
                Some(fixed) => fixed.to_response(&request_id),
                None => no_route(request_id.as_bytes(), json, peer, view.path()).to_response(),
            };
            return Err(Box::new(Answered {
                resp,
                limits,
                request_id,
                json,
                facts,
            }));
        }
    };
    let chosen = routing.routes.get(route);
    let Taken {
        limits,
        trace,
        replace_trace,
        facts,
    } = take(
        routing,
        &view,
        Some(route),
        request_id.as_bytes(),
        protocol(version),
    );
    if replace_trace {
        // Not a valid context: its state goes with it (W3C Trace Context §4.3).
        parts.headers.remove("traceparent");
        parts.headers.remove("tracestate");
    }
    if let Trace::Started { header, .. } = &trace {
        if let Ok(v) = HeaderValue::from_bytes(header) {
            parts.headers.insert("traceparent", v);
        }
    }
    let tally = facts.as_ref().map(|_| body.tally());
    let cache_target = chosen.cache.as_ref().map(|_| Box::from(target));
    let rewritten = match chosen.path.apply(target) {
        std::borrow::Cow::Owned(t) => Some(t),
        std::borrow::Cow::Borrowed(_) => None,
    };
    if let Err(e) = body.limit_to(chosen.max_body_size) {
        tracing::warn!(request_id = ?request_id, error = %e, status = 413, "request refused");
        let resp = e.to_response(&request_id, json);
        return Err(Answered::refused(resp, request_id, json));
    }
    let offer = if parts.version == Version::HTTP_11 {
        upgrade_offer(&parts.headers)
    } else {
        None
    };
    let upgrading = offer.is_some();
    let te_trailers = !upgrading && te_trailers(&parts.headers);
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
    chosen.request_headers.apply(&mut parts.headers);
    parts.uri = match rewritten.and_then(|t| t.parse().ok()) {
        Some(uri) => uri,
        None => origin_form(&parts.uri),
    };
    parts.version = Version::HTTP_11;
    let client_upgrade = upgrading.then(|| {
        let mut stub = Request::new(());
        *stub.extensions_mut() = std::mem::take(&mut parts.extensions);
        hyper::upgrade::on(stub)
    });
    let ready = Ready {
        parts,
        route,
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
    };
    Ok((ready, body))
}

/// What the *route* phase made of a request.
pub(crate) enum Routed<'r> {
    /// To the pool of the route at this index, with the balancer's key
    /// and the backend its sticky cookie names (`sticky`), if it has one
    /// and a valid cookie.
    To {
        route: usize,
        key: Option<u64>,
        pin: Option<u64>,
    },
    /// Answered by the route at `route` (`redirect`, `respond`), or, when
    /// no route takes it (`None`), 404.
    Answer {
        route: Option<usize>,
        answer: Option<Fixed<'r>>,
    },
}

impl Routed<'_> {
    /// The route that took the request, if one did.
    pub(crate) fn route(&self) -> Option<usize> {
        match self {
            Routed::To { route, .. } => Some(*route),
            Routed::Answer { route, .. } => *route,
        }
    }
}

/// The route `view` takes, and what it does: the request's pool and its
/// balancer's key, or the route's own answer. Both engines call this.
pub(crate) fn route_of<'r>(routing: &'r Routing, view: &RequestView<'_>) -> Routed<'r> {
    let Some(index) = routing.routes.find(view) else {
        return Routed::Answer {
            route: None,
            answer: None,
        };
    };
    let route = routing.routes.get(index);
    match &route.action {
        // Served on hyper's path (`forward`), as a pool would serve it.
        Action::Files(_) => Routed::To {
            route: index,
            key: None,
            pin: None,
        },
        Action::To(pool) => {
            let key = routing
                .pools
                .get(*pool)
                .filter(|p| p.balancer.uses_key())
                .and_then(|p| p.balancer.request_key(view));
            // An invalid cookie is no pin: balanced as any request.
            let pin = route.sticky.as_ref().and_then(|s| s.pinned(&view.headers));
            Routed::To {
                route: index,
                key,
                pin,
            }
        }
        Action::Redirect(r) => Routed::Answer {
            route: Some(index),
            answer: Some(Fixed::redirect(r, view)),
        },
        Action::Respond(r) => Routed::Answer {
            route: Some(index),
            answer: Some(Fixed::respond(r)),
        },
    }
}

/// No route takes the request: 404, in JSON or text as shoal's errors;
/// both engines answer with this.
pub(crate) fn no_route<'a>(
    request_id: &'a [u8],
    json: bool,
    peer: SocketAddr,
    path: &str,
) -> Answer<'a> {
    tracing::info!(request_id = ?String::from_utf8_lossy(request_id), %peer, path, "no route for the request (404)");
    Answer {
        status: http::StatusCode::NOT_FOUND,
        kind: "no_route",
        request_id,
        json,
        rate: None,
    }
}

/// What the *admit* phase takes of a request once its route is known
/// (`route`: the route's index, `None` when none took it): the keys the
/// rate limits count it under, its trace, and its access-log facts. Both
/// engines call this.
pub(crate) struct Taken {
    pub(crate) limits: Asked,
    pub(crate) trace: Trace,
    /// The client's `traceparent` does not parse and is to be replaced.
    pub(crate) replace_trace: bool,
    pub(crate) facts: Option<Box<Facts>>,
}

pub(crate) fn take(
    routing: &Routing,
    view: &RequestView<'_>,
    route: Option<usize>,
    request_id: &[u8],
    protocol: &'static str,
) -> Taken {
    let name = route.map(|r| &routing.routes.get(r).name);
    let limits = routing.limits.asks(view, route, name.map_or("", |n| n));
    let (trace, replace_trace) = trace::of(view, routing.trace, routing.access_log.is_some());
    let facts = routing
        .access_log
        .as_ref()
        .map(|log| log.facts(view, request_id, protocol, name.cloned(), trace.id()));
    Taken {
        limits,
        trace,
        replace_trace,
        facts,
    }
}

/// A rate limit refused the request: 429 with `Retry-After` and the
/// RateLimit headers, in JSON or text as shoal's errors; both engines
/// answer with this.
pub(crate) fn rate_limited(request_id: &[u8], json: bool, note: RateNote) -> Answer<'_> {
    tracing::debug!(request_id = ?String::from_utf8_lossy(request_id), retry_after = ?note.retry_after_s, "rate limited (429)");
    Answer {
        status: http::StatusCode::TOO_MANY_REQUESTS,
        kind: "rate_limited",
        request_id,
        json,
        rate: Some(note),
    }
}

/// The protocol as the access log writes it.
fn protocol(version: Version) -> &'static str {
    match version {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_09 => "HTTP/0.9",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
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
