//! The native HTTP/1.1 engine (`proxy/h1`, `proxy.engine: native`, the
//! default): what it passes through byte for byte, how it reuses and
//! replaces backend connections, and how a connection moves to hyper at the
//! first request the engine does not serve. Most of the suite runs on it
//! too (every plain GET of every other test); these are the cases only a
//! scripted backend can produce.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::support::raw::find;
use crate::support::{demo_config, read_response, read_to_close, upstreams_config, Shoal};

/// What the scripted backend does after answering.
#[derive(Clone, Copy, PartialEq)]
enum After {
    KeepOpen,
    Close,
    /// Answer as a connection's first request; on a reused connection,
    /// close without answering (a backend that dropped it meanwhile).
    FirstOnly,
}

/// A backend that answers each request head with the bytes its path maps
/// to (the request's path is the key, e.g. `/chunked`), counting
/// connections that carried a request (not the TCP health checks) and
/// requests. A real socket server, scripted so that the
/// framings a proxy must handle can all be produced on demand.
struct Scripted {
    addr: SocketAddr,
    conns: Arc<AtomicUsize>,
    requests: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Scripted {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Scripted {
    async fn start(script: &[(&'static str, &'static str, After)]) -> Scripted {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let script: Arc<BTreeMap<&str, (&str, After)>> =
            Arc::new(script.iter().map(|(p, r, a)| (*p, (*r, *a))).collect());
        let conns = Arc::new(AtomicUsize::new(0));
        let requests = Arc::new(AtomicUsize::new(0));
        let (c, r) = (conns.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let (script, r, c) = (script.clone(), r.clone(), c.clone());
                tokio::spawn(async move {
                    let mut first = true;
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Some(end) = find(&buf, b"\r\n\r\n") else {
                            match s.read(&mut chunk).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                            }
                            continue;
                        };
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        r.fetch_add(1, Ordering::SeqCst);
                        let was_first = std::mem::take(&mut first);
                        if was_first {
                            c.fetch_add(1, Ordering::SeqCst);
                        }
                        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
                        let (resp, after) = script.get(path.as_str()).copied().unwrap_or((
                            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
                            After::KeepOpen,
                        ));
                        if after == After::FirstOnly && !was_first {
                            return;
                        }
                        // `<pause>` in a script: the rest comes 200 ms later.
                        for (i, part) in resp.split("<pause>").enumerate() {
                            if i > 0 {
                                tokio::time::sleep(Duration::from_millis(200)).await;
                            }
                            if s.write_all(part.as_bytes()).await.is_err() {
                                return;
                            }
                        }
                        if after == After::Close {
                            return;
                        }
                    }
                });
            }
        });
        Scripted {
            addr,
            conns,
            requests,
            task,
        }
    }

    fn conns(&self) -> usize {
        self.conns.load(Ordering::SeqCst)
    }

    fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

const CHUNKED: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTrailer: x-sum\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n";
const LENGTH: &str = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-From: backend\r\n\r\nsized";
const CONTINUE: &str =
    "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
const HEAD: &str = "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n";
const NO_CONTENT: &str = "HTTP/1.1 204 No Content\r\nX-Empty: 1\r\n\r\n";

fn framings() -> Vec<(&'static str, &'static str, After)> {
    vec![
        ("/chunked", CHUNKED, After::KeepOpen),
        ("/length", LENGTH, After::KeepOpen),
        ("/continue", CONTINUE, After::KeepOpen),
        ("/head", HEAD, After::KeepOpen),
        ("/204", NO_CONTENT, After::KeepOpen),
    ]
}

