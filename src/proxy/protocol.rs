//! A request in the form its backend's protocol takes. Requests are
//! prepared as HTTP/1.1 (origin-form target, `Host`); one that goes to an
//! h2 backend is converted per attempt, and one an h2 backend gave back
//! unsent is converted back for an HTTP/1.1 backend.

use http::header::{self, HeaderValue};
use http::uri::{self, Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Version};
use shoal_config::UpstreamProtocol;

use super::pool::UpstreamBody;

/// The request target as a backend expects it: origin-form (`/path?query`).
pub(super) fn origin_form(uri: &Uri) -> Uri {
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
pub(super) fn for_protocol(
    req: &mut Request<UpstreamBody>,
    protocol: UpstreamProtocol,
    tls: bool,
    backend: &str,
) {
    match protocol {
        UpstreamProtocol::Http1 if req.version() != Version::HTTP_11 => to_h1(req),
        UpstreamProtocol::H2 if req.version() != Version::HTTP_2 => to_h2(req, tls, backend),
        _ => {}
    }
}

/// HTTP/1.1 → h2. hyper's h2 client sends `:scheme` and `:authority` from
/// the URI, so the target becomes `http://AUTHORITY/path`, where AUTHORITY is
/// the request's `Host` (the client's `:authority` for an h2 client), and
/// `Host` itself is dropped: as Envoy and nginx (`grpc_pass`) do, and as RFC
/// 9113 §8.3.1 asks of an intermediary. Without a usable `Host`, the
/// backend's own address. `:scheme` is that of the hop to the backend:
/// `http`, or `https` over TLS (the client's is in `X-Forwarded-Proto`).
/// Connection-specific fields must not appear in HTTP/2 (RFC 9113 §8.2.2):
/// `strip_hop_by_hop` removed them; `Connection: te` (set for HTTP/1.1
/// backends) and an `Upgrade` go too, `TE: trailers` stays.
fn to_h2(req: &mut Request<UpstreamBody>, tls: bool, backend: &str) {
    let headers = req.headers_mut();
    let host = headers.remove(header::HOST);
    headers.remove(header::CONNECTION);
    headers.remove(header::UPGRADE);
    let authority = host
        .and_then(|h| Authority::try_from(h.as_bytes()).ok())
        .or_else(|| Authority::try_from(backend).ok());
    let mut parts = uri::Parts::default();
    parts.scheme = Some(if tls { Scheme::HTTPS } else { Scheme::HTTP });
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{Either, Full};

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
        for_protocol(&mut req, UpstreamProtocol::H2, false, "127.0.0.1:9000");
        assert_eq!(req.version(), Version::HTTP_2);
        assert_eq!(req.uri(), "http://api.test:8443/p?q=1");
        assert!(
            req.headers().get(header::HOST).is_none(),
            "Host → :authority"
        );
        assert!(req.headers().get(header::CONNECTION).is_none());
        assert_eq!(req.headers()[header::TE], "trailers");

        // Unsent, then to an HTTP/1.1 backend: back as it was.
        for_protocol(&mut req, UpstreamProtocol::Http1, false, "127.0.0.1:9001");
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri(), "/p?q=1");
        assert_eq!(req.headers()[header::HOST], "api.test:8443");
        assert_eq!(req.headers()[header::CONNECTION], "te");

        // No usable Host: the backend's own address.
        let mut req = request(None, false);
        for_protocol(&mut req, UpstreamProtocol::H2, false, "127.0.0.1:9000");
        assert_eq!(req.uri(), "http://127.0.0.1:9000/p?q=1");
        let mut req = request(Some("bad host"), false);
        for_protocol(&mut req, UpstreamProtocol::H2, false, "127.0.0.1:9000");
        assert_eq!(req.uri(), "http://127.0.0.1:9000/p?q=1");

        // Over TLS, `:scheme` is https.
        let mut req = request(Some("api.test"), false);
        for_protocol(&mut req, UpstreamProtocol::H2, true, "127.0.0.1:9000");
        assert_eq!(req.uri(), "https://api.test/p?q=1");
    }

    #[test]
    fn http1_requests_are_left_alone() {
        let mut req = request(Some("a.test"), false);
        for_protocol(&mut req, UpstreamProtocol::Http1, false, "127.0.0.1:9000");
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
