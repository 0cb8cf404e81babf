//! One stdout line per request: `INSTANCE METHOD PATH STATUS [REQUEST-ID]`.
//!
//! shoal forwards these lines with an instance prefix and its tests read them, so the
//! format is part of the contract. Lines go out whole and at once: std's stdout is
//! line-buffered even when it is a pipe.

use std::io::Write;

/// Formats the access line for one request.
pub(crate) fn format(
    instance: &str,
    method: &http::Method,
    path: &str,
    status: u16,
    request_id: Option<&http::HeaderValue>,
) -> String {
    let mut line = format!("{instance} {method} {path} {status}");
    if let Some(id) = request_id {
        line.push(' ');
        // The header is client input: keep it on one line and printable.
        line.extend(String::from_utf8_lossy(id.as_bytes()).chars().map(|c| {
            if c.is_control() {
                '?'
            } else {
                c
            }
        }));
    }
    line
}

/// Writes one line to stdout. Errors are ignored on purpose: a closed stdout (the
/// supervisor went away) must not take a request down with it, which `println!` would
/// do by panicking.
pub(crate) fn line(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{text}");
    let _ = out.flush();
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderValue, Method};

    #[test]
    fn without_request_id() {
        assert_eq!(
            format("app-1", &Method::GET, "/health", 200, None),
            "app-1 GET /health 200"
        );
    }

    #[test]
    fn with_request_id() {
        let id = HeaderValue::from_static("abc-123");
        assert_eq!(
            format("app-2", &Method::POST, "/echo", 200, Some(&id)),
            "app-2 POST /echo 200 abc-123"
        );
    }

    #[test]
    fn request_id_is_kept_printable() {
        let id = HeaderValue::from_bytes(b"a\tb\xffc").unwrap();
        assert_eq!(
            format("x", &Method::GET, "/", 404, Some(&id)),
            "x GET / 404 a?b\u{fffd}c"
        );
    }
}
