//! What a request must be for shoal to forward it at all: its method,
//! target and `Host`, by RFC 9110, 9112 and 9113. Both engines follow these
//! rules through this one module: hyper's path calls [`refusal`] on every
//! request, and the native engine serves only requests whose target and
//! `Host` pass the byte checks below ([`plain_target`], [`plain_host`]);
//! anything else it hands to hyper's path, which decides. So an answer
//! never depends on the engine.
//!
//! The request target's byte set is the `http` crate's (WHATWG's path and
//! query sets), which hyper applies when it parses a target:
//!
//! | part | accepted as sent | refused (400) |
//! |---|---|---|
//! | path | printable ASCII but `<` `>` `` ` `` | `<` `>` `` ` ``, controls, space, DEL, bytes ≥ 0x80 that are not UTF-8 |
//! | query | printable ASCII but `"` `<` `>` | `"` `<` `>`, controls, space, DEL, bytes ≥ 0x80 that are not UTF-8 |
//!
//! A `#fragment` is never sent (RFC 9112 §3.2, RFC 3986 §3.5): it is cut
//! off before the request goes on.

use http::header::{self, HeaderMap};
use http::{Method, Uri, Version};

/// Why a request is refused with 400 before anything is forwarded, if it
/// is. `version` is the client's (an HTTP/1.2 request line was read as
/// HTTP/1.1, RFC 9112 §2.3).
pub fn refusal(
    method: &Method,
    uri: &Uri,
    version: Version,
    headers: &HeaderMap,
) -> Option<&'static str> {
    if method == Method::CONNECT {
        // No tunnels (nginx and HAProxy answer 400 too); a backend would
        // read `CONNECT host:port` as it liked.
        return Some("CONNECT is not served");
    }
    if uri.path() == "*" && method != Method::OPTIONS {
        // RFC 9112 §3.2.4 (and `:path: *`, RFC 9113 §8.3.1).
        return Some("the asterisk-form target is only for OPTIONS");
    }
    if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
        // RFC 9110 §4.2.4; RFC 9113 §8.3.1 for `:authority`.
        return Some("user info in the request target's authority");
    }
    let mut hosts = headers.get_all(header::HOST).iter();
    match (hosts.next(), hosts.next()) {
        // RFC 9112 §3.2.
        (_, Some(_)) => return Some("more than one Host header"),
        (None, None) if version == Version::HTTP_11 => return Some("no Host header (HTTP/1.1)"),
        (Some(host), None) if !valid_host(host.as_bytes()) => return Some("invalid Host header"),
        _ => {}
    }
    None
}

/// Safe to send again after it reached a backend (RFC 9110 §9.2.2): GET,
/// HEAD, OPTIONS, PUT, DELETE, TRACE. Both engines ask this.
#[inline]
pub fn idempotent(method: &[u8]) -> bool {
    matches!(
        method,
        b"GET" | b"HEAD" | b"OPTIONS" | b"PUT" | b"DELETE" | b"TRACE"
    )
}

/// A `Host` value: empty (allowed for a target without an authority, RFC
/// 9110 §7.2), or an authority with no user info.
fn valid_host(value: &[u8]) -> bool {
    value.is_empty() || (!value.contains(&b'@') && http::uri::Authority::try_from(value).is_ok())
}

/// A target the native engine may send on as it came: origin-form, every
/// byte accepted by the table above as sent, no fragment, ASCII only.
/// Anything else goes to hyper's path, which cuts the fragment or answers
/// 400 by the same table. (One table load per byte: it runs per request.)
#[inline]
pub fn plain_target(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return false;
    }
    let query = path.iter().position(|b| *b == b'?').unwrap_or(path.len());
    path[..query].iter().all(|b| PLAIN_PATH[usize::from(*b)])
        && path[query..].iter().all(|b| PLAIN_QUERY[usize::from(*b)])
}

/// A path a route must not see as sent: `//`, a `.` or `..` segment
/// (`/.` anywhere: `/.well-known` too, which then takes hyper's path and
/// comes out unchanged), or a `%` escape.
pub fn needs_normalizing(path: &[u8]) -> bool {
    path.windows(2).any(|w| w == b"//" || w == b"/.") || path.contains(&b'%')
}

