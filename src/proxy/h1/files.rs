//! Static files on the native engine: the *files* phase (`crate::files`)
//! answers, and its answer is written here as HTTP/1.1 bytes, so a small
//! file costs no hand-off to hyper. A file the answer streams (over
//! `files::INLINE`), and a request the route would compress, go to hyper's
//! path instead.

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode};

use super::head::header as line;
use crate::files::Files;
use crate::proxy::body::ProxyBody;
use crate::routes::Route;

/// The request headers the files phase reads.
const READ: [HeaderName; 5] = [
    header::IF_NONE_MATCH,
    header::IF_MODIFIED_SINCE,
    header::RANGE,
    header::IF_RANGE,
    header::ACCEPT_ENCODING,
];

/// What the request is, for the files phase.
pub(super) struct FileRequest<'a> {
    pub method: &'a str,
    /// The target after the route's rewrite (path and query).
    pub target: &'a str,
    pub headers: &'a [httparse::Header<'a>],
    pub request_id: &'a [u8],
    pub json: bool,
    pub keep_alive: bool,
}

/// The whole answer into `out` (cleared first); `false` when it streams
/// (a large file): then nothing is written and hyper's path serves it.
pub(super) fn answer(
    files: &Files,
    route: &Route,
    req: &FileRequest<'_>,
    out: &mut Vec<u8>,
) -> bool {
    let mut headers = HeaderMap::new();
    for h in req.headers {
        if let Some(name) = READ
            .iter()
            .find(|n| h.name.eq_ignore_ascii_case(n.as_str()))
        {
            if let Ok(v) = HeaderValue::from_bytes(h.value) {
                headers.append(name.clone(), v);
            }
        }
    }
    let method = if req.method == "HEAD" {
        Method::HEAD
    } else {
        Method::from_bytes(req.method.as_bytes()).unwrap_or(Method::GET)
    };
    let (path, query) = match req.target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (req.target, None),
    };
    let Ok(request_id) = HeaderValue::from_bytes(req.request_id) else {
        return false;
    };
    let mut resp = files.serve(&method, path, query, &headers, &request_id, req.json);
    route.response_headers.apply(resp.headers_mut());
    let body = match resp.body() {
        ProxyBody::Full { data } => data.clone().unwrap_or_default(),
        _ => return false,
    };
    out.clear();
    write(&resp, &body, method == Method::HEAD, !req.keep_alive, out);
    true
}

/// A response with its whole body as HTTP/1.1 bytes.
fn write(
    resp: &Response<ProxyBody>,
    body: &Bytes,
    head_only: bool,
    close: bool,
    out: &mut Vec<u8>,
) {
    let status = resp.status();
    super::head::status_line(out, status, status.canonical_reason().unwrap_or(""));
    for (name, value) in resp.headers() {
        if name != header::CONNECTION {
            line(out, name.as_str().as_bytes(), value.as_bytes());
        }
    }
    let bodyless = status == StatusCode::NOT_MODIFIED || status.is_informational();
    if !bodyless && !resp.headers().contains_key(header::CONTENT_LENGTH) {
        line(out, b"content-length", body.len().to_string().as_bytes());
    }
    let close = close
        || resp
            .headers()
            .get(header::CONNECTION)
            .is_some_and(|v| v == "close");
    if close {
        line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
    if !head_only && !bodyless {
        out.extend_from_slice(body);
    }
}
