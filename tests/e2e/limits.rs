//! `limits:`: body size (413), head size (431), header read timeout (408
//! and close), keep-alive idle timeout, and the connection cap, seen from
//! raw client sockets.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{demo_config, eventually, get, read_response, read_to_close, Shoal};

async fn started(limits: &str) -> Shoal {
    let shoal = Shoal::start(&demo_config(1, &format!("limits: {limits}\n")));
    shoal.wait_healthy(1).await;
    shoal
}

async fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).await.unwrap()
}

fn echo_lines(shoal: &Shoal) -> usize {
    shoal
        .log()
        .iter()
        .filter(|l| l.contains("app-1 | ") && l.contains("POST /echo"))
        .count()
}

/// A declared length over the limit is answered 413 at once, with the
/// request id, and never reaches the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_over_the_limit_gets_413_and_is_not_forwarded() {
    let shoal = started("{ max_body_size: 1KiB }").await;
    let mut s = connect(shoal.proxy).await;
    s.write_all(
        b"POST /echo HTTP/1.1\r\nhost: x\r\nx-request-id: big-1\r\ncontent-length: 2000\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 413 "), "{resp}");
    assert!(started.elapsed() < Duration::from_secs(2), "not at once");
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("x-request-id: big-1"), "{resp}");
    assert!(lower.contains("connection: close"), "{resp}");
    assert!(
        resp.contains("413 Payload Too Large: payload_too_large (request id big-1)"),
        "{resp}"
    );

    // Within the limit it goes through; its access-log line shows the
    // backend's log is read, and that it is the only POST the backend saw.
    let mut s = connect(shoal.proxy).await;
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1024\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'a'; 1024]).await.unwrap();
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    eventually(
        Duration::from_secs(5),
        "the echo in the access log",
        || async { (echo_lines(&shoal) >= 1).then_some(()) },
    )
    .await;
    assert_eq!(echo_lines(&shoal), 1, "{:#?}", shoal.log());
}

/// A chunked body that grows past the limit is cut on its way upstream;
/// the client gets 413 when no response had started yet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_gets_413() {
    let shoal = started("{ max_body_size: 1KiB }").await;
    let mut s = connect(shoal.proxy).await;
    // The backend answers only after 3s: the body passes the limit first.
    s.write_all(
        b"POST /echo?delay_ms=3000 HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let started = Instant::now();
    for _ in 0..8 {
        let mut chunk = b"400\r\n".to_vec();
        chunk.extend_from_slice(&[b'b'; 0x400]);
        chunk.extend_from_slice(b"\r\n");
        if s.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n").await;
    let resp = read_response(&mut s, Duration::from_secs(10)).await;
    assert!(resp.starts_with("HTTP/1.1 413 "), "{resp}");
    assert!(resp.contains("payload_too_large"), "{resp}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "413 came only after the backend answered: {:?}",
        started.elapsed()
    );
}

/// When the backend already answered (echo streams the body back), a body
/// passing the limit cuts the response: the client sees no final chunk.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_after_the_response_started_is_cut() {
    let shoal = started("{ max_body_size: 1KiB }").await;
    let mut s = connect(shoal.proxy).await;
    s.write_all(b"POST /echo HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    s.write_all(b"200\r\n").await.unwrap();
    s.write_all(&[b'c'; 0x200]).await.unwrap();
    s.write_all(b"\r\n").await.unwrap();
    // Let the backend start its answer before the body passes the limit.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..4 {
        let mut chunk = b"400\r\n".to_vec();
        chunk.extend_from_slice(&[b'c'; 0x400]);
        chunk.extend_from_slice(b"\r\n");
        if s.write_all(&chunk).await.is_err() {
            break;
        }
    }
    let resp = read_to_close(&mut s, Duration::from_secs(10))
        .await
        .expect("connection closed");
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(!resp.ends_with("0\r\n\r\n"), "response was not cut: {resp}");
}

/// A request head over `max_header_size` gets hyper's own 431.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_head_gets_431() {
    let shoal = started("{ max_header_size: 16KiB }").await;
    let mut s = connect(shoal.proxy).await;
    let fits = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "v".repeat(12 << 10)
    );
    s.write_all(fits.as_bytes()).await.unwrap();
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");

    let mut s = connect(shoal.proxy).await;
    let too_big = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
        "v".repeat(20 << 10)
    );
    let _ = s.write_all(too_big.as_bytes()).await;
    let resp = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("connection closed");
    assert!(
        resp.starts_with("HTTP/1.1 431 Request Header Fields Too Large"),
        "{resp}"
    );
}

/// Half a request head: 408 and close after `header_read_timeout`. No byte
/// at all: closed without an answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_head_gets_408_and_close() {
    let shoal = started("{ header_read_timeout: 1s }").await;
    let mut s = connect(shoal.proxy).await;
    s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let t = Instant::now();
    let resp = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("connection closed");
    let took = t.elapsed();
    assert!(resp.starts_with("HTTP/1.1 408 Request Timeout"), "{resp}");
    assert!(
        resp.to_ascii_lowercase().contains("connection: close"),
        "{resp}"
    );
    assert!(resp.contains("request_timeout"), "{resp}");
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );

    let mut s = connect(shoal.proxy).await;
    let t = Instant::now();
    let resp = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("connection closed");
    assert_eq!(resp, "");
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());

    // A slow but complete head within the timeout is served.
    let mut s = connect(shoal.proxy).await;
    s.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    s.write_all(b"host: x\r\n\r\n").await.unwrap();
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
}

/// A keep-alive connection with no request for `idle_timeout` is closed; a
/// busy one, or one waiting for a slow response, is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keep_alive_connection_is_closed() {
    let shoal = started("{ idle_timeout: 1s, header_read_timeout: 10s }").await;
    let mut s = connect(shoal.proxy).await;
    // Requests 600ms apart for 2.4s: each resets the idle timer.
    for _ in 0..4 {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(&mut s, Duration::from_secs(5)).await;
        assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // A response slower than the idle timeout is not cut.
    s.write_all(b"GET /slow?ms=2000 HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.contains("slept_ms"), "{resp}");
    // Then idle: closed after about 1s.
    let t = Instant::now();
    let rest = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("idle connection closed");
    assert_eq!(rest, "");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(800) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

/// With `max_connections: 2`, a third connection waits (in the listen
/// backlog) and is served once one of the first two closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn third_connection_waits_for_a_free_slot() {
    let shoal = started("{ max_connections: 2 }").await;
    let mut first = connect(shoal.proxy).await;
    let mut second = connect(shoal.proxy).await;
    for s in [&mut first, &mut second] {
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let resp = read_response(s, Duration::from_secs(5)).await;
        assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    }
    let mut third = connect(shoal.proxy).await;
    third
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut third, Duration::from_secs(1)).await;
    assert_eq!(resp, "", "served while two connections were open");

    drop(first);
    let t = Instant::now();
    let resp = read_response(&mut third, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // The freed slot is taken by the third: the second still works.
    second
        .write_all(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let resp = read_response(&mut second, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    drop((second, third));
    // The admin listener is not limited.
    get(shoal.admin, "/health").await.unwrap();
}