/// Read exactly one response from `s`: its head, and a body by its
/// framing (chunked read to its last CRLF, the `0` chunk's trailers
/// included). `head_only`: the request was HEAD.
async fn one_response<S: AsyncRead + Unpin>(
    s: &mut S,
    pending: &mut Vec<u8>,
    head_only: bool,
) -> (String, Vec<u8>) {
    let end = loop {
        if let Some(end) = find(pending, b"\r\n\r\n") {
            break end;
        }
        fill(s, pending).await;
    };
    let head = String::from_utf8_lossy(&pending[..end]).into_owned();
    pending.drain(..end + 4);
    let lower = head.to_ascii_lowercase();
    let status: u16 = head[9..12].parse().unwrap();
    if head_only || status == 204 || status == 304 {
        return (head, Vec::new());
    }
    if lower.contains("transfer-encoding: chunked") {
        // Until the empty line that ends the trailers after the 0 chunk.
        loop {
            if let Some(z) = find(pending, b"\r\n0\r\n") {
                if let Some(e) = find(&pending[z + 5..], b"\r\n\r\n").map(|e| z + 5 + e + 4) {
                    let body = pending.drain(..e).collect();
                    return (head, body);
                }
                if pending[z + 5..].starts_with(b"\r\n") {
                    let body = pending.drain(..z + 7).collect();
                    return (head, body);
                }
            }
            fill(s, pending).await;
        }
    }
    let len: usize = lower
        .lines()
        .find_map(|l| l.strip_prefix("content-length: "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0);
    while pending.len() < len {
        fill(s, pending).await;
    }
    (head, pending.drain(..len).collect())
}

/// Read more of the response into `pending`; a close here is a failure.
async fn fill<S: AsyncRead + Unpin>(s: &mut S, pending: &mut Vec<u8>) {
    let mut chunk = [0u8; 8192];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
        .await
        .expect("response within 5 s")
        .unwrap_or(0);
    assert!(
        n > 0,
        "connection closed early: {}",
        String::from_utf8_lossy(pending)
    );
    pending.extend_from_slice(&chunk[..n]);
}

fn config(backend: SocketAddr, engine: &str) -> String {
    upstreams_config(
        &[backend],
        &format!("proxy: {{ engine: {engine} }}\nbalance: {{ algorithm: round_robin }}\n"),
    )
}

/// Each framing a backend may use reaches the client as sent — chunked
/// with its extension and trailers byte for byte, a 1xx skipped, HEAD and
/// 204 without a body — with `X-Request-Id` added, on one client
/// connection, sequentially and pipelined. Under both engines; on the
/// native one, one backend connection carries them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_framing_passes_through_on_reused_connections() {
    for engine in ["native", "hyper"] {
        let backend = Scripted::start(&framings()).await;
        let shoal = Shoal::start(&config(backend.addr, engine));
        shoal.wait_upstreams(1).await;
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        let mut pending = Vec::new();
        let req = |method: &str, path: &str| format!("{method} {path} HTTP/1.1\r\nhost: t\r\n\r\n");

        for _round in 0..2 {
            s.write_all(req("GET", "/chunked").as_bytes())
                .await
                .unwrap();
            let (head, body) = one_response(&mut s, &mut pending, false).await;
            assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{engine}: {head}");
            assert!(
                head.to_ascii_lowercase().contains("\r\nx-request-id: "),
                "{head}"
            );
            let body = String::from_utf8(body).unwrap();
            if engine == "native" {
                // Passed through as the backend framed it.
                assert_eq!(
                    body,
                    "5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-sum: 11\r\n\r\n"
                );
            } else {
                // hyper re-chunks, and sends trailers only to a client
                // that said `TE: trailers`.
                assert!(body.contains("hello") && body.contains(" world"), "{body}");
            }

            s.write_all(req("GET", "/continue").as_bytes())
                .await
                .unwrap();
            let (head, body) = one_response(&mut s, &mut pending, false).await;
            assert!(
                head.starts_with("HTTP/1.1 200 OK\r\n"),
                "1xx skipped: {head}"
            );
            assert_eq!(body, b"ok");

            s.write_all(req("HEAD", "/head").as_bytes()).await.unwrap();
            let (head, body) = one_response(&mut s, &mut pending, true).await;
            assert!(
                head.to_ascii_lowercase().contains("content-length: 1000"),
                "{head}"
            );
            assert!(body.is_empty());

            s.write_all(req("GET", "/204").as_bytes()).await.unwrap();
            let (head, _) = one_response(&mut s, &mut pending, false).await;
            assert!(head.starts_with("HTTP/1.1 204 "), "{head}");
        }

        // Three requests in one write: three answers, in order.
        let three = [
            req("GET", "/length"),
            req("GET", "/chunked"),
            req("GET", "/length"),
        ]
        .concat();
        s.write_all(three.as_bytes()).await.unwrap();
        for expected in ["sized", "hello", "sized"] {
            let (head, body) = one_response(&mut s, &mut pending, false).await;
            assert!(head.starts_with("HTTP/1.1 200 OK"), "{head}");
            assert!(
                String::from_utf8_lossy(&body).contains(expected),
                "{engine}"
            );
        }
        assert!(pending.is_empty(), "nothing extra: {pending:?}");
        assert_eq!(backend.requests(), 11, "{engine}");
        if engine == "native" {
            // (hyper's pool opens a few more for this sequence.)
            assert_eq!(backend.conns(), 1, "one backend connection for all");
        }
    }
}

/// A response without a length ends when the backend closes: the client
/// gets all of it and `Connection: close`, then the end of its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_to_the_close_closes_the_client() {
    let backend = Scripted::start(&[(
        "/stream",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
        After::Close,
    )])
    .await;
    let shoal = Shoal::start(&config(backend.addr, "native"));
    shoal.wait_upstreams(1).await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"GET /stream HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let all = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(
        all.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{all}"
    );
    assert!(all.ends_with("\r\n\r\nuntil the end"), "{all}");
}

