//! What the fuzz targets (`fuzz/fuzz_targets/`) run, and what `cargo test`
//! runs over the inputs kept in `fuzz/regressions/`: the parsers of bytes
//! a client or a backend controls, each with the properties that must hold
//! for any input — no panic, and output that is itself well-formed.

use std::net::SocketAddr;

use super::chunked::Tracker;
use super::request::{prepare, Head, MAX_HEADERS};
use super::response::{self, Parsed};
use crate::proxy::routing::Routing;

thread_local! {
    /// `trusted_proxies` and a cookie `hash` key, over an empty pool.
    static ROUTING: std::sync::Arc<Routing> = {
        let config = shoal_config::Config {
            trusted_proxies: vec!["10.0.0.0/8".to_string()],
            balance: shoal_config::BalanceConfig {
                algorithm: shoal_config::Algorithm::Hash,
                hash_key: Some(shoal_config::HashKey::Cookie("s".into())),
                ..Default::default()
            },
            ..Default::default()
        };
        let table = std::sync::Arc::new(crate::balance::EndpointTable::new());
        std::sync::Arc::new(Routing::single(table, &config))
    };
}

/// A client's request head: the native engine's parse and rewrite. What it
/// serves comes out as one complete head, with exactly one `Host`, a
/// request id, and no hop-by-hop header but `connection: te`.
pub fn request_head(data: &[u8]) {
    let peer: SocketAddr = ([10, 1, 2, 3], 4567).into();
    let routing = ROUTING.with(|r| r.clone());
    let mut out = Vec::new();
    let Head::Ready(req) = prepare(data, (peer, "", false), "http", &routing, &mut out) else {
        return;
    };
    assert!(req.len <= data.len());
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS + 8];
    let mut parsed = httparse::Request::new(&mut headers);
    let status = parsed.parse(&out).expect("the backend's head parses");
    assert_eq!(
        status,
        httparse::Status::Complete(out.len()),
        "one whole head"
    );
    assert_eq!(parsed.version, Some(1));
    let count = |name: &str| {
        parsed
            .headers
            .iter()
            .filter(|h| h.name.eq_ignore_ascii_case(name))
            .count()
    };
    assert_eq!(count("host"), 1);
    assert_eq!(count("x-request-id"), 1);
    assert_eq!(count("x-forwarded-for"), 1);
    for hop in [
        "transfer-encoding",
        "upgrade",
        "keep-alive",
        "http2-settings",
    ] {
        assert_eq!(count(hop), 0, "{hop}");
    }
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("connection") {
            assert_eq!(h.value, b"te");
        }
    }
}

/// A backend's response head: the parse, the framing, and the head the
/// client gets, which is one complete response head.
pub fn response_head(data: &[u8]) {
    let Some((&flags, data)) = data.split_first() else {
        return;
    };
    let mut out = Vec::new();
    let id = super::request::RequestId::from_client(b"fuzz");
    match response::prepare(data, flags & 1 == 1, flags & 2 == 2, &id, &mut out) {
        Parsed::Partial | Parsed::Invalid(_) => {}
        Parsed::Informational(len) => assert!(len > 0 && len <= data.len()),
        Parsed::Ready(head) => {
            assert!(head.len <= data.len());
            let mut headers = [httparse::EMPTY_HEADER; 256];
            let mut parsed = httparse::Response::new(&mut headers);
            let status = parsed.parse(&out).expect("the client's head parses");
            assert_eq!(
                status,
                httparse::Status::Complete(out.len()),
                "one whole head"
            );
            assert_eq!(parsed.code, Some(head.status));
        }
    }
}

/// A chunked body: where it ends does not depend on how its bytes are cut
/// into reads. The first byte says where the second read starts.
pub fn chunked(data: &[u8]) {
    let Some((&cut, body)) = data.split_first() else {
        return;
    };
    let whole = {
        let mut t = Tracker::default();
        t.advance(body).map(|n| (n, t.is_done()))
    };
    let cut = usize::from(cut).min(body.len());
    let pieces = {
        let mut t = Tracker::default();
        t.advance(&body[..cut]).and_then(|first| {
            if t.is_done() {
                return Ok((first, true));
            }
            let second = t.advance(&body[cut..])?;
            Ok((first + second, t.is_done()))
        })
    };
    match (whole, pieces) {
        (Ok(a), Ok(b)) => assert_eq!(a, b),
        (Err(_), Err(_)) => {}
        (a, b) => panic!("whole {a:?}, in two reads {b:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Every input kept in `fuzz/regressions/TARGET/` (crashes fuzzing
    /// found, after their fix) and `fuzz/seeds/TARGET/` goes through its
    /// target again.
    #[test]
    fn kept_inputs_pass() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        type Target = (&'static str, fn(&[u8]));
        let targets: [Target; 6] = [
            ("request_head", super::request_head),
            ("response_head", super::response_head),
            ("chunked", super::chunked),
            ("config", crate::fuzz::config),
            ("proxy_header", crate::fuzz::proxy_header),
            ("request_target", crate::fuzz::request_target),
        ];
        let mut ran = 0;
        for (name, run) in targets {
            for dir in ["regressions", "seeds"] {
                let Ok(entries) = std::fs::read_dir(root.join(dir).join(name)) else {
                    continue;
                };
                for entry in entries.flatten() {
                    let data = std::fs::read(entry.path()).unwrap();
                    run(&data);
                    ran += 1;
                }
            }
        }
        assert!(ran >= 8, "the seeds are there: {ran} inputs");
    }

    #[test]
    fn typical_inputs_hold() {
        super::request_head(b"GET /a?b=c HTTP/1.1\r\nHost: a.test\r\nCookie: s=1\r\nConnection: x-y\r\nX-Y: 1\r\nTE: trailers\r\n\r\n");
        super::response_head(b"\x03HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
        super::response_head(b"\x00HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n");
        super::chunked(b"\x045\r\nhello\r\n0\r\nx: y\r\n\r\nGET /");
    }
}
