//! A client's request head: parsed in place (httparse), checked for what
//! the native engine serves, and written out again for the backend with
//! the same rewriting the hyper path does (`proxy::headers`,
//! `proxy::request_id`): hop-by-hop and `Connection`-named headers
//! removed, `X-Request-Id` kept or generated, `X-Forwarded-For/-Proto/-Host`
//! and `X-Real-IP` set (believed only from `trusted_proxies`), `te:
//! trailers` kept with `Connection: te`.
//!
//! The native engine serves plain HTTP/1.1 requests without a body. Anything
//! else — a body, `Transfer-Encoding`, an upgrade, `Expect`, an absolute or
//! `*` target, HTTP/1.0, a framing-lookalike header name, a head that does
//! not parse, a target or `Host` outside `request_rules`' plain byte sets,
//! no `Host` or two — is [`Head::Handoff`]: hyper reads the same bytes again and
//! answers as it always did (the smuggling defences of ARCHITECTURE.md
//! included), so every refusal is made in one place.

use std::mem::MaybeUninit;
use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;

use super::cached::CacheRequest;
use super::files::FileRequest;
use super::head::{add_lines, edit_head, header, tokens, ConnectionNamed};
use crate::access_log::Facts;
use crate::proxy::admit::{no_route, route_of, take, Routed, Taken};
use crate::proxy::headers::{self, client_ip_from, framing_lookalike_name, IpText, Rule};
use crate::proxy::request_id;
use crate::proxy::request_rules;
use crate::proxy::routing::Routing;
use crate::proxy::trace::Trace;
use crate::proxy::view::{Headers, RequestView};
use crate::ratelimit::{Asked, RateNote};
use crate::routes::Action;

/// Header lines a request may have on the native path (hyper's own limit
/// is 100 too); more is handed to hyper, which answers 431.
pub const MAX_HEADERS: usize = 100;

/// A request id: the client's (at most 128 bytes) or a generated one.
#[derive(Clone, Copy)]
pub struct RequestId {
    buf: [u8; 128],
    len: u8,
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self.as_bytes()))
    }
}

impl RequestId {
    /// At most 128 bytes (`request_id::usable`).
    pub(super) fn from_client(id: &[u8]) -> RequestId {
        let mut buf = [0u8; 128];
        buf[..id.len()].copy_from_slice(id);
        RequestId {
            buf,
            len: id.len() as u8,
        }
    }

    fn generate() -> RequestId {
        let hex = request_id::generate_hex();
        RequestId::from_client(&hex)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..usize::from(self.len)]
    }
}

/// What the engine needs to know of a request it serves.
pub struct Prepared {
    /// Bytes of the client's buffer the head took.
    pub len: usize,
    /// `HEAD`: the response has no body whatever it says.
    pub head_only: bool,
    /// Safe to send again after it reached a backend (GET, HEAD, OPTIONS,
    /// PUT, DELETE, TRACE).
    pub idempotent: bool,
    /// The client did not ask to close (`Connection: close`).
    pub keep_alive: bool,
    /// Errors are answered in JSON (`Accept: application/json`).
    pub json: bool,
    pub request_id: RequestId,
    /// The balancer's key for this request (`hash`, `ip_hash`), if any.
    pub key: Option<u64>,
    /// The backend the route's sticky cookie names (`sticky`), if any.
    pub pin: Option<u64>,
    /// The route it took (an index into `Routing::routes`; `usize::MAX`
    /// when none took it).
    pub route: usize,
    /// The keys the rate limits count it under (none when no rule applies).
    pub limits: Asked,
    /// What the rate limits' headers say, once they decided.
    pub rate: Option<RateNote>,
    /// What the access log says of the request (when it is on).
    pub facts: Option<Box<Facts>>,
    /// An answer's body to write after `out`'s head (a cache hit's stored
    /// body, never copied); empty otherwise.
    pub body: Bytes,
    /// What the cache did, for the access log (a hit answered here).
    pub cache: Option<&'static str>,
}