/// A backend that closes every connection after one answer without saying
/// so (a keep-alive timeout racing the next request): whether shoal sees
/// the close while the connection is idle or only when it uses it, no
/// request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_closing_idle_connections_fails_no_request() {
    let backend = Scripted::start(&[("/once", LENGTH, After::Close)]).await;
    let shoal = Shoal::start(&config(backend.addr, "native"));
    shoal.wait_upstreams(1).await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let mut pending = Vec::new();
    for i in 0..20 {
        s.write_all(b"GET /once HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = one_response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200 OK"), "request {i}: {head}");
        assert_eq!(body, b"sized");
        if i % 2 == 0 {
            // Time for the close to arrive while the connection is pooled.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        backend.requests(),
        20,
        "each request reached the backend once"
    );
    let metrics = shoal.metrics().await;
    assert_eq!(metrics["shoal_retries_total"], 0.0, "{metrics:?}");
}

/// An unreadable response is a 502 with the request id — also a chunked
/// body broken in the bytes that came with the head — and a chunked body
/// that breaks after the head went out cuts the client's connection rather
/// than leaving it waiting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_backend_response_is_502_or_a_cut() {
    let backend = Scripted::start(&[
        ("/garbage", "HTTP/1.1 abc\r\n\r\n", After::Close),
        (
            "/lengths",
            "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
            After::Close,
        ),
        (
            "/broken-at-once",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZ\r\n",
            After::Close,
        ),
        (
            "/broken-chunks",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n<pause>ZZ\r\n",
            After::KeepOpen,
        ),
    ])
    .await;
    let shoal = Shoal::start(&config(backend.addr, "native"));
    shoal.wait_upstreams(1).await;
    for path in ["/garbage", "/lengths", "/broken-at-once"] {
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: t\r\nX-Request-Id: rid-{path}\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let mut pending = Vec::new();
        let (head, body) = one_response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 502 "), "{path}: {head}");
        assert!(
            head.contains(&format!("x-request-id: rid-{path}")),
            "{head}"
        );
        assert!(String::from_utf8_lossy(&body).contains("bad_upstream_response"));
    }
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"GET /broken-chunks HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let all = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("cut, not left hanging");
    assert!(all.starts_with("HTTP/1.1 200 OK"), "{all}");
    assert!(!all.contains("\r\n0\r\n"), "never a clean end: {all}");
}

/// One client connection: GETs on the native engine, then a POST with a
/// body moves it to hyper, which serves the rest of it — in order, nothing
/// lost. The move is counted once in `/metrics`; a connection of GETs only
/// never moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_with_a_body_moves_the_connection_to_hyper() {
    let shoal = Shoal::start(&demo_config(1, ""));
    shoal.wait_healthy(1).await;
    let handoffs = || async { shoal.metrics().await["shoal_native_handoffs_total"] };
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let mut pending = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        let (head, _) = one_response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    }
    assert_eq!(handoffs().await, 0.0, "GETs stay on the native engine");

    // A POST pipelined behind a GET, and a GET behind the POST.
    s.write_all(
        b"GET / HTTP/1.1\r\nhost: t\r\n\r\nPOST /echo HTTP/1.1\r\nhost: t\r\ncontent-length: 11\r\n\r\nhello world\
          GET / HTTP/1.1\r\nhost: t\r\n\r\n",
    )
    .await
    .unwrap();
    let (head, _) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello world", "the POST's body, echoed");
    let (head, _) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(handoffs().await, 1.0, "moved once");
}

/// A client that resets its connection while its request waits for a slow
/// backend abandons the request: shoal closes the backend connection at
/// once (nginx's 499) rather than holding it until the response or
/// `response_header_timeout`. On the native engine by default; on hyper's
/// path, which reads nothing while it serves a request (so that a
/// half-closed client gets its answer), with
/// `limits.abort_on_client_close`. (A FIN alone is a half-close, answered
/// by default: hygiene.rs.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_resets_abandons_its_request() {
    use crate::support::eventually;
    use crate::support::raw::{Mode, RawBackend};
    for (engine, extra) in [
        ("native", ""),
        ("hyper", "limits: { abort_on_client_close: true }\n"),
    ] {
        let backend = RawBackend::start(Mode::Record).await;
        let shoal = Shoal::start(&format!("{}{extra}", config(backend.addr, engine)));
        shoal.wait_upstreams(1).await;
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        s.write_all(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        eventually(
            Duration::from_secs(5),
            "the request at the backend",
            || async { (!backend.conns().is_empty()).then_some(()) },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!backend.conns()[0].closed, "{engine}: still waiting");
        let left = std::time::Instant::now();
        s.set_zero_linger().unwrap();
        drop(s);
        let closed_at = eventually(
            Duration::from_secs(5),
            "the backend connection closed",
            || async { backend.conns()[0].closed_at },
        )
        .await;
        let after = closed_at.saturating_duration_since(left);
        assert!(
            after < Duration::from_secs(2),
            "{engine}: closed {after:?} after the client left"
        );
    }
}

