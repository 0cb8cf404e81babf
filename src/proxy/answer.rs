//! shoal's own answers (a failed request's 502/503/504, a refused one's
//! 400/408/413), described once — status, kind, request id, body — and
//! written either as an `http::Response` (hyper's path) or as HTTP/1.1
//! bytes (the native engine, and a raw socket before hyper has a request).
//! Both carry the same status line, headers and body.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};

use super::body::ProxyBody;
use super::request_id::X_REQUEST_ID;
use crate::ratelimit::RateNote;

/// One answer of shoal's own.
#[derive(Debug, Clone, Copy)]
pub struct Answer<'a> {
    pub status: StatusCode,
    /// Short, stable words for logs and JSON bodies (`no_healthy_backend`).
    pub kind: &'static str,
    pub request_id: &'a [u8],
    /// The body in JSON (the client's `Accept` asked for it), else text.
    pub json: bool,
    /// A rate limit's refusal (429): its headers and `Retry-After`.
    pub rate: Option<RateNote>,
}

impl Answer<'_> {
    fn reason(&self) -> &'static str {
        self.status.canonical_reason().unwrap_or("Error")
    }

    fn content_type(&self) -> &'static str {
        if self.json {
            "application/json"
        } else {
            "text/plain; charset=utf-8"
        }
    }

    /// The body names the request id but no internal detail (backend
    /// addresses go to the log).
    fn body(&self) -> String {
        let id = std::str::from_utf8(self.request_id).unwrap_or("");
        if self.json {
            let v = serde_json::json!({
                "status": self.status.as_u16(),
                "error": self.kind,
                "message": self.reason(),
                "request_id": id,
            });
            format!("{v}\n")
        } else {
            format!(
                "{} {}: {} (request id {id})\n",
                self.status.as_u16(),
                self.reason(),
                self.kind
            )
        }
    }

    /// 503: try again in a second.
    fn retry_after(&self) -> bool {
        self.status == StatusCode::SERVICE_UNAVAILABLE
    }

    /// 400, 408, 413: the rest of the request is not read, or its framing
    /// is not to be trusted, so whatever follows on the connection must not
    /// be read as another request (a smuggled one).
    pub fn closes(&self) -> bool {
        matches!(
            self.status,
            StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT | StatusCode::BAD_REQUEST
        )
    }

    /// For hyper's path.
    pub fn to_response(&self) -> Response<ProxyBody> {
        crate::metrics::counters::generated(self.status.as_u16());
        let mut resp = Response::new(ProxyBody::full(Bytes::from(self.body())));
        *resp.status_mut() = self.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static(self.content_type()),
        );
        let id = HeaderValue::from_bytes(self.request_id)
            .unwrap_or_else(|_| HeaderValue::from_static("-"));
        h.insert(X_REQUEST_ID.clone(), id);
        if self.retry_after() {
            h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if let Some(note) = &self.rate {
            note.insert(h);
        }
        if self.closes() {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    /// As HTTP/1.1 bytes into `out`, with `Connection: close` when the
    /// answer closes or `close` asks for it. `head_only`: the answer to a
    /// HEAD request, whose body is announced (`Content-Length`) but never
    /// sent — the client reads no body, and bytes after the head would be
    /// taken for the next response.
    pub fn write_h1(&self, out: &mut Vec<u8>, close: bool, head_only: bool) {
        use super::h1::header;
        crate::metrics::counters::generated(self.status.as_u16());
        let body = self.body();
        super::h1::status_line(out, self.status, self.reason());
        header(out, b"content-type", self.content_type().as_bytes());
        header(out, b"x-request-id", self.request_id);
        if self.retry_after() {
            header(out, b"retry-after", b"1");
        }
        if let Some(note) = &self.rate {
            note.write_h1(out);
        }
        if close || self.closes() {
            header(out, b"connection", b"close");
        }
        header(out, b"content-length", body.len().to_string().as_bytes());
        out.extend_from_slice(b"\r\n");
        if !head_only {
            out.extend_from_slice(body.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: StatusCode, json: bool) -> Answer<'static> {
        Answer {
            status,
            kind: "no_healthy_backend",
            request_id: b"rid-9",
            json,
            rate: None,
        }
    }

    #[test]
    fn the_bytes_and_the_response_say_the_same() {
        for json in [false, true] {
            for status in [503, 502, 504, 400, 408, 413] {
                let a = answer(StatusCode::from_u16(status).unwrap(), json);
                let mut bytes = Vec::new();
                a.write_h1(&mut bytes, false, false);
                let text = String::from_utf8(bytes).unwrap();
                let (head, body) = text.split_once("\r\n\r\n").unwrap();
                let resp = a.to_response();
                assert!(head.starts_with(&format!(
                    "HTTP/1.1 {} {}\r\n",
                    resp.status().as_str(),
                    resp.status().canonical_reason().unwrap()
                )));
                for (name, value) in resp.headers() {
                    let line = format!("\r\n{name}: {}", value.to_str().unwrap());
                    assert!(head.contains(&line), "{line:?} in {head}");
                }
                assert_eq!(
                    head.lines().count() - 2,
                    resp.headers().len(),
                    "and nothing else but content-length: {head}"
                );
                assert!(head.ends_with(&format!("content-length: {}", body.len())));
                assert_eq!(body, a.body());
                assert!(body.contains("rid-9"));
            }
        }
    }

    #[test]
    fn an_answer_to_head_has_no_body_and_close_is_added_once() {
        let a = answer(StatusCode::SERVICE_UNAVAILABLE, false);
        let mut full = Vec::new();
        a.write_h1(&mut full, true, false);
        let full = String::from_utf8(full).unwrap();
        let (head, _) = full.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("\r\nretry-after: 1"));
        assert_eq!(head.matches("connection: close").count(), 1);
        let mut head_only = Vec::new();
        a.write_h1(&mut head_only, true, true);
        assert_eq!(
            String::from_utf8(head_only).unwrap(),
            format!("{head}\r\n\r\n")
        );

        let a = answer(StatusCode::BAD_REQUEST, false);
        let mut out = Vec::new();
        a.write_h1(&mut out, true, false);
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.matches("connection: close").count(), 1, "{out}");
    }
}