pub enum Head {
    /// The head has not all arrived yet.
    Partial,
    /// hyper serves this request and the rest of the connection.
    Handoff(&'static str),
    /// For a backend: `out` holds the head it gets.
    Ready(Prepared),
    /// Answered by shoal (a route's `redirect` or `respond`, or 404 when
    /// no route takes it): `out` holds the whole answer for the client.
    Answered(Prepared),
}

/// The headers the engine treats specially, by lowercase name.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Other,
    /// Removed on the way (hop-by-hop; `X-Real-IP` and `X-Request-Id` are
    /// written anew).
    Drop,
    Host,
    ContentLength,
    Connection,
    Te,
    Xff,
    Xfp,
    Xfh,
    RequestId,
    Accept,
    /// Not for the native engine: hyper decides.
    Handoff,
}

fn classify(name: &[u8]) -> Name {
    match headers::rule(name) {
        Rule::Host => Name::Host,
        Rule::ContentLength => Name::ContentLength,
        Rule::Connection => Name::Connection,
        Rule::Te => Name::Te,
        Rule::ForwardedFor => Name::Xff,
        Rule::ForwardedProto => Name::Xfp,
        Rule::ForwardedHost => Name::Xfh,
        Rule::RequestId => Name::RequestId,
        // Written anew, or never passed on.
        Rule::HopByHop | Rule::RealIp => Name::Drop,
        // hyper's path frames bodies, answers `Expect` and upgrades.
        Rule::TransferEncoding | Rule::Upgrade | Rule::Expect => Name::Handoff,
        Rule::Pass if name.eq_ignore_ascii_case(b"accept") => Name::Accept,
        Rule::Pass if framing_lookalike_name(name) => Name::Handoff,
        Rule::Pass => Name::Other,
    }
}

