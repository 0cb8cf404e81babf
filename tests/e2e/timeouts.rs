//! The three "peer stopped moving" timeouts, as nginx has them:
//! `limits.body_read_timeout` (client_body_timeout), `limits.send_timeout`
//! (send_timeout) and `proxy.send_timeout` (proxy_send_timeout), each with
//! the control that shows it runs between two reads or writes, not over the
//! whole transfer.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{find, Mode, RawBackend};
use crate::support::{
    demo_config, eventually, get, read_response, read_to_close, rss, upstreams_config, Shoal,
};

async fn behind_raw(mode: Mode, extra: &str) -> (RawBackend, Shoal) {
    let backend = RawBackend::start(mode).await;
    let shoal = Shoal::start(&upstreams_config(&[backend.addr], extra));
    shoal.wait_upstreams(1).await;
    (backend, shoal)
}

/// Half a body, then nothing: 408 after `body_read_timeout`, the
/// connection closed, and the backend's request aborted (its connection
/// closed with the body incomplete). Streamed bodies: `replay_body_size: 0`
/// (a small body is otherwise read in full before anything is sent, see
/// the next test).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_request_body_gets_408_and_the_upstream_request_is_aborted() {
    let (backend, shoal) = behind_raw(
        Mode::Record,
        "limits: { body_read_timeout: 1s }\nproxy: { replay_body_size: 0 }\n",
    )
    .await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\nx-request-id: stall-1\r\ncontent-length: 1000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'a'; 400]).await.unwrap();
    let t = Instant::now();
    let resp = read_to_close(&mut s, Duration::from_secs(8))
        .await
        .expect("shoal closed the connection");
    let took = t.elapsed();
    assert!(resp.starts_with("HTTP/1.1 408 Request Timeout"), "{resp}");
    let lower = resp.to_ascii_lowercase();
    assert!(lower.contains("connection: close"), "{resp}");
    assert!(lower.contains("x-request-id: stall-1"), "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "408 after {took:?}"
    );
    // The backend got the head and the 400 bytes, then its connection closed.
    eventually(
        Duration::from_secs(3),
        "the upstream request aborted",
        || async {
            let conns = backend.conns();
            (conns.len() == 1 && conns[0].closed).then_some(())
        },
    )
    .await;
    let got = &backend.conns()[0].bytes;
    let head = find(got, b"\r\n\r\n").expect("a request head") + 4;
    assert_eq!(
        got.len() - head,
        400,
        "body bytes forwarded before the stall"
    );
    shoal.wait_log("limits.body_read_timeout").await;
}

/// The same stall with a body small enough to be kept for a retry (the
/// default `replay_body_size`): 408 as well, and nothing reached the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_small_body_gets_408_and_is_never_sent() {
    let (backend, shoal) = behind_raw(Mode::Record, "limits: { body_read_timeout: 1s }\n").await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n")
        .await
        .unwrap();
    s.write_all(&[b'a'; 400]).await.unwrap();
    let resp = read_to_close(&mut s, Duration::from_secs(8))
        .await
        .expect("shoal closed the connection");
    assert!(resp.starts_with("HTTP/1.1 408 Request Timeout"), "{resp}");
    assert!(resp.contains("request_timeout"), "{resp}");
    assert!(backend.conns().is_empty(), "the backend was sent something");
}