/// shoal's own error answer to a HEAD request announces its length but
/// sends no body, and the connection stays usable: the next answer on it
/// starts where it should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_answer_to_head_has_no_body() {
    // Nothing listens there: the TCP health check keeps it out of rotation.
    let nowhere: SocketAddr = format!("127.0.0.1:{}", crate::support::free_port())
        .parse()
        .unwrap();
    let shoal = Shoal::start(&config(nowhere, "native"));
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(b"HEAD / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let (head, _) = one_response(&mut s, &mut pending, true).await;
    assert!(head.starts_with("HTTP/1.1 503 "), "{head}");
    assert!(
        head.contains("content-length: "),
        "the length is announced: {head}"
    );
    s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(
        head.starts_with("HTTP/1.1 503 "),
        "the next answer is whole: {head}"
    );
    assert!(String::from_utf8_lossy(&body).contains("no_healthy_backend"));
}

/// A response head far over 16 KiB (many cookies) is passed on, as hyper
/// would; a request head over `limits.max_header_size` goes to hyper, which
/// answers 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_heads_are_handled_as_on_the_hyper_path() {
    // 90 lines (hyper's client takes at most 100), ~36 KiB.
    let cookies: String = (0..90)
        .map(|i| format!("Set-Cookie: c{i}={}\r\n", "v".repeat(400)))
        .collect();
    let big: &'static str = Box::leak(
        format!("HTTP/1.1 200 OK\r\n{cookies}Content-Length: 2\r\n\r\nok").into_boxed_str(),
    );
    let backend = Scripted::start(&[("/cookies", big, After::KeepOpen)]).await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        "limits: { max_header_size: 8KiB }\n",
    ));
    shoal.wait_upstreams(1).await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(b"GET /cookies HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{}", &head[..40]);
    assert!(head.len() > 36_000 && head.matches("Set-Cookie: ").count() == 90);
    assert_eq!(body, b"ok");

    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let long = format!(
        "GET / HTTP/1.1\r\nhost: t\r\nx-long: {}\r\n\r\n",
        "a".repeat(12 << 10)
    );
    s.write_all(long.as_bytes()).await.unwrap();
    let all = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(all.starts_with("HTTP/1.1 431 "), "{all}");
    assert_eq!(
        backend.requests(),
        1,
        "the long head never reached the backend"
    );
}

/// A response that goes out after the drain began says `Connection:
/// close`, and the connection ends after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_closes_with_connection_close() {
    let backend = Scripted::start(&[(
        "/slow",
        "<pause><pause><pause>HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow",
        After::KeepOpen,
    )])
    .await;
    let shoal = Shoal::start(&config(backend.addr, "native"));
    shoal.wait_upstreams(1).await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    shoal.signal(nix::sys::signal::Signal::SIGTERM);
    let all = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("closed after the answer");
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(
        all.to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{all}"
    );
    assert!(all.ends_with("slow"), "{all}");
}

/// Idle keep-alive connections on the engine close as soon as the drain
/// begins, not at the end of the grace period or of `idle_timeout`: shoal
/// exits at once. (An idle wait of the engine is an entry the drain wakes,
/// in `h1/idle.rs`; this fails if that wake-up is lost.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_closes_idle_connections_at_once() {
    let backend = Scripted::start(&[(
        "/",
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        After::KeepOpen,
    )])
    .await;
    let mut shoal = Shoal::start(&format!(
        "{}shutdown: {{ grace: 30s }}\nlimits: {{ idle_timeout: 5m }}\n",
        config(backend.addr, "native")
    ));
    shoal.wait_upstreams(1).await;
    let mut idle = Vec::new();
    for _ in 0..3 {
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
            .await
            .unwrap();
        let head = read_response(&mut s, Duration::from_secs(5)).await;
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        idle.push(s);
    }
    // And one that never sent a byte.
    idle.push(TcpStream::connect(shoal.proxy).await.unwrap());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let signalled = std::time::Instant::now();
    shoal.signal(nix::sys::signal::Signal::SIGTERM);
    for s in &mut idle {
        let rest = read_to_close(s, Duration::from_secs(5))
            .await
            .expect("an idle connection stayed open after the drain began");
        assert!(rest.is_empty(), "{rest}");
    }
    let code = tokio::task::block_in_place(|| shoal.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0), "{:#?}", shoal.log());
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "shoal waited {:?} for idle connections",
        signalled.elapsed()
    );
}