/// Parse the head at the start of `buf` and, for a request the engine
/// serves, take it through the *route* phase (`routing`) and write the
/// head the backend gets into `out` (cleared first) — or, for a request a
/// route answers itself, the answer. `draining`: the listener's drain has
/// begun, so the connection ends after this request.
pub fn prepare(
    buf: &[u8],
    (peer, listener, draining): (SocketAddr, &str, bool),
    proto: &'static str,
    routing: &Routing,
    out: &mut Vec<u8>,
) -> Head {
    let trusted = &routing.trusted;
    // Uninitialised: httparse writes the lines it finds (filling 100
    // empty headers first would be 3 KiB of stores per request).
    let mut headers = [const { MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, &mut headers) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Head::Partial,
        Err(_) => return Head::Handoff("head does not parse"),
    };
    let (Some(method), Some(path), Some(1)) = (req.method, req.path, req.version) else {
        return Head::Handoff("not HTTP/1.1");
    };
    if !path.starts_with('/') {
        return Head::Handoff("absolute or asterisk target");
    }
    let path_only = path.as_bytes().split(|&b| b == b'?').next().unwrap_or(b"");
    if request_rules::needs_normalizing(path_only) {
        // `..`, `//`, an escape: hyper's path gives routes the path as
        // the application reads it (`request_rules::normalized`).
        return Head::Handoff("path to normalise");
    }
    if !request_rules::plain_target(path.as_bytes()) {
        // A fragment to cut, or bytes hyper's path answers 400 to.
        return Head::Handoff("target for hyper's rules");
    }
    if method == "CONNECT" {
        return Head::Handoff("CONNECT");
    }

    // One pass to learn what the headers say; a second writes them out.
    let mut kinds = [Name::Other; MAX_HEADERS];
    // Filled in place: it is a few hundred bytes, not to be moved.
    let mut seen = Seen::new();
    if let Err(why) = survey(req.headers, &mut kinds, &mut seen) {
        return Head::Handoff(why);
    }
    seen.keep_alive &= !draining;
    let trusted_peer = trusted.contains(peer.ip());
    let client = if trusted_peer {
        let xff = req
            .headers
            .iter()
            .zip(&kinds)
            .filter(|(_, k)| **k == Name::Xff)
            .map(|(h, _)| h.value);
        client_ip_from(peer.ip(), xff, trusted)
    } else {
        peer.ip()
    };
    let request_id = match seen.client_id {
        Some(id) if request_id::usable(id) => RequestId::from_client(id),
        _ => RequestId::generate(),
    };
    let view = RequestView {
        listener,
        host: Some(seen.host),
        client,
        method,
        target: path,
        headers: Headers::Lines(req.headers),
    };
    let (route, key, pin) = match route_of(routing, &view) {
        Routed::To { route, key, pin } => (route, key, pin),
        Routed::Answer { route, answer } => {
            let Taken { limits, facts, .. } =
                take(routing, &view, route, request_id.as_bytes(), "HTTP/1.1");
            out.clear();
            let close = !seen.keep_alive;
            let head_only = method == "HEAD";
            match answer {
                Some(fixed) => fixed.write_h1(out, request_id.as_bytes(), close, head_only),
                None => no_route(request_id.as_bytes(), seen.json, peer, view.path())
                    .write_h1(out, close, head_only),
            }
            let route = route.unwrap_or(usize::MAX);
            return Head::Answered(answered(
                len,
                method,
                &seen,
                request_id,
                (route, limits, facts),
            ));
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
        "HTTP/1.1",
    );
    if replace_trace {
        // A `traceparent` that does not parse, to be replaced: hyper's
        // path takes headers out.
        return Head::Handoff("traceparent to replace");
    }
    if let Some(cache) = chosen.cache.as_deref() {
        let req = CacheRequest {
            method,
            scheme: proto,
            host: seen.host,
            target: path,
            headers: req.headers,
            request_id: request_id.as_bytes(),
            keep_alive: seen.keep_alive,
        };
        let Some(body) = super::cached::answer(cache, chosen, &req, out) else {
            // The cache's whole lookup is on hyper's path.
            return Head::Handoff("cache");
        };
        return Head::Answered(Prepared {
            body,
            cache: Some("HIT"),
            ..answered(len, method, &seen, request_id, (route, limits, facts))
        });
    }
    if let Some(why) = chosen.for_hyper(&view) {
        return Head::Handoff(why);
    }
    if let Action::Files(files) = &chosen.action {
        let req = FileRequest {
            method,
            target: &chosen.path.apply(path),
            headers: req.headers,
            request_id: request_id.as_bytes(),
            json: seen.json,
            keep_alive: seen.keep_alive,
        };
        if !super::files::answer(files, chosen, &req, out) {
            return Head::Handoff("a file that streams");
        }
        return Head::Answered(answered(
            len,
            method,
            &seen,
            request_id,
            (route, limits, facts),
        ));
    }
    let who = Who {
        peer: peer.ip(),
        client,
        trusted_peer,
        proto,
        request_id: &request_id,
    };
    let target = chosen.path.apply(path);
    write_head(out, (method, &target), req.headers, &kinds, &seen, &who);
    if let Trace::Started { header: value, .. } = &trace {
        add_lines(out, |o| header(o, b"traceparent", value));
    }
    if !chosen.request_headers.is_empty() {
        edit_head(out, &chosen.request_headers);
    }
    Head::Ready(Prepared {
        len,
        head_only: method == "HEAD",
        idempotent: request_rules::idempotent(method.as_bytes()),
        keep_alive: seen.keep_alive,
        json: seen.json,
        request_id,
        key,
        pin,
        route,
        limits,
        rate: None,
        facts,
        body: Bytes::new(),
        cache: None,
    })
}

/// A request shoal answered itself (its answer is in `out`).
fn answered(
    len: usize,
    method: &str,
    seen: &Seen<'_>,
    request_id: RequestId,
    (route, limits, facts): (usize, Asked, Option<Box<Facts>>),
) -> Prepared {
    Prepared {
        len,
        head_only: method == "HEAD",
        idempotent: true,
        keep_alive: seen.keep_alive,
        json: seen.json,
        request_id,
        key: None,
        pin: None,
        route,
        limits,
        rate: None,
        facts,
        body: Bytes::new(),
        cache: None,
    }
}

/// What a request's headers say, from one pass over them.
struct Seen<'h> {
    keep_alive: bool,
    te_trailers: bool,
    json: bool,
    host: &'h [u8],
    client_id: Option<&'h [u8]>,
    xff_first: Option<&'h [u8]>,
    has_xfp: bool,
    has_xfh: bool,
    /// The headers `Connection` names (removed on the way).
    named: ConnectionNamed<'h>,
}

