//! shoal's own answers (`proxy::error`) as HTTP/1.1 bytes, for the native
//! engine: the same status, headers and body the hyper path sends.

use http::Response;

use crate::proxy::body::ProxyBody;

/// `resp` (a generated answer: its body is whole) as bytes; `close` adds
/// `Connection: close` unless it is there already. `head_only`: the answer
/// to a HEAD request, whose body is announced (`Content-Length`) but never
/// sent — the client reads no body, and bytes after the head would be
/// taken for the next response.
pub fn to_bytes(resp: Response<ProxyBody>, close: bool, head_only: bool) -> Vec<u8> {
    let (parts, body) = resp.into_parts();
    let body = match body {
        ProxyBody::Full { data } => data.unwrap_or_default(),
        ProxyBody::Upstream { .. } => Default::default(),
    };
    let mut out = Vec::with_capacity(256 + body.len());
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(parts.status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(
        parts
            .status
            .canonical_reason()
            .unwrap_or("Error")
            .as_bytes(),
    );
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        super::head::header(&mut out, name.as_str().as_bytes(), value.as_bytes());
    }
    if close && !parts.headers.contains_key(http::header::CONNECTION) {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n\r\n");
    if !head_only {
        out.extend_from_slice(&body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::error::ProxyError;

    #[test]
    fn an_error_answer_is_one_whole_http_message() {
        let id = http::HeaderValue::from_static("rid-9");
        let resp = ProxyError::NoBackend.to_response(&id, false);
        let text = String::from_utf8(to_bytes(resp, true, false)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nx-request-id: rid-9"));
        assert!(head.contains("\r\nretry-after: 1"));
        assert!(head.contains("\r\nconnection: close"));
        assert!(head.ends_with(&format!("content-length: {}", body.len())));
        assert!(body.contains("rid-9"));

        // To HEAD: the same head, no body.
        let resp = ProxyError::NoBackend.to_response(&id, false);
        let head_only = String::from_utf8(to_bytes(resp, false, true)).unwrap();
        assert_eq!(
            head_only,
            format!("{}\r\n\r\n", head.replace("\r\nconnection: close", ""))
        );
    }
}
