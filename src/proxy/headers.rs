//! Header rewriting between client and backend: hop-by-hop removal and the
//! `X-Forwarded-*` family.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

pub static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
pub static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What shoal does with a header, by name: the one rule table both engines
/// follow, in both directions (hyper's path through [`HOP_BY_HOP`] and the
/// functions below; the native engine's request and response heads
/// through [`rule`] itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// Goes through.
    Pass,
    /// Hop-by-hop (RFC 9110 §7.6.1), removed: `keep-alive`,
    /// `proxy-connection`, `proxy-authenticate`, `proxy-authorization`,
    /// and `http2-settings` (RFC 7540 §3.2.1: it only ever goes with an h2c
    /// upgrade offer, which never passes shoal). Not `trailer`: it names the
    /// trailer fields a message will end with and is end-to-end (RFC 9110
    /// §6.6.2).
    HopByHop,
    /// Hop-by-hop; its tokens name more headers to remove.
    Connection,
    /// Hop-by-hop; `trailers` is passed on for gRPC ([`te_trailers`]).
    Te,
    /// Hop-by-hop; kept for an upgrade ([`upgrade_offer`]).
    Upgrade,
    /// Hop-by-hop; the body is framed anew (or passed through checked).
    TransferEncoding,
    ContentLength,
    Host,
    /// Met on this hop (hyper answers `100 Continue`), not passed on.
    Expect,
    /// Extended from a trusted proxy, else replaced ([`forward`]).
    ForwardedFor,
    /// Kept from a trusted proxy, else replaced.
    ForwardedProto,
    /// Kept from a trusted proxy, else replaced.
    ForwardedHost,
    /// Always written anew.
    RealIp,
    /// The client's kept if usable, else generated (`request_id`); a
    /// backend's is replaced by the request's.
    RequestId,
}

impl Rule {
    /// Not removed when `Connection` names it: `Host`, which an HTTP/1.1
    /// request must carry, and what shoal writes itself (the request id,
    /// the forwarding headers).
    pub fn kept_when_named(self) -> bool {
        matches!(
            self,
            Rule::Host
                | Rule::RequestId
                | Rule::ForwardedFor
                | Rule::ForwardedProto
                | Rule::ForwardedHost
                | Rule::RealIp
        )
    }

    /// Never crosses shoal as it came.
    pub fn hop_by_hop(self) -> bool {
        matches!(
            self,
            Rule::HopByHop | Rule::Connection | Rule::Te | Rule::Upgrade | Rule::TransferEncoding
        )
    }
}

/// The rule for header `name` (any case).
#[inline]
pub fn rule(name: &[u8]) -> Rule {
    let eq = |s: &[u8]| name.eq_ignore_ascii_case(s);
    match name.len() {
        2 if eq(b"te") => Rule::Te,
        4 if eq(b"host") => Rule::Host,
        6 if eq(b"expect") => Rule::Expect,
        7 if eq(b"upgrade") => Rule::Upgrade,
        9 if eq(b"x-real-ip") => Rule::RealIp,
        10 if eq(b"connection") => Rule::Connection,
        10 if eq(b"keep-alive") => Rule::HopByHop,
        12 if eq(b"x-request-id") => Rule::RequestId,
        14 if eq(b"content-length") => Rule::ContentLength,
        14 if eq(b"http2-settings") => Rule::HopByHop,
        15 if eq(b"x-forwarded-for") => Rule::ForwardedFor,
        16 if eq(b"x-forwarded-host") => Rule::ForwardedHost,
        16 if eq(b"proxy-connection") => Rule::HopByHop,
        17 if eq(b"transfer-encoding") => Rule::TransferEncoding,
        17 if eq(b"x-forwarded-proto") => Rule::ForwardedProto,
        18 if eq(b"proxy-authenticate") => Rule::HopByHop,
        19 if eq(b"proxy-authorization") => Rule::HopByHop,
        _ => Rule::Pass,
    }
}

