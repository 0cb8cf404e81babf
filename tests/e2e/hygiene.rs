//! Request hygiene: what shoal refuses or normalises before a backend sees
//! it, by RFC 9110/9112/9113, with the same answer from both engines
//! (`proxy.engine: native` and `hyper`). Each test sends the exact bytes
//! on a raw socket (HTTP/1.1) or raw HTTP/2 frames (h2c by prior
//! knowledge, h2 over TLS) and looks at what a raw recording backend got.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{find, Mode, RawBackend};
use crate::support::{eventually, upstreams_config, Shoal};

const ENGINES: [&str; 2] = ["native", "hyper"];

/// shoal in front of a raw backend that answers every request with 200.
async fn start(engine: &str, mode: Mode, extra: &str) -> (Shoal, RawBackend) {
    let backend = RawBackend::start(mode).await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        &format!("proxy: {{ engine: {engine} }}\n{extra}"),
    ));
    shoal.wait_upstreams(1).await;
    (shoal, backend)
}

/// Send `raw` on a new connection; the response head (up to its blank
/// line, or all that came before the close).
async fn head_of(addr: SocketAddr, raw: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(raw).await.unwrap();
    read_head(&mut s).await
}

async fn read_head(s: &mut TcpStream) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while find(&got, b"\r\n\r\n").is_none() {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("an answer, not a hang")
            .unwrap_or(0);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

/// The first line of what `raw` gets.
async fn status_of(addr: SocketAddr, raw: &str) -> String {
    let head = head_of(addr, raw.as_bytes()).await;
    head.lines().next().unwrap_or("").to_string()
}

/// Each of `requests` gets 400 and nothing reaches the backend.
async fn all_refused(shoal: &Shoal, backend: &RawBackend, engine: &str, requests: &[&str]) {
    for raw in requests {
        let status = status_of(shoal.proxy, raw).await;
        assert!(
            status.starts_with("HTTP/1.1 400"),
            "{engine}: {raw:?}: {status}"
        );
    }
    assert_eq!(backend_got(backend, 0).await, "", "{engine}");
}

/// What the backend got, once it got `n` request heads (or at once for 0,
/// after a moment for anything late to show).
async fn backend_got(backend: &RawBackend, n: usize) -> String {
    if n == 0 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        return backend.text();
    }
    eventually(
        Duration::from_secs(5),
        "requests at the backend",
        || async {
            let text = backend.text();
            (text.matches("\r\n\r\n").count() >= n).then_some(text)
        },
    )
    .await
}

/// 1. An h2c upgrade offer never reaches a backend, wherever it stands:
/// two Upgrade lines (h2c first), one line with h2c and another protocol,
/// and `HTTP2-Settings` whether or not `Connection` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2c_upgrade_offer_never_reaches_a_backend() {
    let requests = [
        "GET /two-lines HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nUpgrade: websocket\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        "GET /one-line HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: h2c, websocket\r\n\r\n",
        "GET /settings-alone HTTP/1.1\r\nHost: a\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
        "GET /offer-alone HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n",
    ];
    for engine in ENGINES {
        let (shoal, backend) = start(engine, Mode::AnswerComplete, "").await;
        for raw in requests {
            let status = status_of(shoal.proxy, raw).await;
            assert!(
                status.starts_with("HTTP/1.1 200"),
                "{engine}: {raw:?}: {status}"
            );
        }
        let got = backend_got(&backend, requests.len())
            .await
            .to_ascii_lowercase();
        assert!(
            !got.contains("h2c"),
            "{engine}: h2c reached the backend:\n{got}"
        );
        assert!(!got.contains("http2-settings"), "{engine}:\n{got}");
        // The other protocol of the offer still goes on as an upgrade.
        let two = &got[got.find("get /two-lines").unwrap()..];
        let two = &two[..two.find("\r\n\r\n").unwrap()];
        assert!(two.contains("\r\nupgrade: websocket"), "{engine}: {two}");
        assert!(two.contains("\r\nconnection: upgrade"), "{engine}: {two}");
    }
}

