//! Timeouts and passive health: a stuck or failing backend never hangs a
//! request and is taken out of rotation.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{demo_config, eventually, request, upstreams_config, Backend, Client, Shoal};

/// A backend that answers nothing: `slow` waits forever after reading the
/// request; `stall` sends headers and part of the body, then waits;
/// `close` closes at once. Counts the connections it accepted.
async fn bad_backend(
    mode: &'static str,
) -> (
    std::net::SocketAddr,
    Arc<AtomicUsize>,
    tokio::task::JoinHandle<()>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    let task = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                break;
            };
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                match mode {
                    "stall" => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n0123456789")
                            .await;
                        tokio::time::sleep(Duration::from_secs(30)).await;
                    }
                    "slow" => tokio::time::sleep(Duration::from_secs(30)).await,
                    _ => {}
                }
            });
        }
    });
    (addr, accepted, task)
}

/// No response headers within `response_header_timeout`: 504 with the
/// request id, on time.
async fn slow_upstream_gets_504() {
    let shoal = Shoal::start(&demo_config(
        1,
        "proxy: { response_header_timeout: 500ms, retries: 0 }\n",
    ));
    shoal.wait_healthy(1).await;
    let t = Instant::now();
    let req = http::Request::get("/slow?ms=5000")
        .header("host", "x")
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = request(shoal.proxy, req).await.unwrap();
    assert_eq!(r.status, 504);
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    let body = r.json();
    assert_eq!(body["error"], "upstream_timeout");
    assert_eq!(
        body["request_id"],
        r.headers["x-request-id"].to_str().unwrap()
    );
    // The instance still serves normal requests.
    assert_eq!(
        crate::support::get(shoal.proxy, "/").await.unwrap().status,
        200
    );
}

/// A body that stalls mid-way is cut after `read_timeout`; nothing hangs.
async fn stalled_body_is_cut_after_read_timeout() {
    let (addr, _, task) = bad_backend("stall").await;
    let shoal = Shoal::start(&upstreams_config(
        &[addr],
        "proxy: { read_timeout: 500ms }\n",
    ));
    shoal.wait_upstreams(1).await;
    let stream = tokio::net::TcpStream::connect(shoal.proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::get("/")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200, "headers arrive");
    let t = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(5), resp.into_body().collect()).await;
    let body = body.expect("the body must not hang");
    assert!(body.is_err(), "a cut body is an error, not a short success");
    assert!(
        t.elapsed() >= Duration::from_millis(400) && t.elapsed() < Duration::from_secs(3),
        "{:?}",
        t.elapsed()
    );
    shoal.wait_log("read_timeout").await;
    task.abort();
}

/// `max_fails` failures within `fail_timeout` eject a backend for
/// `fail_timeout`; its requests were replayed elsewhere, so clients saw none.
async fn failing_backend_is_ejected_then_readmitted() {
    let good = Backend::start("good").await;
    let (bad, accepted, task) = bad_backend("close").await;
    let shoal = Shoal::start(&upstreams_config(
        &[good.addr, bad],
        "proxy: { max_fails: 2, fail_timeout: 2s }\nbalance: { algorithm: round_robin }\n",
    ));
    shoal.wait_upstreams(2).await;
    let mut client = Client::new(shoal.proxy);
    for _ in 0..10 {
        let r = client.get("/").await.unwrap();
        assert_eq!(
            r.status, 200,
            "failed requests were replayed on the good backend"
        );
    }
    let s = shoal.status().await;
    let bad_status = s["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == format!("http://{bad}").as_str())
        .unwrap()
        .clone();
    assert_eq!(bad_status["health"], "ejected", "{s}");
    let tried = accepted.load(Ordering::SeqCst);
    assert!(
        (2..=3).contains(&tried),
        "ejected after max_fails: {tried} attempts"
    );
    for _ in 0..10 {
        client.get("/").await.unwrap();
    }
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        tried,
        "no traffic while ejected"
    );
    shoal.wait_log("passive health").await;
    eventually(
        Duration::from_secs(5),
        "readmitted after fail_timeout",
        || async {
            let s = shoal.status().await;
            let u = s["upstreams"]
                .as_array()?
                .iter()
                .find(|u| u["id"] == format!("http://{bad}").as_str())?
                .clone();
            (u["health"] == "up").then_some(())
        },
    )
    .await;
    task.abort();
}

/// The retry budget: against two backends that always fail, 100 GETs (each
/// replayable once) cause at most 20% extra attempts; with a 100% budget
/// nearly every request is retried, so it is the budget that limits them.
async fn retry_budget_limits_retries_during_an_outage() {
    for (percent, low, high) in [(20u32, 100usize, 125usize), (100, 190, 200)] {
        let (a, a_count, ta) = bad_backend("close").await;
        let (b, b_count, tb) = bad_backend("close").await;
        let shoal = Shoal::start(&upstreams_config(
            &[a, b],
            &format!("proxy: {{ retries: 1, max_fails: 0, retry_budget_percent: {percent}, retry_budget_min: 0 }}\n"),
        ));
        shoal.wait_upstreams(2).await;
        let before = a_count.load(Ordering::SeqCst) + b_count.load(Ordering::SeqCst);
        let mut client = Client::new(shoal.proxy);
        for _ in 0..100 {
            assert_eq!(client.get("/").await.unwrap().status, 502);
        }
        let attempts = a_count.load(Ordering::SeqCst) + b_count.load(Ordering::SeqCst) - before;
        assert!(
            (low..=high).contains(&attempts),
            "budget {percent}%: {attempts} attempts for 100 requests"
        );
        ta.abort();
        tb.abort();
    }
}

crate::under_both_engines!(
    slow_upstream_gets_504,
    stalled_body_is_cut_after_read_timeout,
    failing_backend_is_ejected_then_readmitted,
    retry_budget_limits_retries_during_an_outage,
);