/// Every name whose [`rule`] is hop-by-hop, for hyper's header maps.
pub static HOP_BY_HOP: [HeaderName; 9] = [
    header::CONNECTION,
    HeaderName::from_static("http2-settings"),
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::PROXY_AUTHENTICATE,
    header::PROXY_AUTHORIZATION,
    header::TE,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// Does the request's `TE` accept `trailers` (gRPC's `te: trailers`)? `TE`
/// itself is hop-by-hop and removed; this one value is passed on (as nginx's
/// `grpc_pass` and Envoy do), since a backend may only send trailers to a
/// client that accepts them.
pub fn te_trailers(headers: &HeaderMap) -> bool {
    headers.contains_key(header::TE) && list_has(headers, &header::TE, "trailers")
}

/// Request framing a proxy must not pass on, because the backend might read
/// it differently (request smuggling): any `Transfer-Encoding` but exactly
/// one `chunked`, or `Content-Length` beside it. hyper already rejects
/// differing `Content-Length`s, unknown codings, obs-fold and malformed
/// header lines with 400, and for `Content-Length` + chunked it applies
/// RFC 9112 §6.3 itself (chunked wins, the length header is dropped, the
/// connection closes after the response); the check here is the backstop.
pub fn ambiguous_framing(headers: &HeaderMap) -> Option<&'static str> {
    if headers.keys().any(framing_lookalike) {
        return Some("a header name that looks like Content-Length or Transfer-Encoding");
    }
    if !headers.contains_key(header::TRANSFER_ENCODING) {
        return None;
    }
    if headers.contains_key(header::CONTENT_LENGTH) {
        return Some("both Content-Length and Transfer-Encoding");
    }
    let mut codings = 0;
    for v in headers.get_all(header::TRANSFER_ENCODING) {
        let Ok(text) = v.to_str() else {
            return Some("Transfer-Encoding is not text");
        };
        for token in text.split(',') {
            codings += 1;
            if !token.trim().eq_ignore_ascii_case("chunked") {
                return Some("a Transfer-Encoding other than chunked");
            }
        }
    }
    (codings != 1).then_some("chunked applied more than once")
}

/// `Transfer_Encoding`, `content__length`, `Transfer---Encoding`: names a
/// backend that folds `_` into `-` (CGI, PHP, WSGI do) or is lax about
/// punctuation would take for a framing header shoal did not frame by.
fn framing_lookalike(name: &HeaderName) -> bool {
    framing_lookalike_name(name.as_str().as_bytes())
}

/// [`framing_lookalike`] of a header name in any case.
pub(crate) fn framing_lookalike_name(n: &[u8]) -> bool {
    const CL: &[u8] = b"contentlength";
    const TE: &[u8] = b"transferencoding";
    if n.len() < CL.len()
        || n.eq_ignore_ascii_case(b"content-length")
        || n.eq_ignore_ascii_case(b"transfer-encoding")
    {
        return false;
    }
    let letters = || {
        n.iter()
            .filter(|b| **b != b'-' && **b != b'_')
            .map(u8::to_ascii_lowercase)
    };
    match n[0].to_ascii_lowercase() {
        b'c' => letters().eq(CL.iter().copied()),
        b't' => letters().eq(TE.iter().copied()),
        _ => false,
    }
}