/// `tls:` with a certificate for `localhost` made in `dir`.
fn tls_section(dir: &std::path::Path) -> String {
    let ca = crate::support::tls::TestCa::new();
    let (cert, key) = ca.leaf(&["localhost"], "localhost").write(dir, "leaf");
    format!(
        "tls: {{ cert: \"{}\", key: \"{}\" }}\n",
        cert.display(),
        key.display()
    )
}

/// HTTP/1.1 over TLS is the native engine's too: keep-alive requests with
/// `X-Forwarded-Proto: https`; 24 pipelined requests in one write, of
/// which rustls holds the ones past the engine's 4 KiB buffer (those come
/// with no new bytes on the socket, so the engine must look in rustls
/// before waiting on it); a 1 MiB body relayed through rustls; then a
/// request with a body moves the connection to hyper, over the same TLS
/// session, and the next request is served there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_connections_are_served_natively_and_handed_off() {
    let dir = tempfile::tempdir().unwrap();
    let shoal = Shoal::start(&demo_config(1, &tls_section(dir.path())));
    shoal.wait_healthy(1).await;
    let handoffs = || async { shoal.metrics().await["shoal_native_handoffs_total"] };
    let (mut s, _) = crate::support::tls::connect(shoal.proxy, Some("localhost"), &["http/1.1"])
        .await
        .unwrap();
    let mut pending = Vec::new();
    for _ in 0..3 {
        s.write_all(b"GET /headers HTTP/1.1\r\nhost: localhost\r\n\r\n")
            .await
            .unwrap();
        let (head, body) = one_response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        let headers: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(headers["x-forwarded-proto"], "https", "{headers}");
    }
    assert_eq!(
        handoffs().await,
        0.0,
        "GETs over TLS stay on the native engine"
    );

    // 24 requests of exactly 512 bytes: the engine's buffer takes 8 whole
    // ones at a time and rustls keeps the rest.
    let mut burst = Vec::new();
    for i in 0..24 {
        let start = format!("GET /?i={i:02} HTTP/1.1\r\nhost: localhost\r\nx-pad: ");
        let pad = 512 - start.len() - 4;
        burst.extend_from_slice(start.as_bytes());
        burst.extend(std::iter::repeat_n(b'p', pad));
        burst.extend_from_slice(b"\r\n\r\n");
    }
    assert_eq!(burst.len(), 24 * 512);
    s.write_all(&burst).await.unwrap();
    for i in 0..24 {
        let (head, body) = one_response(&mut s, &mut pending, false).await;
        assert!(head.starts_with("HTTP/1.1 200"), "request {i}: {head}");
        let body = String::from_utf8_lossy(&body);
        assert!(body.contains("\"path\":\"/\""), "request {i}: {body}");
    }

    s.write_all(b"GET /download?bytes=1048576 HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body.len(), 1 << 20);
    assert_eq!(handoffs().await, 0.0);

    s.write_all(b"POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 11\r\n\r\nhello world")
        .await
        .unwrap();
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert_eq!(body, b"hello world", "the POST's body, echoed");
    assert_eq!(handoffs().await, 1.0, "moved to hyper once");
    s.write_all(b"GET /headers HTTP/1.1\r\nhost: localhost\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let headers: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(headers["x-forwarded-proto"], "https", "{headers}");
}

/// GET `path` over TLS from a scripted backend that answers `response` and
/// closes; read until the client's connection ends: what came, and how
/// rustls saw the end (`Err(UnexpectedEof)`: without close_notify).
async fn over_tls_to_the_close(
    path: &'static str,
    response: &'static str,
) -> (String, std::io::Result<usize>) {
    let backend = Scripted::start(&[(path, response, After::Close)]).await;
    let dir = tempfile::tempdir().unwrap();
    let shoal = Shoal::start(&format!(
        "{}{}",
        config(backend.addr, "native"),
        tls_section(dir.path())
    ));
    shoal.wait_upstreams(1).await;
    let (mut s, _) = crate::support::tls::connect(shoal.proxy, Some("localhost"), &["http/1.1"])
        .await
        .unwrap();
    s.write_all(format!("GET {path} HTTP/1.1\r\nhost: t\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut all = Vec::new();
    let end = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut all))
        .await
        .expect("closed within 5 s");
    (String::from_utf8_lossy(&all).into_owned(), end)
}

/// A body that ends with the backend's connection ends the client's TLS
/// connection with close_notify, so the client knows the body is whole
/// (rustls reports a close without it as an unexpected end).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_to_the_close_over_tls_ends_with_close_notify() {
    let (all, end) = over_tls_to_the_close(
        "/stream",
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nuntil the end",
    )
    .await;
    end.expect("closed with close_notify");
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.ends_with("\r\n\r\nuntil the end"), "{all}");
}