/// A body that trickles in (a gap below the timeout each time, longer than
/// it in total) is not cut; nor is one shoal stops reading because the
/// backend does not take it yet (backpressure is not the client's fault).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_but_moving_bodies_and_backpressure_are_not_timed_out() {
    let (_backend, shoal) =
        behind_raw(Mode::AnswerComplete, "limits: { body_read_timeout: 1s }\n").await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"POST /trickle HTTP/1.1\r\nhost: x\r\ncontent-length: 60\r\n\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(450)).await;
        s.write_all(&[b'b'; 10]).await.unwrap();
    }
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.ends_with("got 60"), "{resp}");
    assert!(t.elapsed() > Duration::from_millis(2500));

    // Backpressure: the backend takes nothing for 2.5s, then all of it.
    let stalling = RawBackend::start(Mode::StallAfterHead {
        stall: Duration::from_millis(2500),
    })
    .await;
    let shoal = Shoal::start(&upstreams_config(
        &[stalling.addr],
        "limits: { body_read_timeout: 1s }\n",
    ));
    shoal.wait_upstreams(1).await;
    let size = 24 << 20;
    let s = TcpStream::connect(shoal.proxy).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let head = format!("POST /big HTTP/1.1\r\nhost: x\r\ncontent-length: {size}\r\n\r\n");
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b'c'; 64 << 10];
        for _ in 0..size / chunk.len() {
            wr.write_all(&chunk).await?;
        }
        Ok::<_, std::io::Error>(wr)
    });
    // StallAfterHead never answers: the body must pass in full (a 408
    // would close the connection under the writer) and nothing come back.
    let wrote = tokio::time::timeout(Duration::from_secs(15), writer)
        .await
        .expect("the whole body was taken")
        .unwrap();
    assert!(wrote.is_ok(), "body write failed: {wrote:?}");
    let mut first = [0u8; 256];
    if let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), rd.read(&mut first)).await {
        panic!(
            "shoal answered during backpressure: {:?}",
            String::from_utf8_lossy(&first[..n])
        );
    }
    assert!(!shoal.log_contains("limits.body_read_timeout"));
}

/// A client that never reads a large download: its connection is closed
/// once no write has gone through for `send_timeout`, shoal's memory stays
/// flat meanwhile, and the half-read upstream connection is not pooled
/// (the next request on the same backend is served cleanly).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_stops_reading_is_closed_after_send_timeout() {
    let shoal = Shoal::start(&demo_config(1, "limits: { send_timeout: 1s }\n"));
    shoal.wait_healthy(1).await;
    let pid = shoal.pid();
    let baseline = rss(pid);
    let size: u64 = 512 << 20;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let req = format!("GET /download?bytes={size} HTTP/1.1\r\nhost: x\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    // Not reading. Shoal's writes fill the socket buffers and wait; 1s
    // later it gives up. Sample its memory meanwhile.
    let mut peak = 0;
    for _ in 0..25 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        peak = peak.max(rss(pid));
    }
    eventually(
        Duration::from_secs(5),
        "the send_timeout log line",
        || async { shoal.log_contains("limits.send_timeout").then_some(()) },
    )
    .await;
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
    })
    .await;
    assert!(ended.is_ok(), "connection still open after {got} bytes");
    assert!(
        got < size / 4,
        "the client got {got} of {size} bytes: the connection was not cut"
    );
    assert!(
        peak < baseline + (64 << 20),
        "RSS grew from {} KiB to {} KiB while the client did not read",
        baseline >> 10,
        peak >> 10
    );
    // Served cleanly afterwards: a half-read upstream connection reused
    // would hand this request the rest of the download.
    for _ in 0..3 {
        let r = get(shoal.proxy, "/").await.unwrap();
        assert_eq!(r.status, 200);
        assert!(r.json()["instance"].is_string(), "{:?}", r.body);
    }
}

/// A slow reader that keeps reading (a gap below `send_timeout` each time)
/// gets its whole response.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_reader_that_keeps_reading_is_served() {
    let shoal = Shoal::start(&demo_config(1, "limits: { send_timeout: 1s }\n"));
    shoal.wait_healthy(1).await;
    let size: u64 = 16 << 20;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let req =
        format!("GET /download?bytes={size} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let t = Instant::now();
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 20];
    // 4 MiB per read burst, 700ms apart: more than the socket buffers hold
    // in all, so shoal's writes wait through several pauses.
    while got < size {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let mut burst = 0;
        while burst < (4 << 20) {
            match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => burst += n,
                Err(_) => break,
            }
        }
        if burst == 0 {
            break;
        }
        got += burst as u64;
    }
    assert!(
        got > size,
        "only {got} bytes arrived (head + {size} body expected)"
    );
    assert!(t.elapsed() > Duration::from_secs(2), "{:?}", t.elapsed());
    assert!(!shoal.log_contains("limits.send_timeout"));
}