impl Seen<'_> {
    fn new() -> Self {
        Seen {
            keep_alive: true,
            te_trailers: false,
            json: false,
            host: b"",
            client_id: None,
            xff_first: None,
            has_xfp: false,
            has_xfh: false,
            named: ConnectionNamed::new(),
        }
    }
}

/// Classify every header into `kinds` and learn what they say; `Err`: why
/// hyper's path serves this request instead.
fn survey<'h>(
    headers: &[httparse::Header<'h>],
    kinds: &mut [Name; MAX_HEADERS],
    seen: &mut Seen<'h>,
) -> Result<(), &'static str> {
    let mut host = None;
    let mut lengths = 0;
    for (h, kind) in headers.iter().zip(kinds.iter_mut()) {
        *kind = classify(h.name.as_bytes());
        match *kind {
            Name::Handoff => return Err("header for hyper"),
            Name::ContentLength => {
                lengths += 1;
                if h.value != b"0" || lengths > 1 {
                    return Err("request body");
                }
            }
            Name::Connection => {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        seen.keep_alive = false;
                    } else if t.eq_ignore_ascii_case(b"upgrade") {
                        return Err("upgrade");
                    } else if !t.eq_ignore_ascii_case(b"keep-alive") && !seen.named.push(t) {
                        return Err("Connection names many headers");
                    }
                }
            }
            Name::Te => {
                seen.te_trailers |= tokens(h.value).any(|t| t.eq_ignore_ascii_case(b"trailers"));
            }
            Name::Host => {
                // Two, or one that needs a closer look: hyper's path
                // decides (request_rules).
                if host.is_some() || !request_rules::plain_host(h.value) {
                    return Err("Host for hyper's rules");
                }
                host = Some(h.value);
            }
            Name::RequestId => {
                seen.client_id.get_or_insert(h.value);
            }
            Name::Xff => {
                seen.xff_first.get_or_insert(h.value);
            }
            Name::Xfp => seen.has_xfp = true,
            Name::Xfh => seen.has_xfh = true,
            Name::Accept => seen.json |= crate::proxy::error::accepts_json(h.value),
            Name::Other | Name::Drop => {}
        }
    }
    // HTTP/1.1 without Host: 400 on hyper's path.
    seen.host = host.ok_or("no Host")?;
    Ok(())
}

/// Who the request is from, for the forwarding headers.
struct Who<'a> {
    peer: IpAddr,
    /// As `trusted_proxies` let it be known.
    client: IpAddr,
    trusted_peer: bool,
    proto: &'static str,
    request_id: &'a RequestId,
}