/// A body cut by the backend (it closes before its `Content-Length`) ends
/// the client's TLS connection without close_notify: the client sees an
/// unexpected end, never a body that looks whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_body_over_tls_ends_without_close_notify() {
    let (all, end) = over_tls_to_the_close(
        "/cut",
        "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly part of it",
    )
    .await;
    let e = end.expect_err("a cut body must not end with close_notify");
    assert_eq!(e.kind(), std::io::ErrorKind::UnexpectedEof, "{e}");
    assert!(all.ends_with("only part of it"), "{all}");
}

/// Over TLS the first request's head is due `header_read_timeout` after
/// the connection was accepted, the handshake included (as on hyper's
/// path): a client that waits 1.5 s before its handshake and then sends
/// nothing is closed about 2 s after connecting, not 2 s after the
/// handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_the_first_head_is_due_from_accepting() {
    let dir = tempfile::tempdir().unwrap();
    let shoal = Shoal::start(&demo_config(
        1,
        &format!(
            "{}limits: {{ header_read_timeout: 2s }}\n",
            tls_section(dir.path())
        ),
    ));
    shoal.wait_healthy(1).await;
    let started = std::time::Instant::now();
    let tcp = TcpStream::connect(shoal.proxy).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(crate::support::tls::client_config(&["http/1.1"]))
        .connect(name, tcp)
        .await
        .expect("handshake within header_read_timeout");
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("closed within 10 s")
        .unwrap_or(0);
    let after = started.elapsed();
    assert_eq!(n, 0, "closed without an answer");
    assert!(
        after >= Duration::from_millis(1900) && after < Duration::from_millis(3000),
        "closed {after:?} after connecting"
    );
}

// ---- HTTP/2 streams on raw sockets (`proxy/h1/upstream.rs`)

/// An HTTP/2 (prior knowledge) client connection to `addr`.
async fn h2_client(
    addr: SocketAddr,
) -> hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// One h2 exchange: status, headers, the body (or its error), trailers.
/// A stream reset before its head reached the client: status 0, the
/// error as the body's.
struct H2Answer {
    status: u16,
    headers: http::HeaderMap,
    body: Result<Vec<u8>, String>,
    trailers: Option<http::HeaderMap>,
}

async fn h2_get(
    sender: &mut hyper::client::conn::http2::SendRequest<http_body_util::Empty<bytes::Bytes>>,
    method: &str,
    path: &str,
) -> H2Answer {
    use http_body_util::BodyExt;
    let req = http::Request::builder()
        .method(method)
        .uri(format!("http://t{path}"))
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(5), sender.send_request(req))
        .await
        .expect("response head within 5 s");
    let resp = match resp {
        Ok(resp) => resp,
        Err(e) => {
            return H2Answer {
                status: 0,
                headers: http::HeaderMap::new(),
                body: Err(e.to_string()),
                trailers: None,
            }
        }
    };
    let (parts, body) = resp.into_parts();
    let collected = tokio::time::timeout(Duration::from_secs(5), body.collect())
        .await
        .expect("body within 5 s");
    let (body, trailers) = match collected {
        Ok(c) => {
            let trailers = c.trailers().cloned();
            (Ok(c.to_bytes().to_vec()), trailers)
        }
        Err(e) => (Err(e.to_string()), None),
    };
    H2Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body,
        trailers,
    }
}

