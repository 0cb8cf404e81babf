//! The answers a route gives itself, `redirect` and `respond`: built from
//! the request's view, written as HTTP/1.1 bytes (the native engine) or as
//! an `http::Response` (hyper's path), alike.

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue};
use http::{Response, StatusCode};
use shoal_config::{RedirectConfig, RespondConfig};

use crate::proxy::body::ProxyBody;
use crate::proxy::view::RequestView;

/// `respond`, compiled once per config.
#[derive(Debug)]
pub struct Respond {
    status: StatusCode,
    headers: Box<[(HeaderName, HeaderValue)]>,
    body: Bytes,
}

impl Respond {
    pub fn new(r: &RespondConfig) -> Respond {
        let mut headers: Vec<(HeaderName, HeaderValue)> = r
            .headers
            .iter()
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        if !headers.iter().any(|(n, _)| n == http::header::CONTENT_TYPE) {
            headers.push((
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            ));
        }
        Respond {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::OK),
            headers: headers.into(),
            body: Bytes::from(r.body.clone()),
        }
    }
}

/// `redirect`, compiled once per config.
#[derive(Debug)]
pub struct Redirect {
    status: StatusCode,
    to: Box<str>,
}

impl Redirect {
    pub fn new(r: &RedirectConfig) -> Redirect {
        Redirect {
            status: StatusCode::from_u16(r.status).unwrap_or(StatusCode::FOUND),
            to: r.to.as_str().into(),
        }
    }

    /// The `Location` for `req`: `{host}`, `{path}`, `{query}` (with its
    /// `?`, or nothing) and `{uri}` replaced, in one pass over the
    /// template (a request's own text is never read as a placeholder).
    /// The path is the one routes saw (`..` and `//` resolved), so
    /// `{path}` cannot begin a `//host` of its own.
    fn location(&self, req: &RequestView<'_>) -> String {
        let host = req
            .host
            .and_then(|h| std::str::from_utf8(h).ok())
            .unwrap_or("");
        let query = req.query().map(|q| format!("?{q}")).unwrap_or_default();
        let mut out = String::with_capacity(self.to.len() + req.target.len() + host.len());
        let mut rest = &*self.to;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let after = &rest[open..];
            let (value, len) = if after.starts_with("{host}") {
                (host, 6)
            } else if after.starts_with("{path}") {
                (req.path(), 6)
            } else if after.starts_with("{query}") {
                (query.as_str(), 7)
            } else if after.starts_with("{uri}") {
                (req.target, 5)
            } else {
                ("{", 1)
            };
            out.push_str(value);
            rest = &after[len..];
        }
        out.push_str(rest);
        out
    }
}

/// One fixed answer, ready to write.
pub struct Fixed<'a> {
    pub status: StatusCode,
    headers: &'a [(HeaderName, HeaderValue)],
    location: Option<HeaderValue>,
    body: Bytes,
}

impl Fixed<'_> {
    pub fn respond(r: &Respond) -> Fixed<'_> {
        Fixed {
            status: r.status,
            headers: &r.headers,
            location: None,
            body: r.body.clone(),
        }
    }

    pub fn redirect<'a>(r: &'a Redirect, req: &RequestView<'_>) -> Fixed<'a> {
        Fixed {
            status: r.status,
            headers: &[],
            // A request's own bytes that make no valid value (control
            // characters cannot pass the engines) give no Location at all.
            location: HeaderValue::from_str(&r.location(req)).ok(),
            body: Bytes::new(),
        }
    }

    fn lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.headers
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
            .chain(
                self.location
                    .iter()
                    .map(|v| (&b"location"[..], v.as_bytes())),
            )
    }

    /// As HTTP/1.1 bytes into `out`; `head_only` for a HEAD request.
    pub fn write_h1(&self, out: &mut Vec<u8>, request_id: &[u8], close: bool, head_only: bool) {
        use crate::proxy::h1_header as header;
        crate::proxy::h1_status_line(
            out,
            self.status,
            self.status.canonical_reason().unwrap_or(""),
        );
        for (name, value) in self.lines() {
            header(out, name, value);
        }
        header(out, b"x-request-id", request_id);
        if close {
            header(out, b"connection", b"close");
        }
        // 204 and 304 have neither a body nor its length.
        let bodyless = matches!(self.status.as_u16(), 204 | 304);
        if !bodyless {
            header(
                out,
                b"content-length",
                self.body.len().to_string().as_bytes(),
            );
        }
        out.extend_from_slice(b"\r\n");
        if !head_only && !bodyless {
            out.extend_from_slice(&self.body);
        }
    }

    pub fn to_response(&self, request_id: &HeaderValue) -> Response<ProxyBody> {
        let mut resp = Response::new(ProxyBody::full(self.body.clone()));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        for (name, value) in self.headers {
            h.append(name.clone(), value.clone());
        }
        if let Some(l) = &self.location {
            h.insert(http::header::LOCATION, l.clone());
        }
        h.insert(
            crate::proxy::request_id::X_REQUEST_ID.clone(),
            request_id.clone(),
        );
        resp
    }
}