/// 2, 3. Two `Host` lines, or none on HTTP/1.1: 400, nothing forwarded.
/// HTTP/1.0 without `Host` goes on with the listener's address as `Host`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_must_be_there_once() {
    for engine in ENGINES {
        let (shoal, backend) = start(engine, Mode::AnswerComplete, "").await;
        let refused = [
            "GET /dup HTTP/1.1\r\nHost: a.test\r\nHost: b.test\r\n\r\n",
            "GET /dup-same HTTP/1.1\r\nHost: a.test\r\nhost: a.test\r\n\r\n",
            "GET /none HTTP/1.1\r\nUser-Agent: t\r\n\r\n",
            "GET /userinfo HTTP/1.1\r\nHost: user@a.test\r\n\r\n",
        ];
        all_refused(&shoal, &backend, engine, &refused).await;
        let status = status_of(shoal.proxy, "GET /old HTTP/1.0\r\n\r\n").await;
        assert!(status.starts_with("HTTP/1.0 200"), "{engine}: {status}");
        let got = backend_got(&backend, 1).await;
        assert!(
            got.contains(&format!("\r\nhost: {}\r\n", shoal.proxy)),
            "{engine}: {got}"
        );
        assert!(got.starts_with("GET /old HTTP/1.1\r\n"), "{engine}: {got}");
        // `Connection` cannot take Host (or shoal's own headers) away.
        backend.mark();
        let raw = "GET /named HTTP/1.1\r\nHost: a.test\r\nConnection: host, x-request-id\r\nX-Request-Id: mine\r\n\r\n";
        let status = status_of(shoal.proxy, raw).await;
        assert!(status.starts_with("HTTP/1.1 200"), "{engine}: {status}");
        let got = backend_got(&backend, 1).await.to_ascii_lowercase();
        assert!(got.contains("\r\nhost: a.test\r\n"), "{engine}: {got}");
        assert!(
            got.contains("\r\nx-request-id: mine\r\n"),
            "{engine}: {got}"
        );
    }
}

/// 4, 9. CONNECT is refused (no tunnels), and the asterisk form is for
/// OPTIONS only; `OPTIONS *` goes on as it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_the_asterisk_form_are_refused() {
    for engine in ENGINES {
        let (shoal, backend) = start(engine, Mode::AnswerComplete, "").await;
        let refused = [
            "CONNECT a.test:443 HTTP/1.1\r\nHost: a.test:443\r\n\r\n",
            "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST * HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
            "GET http://user@a.test/ HTTP/1.1\r\nHost: a.test\r\n\r\n",
        ];
        all_refused(&shoal, &backend, engine, &refused).await;
        let status = status_of(shoal.proxy, "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{engine}: {status}");
        let got = backend_got(&backend, 1).await;
        assert!(got.starts_with("OPTIONS * HTTP/1.1\r\n"), "{engine}: {got}");
    }
}

/// 5. One rule for request targets (`proxy/request_rules.rs`): the
/// fragment is never sent; `<`, `>` and `` ` `` in the path and `"`, `<`,
/// `>` in the query get 400; everything else printable goes on unchanged.
/// The same table through both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_engines_read_request_targets_alike() {
    // (target sent, what the backend gets, or None for 400)
    let table: &[(&str, Option<&str>)] = &[
        ("/p#frag", Some("/p")),
        ("/p?q=1#frag", Some("/p?q=1")),
        ("/?q=<script>", None),
        ("/a>b", None),
        ("/a`b", None),
        ("/a%3Cb?x=%22y%22", Some("/a%3Cb?x=%22y%22")),
        ("/?q=`x`", Some("/?q=`x`")),
        ("/a\"b", Some("/a\"b")),
        ("/?q=\"x\"", None),
        ("/a{b}|c^~!$&'()*+,;=:@", Some("/a{b}|c^~!$&'()*+,;=:@")),
        ("/?a={b}|c^", Some("/?a={b}|c^")),
    ];
    let mut answers: Vec<Vec<String>> = Vec::new();
    for engine in ENGINES {
        let (shoal, backend) = start(engine, Mode::AnswerComplete, "").await;
        let mut seen = Vec::new();
        for (target, forwarded) in table {
            backend.mark();
            let raw = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
            let status = status_of(shoal.proxy, &raw).await;
            match forwarded {
                Some(expected) => {
                    assert!(
                        status.starts_with("HTTP/1.1 200"),
                        "{engine}: {target}: {status}"
                    );
                    let got = backend_got(&backend, 1).await;
                    let line = got.lines().next().unwrap_or("");
                    assert_eq!(
                        line,
                        format!("GET {expected} HTTP/1.1"),
                        "{engine}: {target}"
                    );
                }
                None => {
                    assert!(
                        status.starts_with("HTTP/1.1 400"),
                        "{engine}: {target}: {status}"
                    );
                    assert_eq!(backend_got(&backend, 0).await, "", "{engine}: {target}");
                }
            }
            seen.push(status);
        }
        answers.push(seen);
    }
    assert_eq!(answers[0], answers[1], "native and hyper answer alike");
}