/// An HTTP/2 client's GETs and HEADs reach an HTTP/1.1 backend on the
/// native engine's raw sockets: every framing decoded as hyper's client
/// would (chunks joined, trailers passed on as h2 trailers, a 1xx skipped,
/// HEAD and 204 without a body), one backend connection for them all, a
/// body to the close ending its connection. `proxy.engine: hyper` (hyper's
/// client) gives the same answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_get_every_framing_from_raw_sockets() {
    let mut script = framings();
    script.extend([
        (
            "/close",
            "HTTP/1.1 200 OK\r\nX-Framing: close\r\n\r\nuntil<pause> the close",
            After::Close,
        ),
        // Chunks and trailers split across reads at awkward places, and an
        // empty trailer section split after its CR.
        (
            "/split",
            "HTTP/1.1 200 Fine\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel<pause>lo\r\n6\r<pause>\n world\r\n0\r\nx-sum:<pause> 11\r\n\r<pause>\n",
            After::KeepOpen,
        ),
        (
            "/split-empty",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r<pause>\n",
            After::KeepOpen,
        ),
    ]);
    let mut seen: Vec<Vec<String>> = Vec::new();
    for engine in ["native", "hyper"] {
        let backend = Scripted::start(&script).await;
        let shoal = Shoal::start(&config(backend.addr, engine));
        shoal.wait_upstreams(1).await;
        let mut h2 = h2_client(shoal.proxy).await;
        let mut answers = Vec::new();
        for _round in 0..2 {
            let a = h2_get(&mut h2, "GET", "/chunked").await;
            assert_eq!(a.status, 200, "{engine}");
            assert_eq!(a.body.as_deref(), Ok(&b"hello world"[..]), "{engine}");
            let sum = a.trailers.as_ref().and_then(|t| t.get("x-sum"));
            assert_eq!(sum.map(|v| v.as_bytes()), Some(&b"11"[..]), "{engine}");
            assert!(a.headers.get("transfer-encoding").is_none(), "{engine}");
            assert!(a.headers.get("x-request-id").is_some(), "{engine}");
            answers.push(format!("{} {:?}", a.status, a.body));

            let a = h2_get(&mut h2, "GET", "/continue").await;
            assert_eq!((a.status, a.body.as_deref()), (200, Ok(&b"ok"[..])));

            let a = h2_get(&mut h2, "HEAD", "/head").await;
            assert_eq!(a.status, 200);
            assert_eq!(a.headers["content-length"], "1000", "{engine}");
            assert_eq!(a.body.as_deref(), Ok(&b""[..]));

            let a = h2_get(&mut h2, "GET", "/204").await;
            assert_eq!((a.status, a.body.as_deref()), (204, Ok(&b""[..])));
            assert_eq!(a.headers["x-empty"], "1");

            let a = h2_get(&mut h2, "GET", "/length").await;
            assert_eq!((a.status, a.body.as_deref()), (200, Ok(&b"sized"[..])));
            assert_eq!(a.headers["x-from"], "backend");
            assert_eq!(a.headers["content-length"], "5");
            answers.push(format!("{} {:?}", a.status, a.body));
        }
        for _ in 0..2 {
            let a = h2_get(&mut h2, "GET", "/split").await;
            assert_eq!(a.body.as_deref(), Ok(&b"hello world"[..]), "{engine}");
            let sum = a.trailers.as_ref().and_then(|t| t.get("x-sum"));
            assert_eq!(sum.map(|v| v.as_bytes()), Some(&b"11"[..]), "{engine}");
            let a = h2_get(&mut h2, "GET", "/split-empty").await;
            assert_eq!(a.body.as_deref(), Ok(&b"ok"[..]), "{engine}");
            assert!(a.trailers.is_none(), "{engine}");
            answers.push(format!("{} {:?}", a.status, a.body));
        }
        assert_eq!(backend.requests(), 14, "{engine}");
        // (hyper's client may open more: a connection returns to its pool
        // only once hyper's dispatch has finished with it.)
        if engine == "native" {
            assert_eq!(backend.conns(), 1, "one backend connection");
        }

        for _ in 0..2 {
            let a = h2_get(&mut h2, "GET", "/close").await;
            assert_eq!(a.status, 200);
            assert_eq!(a.body.as_deref(), Ok(&b"until the close"[..]), "{engine}");
            answers.push(format!("{} {:?}", a.status, a.body));
        }
        // The first on a pooled connection, which it ends; the second on a
        // new one.
        if engine == "native" {
            assert_eq!(
                backend.conns(),
                2,
                "a body to the close ends its connection"
            );
        }
        seen.push(answers);
    }
    assert_eq!(seen[0], seen[1], "the same answers from both engines");
}

/// What reaches the backend for an HTTP/2 stream sent on a raw socket:
/// the request line in origin form, `Host` from `:authority`, and the
/// forwarding headers and request id, as hyper's client would send them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_stream_reaches_the_backend_as_http_1_1() {
    use crate::support::origin::{Answer, Origin};
    let origin = Origin::start(|_, _| Answer::ok(&[], "x")).await;
    let shoal = Shoal::start(&config(origin.addr, "native"));
    shoal.wait_upstreams(1).await;
    let mut h2 = h2_client(shoal.proxy).await;
    let req = http::Request::builder()
        .uri("http://example.test/p/q?a=1&b=2")
        .header("x-custom", "kept")
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = h2.send_request(req).await.expect("answer");
    assert_eq!(resp.status(), 200);
    let seen = origin.seen();
    let last = seen.last().expect("a request");
    assert_eq!(last.target, "/p/q?a=1&b=2");
    assert_eq!(last.headers["host"], "example.test");
    assert_eq!(last.headers["x-custom"], "kept");
    assert_eq!(last.headers["x-forwarded-proto"], "http");
    assert!(last.headers.get("x-forwarded-for").is_some());
    assert_eq!(
        last.headers.get("x-request-id"),
        resp.headers().get("x-request-id")
    );
}