/// The protocols an HTTP/1.1 upgrade request (`Connection: upgrade` +
/// `Upgrade`) offers that may reach a backend: every `Upgrade` line's
/// tokens, `h2c` taken out, joined into one value; `None` when none is
/// left or the request is no upgrade. HTTP/2 to shoal is spoken with prior
/// knowledge (or ALPN), and a backend's `101` to h2c would take the
/// connection out of the proxy (its later requests would skip shoal's
/// headers, limits and logs), so the h2c offer is dropped wherever it
/// stands, as Envoy and nginx do, and the answer is in HTTP/1.1.
pub fn upgrade_offer(headers: &HeaderMap) -> Option<HeaderValue> {
    if !headers.contains_key(header::UPGRADE) || !list_has(headers, &header::CONNECTION, "upgrade")
    {
        return None;
    }
    let mut offer = Vec::new();
    for value in headers.get_all(header::UPGRADE) {
        for token in value.as_bytes().split(|b| *b == b',') {
            let token = token.trim_ascii();
            if token.is_empty() || is_h2c(token) {
                continue;
            }
            if !offer.is_empty() {
                offer.extend_from_slice(b", ");
            }
            offer.extend_from_slice(token);
        }
    }
    if offer.is_empty() {
        return None;
    }
    HeaderValue::from_bytes(&offer).ok()
}

/// `h2c`, or `h2c/…` with a version: the cleartext HTTP/2 upgrade.
fn is_h2c(token: &[u8]) -> bool {
    let name = token.split(|b| *b == b'/').next().unwrap_or(token);
    name.eq_ignore_ascii_case(b"h2c")
}