/// A backend that reads the head of a large POST and then nothing: 504
/// after `proxy.send_timeout`, the backend connection closed, and the
/// failure counted for passive health (out of rotation with `max_fails: 1`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backend_that_stops_reading_the_body_gets_504_after_send_timeout() {
    let stall = Mode::StallAfterHead {
        stall: Duration::from_secs(3),
    };
    let a = RawBackend::start(stall).await;
    let b = RawBackend::start(stall).await;
    let shoal = Shoal::start(&upstreams_config(
        &[a.addr, b.addr],
        "proxy: { send_timeout: 1s, response_header_timeout: 30s, retries: 0, max_fails: 1, fail_timeout: 30s }\n",
    ));
    shoal.wait_upstreams(2).await;

    let size: usize = 48 << 20;
    let s = TcpStream::connect(shoal.proxy).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let (sent2, done2) = (sent.clone(), done.clone());
    let writer = tokio::spawn(async move {
        let head = format!(
            "POST /upload HTTP/1.1\r\nhost: x\r\naccept: application/json\r\ncontent-length: {size}\r\n\r\n"
        );
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let chunk = vec![b'd'; 64 << 10];
        while !done2.load(Ordering::Relaxed) && (sent2.load(Ordering::Relaxed) as usize) < size {
            if wr.write_all(&chunk).await.is_err() {
                return;
            }
            sent2.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
    });
    let t = Instant::now();
    let mut resp = Vec::new();
    let mut buf = [0u8; 4096];
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    resp.extend_from_slice(&buf[..n]);
                    if find(&resp, b"}\n").is_some() {
                        break;
                    }
                }
            }
        }
    })
    .await;
    let took = t.elapsed();
    done.store(true, Ordering::Relaxed);
    writer.abort();
    let text = String::from_utf8_lossy(&resp).into_owned();
    assert!(text.starts_with("HTTP/1.1 504 Gateway Timeout"), "{text}");
    assert!(text.contains("\"error\":\"upstream_timeout\""), "{text}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "504 after {took:?}"
    );
    assert!(
        (sent.load(Ordering::Relaxed) as usize) < size,
        "the whole body went through: the backend's buffers were not filled"
    );
    shoal.wait_log("proxy.send_timeout").await;
    // The stalled backend's connection was closed by shoal by the time it
    // looked again (3s after the head).
    let (stalled, idle) = if a.conns().is_empty() {
        (&b, &a)
    } else {
        (&a, &b)
    };
    assert!(idle.conns().is_empty());
    eventually(
        Duration::from_secs(15),
        "the backend's connection closed",
        || async {
            let c = stalled.conns();
            (c.len() == 1 && c[0].closed_at.is_some()).then_some(())
        },
    )
    .await;
    assert!(
        stalled.conns()[0].closed,
        "shoal left the upstream connection open"
    );
    // Counted against the backend: out of rotation (passive health).
    let status = shoal.status().await;
    let ejected: Vec<_> = status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|u| u["health"] != "up")
        .collect();
    assert_eq!(ejected.len(), 1, "{status:#}");
    shoal
        .wait_log("out of rotation after failed requests (passive health)")
        .await;
}

/// `proxy.response_header_timeout` starts once the request has been sent:
/// an upload that takes longer than it (a body trickling in for 2.5 s
/// against a 1 s timeout) gets the backend's answer, not a 504; a backend
/// that then does not answer gets 504 about 1 s after the last byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_header_timeout_starts_after_the_upload() {
    let extra = "proxy: { response_header_timeout: 1s, replay_body_size: 0 }\n";
    let (_backend, shoal) = behind_raw(Mode::AnswerComplete, extra).await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(250)).await;
        s.write_all(&[b'u'; 10]).await.unwrap();
    }
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
    assert!(resp.ends_with("got 100"), "{resp}");

    let (_silent, shoal) = behind_raw(Mode::Record, extra).await;
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"POST /upload HTTP/1.1\r\nhost: x\r\ncontent-length: 30\r\n\r\n")
        .await
        .unwrap();
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        s.write_all(&[b'u'; 10]).await.unwrap();
    }
    let sent = Instant::now();
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    let took = sent.elapsed();
    assert!(resp.starts_with("HTTP/1.1 504 "), "{resp}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "504 {took:?} after the last byte"
    );
}