/// A raw socket that fails an HTTP/2 stream: a body cut by the backend
/// or stalled past `proxy.read_timeout` resets the stream (the client
/// never takes a cut body for a whole one); a response head that cannot be
/// passed on is a 502 with the request id; a pooled socket the backend
/// closed is replaced without the client noticing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_stream_on_a_failing_raw_socket_is_reset_or_answered() {
    let backend = Scripted::start(&[
        (
            "/cut",
            "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
            After::Close,
        ),
        (
            "/cut-chunked",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
            After::Close,
        ),
        (
            "/stall",
            "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc<pause><pause>defghij",
            After::KeepOpen,
        ),
        (
            "/two-lengths",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello",
            After::KeepOpen,
        ),
        (
            "/bad-chunk",
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            After::KeepOpen,
        ),
        // Keep-alive as far as the head says, then closed: the pooled
        // socket is found closed by the next request.
        (
            "/then-close",
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
            After::Close,
        ),
    ])
    .await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        "proxy: { read_timeout: 250ms }\n",
    ));
    shoal.wait_upstreams(1).await;
    let mut h2 = h2_client(shoal.proxy).await;

    for path in ["/cut", "/cut-chunked", "/stall", "/bad-chunk"] {
        // The reset may reach the client before or after the head.
        let a = h2_get(&mut h2, "GET", path).await;
        assert!(a.status == 200 || a.status == 0, "{path}: {}", a.status);
        assert!(
            a.body.is_err(),
            "{path}: a cut body must not end well: {:?}",
            a.body
        );
    }
    let a = h2_get(&mut h2, "GET", "/two-lengths").await;
    assert_eq!(a.status, 502);
    assert!(a.headers.get("x-request-id").is_some());
    for _ in 0..3 {
        let a = h2_get(&mut h2, "GET", "/then-close").await;
        assert_eq!((a.status, a.body.as_deref()), (200, Ok(&b"ok"[..])));
    }
    // The connection to the client is still good.
    let a = h2_get(&mut h2, "GET", "/then-close").await;
    assert_eq!(a.status, 200);
}

/// The raw sockets an HTTP/2 stream goes on are the native engine's own
/// pool: an HTTP/1.1 client's request and then an h2 stream's take one
/// backend connection between them (hyper's client keeps a pool of its
/// own, and would open a second). A reason phrase of the backend's own
/// reaches an HTTP/1.1 client of hyper's path, as hyper's client kept it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2_streams_share_the_native_engines_backend_sockets() {
    let backend = Scripted::start(&[
        ("/length", LENGTH, After::KeepOpen),
        (
            "/fine",
            "HTTP/1.1 200 Fine\r\nContent-Length: 2\r\n\r\nok",
            After::KeepOpen,
        ),
    ])
    .await;
    let shoal = Shoal::start(&config(backend.addr, "native"));
    shoal.wait_upstreams(1).await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let mut pending = Vec::new();
    s.write_all(b"GET /length HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert_eq!(body, b"sized");
    let mut h2 = h2_client(shoal.proxy).await;
    let a = h2_get(&mut h2, "GET", "/length").await;
    assert_eq!((a.status, a.body.as_deref()), (200, Ok(&b"sized"[..])));
    assert_eq!(backend.requests(), 2);
    assert_eq!(backend.conns(), 1, "the h2 stream took the engine's socket");

    // A POST moves the client connection to hyper; its next GET goes on a
    // raw socket, its reason phrase kept.
    s.write_all(b"POST /length HTTP/1.1\r\nhost: t\r\ncontent-length: 2\r\n\r\nhi")
        .await
        .unwrap();
    let (head, _) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    s.write_all(b"GET /fine HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let (head, body) = one_response(&mut s, &mut pending, false).await;
    assert!(head.starts_with("HTTP/1.1 200 Fine\r\n"), "{head}");
    assert_eq!(body, b"ok");
}

/// A stream sent on a pooled socket that the backend closes without
/// answering is sent again on a new connection, and the client gets
/// the answer (an idempotent request, nothing of a response received).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_stream_on_a_dropped_raw_socket_goes_on_a_new_one() {
    let backend = Scripted::start(&[
        ("/length", LENGTH, After::KeepOpen),
        (
            "/first-only",
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh",
            After::FirstOnly,
        ),
    ])
    .await;
    let shoal = Shoal::start(&config(backend.addr, "native"));
    shoal.wait_upstreams(1).await;
    let mut h2 = h2_client(shoal.proxy).await;
    let a = h2_get(&mut h2, "GET", "/length").await;
    assert_eq!(a.status, 200);
    let a = h2_get(&mut h2, "GET", "/first-only").await;
    assert_eq!((a.status, a.body.as_deref()), (200, Ok(&b"fresh"[..])));
    assert_eq!(backend.conns(), 2, "sent again on a new connection");
    assert_eq!(backend.requests(), 3);
}