/// 8. `HTTP/1.2` is served as HTTP/1.1 (RFC 9112 §2.3), also with a body
/// and on a keep-alive connection's second request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_higher_minor_version_is_served_as_http_1_1() {
    for engine in ENGINES {
        let (shoal, backend) = start(engine, Mode::AnswerComplete, "").await;
        let status = status_of(shoal.proxy, "GET /v12 HTTP/1.2\r\nHost: a\r\n\r\n").await;
        assert!(status.starts_with("HTTP/1.1 200"), "{engine}: {status}");
        let got = backend_got(&backend, 1).await;
        assert!(got.starts_with("GET /v12 HTTP/1.1\r\n"), "{engine}: {got}");

        backend.mark();
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        s.write_all(b"POST /body HTTP/1.2\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello")
            .await
            .unwrap();
        let head = read_head(&mut s).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{engine}: {head}");
        s.write_all(b"GET /second HTTP/1.3\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let head = read_head(&mut s).await;
        assert!(head.contains("HTTP/1.1 200"), "{engine}: {head}");
        let got = backend_got(&backend, 2).await;
        assert!(got.contains("POST /body HTTP/1.1\r\n"), "{engine}: {got}");
        assert!(got.contains("GET /second HTTP/1.1\r\n"), "{engine}: {got}");
    }
}

/// 10. A client that sends a whole request and then ends its sending side
/// (FIN) gets its answer, under both engines, for a GET and for a POST with
/// a body. With `limits.abort_on_client_close: true` the same request is
/// abandoned (the backend connection closed at once), as nginx does. (A
/// reset abandons it either way: native_engine.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_closed_client_gets_its_answer() {
    let slow = Mode::AnswerCompleteAfter(Duration::from_millis(400));
    for engine in ENGINES {
        let (shoal, backend) = start(engine, slow, "").await;
        for raw in [
            "GET /half HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /half-post HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        ] {
            let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            // The whole request is at the backend before the client's FIN.
            let tail = if raw.ends_with("hello") {
                "hello"
            } else {
                "\r\n\r\n"
            };
            eventually(
                Duration::from_secs(5),
                "the request at the backend",
                || async { backend.text().ends_with(tail).then_some(()) },
            )
            .await;
            s.shutdown().await.unwrap();
            let mut all = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
                .await
                .expect("an answer, then the close")
                .unwrap();
            let text = String::from_utf8_lossy(&all);
            assert!(
                text.starts_with("HTTP/1.1 200"),
                "{engine}: {raw:?}: {text:?}"
            );
            assert!(
                text.ends_with("got 0") || text.ends_with("got 5"),
                "{engine}: {text}"
            );
            backend.mark();
        }
    }

    // Written and half-closed at once (`printf … | nc -N`): the end of
    // input may come with the last body byte.
    for engine in ENGINES {
        let (shoal, _backend) = start(engine, slow, "").await;
        for raw in [
            "GET /at-once HTTP/1.1\r\nHost: a\r\n\r\n",
            "POST /at-once HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
        ] {
            let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
            s.write_all(raw.as_bytes()).await.unwrap();
            s.shutdown().await.unwrap();
            let mut all = Vec::new();
            tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
                .await
                .expect("an answer, then the close")
                .unwrap();
            let text = String::from_utf8_lossy(&all);
            assert!(
                text.starts_with("HTTP/1.1 200"),
                "{engine}: {raw:?}: {text:?}"
            );
        }
    }

    for engine in ENGINES {
        // A backend that never answers (and sees the close at once).
        let (shoal, backend) = start(
            engine,
            Mode::Record,
            "limits: { abort_on_client_close: true }\n",
        )
        .await;
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        s.write_all(b"GET /abort HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        eventually(
            Duration::from_secs(5),
            "the request at the backend",
            || async { (!backend.conns().is_empty()).then_some(()) },
        )
        .await;
        let left = std::time::Instant::now();
        s.shutdown().await.unwrap();
        let closed_at = eventually(
            Duration::from_secs(5),
            "the backend connection closed",
            || async { backend.conns()[0].closed_at },
        )
        .await;
        assert!(
            closed_at.saturating_duration_since(left) < Duration::from_secs(2),
            "{engine}: the request was not abandoned"
        );
        let mut all = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all)).await;
        assert!(
            all.is_empty(),
            "{engine}: {:?}",
            String::from_utf8_lossy(&all)
        );
    }
}

