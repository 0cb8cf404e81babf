//! The access log (`access_log:`): each line says what the test did —
//! method, path, status, bytes both ways, request id, route, pool, backend,
//! retries, rate-limit outcome, user agent, referer — under both engines,
//! for HTTP/1.1, HTTP/2 and a WebSocket; the combined format; sampling with
//! errors always kept; SIGUSR1 reopens the file under load without losing a
//! line; a full disk drops lines (counted), never requests.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::{eventually, upstreams_config, Backend, Client, Reply, Shoal};

crate::under_both_engines!(
    each_line_says_what_the_request_did,
    trace_context_is_kept_or_started_and_logged
);

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn json_lines(path: &Path) -> Vec<Value> {
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// The line of the request whose id is `id`, once it is written.
async fn line_of(path: &Path, id: &str) -> Value {
    eventually(Duration::from_secs(5), "the access-log line", || async {
        json_lines(path).into_iter().find(|l| l["request_id"] == id)
    })
    .await
}

fn id(r: &Reply) -> String {
    r.headers["x-request-id"].to_str().unwrap().to_string()
}

async fn each_line_says_what_the_request_did() {
    let backend = Backend::start("b1").await;
    let (dead, _refusing) = crate::support::refusing_port();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let shoal = Shoal::start(
        &upstreams_config(
            &[backend.addr],
            &format!(
                "access_log: {{ format: json, path: {} }}
upstreams_extra: x
routes:
  - name: hello
    match: {{ path: /hello }}
    respond: {{ status: 200, body: \"hi\\n\" }}
  - name: dead
    match: {{ path_prefix: /dead }}
    to: gone
  - name: main
    to: upstreams
rate_limits:
  - name: per_key
    key: header:x-key
    rate: 100/hour
    burst: 1
",
                log.display()
            ),
        )
        .replace("upstreams_extra: x\n", "")
        .replace(
            "upstreams:\n",
            &format!("upstreams:\n  gone:\n    - url: http://127.0.0.1:{dead}\n  upstreams:\n"),
        )
        .replace("  - { url:", "    - { url:"),
    );
    shoal.wait_upstreams(1).await;
    let mut c = Client::new(shoal.proxy);

    // A GET through to the backend, with a query (not logged by default).
    let r = c
        .send(
            Request::get("/?q=secret")
                .header("host", "svc.test")
                .header("user-agent", "agent/1.0")
                .header("referer", "http://from.test/")
                .header("x-key", "k1")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(l["method"], "GET");
    assert_eq!(l["path"], "/");
    assert_eq!(l["host"], "svc.test");
    assert_eq!(l["protocol"], "HTTP/1.1");
    assert_eq!(l["status"], 200);
    assert_eq!(l["bytes_in"], 0);
    assert_eq!(l["bytes_out"], r.body.len());
    assert_eq!(l["client"], "127.0.0.1");
    assert_eq!(l["route"], "main");
    assert_eq!(l["pool"], "upstreams");
    assert_eq!(l["backend_addr"], backend.addr.to_string());
    assert_eq!(l["retries"], 0);
    assert_eq!(l["rate_limit"], "allowed");
    assert_eq!(l["user_agent"], "agent/1.0");
    assert_eq!(l["referer"], "http://from.test/");
    let (total, up) = (
        l["duration_ms"].as_f64().unwrap(),
        l["upstream_ms"].as_f64().unwrap(),
    );
    assert!(up > 0.0 && up <= total, "upstream {up} ms of {total} ms");
    assert!(l["time"].as_str().unwrap().ends_with('Z'));

    // The same key again: refused by the rate limit, and logged so.
    let r = c
        .send(
            Request::get("/")
                .header("host", "svc.test")
                .header("x-key", "k1")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 429);
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(
        (l["status"].as_u64(), l["rate_limit"].as_str()),
        (Some(429), Some("limited"))
    );
    assert!(l.get("backend").is_none());

    // A POST with a body: its bytes counted both ways.
    let r = c
        .send(
            Request::post("/echo")
                .header("host", "svc.test")
                .body(Full::new(Bytes::from_static(b"twelve bytes")))
                .unwrap(),
        )
        .await
        .unwrap();
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(
        (l["bytes_in"].as_u64(), l["bytes_out"].as_u64()),
        (Some(12), Some(12))
    );
    assert_eq!(l["method"], "POST");

    // A route's own answer, and a dead backend.
    let r = c.get("/hello").await.unwrap();
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(
        (l["status"].as_u64(), l["route"].as_str()),
        (Some(200), Some("hello"))
    );
    assert_eq!(l["bytes_out"], 3);
    // (502 while its first check is due, 503 once it failed.)
    let r = c.get("/dead").await.unwrap();
    assert!(matches!(r.status.as_u16(), 502 | 503), "{}", r.status);
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(l["status"], r.status.as_u16());
    assert_eq!(l["pool"], "gone");

    // HTTP/2 (prior knowledge).
    let stream = tokio::net::TcpStream::connect(shoal.proxy).await.unwrap();
    let (mut h2, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    let resp = h2
        .send_request(
            Request::get(format!("http://{}/", shoal.proxy))
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    let l = line_of(&log, &rid).await;
    assert_eq!(
        (l["protocol"].as_str(), l["status"].as_u64()),
        (Some("HTTP/2"), Some(200))
    );
    assert_eq!(l["bytes_out"], body.len());

    // A WebSocket: its 101.
    let (ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", shoal.proxy))
        .await
        .unwrap();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    drop(ws);
    let l = line_of(&log, &rid).await;
    assert_eq!(
        (l["status"].as_u64(), l["path"].as_str()),
        (Some(101), Some("/ws"))
    );

    let m = shoal.metrics().await;
    assert_eq!(
        m.get("shoal_access_log_lines_total{outcome=\"dropped\"}"),
        Some(&0.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_lines_and_sampling_that_keeps_errors() {
    let backend = Backend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        &format!(
            "access_log: {{ format: combined, path: {}, sample: 0 }}\n",
            log.display()
        ),
    ));
    shoal.wait_upstreams(1).await;
    let mut c = Client::new(shoal.proxy);
    for _ in 0..20 {
        assert_eq!(c.get("/").await.unwrap().status, 200);
    }
    let r = c
        .send(
            Request::get("/status/503")
                .header("host", "x")
                .header("user-agent", "ua \"q\"")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 503);
    let rid = id(&r);
    let got = eventually(Duration::from_secs(5), "the error's line", || async {
        let l = lines(&log);
        (!l.is_empty()).then_some(l)
    })
    .await;
    // sample: 0 logs no success; errors_always keeps the 503.
    assert_eq!(got.len(), 1, "{got:#?}");
    let line = &got[0];
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    assert!(
        line.contains("] \"GET /status/503 HTTP/1.1\" 503 "),
        "{line}"
    );
    assert!(line.contains(" \"-\" \"ua \\\"q\\\"\" rid="), "{line}");
    assert!(line.contains(&format!("rid={rid}")), "{line}");
    assert!(line.contains(" retries=0"), "{line}");
}

/// SIGUSR1 while requests flow: the file moved away keeps the lines
/// before it, the new file the ones after; none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_file_without_losing_a_line() {
    let backend = Backend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let rotated = dir.path().join("access.log.1");
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        &format!("access_log: {{ format: json, path: {} }}\n", log.display()),
    ));
    shoal.wait_upstreams(1).await;
    let (tx, mut rx) = tokio::sync::watch::channel(false);
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let addr = shoal.proxy;
        let mut stop = tx.subscribe();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::new(addr);
            let mut ok = 0u64;
            while !*stop.borrow_and_update() {
                assert_eq!(c.get("/").await.unwrap().status, 200);
                ok += 1;
                if ok >= 2_000 {
                    break;
                }
            }
            ok
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    std::fs::rename(&log, &rotated).unwrap();
    shoal.signal(Signal::SIGUSR1);
    tokio::time::sleep(Duration::from_millis(700)).await;
    tx.send(true).unwrap();
    let _ = rx.borrow_and_update();
    let mut sent = 0;
    for t in tasks {
        sent += t.await.unwrap();
    }
    let (before, after) = eventually(Duration::from_secs(5), "every line written", || async {
        let (b, a) = (lines(&rotated).len() as u64, lines(&log).len() as u64);
        (b + a == sent).then_some((b, a))
    })
    .await;
    assert!(
        before > 0 && after > 0,
        "{before} lines before, {after} after"
    );
    for l in json_lines(&rotated).iter().chain(&json_lines(&log)) {
        assert_eq!(l["status"], 200);
    }
    assert!(shoal.log_contains("SIGUSR1: reopening the access log"));
}

/// A log that cannot be written (a full disk: /dev/full): every request is
/// served, and the dropped lines are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_drops_lines_not_requests() {
    let backend = Backend::start("b1").await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        "access_log: { format: json, path: /dev/full }\n",
    ));
    shoal.wait_upstreams(1).await;
    let mut c = Client::new(shoal.proxy);
    for _ in 0..200 {
        assert_eq!(c.get("/").await.unwrap().status, 200);
    }
    let dropped = eventually(Duration::from_secs(5), "dropped lines counted", || async {
        let m = shoal.metrics().await;
        let d = m
            .get("shoal_access_log_lines_total{outcome=\"dropped\"}")
            .copied()
            .unwrap_or(0.0);
        (d >= 200.0).then_some(d)
    })
    .await;
    assert_eq!(dropped, 200.0);
    assert!(shoal.log_contains("cannot write the access log"));
}

/// W3C Trace Context: with `trace_context: start`, a request without a
/// `traceparent` gets one, a valid one passes as it came, one that does not
/// parse is replaced (its `tracestate` dropped); the access log has the
/// trace id the backend saw. The default (`pass`) adds nothing.
async fn trace_context_is_kept_or_started_and_logged() {
    let backend = Backend::start("b1").await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        &format!(
            "access_log: {{ format: json, path: {} }}\nproxy: {{ trace_context: start }}\n",
            log.display()
        ),
    ));
    shoal.wait_upstreams(1).await;
    let mut c = Client::new(shoal.proxy);
    let seen = |r: &Reply| -> (Option<String>, Option<String>) {
        let v = r.json();
        (
            v["traceparent"].as_str().map(str::to_owned),
            v["tracestate"].as_str().map(str::to_owned),
        )
    };
    let ask = |traceparent: Option<&'static str>| {
        let mut req = Request::get("/headers").header("host", "t.test");
        if let Some(tp) = traceparent {
            req = req
                .header("traceparent", tp)
                .header("tracestate", "vendor=1");
        }
        req.body(Full::new(Bytes::new())).unwrap()
    };

    // None: started; the backend and the log agree on the id.
    let r = c.send(ask(None)).await.unwrap();
    let (tp, _) = seen(&r);
    let tp = tp.expect("a traceparent was started");
    assert_eq!(tp.len(), 55, "{tp}");
    assert!(tp.starts_with("00-") && tp.ends_with("-01"), "{tp}");
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(l["trace_id"], &tp[3..35]);

    // A valid one: passed as it came, with its state.
    let given = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = c.send(ask(Some(given))).await.unwrap();
    assert_eq!(seen(&r), (Some(given.into()), Some("vendor=1".into())));
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(l["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");

    // One that does not parse: replaced, its state gone.
    let r = c.send(ask(Some("00-XYZ-bad-01"))).await.unwrap();
    let (tp, state) = seen(&r);
    let tp = tp.unwrap();
    assert_ne!(tp, "00-XYZ-bad-01");
    assert_eq!(tp.len(), 55);
    assert_eq!(state, None);
    let l = line_of(&log, &id(&r)).await;
    assert_eq!(l["trace_id"], &tp[3..35]);

    // The default, `pass`: nothing added, nothing logged.
    let plain = Shoal::start(&upstreams_config(
        &[backend.addr],
        &format!(
            "access_log: {{ format: json, path: {}.2 }}\n",
            log.display()
        ),
    ));
    plain.wait_upstreams(1).await;
    let mut c = Client::new(plain.proxy);
    let r = c.send(ask(None)).await.unwrap();
    assert_eq!(seen(&r), (None, None));
    let l = line_of(Path::new(&format!("{}.2", log.display())), &id(&r)).await;
    assert!(l.get("trace_id").is_none(), "{l}");
}