/// `path` (without its query) as routes see it and the backend gets it,
/// when that differs from what was sent: unreserved characters' `%XX`
/// decoded (`%61` → `a`; `%2F` stays), `//` merged, `.` and `..` segments
/// removed (RFC 3986 §5.2.4; `..` never above the root). Otherwise a
/// route for `/admin` would not take `/x/../admin`, `//admin` or
/// `/%61dmin`, which the application behind reads as `/admin` (nginx
/// matches its `location`s on the normalised path too).
pub fn normalized(path: &str) -> Option<String> {
    if !needs_normalizing(path.as_bytes()) {
        return None;
    }
    let decoded = decode_unreserved(path);
    let mut out: Vec<&str> = Vec::new();
    let mut trailing = false;
    for seg in decoded.split('/') {
        trailing = false;
        match seg {
            "" => trailing = true,
            "." => trailing = true,
            ".." => {
                out.pop();
                trailing = true;
            }
            s => out.push(s),
        }
    }
    let mut p = String::with_capacity(decoded.len());
    for s in &out {
        p.push('/');
        p.push_str(s);
    }
    if trailing || p.is_empty() {
        p.push('/');
    }
    (p != path).then_some(p)
}

/// `%XX` of an unreserved character (RFC 3986 §2.3) decoded; every other
/// escape kept as sent, and a `%` that starts none written `%25`.
fn decode_unreserved(path: &str) -> String {
    let b = path.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |c: Option<&u8>| c.and_then(|&c| (c as char).to_digit(16));
            match (hex(b.get(i + 1)), hex(b.get(i + 2))) {
                (Some(h), Some(l)) => {
                    let c = (h * 16 + l) as u8;
                    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~') {
                        out.push(c);
                        i += 3;
                        continue;
                    }
                }
                // A `%` that starts no escape is a `%` (`%25`): so that a
                // decoded character after it cannot make a new escape
                // (`%6%61` is not `%6a`).
                _ => {
                    out.extend_from_slice(b"%25");
                    i += 1;
                    continue;
                }
            }
        }
        // Bytes as they are: a multi-byte character stays whole.
        out.push(b[i]);
        i += 1;
    }
    // Only ASCII was put in place of ASCII: still UTF-8.
    String::from_utf8(out).unwrap_or_else(|_| path.to_string())
}

#[cfg(test)]
mod normalized_tests {
    use super::normalized;

    #[test]
    fn paths_are_seen_as_the_application_reads_them() {
        for (sent, seen) in [
            ("/x/../admin", Some("/admin")),
            ("//admin", Some("/admin")),
            ("/%61dmin", Some("/admin")),
            ("/a/./b/", Some("/a/b/")),
            ("/a/b/..", Some("/a/")),
            ("/../../etc", Some("/etc")),
            ("/a%2Fb", None),
            ("/a%2fb/%7euser", Some("/a%2fb/~user")),
            ("/.well-known/x", None),
            ("/./caf\u{e9}/%41", Some("/caf\u{e9}/A")),
            ("/a//%6%61x", Some("/a/%256ax")),
            ("/100%", Some("/100%25")),
            ("/plain/path", None),
            ("/", None),
        ] {
            assert_eq!(normalized(sent).as_deref(), seen, "{sent}");
        }
    }
}

/// Bytes a path keeps as sent: printable ASCII but `<` `>` `` ` `` `#`
/// (`?` ends the path).
const PLAIN_PATH: [bool; 256] = plain_table(b"<>`#");
/// Bytes a query keeps as sent: printable ASCII but `"` `<` `>` `#`.
const PLAIN_QUERY: [bool; 256] = plain_table(b"\"<>#");

const fn plain_table(except: &[u8]) -> [bool; 256] {
    let mut t = [false; 256];
    let mut b = 0x21;
    while b <= 0x7e {
        t[b] = true;
        b += 1;
    }
    let mut i = 0;
    while i < except.len() {
        t[except[i] as usize] = false;
        i += 1;
    }
    t
}

/// Bytes of a plain host name: letters, digits, `.`, `-`, `_`.
const HOST_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || c == b'.' || c == b'-' || c == b'_';
        b += 1;
    }
    t
};

