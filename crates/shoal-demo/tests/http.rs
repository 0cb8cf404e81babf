//! Every HTTP route of the demo app over real sockets.

mod support;

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use shoal_demo::DemoOptions;
use support::{get, post, Client, Server};

#[tokio::test]
async fn root_says_who_answered_and_counts_requests() {
    let server = Server::start(support::opts("app-2")).await;
    let mut client = Client::connect(server.addr).await;

    let first = client.get("/").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.header("content-type"), Some("application/json"));
    assert_eq!(first.header("x-demo-instance"), Some("app-2"));
    let json = first.json();
    assert_eq!(json["instance"], "app-2");
    assert_eq!(json["pid"], std::process::id());
    assert_eq!(json["port"], server.addr.port());
    assert_eq!(json["path"], "/");
    assert_eq!(json["requests"], 1);

    // Same keep-alive connection, and every route counts.
    assert_eq!(client.get("/health").await.status, StatusCode::OK);
    assert_eq!(client.get("/nope").await.status, StatusCode::NOT_FOUND);
    assert_eq!(client.get("/").await.json()["requests"], 4);

    server.stop().await.unwrap();
}

#[tokio::test]
async fn headers_shows_what_the_app_received() {
    let server = Server::start(support::opts("a")).await;
    let reply = Client::connect(server.addr)
        .await
        .request(
            Method::GET,
            "/headers",
            &[("x-forwarded-for", "10.0.0.1"), ("x-request-id", "r-1")],
            support::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    let json = reply.json();
    assert_eq!(json["x-forwarded-for"], "10.0.0.1");
    assert_eq!(json["x-request-id"], "r-1");
    server.stop().await.unwrap();
}

#[tokio::test]
async fn head_is_answered_without_a_body() {
    let server = Server::start(support::opts("a")).await;
    let reply = Client::connect(server.addr)
        .await
        .request(Method::HEAD, "/", &[], support::empty())
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert!(reply.body.is_empty());
    server.stop().await.unwrap();
}

#[tokio::test]
async fn health_starts_from_the_options_and_follows_the_knob() {
    let server = Server::start(DemoOptions {
        health_status: 503,
        ..support::opts("app-1")
    })
    .await;
    let addr = server.addr;

    let sick = get(addr, "/health").await;
    assert_eq!(sick.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(sick.json()["instance"], "app-1");
    assert_eq!(sick.json()["status"], "unhealthy");

    let healed = post(addr, "/control/health?status=200").await;
    assert_eq!(healed.status, StatusCode::OK);
    assert_eq!(healed.json()["health_status"], 200);
    let ok = get(addr, "/health").await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(ok.json()["status"], "ok");
    assert_eq!(ok.json()["instance"], "app-1");

    assert_eq!(
        post(addr, "/control/health?status=500").await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(addr, "/health").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    for bad in ["", "?status=", "?status=42", "?status=600", "?status=ok"] {
        let reply = post(addr, &format!("/control/health{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        get(addr, "/control/health?status=200").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    // The rejected attempts changed nothing.
    assert_eq!(
        get(addr, "/health").await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    server.stop().await.unwrap();
}

#[tokio::test]
async fn slow_sleeps_then_answers() {
    let server = Server::start(support::opts("s")).await;
    let started = Instant::now();
    let reply = get(server.addr, "/slow?ms=300").await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["instance"], "s");
    assert_eq!(reply.json()["slept_ms"], 300);

    for bad in [
        "/slow",
        "/slow?ms=",
        "/slow?ms=-1",
        "/slow?ms=1.5",
        "/slow?ms=abc",
    ] {
        assert_eq!(
            get(server.addr, bad).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    server.stop().await.unwrap();
}

#[tokio::test]
async fn status_answers_with_the_asked_status() {
    let server = Server::start(support::opts("st")).await;
    let mut client = Client::connect(server.addr).await;
    for code in [200u16, 201, 302, 404, 418, 500, 502, 503, 599] {
        let reply = client.get(&format!("/status/{code}")).await;
        assert_eq!(reply.status.as_u16(), code);
        assert_eq!(reply.json()["instance"], "st");
        assert_eq!(reply.json()["status"], code);
    }
    // No content allowed with these, and the connection stays usable.
    for code in [204u16, 304] {
        let reply = client.get(&format!("/status/{code}")).await;
        assert_eq!(reply.status.as_u16(), code);
        assert!(reply.body.is_empty());
    }
    for bad in ["100", "101", "199", "600", "0", "abc", ""] {
        let reply = client.get(&format!("/status/{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "/status/{bad}");
    }
    assert_eq!(
        client.get("/status/200/x").await.status,
        StatusCode::NOT_FOUND
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn unknown_paths_get_json_404_and_wrong_methods_405() {
    let server = Server::start(support::opts("n")).await;
    let mut client = Client::connect(server.addr).await;

    let missing = client.get("/missing/thing").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(missing.header("content-type"), Some("application/json"));
    assert_eq!(missing.json()["instance"], "n");
    assert_eq!(missing.json()["path"], "/missing/thing");
    assert_eq!(
        client.post("/control/nothing").await.status,
        StatusCode::NOT_FOUND
    );

    let wrong = client.post("/").await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(wrong.header("allow"), Some("GET, HEAD"));
    assert_eq!(
        client.get("/echo").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn session_counts_visits_in_a_cookie() {
    let server = Server::start(support::opts("sess")).await;
    let mut client = Client::connect(server.addr).await;

    let first = client.get("/session").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["visits"], 1);
    assert_eq!(first.json()["instance"], "sess");
    let cookie = first.header("set-cookie").unwrap().to_owned();
    assert!(cookie.starts_with("demo_visits=1;"), "{cookie}");
    assert!(cookie.contains("Path=/"), "{cookie}");

    // Play the browser: send back what was set, three more times.
    let mut jar = cookie.split(';').next().unwrap().to_owned();
    for expected in 2..=4 {
        let reply = client
            .request(
                Method::GET,
                "/session",
                &[("cookie", &format!("theme=dark; {jar}"))],
                support::empty(),
            )
            .await;
        assert_eq!(reply.json()["visits"], expected);
        jar = reply
            .header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(jar, format!("demo_visits={expected}"));
    }

    let garbage = client
        .request(
            Method::GET,
            "/session",
            &[("cookie", "demo_visits=lots")],
            support::empty(),
        )
        .await;
    assert_eq!(garbage.json()["visits"], 1);
    server.stop().await.unwrap();
}

/// Reads a streaming body frame by frame, checking that byte `i` is `pattern(i)`,
/// without keeping it. Returns the length.
async fn drain_checking(mut body: hyper::body::Incoming, pattern: impl Fn(u64) -> u8) -> u64 {
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            for (i, byte) in data.iter().enumerate() {
                let at = seen + i as u64;
                assert_eq!(*byte, pattern(at), "byte {at}");
            }
            seen += data.len() as u64;
        }
    }
    seen
}

const DOWNLOAD_PATTERN: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\n";

#[tokio::test]
async fn download_streams_exactly_n_bytes() {
    let server = Server::start(support::opts("dl")).await;
    let mut client = Client::connect(server.addr).await;
    for n in [0u64, 1, 65_536, 65_537, 5 * 1024 * 1024 + 3] {
        let req = Request::get(format!("/download?bytes={n}"))
            .body(support::empty())
            .unwrap();
        let response = client.send(req).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()["content-length"].to_str().unwrap(),
            n.to_string()
        );
        assert_eq!(
            response.headers()["content-type"],
            "application/octet-stream"
        );
        let len = drain_checking(response.into_body(), |i| {
            DOWNLOAD_PATTERN[(i % 64) as usize]
        })
        .await;
        assert_eq!(len, n);
    }
    for bad in ["/download", "/download?bytes=-1", "/download?bytes=1k"] {
        assert_eq!(
            client.get(bad).await.status,
            StatusCode::BAD_REQUEST,
            "{bad}"
        );
    }
    server.stop().await.unwrap();
}

fn echo_pattern(i: u64) -> u8 {
    (i % 251) as u8
}

/// A request body of `len` bytes of `echo_pattern`, made 64 KiB at a time.
fn generated_body(len: u64) -> support::ClientBody {
    const CHUNK: u64 = 64 * 1024;
    let chunks = futures_util::stream::unfold(0u64, move |sent| async move {
        if sent >= len {
            return None;
        }
        let n = CHUNK.min(len - sent);
        let data: Bytes = (sent..sent + n).map(echo_pattern).collect();
        Some((Ok::<_, support::BoxError>(Frame::data(data)), sent + n))
    });
    StreamBody::new(chunks).boxed_unsync()
}

#[tokio::test]
async fn echo_returns_a_large_body_with_its_content_type() {
    let server = Server::start(support::opts("e")).await;
    let mut client = Client::connect(server.addr).await;
    let len: u64 = 64 * 1024 * 1024 + 17;

    // With a Content-Length...
    let req = Request::post("/echo")
        .header("content-type", "application/x-test")
        .header("content-length", len.to_string())
        .body(generated_body(len))
        .unwrap();
    let response = client.send(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "application/x-test");
    assert_eq!(
        response.headers()["content-length"].to_str().unwrap(),
        len.to_string()
    );
    assert_eq!(
        drain_checking(response.into_body(), echo_pattern).await,
        len
    );

    // ...and chunked, on the same connection.
    let len: u64 = 3 * 1024 * 1024 + 1;
    let req = Request::post("/echo").body(generated_body(len)).unwrap();
    let response = client.send(req).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().get("content-type").is_none());
    assert_eq!(
        drain_checking(response.into_body(), echo_pattern).await,
        len
    );

    let small = client
        .request(
            Method::POST,
            "/echo",
            &[("content-type", "text/plain")],
            support::full("hello"),
        )
        .await;
    assert_eq!(&small.body[..], b"hello");
    assert_eq!(small.header("content-type"), Some("text/plain"));
    server.stop().await.unwrap();
}

/// The echo must not wait for the end of the request: each chunk comes back while
/// the client is still holding the next one.
#[tokio::test]
async fn echo_streams_before_the_request_ends() {
    let server = Server::start(support::opts("e")).await;
    let mut client = Client::connect(server.addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(1);
    let frames = futures_util::stream::unfold(rx, |mut rx| async move {
        let data = rx.recv().await?;
        Some((Ok::<_, support::BoxError>(Frame::data(data)), rx))
    });
    let req = Request::post("/echo")
        .body(StreamBody::new(frames).boxed_unsync())
        .unwrap();

    tx.send(Bytes::from_static(b"ping-1")).await.unwrap();
    let mut body = tokio::time::timeout(Duration::from_secs(5), client.send(req))
        .await
        .expect("no response head while the request is open")
        .unwrap()
        .into_body();
    for round in 1..=3 {
        let mut got = Vec::new();
        let expected = format!("ping-{round}");
        while got.len() < expected.len() {
            let frame = tokio::time::timeout(Duration::from_secs(5), body.frame())
                .await
                .expect("chunk not echoed while the request is open")
                .unwrap()
                .unwrap();
            got.extend_from_slice(&frame.into_data().unwrap());
        }
        assert_eq!(got, expected.as_bytes());
        if round < 3 {
            tx.send(Bytes::from(format!("ping-{}", round + 1)))
                .await
                .unwrap();
        }
    }
    drop(tx);
    assert!(body.frame().await.is_none_or(|f| f.is_ok()));
    server.stop().await.unwrap();
}

#[tokio::test]
async fn allocate_keeps_memory_until_freed() {
    let server = Server::start(support::opts("mem")).await;
    let addr = server.addr;

    let first = post(addr, "/control/allocate?mb=4").await;
    assert_eq!(first.status, StatusCode::OK);
    assert_eq!(first.json()["allocated_mb"], 4);
    assert_eq!(first.json()["total_mb"], 4);
    let second = post(addr, "/control/allocate?mb=2").await;
    assert_eq!(second.json()["total_mb"], 6);

    let freed = post(addr, "/control/free").await;
    assert_eq!(freed.status, StatusCode::OK);
    assert_eq!(freed.json()["freed_mb"], 6);

    for bad in ["", "?mb=", "?mb=-1", "?mb=1.5", "?mb=99999999999"] {
        let reply = post(addr, &format!("/control/allocate{bad}")).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{bad}");
    }
    assert_eq!(
        post(addr, "/control/exit?code=300").await.status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        get(addr, "/control/exit").await.status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    server.stop().await.unwrap();
}

#[tokio::test]
async fn garbage_on_the_socket_does_not_hurt_the_server() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = Server::start(support::opts("g")).await;
    for junk in [
        &b"\x00\x01\x02\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: nope\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\n\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\ngarbage",
    ] {
        let mut stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        stream.write_all(junk).await.unwrap();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut sink)).await;
    }
    assert_eq!(get(server.addr, "/").await.status, StatusCode::OK);
    server.stop().await.unwrap();
}

/// `POST /grpc/echo` over h2c (prior knowledge) and over HTTP/1.1 with
/// `te: trailers`: the body echoed, then `grpc-status`/`grpc-message`
/// trailers (0/OK, or the ones asked for) and the request's own trailers.
#[tokio::test]
async fn grpc_echo_ends_in_trailers_over_h2c_and_http1() {
    let server = Server::start(support::opts("g")).await;
    let frames = |trailer: bool| {
        let mut frames = vec![Ok::<_, support::BoxError>(Frame::data(Bytes::from_static(
            b"\0\0\0\0\x03abc",
        )))];
        if trailer {
            let mut t = http::HeaderMap::new();
            t.insert("x-mine", "1".parse().unwrap());
            frames.push(Ok(Frame::trailers(t)));
        }
        StreamBody::new(futures_util::stream::iter(frames)).boxed_unsync()
    };

    let stream = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let (mut h2, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(stream),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    for (query, status, message) in [("", "0", "OK"), ("?status=16&message=who", "16", "who")] {
        let req = Request::post(format!("http://{}/grpc/echo{query}", server.addr))
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(frames(true))
            .unwrap();
        let response = h2.send_request(req).await.unwrap();
        assert_eq!(response.version(), http::Version::HTTP_2);
        assert_eq!(response.headers()["content-type"], "application/grpc");
        let body = response.into_body().collect().await.unwrap();
        let trailers = body.trailers().cloned().expect("trailers");
        assert_eq!(body.to_bytes(), &b"\0\0\0\0\x03abc"[..]);
        assert_eq!(trailers["grpc-status"], status);
        assert_eq!(trailers["grpc-message"], message);
        assert_eq!(trailers["x-mine"], "1", "the request's trailer echoed");
    }
    let bad = Request::post(format!("http://{}/grpc/echo?status=17", server.addr))
        .body(frames(false))
        .unwrap();
    assert_eq!(
        h2.send_request(bad).await.unwrap().status(),
        StatusCode::BAD_REQUEST
    );

    // HTTP/1.1: chunked, trailers only to a client that accepts them.
    let mut client = Client::connect(server.addr).await;
    let req = Request::post("/grpc/echo?status=2")
        .header("te", "trailers")
        .body(frames(false))
        .unwrap();
    let response = client.send(req).await.unwrap();
    assert_eq!(response.headers()["trailer"], "grpc-status, grpc-message");
    let body = response.into_body().collect().await.unwrap();
    let trailers = body.trailers().cloned().expect("trailers over HTTP/1.1");
    assert_eq!(trailers["grpc-status"], "2");
    assert_eq!(
        Client::connect(server.addr)
            .await
            .get("/grpc/echo")
            .await
            .status,
        StatusCode::METHOD_NOT_ALLOWED
    );
    server.stop().await.unwrap();
}