// --- HTTP/2 -------------------------------------------------------------

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A frame: 9-byte header and payload.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// A header block of literal fields without indexing (HPACK §6.2.2),
/// no Huffman: every byte as given, pseudo-headers included.
fn header_block(fields: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    for (name, value) in fields {
        assert!(name.len() < 127 && value.len() < 127);
        b.push(0);
        b.push(name.len() as u8);
        b.extend_from_slice(name.as_bytes());
        b.push(value.len() as u8);
        b.extend_from_slice(value.as_bytes());
    }
    b
}

/// What became of stream 1.
#[derive(Debug, PartialEq)]
enum H2Answer {
    /// Response headers; the `:status` when the encoder indexed it (200,
    /// 204, 206, 304, 400, 404, 500: HPACK's static table), else 0.
    Status(u16),
    /// RST_STREAM with this error code.
    Reset(u32),
    /// GOAWAY with this error code.
    GoAway(u32),
    /// The connection closed first.
    Closed,
}

/// Open an HTTP/2 connection on `io`, send one request with `fields` as
/// its header block (END_STREAM), and read until stream 1 is answered.
async fn h2_request<S>(io: &mut S, fields: &[(&str, &str)]) -> H2Answer
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut out = PREFACE.to_vec();
    out.extend(frame(0x4, 0, 0, &[]));
    out.extend(frame(0x1, 0x5, 1, &header_block(fields)));
    io.write_all(&out).await.unwrap();
    read_h2_answer(io).await
}

async fn read_h2_answer<S>(io: &mut S) -> H2Answer
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        // Every whole frame read so far.
        let mut at = 0;
        while got.len() >= at + 9 {
            let len = (usize::from(got[at]) << 16)
                | (usize::from(got[at + 1]) << 8)
                | usize::from(got[at + 2]);
            if got.len() < at + 9 + len {
                break;
            }
            let (kind, flags) = (got[at + 3], got[at + 4]);
            let stream = u32::from_be_bytes(got[at + 5..at + 9].try_into().unwrap()) & 0x7fff_ffff;
            let payload = &got[at + 9..at + 9 + len];
            match kind {
                // SETTINGS without ACK: acknowledge it.
                0x4 if flags & 1 == 0 => {
                    io.write_all(&frame(0x4, 1, 0, &[])).await.unwrap();
                }
                0x1 if stream == 1 => {
                    let status = match payload.first() {
                        Some(0x88) => 200,
                        Some(0x89) => 204,
                        Some(0x8a) => 206,
                        Some(0x8b) => 304,
                        Some(0x8c) => 400,
                        Some(0x8d) => 404,
                        Some(0x8e) => 500,
                        _ => 0,
                    };
                    return H2Answer::Status(status);
                }
                0x3 if stream == 1 => {
                    return H2Answer::Reset(u32::from_be_bytes(payload[..4].try_into().unwrap()))
                }
                0x7 => {
                    return H2Answer::GoAway(u32::from_be_bytes(payload[4..8].try_into().unwrap()))
                }
                _ => {}
            }
            at += 9 + len;
        }
        got.drain(..at);
        let n = tokio::time::timeout(Duration::from_secs(5), io.read(&mut chunk))
            .await
            .expect("an HTTP/2 answer, not a hang")
            .unwrap_or(0);
        if n == 0 {
            return H2Answer::Closed;
        }
        got.extend_from_slice(&chunk[..n]);
    }
}