fn list_has(headers: &HeaderMap, name: &HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Remove hop-by-hop headers and every header named in `Connection`.
/// With an `upgrade` offer (from [`upgrade_offer`]), `Upgrade` is set to
/// it and `Connection: upgrade` re-set, so an upgrade handshake reaches the
/// other side.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: Option<HeaderValue>) {
    // Most heads have none: one pass over their few names (a standard
    // name compares as a number) instead of a hashed lookup per
    // hop-by-hop name. Without `Connection` no other name is named.
    if !headers.keys().any(|k| HOP_BY_HOP.contains(k)) {
        if let Some(u) = upgrade {
            headers.insert(header::UPGRADE, u);
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    let keep_upgrade = upgrade.is_some();
    // Headers named in `Connection` go too. The values are copied out (a
    // reference count, or a few bytes) so the map can be changed while the
    // tokens are walked; one value, by far the usual case, needs no Vec.
    let mut named = headers.get_all(header::CONNECTION).iter();
    if let Some(first) = named.next().cloned() {
        let rest: Vec<HeaderValue> = named.cloned().collect();
        for value in std::iter::once(&first).chain(rest.iter()) {
            let Ok(text) = value.to_str() else { continue };
            for token in text.split(',').map(str::trim) {
                // `close` and `keep-alive` are options, not header names
                // to remove (keep-alive goes below anyway).
                if token.is_empty()
                    || token.eq_ignore_ascii_case("close")
                    || token.eq_ignore_ascii_case("keep-alive")
                    || (keep_upgrade && token.eq_ignore_ascii_case("upgrade"))
                    || rule(token.as_bytes()).kept_when_named()
                {
                    continue;
                }
                // By `&str`: parsed on the stack, no allocation; a token
                // that is not a valid name matches nothing.
                headers.remove(token);
            }
        }
    }
    for name in &HOP_BY_HOP {
        // One lookup: `remove` of an absent name is a miss.
        headers.remove(name);
    }
    if let Some(u) = upgrade {
        headers.insert(header::UPGRADE, u);
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// The peers whose forwarding headers are believed (`trusted_proxies`).
#[derive(Debug, Default, Clone)]
pub struct TrustedProxies(Vec<shoal_config::cidr::Cidr>);

impl TrustedProxies {
    /// From already validated config entries (invalid ones are skipped).
    pub fn new(entries: &[String]) -> TrustedProxies {
        TrustedProxies(
            entries
                .iter()
                .filter_map(|e| shoal_config::cidr::Cidr::parse(e).ok())
                .collect(),
        )
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        !self.0.is_empty() && self.0.iter().any(|c| c.contains(ip))
    }
}

/// The client's address: the peer, or — when the peer is a trusted proxy —
/// the right-most `X-Forwarded-For` entry that is not itself trusted (as
/// nginx's `real_ip_recursive`).
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &TrustedProxies) -> IpAddr {
    if !trusted.contains(peer) {
        return peer;
    }
    let values = headers.get_all(&X_FORWARDED_FOR);
    client_ip_from(peer, values.iter().map(HeaderValue::as_bytes), trusted)
}

/// [`client_ip`] for a peer already known to be trusted, over the
/// `X-Forwarded-For` values in the order they arrived.
pub(crate) fn client_ip_from<'a>(
    peer: IpAddr,
    xff: impl DoubleEndedIterator<Item = &'a [u8]>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut client = peer;
    for value in xff.rev() {
        let Ok(text) = std::str::from_utf8(value) else {
            return client;
        };
        for entry in text.rsplit(',') {
            match entry.trim().parse::<IpAddr>() {
                Ok(ip) if trusted.contains(ip) => client = ip,
                Ok(ip) => return ip,
                Err(_) => return client,
            }
        }
    }
    client
}

/// Set the forwarding headers. From a trusted proxy, `X-Forwarded-For` is
/// extended and its `X-Forwarded-Proto`/`-Host` kept; from anyone else they
/// are replaced, so a client cannot choose the address backends (and
/// `ip_hash`) see. `X-Real-IP` is the client as `client_ip` found it.
pub fn forward(
    headers: &mut HeaderMap,
    peer: IpAddr,
    client: IpAddr,
    trusted: &TrustedProxies,
    proto: &'static str,
) {
    // Most requests carry none of them: one pass over the few names finds
    // that, and spares a hashed lookup per forwarding header below.
    let any = headers
        .keys()
        .any(|k| *k == X_FORWARDED_FOR || *k == X_FORWARDED_PROTO || *k == X_FORWARDED_HOST);
    if any && !trusted.contains(peer) {
        headers.remove(&X_FORWARDED_FOR);
        headers.remove(&X_FORWARDED_PROTO);
        headers.remove(&X_FORWARDED_HOST);
    }
    put_forwarded(headers, (peer, client), proto, any);
}

/// Append `peer` to `X-Forwarded-For` (nginx's
/// `$proxy_add_x_forwarded_for`), set `X-Real-IP` to `client`, and set the
/// other forwarding headers where absent. One allocation for the address
/// (written on the stack, shared by both headers when there is no earlier
/// `X-Forwarded-For`), one more when there is one to extend.
pub fn add_forwarded(headers: &mut HeaderMap, peer: IpAddr, client: IpAddr, proto: &'static str) {
    put_forwarded(headers, (peer, client), proto, true);
}

/// [`add_forwarded`]; `maybe_there: false` when the head is known to carry
/// none of the forwarding headers (no lookup for them then).
fn put_forwarded(
    headers: &mut HeaderMap,
    (peer, client): (IpAddr, IpAddr),
    proto: &'static str,
    maybe_there: bool,
) {
    let peer_value = ip_value(peer);
    let earlier = match maybe_there {
        true => headers.get(&X_FORWARDED_FOR).map(HeaderValue::as_bytes),
        false => None,
    };
    let xff = match earlier {
        Some(prev) if !prev.trim_ascii().is_empty() => {
            let mut joined = Vec::with_capacity(prev.len() + 2 + peer_value.len());
            joined.extend_from_slice(prev);
            joined.extend_from_slice(b", ");
            joined.extend_from_slice(peer_value.as_bytes());
            HeaderValue::from_bytes(&joined).unwrap_or_else(|_| peer_value.clone())
        }
        _ => peer_value.clone(),
    };
    // `insert` replaces every earlier value.
    headers.insert(X_FORWARDED_FOR.clone(), xff);
    let real = if client == peer {
        peer_value
    } else {
        ip_value(client)
    };
    headers.insert(X_REAL_IP.clone(), real);
    if !maybe_there || !headers.contains_key(&X_FORWARDED_PROTO) {
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    }
    if !maybe_there || !headers.contains_key(&X_FORWARDED_HOST) {
        if let Some(host) = headers.get(header::HOST).cloned() {
            headers.insert(X_FORWARDED_HOST.clone(), host);
        }
    }
}

/// An IP address as a header value, formatted on the stack (the longest
/// IPv6 text is 45 bytes).
fn ip_value(ip: IpAddr) -> HeaderValue {
    let text = IpText::new(ip);
    HeaderValue::from_bytes(text.as_bytes()).unwrap_or_else(|_| HeaderValue::from_static("unknown"))
}

/// An IP address's text, on the stack.
pub(crate) struct IpText {
    buf: [u8; 48],
    len: usize,
}

impl IpText {
    pub(crate) fn new(ip: IpAddr) -> IpText {
        let mut buf = [0u8; 48];
        let len = match ip {
            // Every request writes one (X-Forwarded-For, X-Real-IP): by hand,
            // not through `fmt` (a quarter of the cost).
            IpAddr::V4(v4) => {
                let mut len = 0;
                for (i, octet) in v4.octets().into_iter().enumerate() {
                    if i > 0 {
                        buf[len] = b'.';
                        len += 1;
                    }
                    if octet >= 100 {
                        buf[len] = b'0' + octet / 100;
                        len += 1;
                    }
                    if octet >= 10 {
                        buf[len] = b'0' + octet / 10 % 10;
                        len += 1;
                    }
                    buf[len] = b'0' + octet % 10;
                    len += 1;
                }
                len
            }
            IpAddr::V6(_) => {
                use std::io::Write;
                let mut cursor = std::io::Cursor::new(&mut buf[..]);
                let _ = write!(cursor, "{ip}");
                cursor.position() as usize
            }
        };
        IpText { buf, len }
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_text_is_the_standard_text() {
        let ips: Vec<IpAddr> = vec![
            "0.0.0.0".parse().unwrap(),
            "127.0.0.1".parse().unwrap(),
            "10.9.99.100".parse().unwrap(),
            "255.255.255.255".parse().unwrap(),
            "192.168.1.20".parse().unwrap(),
            "::1".parse().unwrap(),
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255"
                .parse()
                .unwrap(),
        ];
        for ip in ips {
            assert_eq!(IpText::new(ip).as_bytes(), ip.to_string().as_bytes());
        }
        for octet in 0..=255u8 {
            let ip = IpAddr::from([octet, 0, octet, 9]);
            assert_eq!(IpText::new(ip).as_bytes(), ip.to_string().as_bytes());
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn a_head_with_one_hop_by_hop_name_or_none() {
        let mut h = map(&[("x-keep", "yes"), ("proxy-authorization", "Basic x")]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 1, "{h:?}");
        let mut h = map(&[("x-keep", "yes"), ("accept", "*/*")]);
        let before = h.clone();
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h, before);
        // An upgrade offer is put back even when nothing was stripped.
        strip_hop_by_hop(&mut h, Some(HeaderValue::from_static("websocket")));
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h.len(), 4, "{h:?}");
    }

    #[test]
    fn strips_standard_and_connection_named_headers() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("x-secret", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("x-keep", "yes"),
            ("trailer", "x-checksum"),
        ]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["x-keep"], "yes");
        assert_eq!(h["trailer"], "x-checksum", "end to end (RFC 9110 §6.6.2)");
    }

    #[test]
    fn the_rule_table_and_the_hop_by_hop_names_agree() {
        for name in &HOP_BY_HOP {
            assert!(rule(name.as_str().as_bytes()).hop_by_hop(), "{name}");
            assert!(rule(name.as_str().to_ascii_uppercase().as_bytes()).hop_by_hop());
        }
        let every = [
            "te",
            "host",
            "expect",
            "upgrade",
            "x-real-ip",
            "connection",
            "keep-alive",
            "x-request-id",
            "content-length",
            "http2-settings",
            "x-forwarded-for",
            "x-forwarded-host",
            "proxy-connection",
            "transfer-encoding",
            "x-forwarded-proto",
            "proxy-authenticate",
            "proxy-authorization",
        ];
        let hop: Vec<&str> = every
            .iter()
            .copied()
            .filter(|n| rule(n.as_bytes()).hop_by_hop())
            .collect();
        assert_eq!(hop.len(), HOP_BY_HOP.len(), "{hop:?}");
        for n in every {
            assert_ne!(rule(n.as_bytes()), Rule::Pass, "{n}");
        }
        for n in ["trailer", "x-keep", "accept", "tee", "hosts"] {
            assert_eq!(rule(n.as_bytes()), Rule::Pass, "{n}");
        }
    }

    #[test]
    fn framing_lookalikes_are_refused() {
        for name in [
            "transfer_encoding",
            "content_length",
            "transfer---encoding",
            "transfer___encoding",
            "content-_length",
        ] {
            assert!(
                ambiguous_framing(&map(&[(name, "chunked")])).is_some(),
                "{name}"
            );
        }
        for name in ["x-content-length", "content-lengths", "content-type", "te"] {
            assert_eq!(ambiguous_framing(&map(&[(name, "1")])), None, "{name}");
        }
        assert_eq!(ambiguous_framing(&map(&[("content-length", "1")])), None);
    }

    #[test]
    fn ambiguous_framing_is_named() {
        assert_eq!(
            ambiguous_framing(&map(&[("transfer-encoding", "chunked")])),
            None
        );
        assert_eq!(ambiguous_framing(&map(&[("content-length", "4")])), None);
        assert!(ambiguous_framing(&map(&[
            ("content-length", "4"),
            ("transfer-encoding", "chunked")
        ]))
        .is_some());
        assert!(ambiguous_framing(&map(&[
            ("transfer-encoding", "chunked"),
            ("transfer-encoding", "chunked")
        ]))
        .is_some());
        assert!(ambiguous_framing(&map(&[("transfer-encoding", "chunked, chunked")])).is_some());
        assert!(ambiguous_framing(&map(&[("transfer-encoding", "gzip, chunked")])).is_some());
    }

    #[test]
    fn te_trailers_is_recognised() {
        assert!(te_trailers(&map(&[("te", "trailers")])));
        assert!(te_trailers(&map(&[("te", "gzip, Trailers")])));
        assert!(!te_trailers(&map(&[("te", "gzip")])));
        assert!(!te_trailers(&map(&[])));
    }

    #[test]
    fn trailer_announcement_is_end_to_end() {
        let mut h = map(&[("trailer", "grpc-status"), ("te", "trailers")]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 1, "{h:?}");
        assert_eq!(h["trailer"], "grpc-status");
    }

    #[test]
    fn h2c_upgrade_is_not_an_upgrade() {
        let h = map(&[
            ("connection", "Upgrade, HTTP2-Settings"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(upgrade_offer(&h), None);
        let h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
        assert_eq!(upgrade_offer(&h).unwrap(), "websocket");
        let h = map(&[("upgrade", "websocket")]);
        assert_eq!(upgrade_offer(&h), None, "Connection does not name it");
    }

    #[test]
    fn h2c_is_taken_out_of_every_upgrade_value() {
        // Two lines, h2c first: the backend must never see h2c.
        let h = map(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c"),
            ("upgrade", "websocket"),
        ]);
        assert_eq!(upgrade_offer(&h).unwrap(), "websocket");
        let h = map(&[("connection", "upgrade"), ("upgrade", "H2C, websocket")]);
        assert_eq!(upgrade_offer(&h).unwrap(), "websocket");
        let h = map(&[("connection", "upgrade"), ("upgrade", "h2c/1, h2c")]);
        assert_eq!(upgrade_offer(&h), None);
        let h = map(&[
            ("connection", "upgrade"),
            ("upgrade", "websocket, foo/2"),
            ("upgrade", "h2c"),
        ]);
        assert_eq!(upgrade_offer(&h).unwrap(), "websocket, foo/2");
    }

    #[test]
    fn connection_cannot_remove_host_or_what_shoal_writes() {
        let mut h = map(&[
            ("connection", "host, x-request-id, x-forwarded-for, x-other"),
            ("host", "a"),
            ("x-request-id", "r"),
            ("x-other", "1"),
        ]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h["host"], "a");
        assert_eq!(h["x-request-id"], "r");
        assert!(!h.contains_key("x-other"));
    }

    #[test]
    fn http2_settings_is_always_hop_by_hop() {
        let mut h = map(&[("http2-settings", "AAMAAABkAAQAAP__"), ("x-keep", "1")]);
        strip_hop_by_hop(&mut h, None);
        assert_eq!(h.len(), 1, "{h:?}");
        let mut h = map(&[
            ("connection", "upgrade"),
            ("upgrade", "h2c"),
            ("upgrade", "websocket"),
            ("http2-settings", "AAMAAABkAAQAAP__"),
        ]);
        let offer = upgrade_offer(&h);
        strip_hop_by_hop(&mut h, offer);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn keeps_upgrade_when_asked() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        let offer = upgrade_offer(&h);
        assert!(offer.is_some());
        strip_hop_by_hop(&mut h, offer);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn untrusted_peers_cannot_spoof_the_client() {
        let none = TrustedProxies::default();
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer: IpAddr = "192.0.2.7".parse().unwrap();
        let client = client_ip(peer, &h, &none);
        assert_eq!(client, peer);
        forward(&mut h, peer, client, &none, "http");
        assert_eq!(h["x-forwarded-for"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-real-ip"], "192.0.2.7");
    }

    #[test]
    fn trusted_peers_are_walked_right_to_left() {
        let trusted = TrustedProxies::new(&["10.0.0.0/8".into()]);
        let mut h = map(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.1.1.1"),
            ("x-forwarded-proto", "https"),
        ]);
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let client = client_ip(peer, &h, &trusted);
        assert_eq!(client, "203.0.113.5".parse::<IpAddr>().unwrap());
        forward(&mut h, peer, client, &trusted, "http");
        assert_eq!(
            h["x-forwarded-for"],
            "6.6.6.6, 203.0.113.5, 10.1.1.1, 10.0.0.2"
        );
        assert_eq!(h["x-forwarded-proto"], "https", "kept from a trusted proxy");
        assert_eq!(h["x-real-ip"], "203.0.113.5");
    }

    #[test]
    fn a_head_without_forwarding_headers_gets_them_all() {
        let none = TrustedProxies::default();
        let peer: IpAddr = "10.0.0.2".parse().unwrap();
        let client: IpAddr = "203.0.113.5".parse().unwrap();
        let mut h = map(&[("host", "example.com"), ("accept", "*/*")]);
        forward(&mut h, peer, client, &none, "https");
        assert_eq!(h["x-forwarded-for"], "10.0.0.2");
        assert_eq!(h["x-real-ip"], "203.0.113.5");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "example.com");
        assert_eq!(h.len(), 6, "{h:?}");
        // No Host (HTTP/2 with `:authority` only): no X-Forwarded-Host.
        let mut h = map(&[("x-real-ip", "1.2.3.4")]);
        forward(&mut h, peer, peer, &none, "http");
        assert_eq!(h["x-real-ip"], "10.0.0.2", "replaced, never believed");
        assert!(!h.contains_key("x-forwarded-host"));
        assert_eq!(h.len(), 3, "{h:?}");
    }

    #[test]
    fn forwarded_headers_append_and_set() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1"), ("host", "example.com")]);
        let local = "127.0.0.1".parse().unwrap();
        add_forwarded(&mut h, local, local, "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");

        let mut h = HeaderMap::new();
        let v6 = "::1".parse().unwrap();
        add_forwarded(&mut h, v6, v6, "http");
        assert_eq!(h["x-forwarded-for"], "::1");
    }
}