/// The head the backend gets, into `out` (cleared first): the client's
/// headers by the rule table, then `te`, the request id and the
/// forwarding headers, as `proxy::headers::forward` does on hyper's path.
fn write_head(
    out: &mut Vec<u8>,
    (method, path): (&str, &str),
    headers: &[httparse::Header<'_>],
    kinds: &[Name; MAX_HEADERS],
    seen: &Seen<'_>,
    who: &Who<'_>,
) {
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(path.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    for (h, kind) in headers.iter().zip(kinds) {
        let keep = match kind {
            // Host is never removed by `Connection` (rule::kept_when_named).
            Name::Host => true,
            Name::Other | Name::ContentLength | Name::Accept => {
                !seen.named.contains(h.name.as_bytes())
            }
            // From a trusted proxy, its forwarding headers stand (and its
            // X-Forwarded-For is extended below); from anyone else they
            // are replaced.
            Name::Xfp | Name::Xfh => who.trusted_peer,
            Name::Xff | Name::Drop | Name::Connection | Name::Te | Name::RequestId => false,
            Name::Handoff => unreachable!("handed off in survey"),
        };
        if keep {
            header(out, h.name.as_bytes(), h.value);
        }
    }
    if seen.te_trailers {
        // gRPC's `te: trailers`; HTTP/1.1 wants `TE` named in `Connection`.
        out.extend_from_slice(b"te: trailers\r\nconnection: te\r\n");
    }
    header(out, b"x-request-id", who.request_id.as_bytes());
    let peer_text = IpText::new(who.peer);
    out.extend_from_slice(b"x-forwarded-for: ");
    if let Some(prev) = seen
        .xff_first
        .filter(|p| who.trusted_peer && !p.trim_ascii().is_empty())
    {
        out.extend_from_slice(prev);
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(peer_text.as_bytes());
    out.extend_from_slice(b"\r\n");
    if who.client == who.peer {
        header(out, b"x-real-ip", peer_text.as_bytes());
    } else {
        header(out, b"x-real-ip", IpText::new(who.client).as_bytes());
    }
    if !(who.trusted_peer && seen.has_xfp) {
        header(out, b"x-forwarded-proto", who.proto.as_bytes());
    }
    if !(who.trusted_peer && seen.has_xfh) {
        header(out, b"x-forwarded-host", seen.host);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> SocketAddr {
        "10.0.0.7:5000".parse().unwrap()
    }

    fn run(raw: &str, trusted: &[&str]) -> (Head, String) {
        let config = shoal_config::Config {
            trusted_proxies: trusted.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let table = std::sync::Arc::new(crate::balance::EndpointTable::new());
        let routing = Routing::single(table, &config);
        let mut out = Vec::new();
        let head = prepare(
            raw.as_bytes(),
            (peer(), "", false),
            "http",
            &routing,
            &mut out,
        );
        (head, String::from_utf8(out).unwrap())
    }

    fn ready(raw: &str, trusted: &[&str]) -> (Prepared, String) {
        match run(raw, trusted) {
            (Head::Ready(p), out) => (p, out),
            (Head::Partial, _) => panic!("partial: {raw:?}"),
            (Head::Handoff(why), _) => panic!("handed off ({why}): {raw:?}"),
            (Head::Answered(_), out) => panic!("answered by shoal: {out}"),
        }
    }

    fn handoff(raw: &str) -> &'static str {
        match run(raw, &[]).0 {
            Head::Handoff(why) => why,
            _ => panic!("not handed off: {raw:?}"),
        }
    }

    fn lines(out: &str) -> Vec<&str> {
        out.split("\r\n").collect()
    }

    #[test]
    fn a_plain_get_is_rewritten_as_the_hyper_path_does() {
        let raw = "GET /p?q=1 HTTP/1.1\r\nHost: a.test\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nKeep-Alive: 5\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: gopher\r\nAccept: application/json\r\nUser-Agent: t\r\n\r\nGET /next";
        let (p, out) = ready(raw, &[]);
        assert_eq!(p.len, raw.len() - "GET /next".len());
        assert!(p.keep_alive && p.idempotent && !p.head_only && p.json);
        assert_eq!(p.request_id.as_bytes().len(), 32);
        let id = String::from_utf8(p.request_id.as_bytes().to_vec()).unwrap();
        assert_eq!(
            lines(&out),
            [
                "GET /p?q=1 HTTP/1.1",
                "Host: a.test",
                "Accept: application/json",
                "User-Agent: t",
                &format!("x-request-id: {id}"),
                "x-forwarded-for: 10.0.0.7",
                "x-real-ip: 10.0.0.7",
                "x-forwarded-proto: http",
                "x-forwarded-host: a.test",
                "",
                ""
            ]
        );
    }

    #[test]
    fn a_trusted_proxy_forwarding_headers_are_extended() {
        let raw = "GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 192.0.2.1, 10.0.0.9\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Host: b\r\nX-Request-Id: abc-1\r\nConnection: close\r\nTE: trailers\r\n\r\n";
        let (p, out) = ready(raw, &["10.0.0.0/8"]);
        assert!(!p.keep_alive);
        assert_eq!(p.request_id.as_bytes(), b"abc-1");
        let l = lines(&out);
        assert!(l.contains(&"X-Forwarded-Proto: https"), "{out}");
        assert!(l.contains(&"X-Forwarded-Host: b"), "{out}");
        assert!(l.contains(&"x-forwarded-for: 192.0.2.1, 10.0.0.9, 10.0.0.7"));
        assert!(l.contains(&"x-real-ip: 192.0.2.1"));
        assert!(l.contains(&"te: trailers") && l.contains(&"connection: te"));
        assert!(!out.contains("x-forwarded-proto: http"), "{out}");
        assert!(!out.to_ascii_lowercase().contains("connection: close"));
    }

    #[test]
    fn a_bad_client_request_id_is_replaced() {
        let (p, out) = ready(
            "HEAD / HTTP/1.1\r\nHost: a\r\nX-Request-Id: has space\r\nContent-Length: 0\r\n\r\n",
            &[],
        );
        assert!(p.head_only);
        assert_eq!(p.request_id.as_bytes().len(), 32);
        assert!(!out.contains("has space"));
        assert!(out.contains("Content-Length: 0\r\n"));
    }

    #[test]
    fn what_the_engine_does_not_serve_goes_to_hyper() {
        let long = format!(
            "GET / HTTP/1.1\r\nContent{}Length: 1\r\n\r\n",
            "-".repeat(70)
        );
        let cases: &[(&str, &str)] = &[
            (
                "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello",
                "request body",
            ),
            (
                "POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
                "header for hyper",
            ),
            (
                "GET / HTTP/1.1\r\nContent-Length: 0\r\nContent-Length: 0\r\n\r\n",
                "request body",
            ),
            (
                "GET / HTTP/1.1\r\nContent_Length: 5\r\n\r\n",
                "header for hyper",
            ),
            (
                "GET / HTTP/1.1\r\nTransfer---Encoding: chunked\r\n\r\n",
                "header for hyper",
            ),
            (&long, "header for hyper"),
            (
                "GET / HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
                "upgrade",
            ),
            ("GET / HTTP/1.1\r\nUpgrade: h2c\r\n\r\n", "header for hyper"),
            (
                "PUT / HTTP/1.1\r\nExpect: 100-continue\r\n\r\n",
                "header for hyper",
            ),
            (
                "GET http://a.test/ HTTP/1.1\r\n\r\n",
                "absolute or asterisk target",
            ),
            ("OPTIONS * HTTP/1.1\r\n\r\n", "absolute or asterisk target"),
            (
                "CONNECT a:443 HTTP/1.1\r\n\r\n",
                "absolute or asterisk target",
            ),
            ("CONNECT /x HTTP/1.1\r\nHost: a\r\n\r\n", "CONNECT"),
            ("GET / HTTP/1.0\r\n\r\n", "not HTTP/1.1"),
            (
                "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
                "head does not parse",
            ),
            ("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "head does not parse"),
            ("GET / HTTP/1.2\r\nHost: a\r\n\r\n", "head does not parse"),
            // What request_rules decides on hyper's path.
            ("GET / HTTP/1.1\r\n\r\n", "no Host"),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
                "Host for hyper's rules",
            ),
            (
                "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n",
                "Host for hyper's rules",
            ),
            (
                "GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n",
                "Host for hyper's rules",
            ),
            (
                "GET /p#frag HTTP/1.1\r\nHost: a\r\n\r\n",
                "target for hyper's rules",
            ),
            (
                "GET /?q=<script> HTTP/1.1\r\nHost: a\r\n\r\n",
                "target for hyper's rules",
            ),
            (
                "GET /a`b HTTP/1.1\r\nHost: a\r\n\r\n",
                "target for hyper's rules",
            ),
            (
                "GET / HTTP/1.1\r\nHost: a\r\nConnection: a, b, c, d, e, f, g, h, i\r\n\r\n",
                "Connection names many headers",
            ),
        ];
        for (raw, why) in cases {
            assert_eq!(handoff(raw), *why, "{raw:?}");
        }
    }

    #[test]
    fn http2_settings_never_reaches_a_backend() {
        let (_, out) = ready(
            "GET / HTTP/1.1\r\nHost: a\r\nHTTP2-Settings: AAMAAABk\r\n\r\n",
            &[],
        );
        assert!(
            !out.to_ascii_lowercase().contains("http2-settings"),
            "{out}"
        );
    }

    #[test]
    fn an_unfinished_head_waits() {
        assert!(matches!(
            run("GET / HTTP/1.1\r\nHost: a\r\n", &[]).0,
            Head::Partial
        ));
    }

    /// The route phase with `sticky` on the route: a valid cookie pins,
    /// a changed one does not; and neither it nor a route without
    /// `sticky` allocates (`out` has its room, as the engine's pooled
    /// buffers do).
    #[test]
    fn sticky_pins_without_allocating() {
        let yaml = "upstreams: [{url: 'http://127.0.0.1:1'}]\nroutes:\n  - match: {path_prefix: /s}\n    to: upstreams\n    sticky: {key: 0123456789abcdef}\n  - {to: upstreams}\n";
        let config = shoal_config::load_str(yaml, "test", &|_| None).unwrap();
        let table = std::sync::Arc::new(crate::balance::EndpointTable::new());
        let e = crate::balance::Endpoint::new(
            "b".into(),
            ([127, 0, 0, 1], 1).into(),
            1,
            &Default::default(),
        );
        table.insert(e.clone());
        let limiter = std::sync::Arc::new(crate::ratelimit::Limiter::new(&config.state));
        let routing = Routing::for_config(&config, &|_| table.clone(), &limiter);
        let sticky = routing.routes.get(0).sticky.clone().unwrap();
        let mut cookie = Vec::new();
        sticky.write_line(&mut cookie, &e);
        let value = String::from_utf8(cookie).unwrap();
        let value = value
            .trim_start_matches("set-cookie: ")
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let mut tampered = value.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        let mut out = Vec::with_capacity(4096);
        let mut prep = |raw: &str| {
            let (head, allocs) = crate::test_alloc::count(|| {
                prepare(
                    raw.as_bytes(),
                    (peer(), "", false),
                    "http",
                    &routing,
                    &mut out,
                )
            });
            match head {
                Head::Ready(p) => (p.pin, allocs),
                _ => panic!("not ready: {raw:?}"),
            }
        };
        let req = |path: &str, cookie: &str| {
            format!("GET {path} HTTP/1.1\r\nHost: a\r\nCookie: x=1; {cookie}\r\n\r\n")
        };
        assert_eq!(prep(&req("/s", &value)), (Some(e.sticky_id()), 0));
        assert_eq!(prep(&req("/s", &tampered)), (None, 0));
        assert_eq!(prep(&req("/s", "other=1")), (None, 0));
        // The route without `sticky`: the cookie is not even read.
        assert_eq!(prep(&req("/", &value)), (None, 0));
    }
}