/// An HTTP/2 answer that refuses the request: a 400, or the stream reset
/// with PROTOCOL_ERROR (RFC 9113 §8.1.1: a malformed request).
fn refused(a: &H2Answer) -> bool {
    matches!(a, H2Answer::Status(400) | H2Answer::Reset(1))
}

/// 4, 7. Over HTTP/2 (h2c by prior knowledge): CONNECT, `:authority` with
/// user info, and `:path: *` on a GET are refused and reach no backend; a
/// plain request on the same terms goes through (and shows the frames are
/// read right).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pseudo_headers_are_checked() {
    for engine in ENGINES {
        let (shoal, backend) = start(engine, Mode::AnswerComplete, "").await;
        let base = |path: &'static str, authority: &'static str| {
            vec![
                (":method", "GET"),
                (":scheme", "http"),
                (":authority", authority),
                (":path", path),
            ]
        };
        let bad: Vec<(&str, Vec<(&str, &str)>)> = vec![
            ("userinfo", base("/u", "user@a.test")),
            ("user:password", base("/u", "u:p@a.test")),
            ("asterisk", base("*", "a.test")),
            (
                "CONNECT",
                vec![(":method", "CONNECT"), (":authority", "a.test:443")],
            ),
        ];
        for (name, fields) in bad {
            let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
            let answer = h2_request(&mut s, &fields).await;
            assert!(refused(&answer), "{engine}: {name}: {answer:?}");
        }
        assert_eq!(backend_got(&backend, 0).await, "", "{engine}");
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        let answer = h2_request(&mut s, &base("/fine", "a.test")).await;
        assert_eq!(answer, H2Answer::Status(200), "{engine}");
        let got = backend_got(&backend, 1).await;
        assert!(got.starts_with("GET /fine HTTP/1.1\r\n"), "{engine}: {got}");
        assert!(got.contains("\r\nhost: a.test\r\n"), "{engine}: {got}");
    }
}

/// 6. Once ALPN agreed on `h2`, the connection is HTTP/2 only: bytes that
/// are not the HTTP/2 preface get a GOAWAY with PROTOCOL_ERROR (RFC 9113
/// §3.4), never an HTTP/1.1 answer; the real preface is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_h2_connections_speak_only_http2() {
    let dir = tempfile::tempdir().unwrap();
    let ca = crate::support::tls::TestCa::new();
    let (cert, key) = ca.leaf(&["a.test"], "a.test").write(dir.path(), "a");
    let tls = format!(
        "tls:\n  certificates:\n    - {{ cert: \"{}\", key: \"{}\" }}\n",
        cert.display(),
        key.display()
    );
    for engine in ENGINES {
        let (shoal, backend) = start(engine, Mode::AnswerComplete, &tls).await;
        let (mut s, _) = crate::support::tls::connect(shoal.proxy, Some("a.test"), &["h2"])
            .await
            .unwrap();
        assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
            .await
            .unwrap();
        let answer = read_h2_answer(&mut s).await;
        assert_eq!(answer, H2Answer::GoAway(1), "{engine}");
        assert_eq!(backend_got(&backend, 0).await, "", "{engine}");

        let (mut s, _) = crate::support::tls::connect(shoal.proxy, Some("a.test"), &["h2"])
            .await
            .unwrap();
        let answer = h2_request(
            &mut s,
            &[
                (":method", "GET"),
                (":scheme", "https"),
                (":authority", "a.test"),
                (":path", "/over-tls"),
            ],
        )
        .await;
        assert_eq!(answer, H2Answer::Status(200), "{engine}");
        let got = backend_got(&backend, 1).await;
        assert!(
            got.starts_with("GET /over-tls HTTP/1.1\r\n"),
            "{engine}: {got}"
        );
    }
}