/// A `Host` value the native engine may send on without a closer look: a
/// name or IPv4 address of letters, digits, `.`, `-` and `_`, with an
/// optional numeric port up to 65535. Anything else (IPv6 brackets, an
/// empty value, user info…) goes to hyper's path and [`refusal`]. (One
/// pass, no allocation: it runs per request.)
#[inline]
pub fn plain_host(value: &[u8]) -> bool {
    let colon = value.iter().position(|b| !HOST_NAME[usize::from(*b)]);
    let Some(colon) = colon else {
        return !value.is_empty();
    };
    if colon == 0 || value[colon] != b':' {
        return false;
    }
    let digits = &value[colon + 1..];
    if digits.is_empty() || digits.len() > 5 {
        return false;
    }
    let mut port = 0u32;
    for d in digits {
        if !d.is_ascii_digit() {
            return false;
        }
        port = port * 10 + u32::from(d - b'0');
    }
    port <= 65535
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(hosts: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for host in hosts {
            h.append(header::HOST, HeaderValue::from_str(host).unwrap());
        }
        h
    }

    fn check(method: &str, uri: &str, version: Version, hosts: &[&str]) -> Option<&'static str> {
        refusal(
            &method.parse().unwrap(),
            &uri.parse().unwrap(),
            version,
            &headers(hosts),
        )
    }

    #[test]
    fn what_is_refused() {
        let v11 = Version::HTTP_11;
        assert_eq!(check("GET", "/", v11, &["a"]), None);
        assert!(check("CONNECT", "a.test:443", v11, &["a.test:443"]).is_some());
        assert!(check("GET", "*", v11, &["a"]).is_some());
        assert!(check("POST", "*", v11, &["a"]).is_some());
        assert_eq!(check("OPTIONS", "*", v11, &["a"]), None);
        assert!(check("GET", "http://user@a.test/", v11, &["a.test"]).is_some());
        assert!(check("GET", "/", v11, &["a", "b"]).is_some());
        assert!(check("GET", "/", v11, &["a", "a"]).is_some());
        assert!(check("GET", "/", v11, &[]).is_some());
        assert!(check("GET", "/", v11, &["user@a"]).is_some());
        assert!(check("GET", "/", v11, &["a b"]).is_some());
        assert_eq!(check("GET", "/", v11, &[""]), None);
        assert_eq!(check("GET", "/", Version::HTTP_10, &[]), None);
        assert_eq!(check("GET", "http://a.test/", Version::HTTP_2, &[]), None);
        assert!(check("GET", "http://u:p@a.test/", Version::HTTP_2, &[]).is_some());
    }

    #[test]
    fn plain_targets_are_what_the_http_crate_takes_as_sent() {
        // Every printable byte in the path and in the query: the native
        // engine serves it only where `http` keeps it unchanged.
        for b in 0x20u8..=0x7f {
            for (prefix, suffix) in [("/a", ""), ("/a?q=", "")] {
                let mut target = prefix.as_bytes().to_vec();
                target.push(b);
                target.extend_from_slice(suffix.as_bytes());
                let parsed = http::uri::PathAndQuery::try_from(target.as_slice());
                let unchanged = parsed.is_ok_and(|p| p.as_str().as_bytes() == target.as_slice());
                assert_eq!(
                    plain_target(&target),
                    unchanged,
                    "{:?}",
                    String::from_utf8_lossy(&target)
                );
            }
        }
        assert!(plain_target(b"/p?q=1&r=%20"));
        assert!(!plain_target(b"/p#frag"));
        assert!(!plain_target(b"/\xc3\xa9"));
        assert!(!plain_target(b"*"));
        assert!(!plain_target(b""));
    }

    #[test]
    fn plain_hosts_are_valid_hosts() {
        for host in [
            "a.test",
            "a.test:8080",
            "127.0.0.1:1",
            "my_host",
            "A-B.c",
            "a:65535",
        ] {
            assert!(plain_host(host.as_bytes()), "{host}");
            assert!(valid_host(host.as_bytes()), "{host}");
        }
        for host in [
            "", "u@a", "[::1]:80", "a:", "a:65536", "a:b", ":80", "a b", "a:+1",
        ] {
            assert!(!plain_host(host.as_bytes()), "{host}");
        }
        assert!(valid_host(b"[::1]:80"));
        assert!(!valid_host(b"u@a"));
    }
}
