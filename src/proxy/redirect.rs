//! `redirect_https: true`: a listener that answers every request with
//! `301 Moved Permanently` to the same URL on the HTTPS listener, and sends
//! nothing to a backend (nginx's `return 301 https://$host$request_uri`).
//!
//! Written once, for both engines: a redirecting listener's connections
//! never reach the native engine or the proxy; `proxy/server.rs` serves
//! them on hyper, whose service asks [`answer`].

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};

use super::body::ProxyBody;

/// `https://HOST[:PORT]/path?query`: HOST is the request's host without its
/// port (the `Host` header, or the target's authority), PORT the HTTPS
/// listener's, left out when 443. `None` when the host is not a plain
/// name or IP literal.
pub fn location(
    host: Option<&str>,
    local: SocketAddr,
    target: &str,
    https_port: u16,
) -> Option<String> {
    let host = match host {
        Some(h) => strip_port(h)?,
        // HTTP/1.0 without Host: the address the client reached.
        None => match local.ip() {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        },
    };
    let port = match https_port {
        443 => String::new(),
        p => format!(":{p}"),
    };
    let target = if target.starts_with('/') { target } else { "/" };
    Some(format!("https://{host}{port}{target}"))
}

/// The host of a `Host` value without its port; `None` unless it is a
/// name (letters, digits, `-`, `.`, `_`) or a bracketed IPv6 literal.
fn strip_port(host: &str) -> Option<String> {
    let (name, rest) = if let Some(inner) = host.strip_prefix('[') {
        let end = inner.find(']')?;
        let ip = &inner[..end];
        if ip.is_empty()
            || !ip
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return None;
        }
        (&host[..end + 2], &inner[end + 1..])
    } else {
        match host.find(':') {
            Some(i) => (&host[..i], &host[i..]),
            None => (host, ""),
        }
    };
    let port_ok = rest.is_empty()
        || rest
            .strip_prefix(':')
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    let name_ok = name.starts_with('[')
        || (!name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_')));
    (port_ok && name_ok).then(|| name.to_string())
}

/// The answer to any request on a redirecting listener.
pub fn answer<B>(req: &Request<B>, local: SocketAddr, https_port: u16) -> Response<ProxyBody> {
    let host = req.uri().authority().map(|a| a.as_str()).or_else(|| {
        req.headers()
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
    });
    let target = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let location = location(host, local, target, https_port)
        .and_then(|l| HeaderValue::from_str(&l).ok().map(|v| (l, v)));
    let Some((text, value)) = location else {
        crate::metrics::counters::generated(400);
        let mut resp = Response::new(ProxyBody::full(Bytes::from_static(
            b"400 Bad Request: the Host header is not a host name\n",
        )));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return resp;
    };
    let mut resp = Response::new(ProxyBody::full(Bytes::from(format!(
        "301 Moved Permanently: {text}\n"
    ))));
    *resp.status_mut() = StatusCode::MOVED_PERMANENTLY;
    let h = resp.headers_mut();
    h.insert(header::LOCATION, value);
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> SocketAddr {
        "127.0.0.1:8080".parse().unwrap()
    }

    #[test]
    fn host_port_is_replaced_by_the_https_port() {
        assert_eq!(
            location(Some("example.test:8080"), local(), "/p?q=1", 8443).as_deref(),
            Some("https://example.test:8443/p?q=1")
        );
        assert_eq!(
            location(Some("example.test"), local(), "/", 443).as_deref(),
            Some("https://example.test/")
        );
        assert_eq!(
            location(Some("[::1]:80"), local(), "/a", 443).as_deref(),
            Some("https://[::1]/a")
        );
        assert_eq!(
            location(None, local(), "*", 8443).as_deref(),
            Some("https://127.0.0.1:8443/")
        );
    }

    #[test]
    fn odd_hosts_are_refused() {
        for bad in ["a b", "x@y", "a:b", "[zz]", "", "[::1", "a/b"] {
            assert_eq!(location(Some(bad), local(), "/", 443), None, "{bad}");
        }
    }
}
