//! HTTP/2 in and out: h2c with prior knowledge on the listener (curl,
//! h2load, a hyper h2 client), h2c to backends (`app.protocol: h2`,
//! `upstreams[].protocol: h2`) with one multiplexed connection each, gRPC
//! trailers end to end, and retries when an h2 backend dies, goes away
//! (GOAWAY: nginx's `keepalive_requests`, a demo app's graceful stop) or
//! refuses streams.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper_util::rt::{TokioExecutor, TokioIo};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::net::TcpStream;

use crate::support::load::Load;
use crate::support::{
    demo_config, eventually, free_port, kill_instance_under_slow_gets, request, Backend, Client,
    Shoal,
};

/// The demo app as instances, spoken to with `protocol`.
fn app_config(instances: u32, protocol: &str, extra: &str) -> String {
    demo_config(instances, &format!("  protocol: {protocol}\n{extra}"))
}

/// Run a command with a time limit; (exit code, stdout, stderr).
async fn run(program: &str, args: &[&str], limit: Duration) -> (i32, String, String) {
    let child = tokio::process::Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    let out = tokio::time::timeout(limit, child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} ran longer than {limit:?}"))
        .expect("wait");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `connections_opened` of every instance (or static upstream).
async fn connections_opened(shoal: &Shoal, list: &str) -> Vec<u64> {
    shoal.status().await[list]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["connections_opened"].as_u64().unwrap())
        .collect()
}

/// An HTTP/2 (prior knowledge) client connection.
type H2Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn h2_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<H2Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2 handshake");
    tokio::spawn(conn);
    sender
}

/// A body of `data` frames followed by `trailers`.
fn body_with_trailers(data: &[Bytes], trailers: Option<HeaderMap>) -> H2Body {
    let mut frames: Vec<Result<Frame<Bytes>, Infallible>> =
        data.iter().map(|d| Ok(Frame::data(d.clone()))).collect();
    if let Some(t) = trailers {
        frames.push(Ok(Frame::trailers(t)));
    }
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// A gRPC message: compressed flag, big-endian length, payload.
fn grpc_message(payload: &[u8]) -> Vec<u8> {
    let mut m = vec![0u8];
    m.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    m.extend_from_slice(payload);
    m
}

struct Answer {
    status: u16,
    headers: HeaderMap,
    body: Bytes,
    trailers: Option<HeaderMap>,
}

async fn collect(resp: http::Response<hyper::body::Incoming>) -> Answer {
    let (parts, body) = resp.into_parts();
    let collected = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("body in time")
        .expect("body");
    let trailers = collected.trailers().cloned();
    Answer {
        status: parts.status.as_u16(),
        headers: parts.headers,
        body: collected.to_bytes(),
        trailers,
    }
}

fn trailer<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.trailers.as_ref()?.get(name)?.to_str().ok()
}

/// `curl --http2-prior-knowledge` through shoal, to HTTP/1.1 and to h2
/// instances: HTTP/2 200 from an instance, and a 256 KiB POST body echoed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_h2c_prior_knowledge_through_shoal() {
    for protocol in ["http1", "h2"] {
        let shoal = Shoal::start(&app_config(2, protocol, ""));
        shoal.wait_healthy(2).await;
        let url = format!("http://{}/", shoal.proxy);
        let (code, out, err) = run(
            "curl",
            &[
                "-sS",
                "--http2-prior-knowledge",
                "--max-time",
                "10",
                "-w",
                "\n%{http_version} %{http_code}",
                &url,
            ],
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(code, 0, "{protocol}: curl failed: {err}");
        let (body, meta) = out.rsplit_once('\n').unwrap();
        assert_eq!(meta, "2 200", "{protocol}: HTTP/2 and 200: {out}");
        let json: Value = serde_json::from_str(body).unwrap();
        assert!(
            json["instance"].as_str().unwrap().starts_with("app-"),
            "{json}"
        );
        let upstream = if protocol == "h2" {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        };
        assert_eq!(
            json["version"], upstream,
            "what the instance was spoken to with"
        );
        assert_eq!(json["host"], shoal.proxy.to_string(), ":authority → Host");
        let (code, out, err) = run(
            "curl",
            &[
                "-sS",
                "--http2-prior-knowledge",
                "--max-time",
                "10",
                &format!("http://{}/headers", shoal.proxy),
            ],
            Duration::from_secs(15),
        )
        .await;
        assert_eq!(code, 0, "{protocol}: curl failed: {err}");
        let seen: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(
            seen["x-forwarded-host"],
            shoal.proxy.to_string(),
            "{protocol}: {seen}"
        );

        let payload: Vec<u8> = (0..256 * 1024u32).map(|i| (i * 7 % 251) as u8).collect();
        let file = shoal.dir.path().join("payload.bin");
        std::fs::write(&file, &payload).unwrap();
        let out_file = shoal.dir.path().join("echoed.bin");
        let (code, out, err) = run(
            "curl",
            &[
                "-sS",
                "--http2-prior-knowledge",
                "--max-time",
                "20",
                "-H",
                "content-type: application/octet-stream",
                "--data-binary",
                &format!("@{}", file.display()),
                "-o",
                out_file.to_str().unwrap(),
                "-w",
                "%{http_version} %{http_code}",
                &format!("http://{}/echo", shoal.proxy),
            ],
            Duration::from_secs(25),
        )
        .await;
        assert_eq!(code, 0, "{protocol}: curl POST failed: {err}");
        assert_eq!(out, "2 200", "{protocol}");
        let echoed = std::fs::read(&out_file).unwrap();
        assert_eq!(echoed.len(), payload.len(), "{protocol}");
        assert!(echoed == payload, "{protocol}: the body came back changed");
    }
}

/// What h2load reports: (succeeded, failed, errored, timeout, 2xx) of `n`.
fn h2load_summary(out: &str) -> (u64, u64, u64, u64, u64) {
    let line = |prefix: &str| {
        out.lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` line in h2load output:\n{out}"))
            .to_string()
    };
    let number_before = |line: &str, word: &str| -> u64 {
        let words: Vec<&str> = line.split([' ', ',']).filter(|w| !w.is_empty()).collect();
        let i = words
            .iter()
            .position(|w| *w == word)
            .unwrap_or_else(|| panic!("no `{word}` in `{line}`"));
        words[i - 1].parse().unwrap()
    };
    let requests = line("requests:");
    let codes = line("status codes:");
    (
        number_before(&requests, "succeeded"),
        number_before(&requests, "failed"),
        number_before(&requests, "errored"),
        number_before(&requests, "timeout"),
        number_before(&codes, "2xx"),
    )
}

/// h2load (nghttp2): 2000 requests over 8 connections × 8 streams, through
/// shoal to HTTP/1.1 instances and to h2 instances: every one 2xx. To h2
/// instances, all of it over one connection per instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_through_shoal() {
    for protocol in ["http1", "h2"] {
        let shoal = Shoal::start(&app_config(2, protocol, ""));
        shoal.wait_healthy(2).await;
        let url = format!("http://{}/", shoal.proxy);
        let (code, out, err) = run(
            "h2load",
            &["-n", "2000", "-c", "8", "-m", "8", "-T", "20", &url],
            Duration::from_secs(90),
        )
        .await;
        assert_eq!(code, 0, "{protocol}: h2load failed: {err}\n{out}");
        assert_eq!(
            h2load_summary(&out),
            (2000, 0, 0, 0, 2000),
            "{protocol}: (succeeded, failed, errored, timeout, 2xx):\n{out}"
        );
        if protocol == "h2" {
            assert_eq!(
                connections_opened(&shoal, "instances").await,
                [1, 1],
                "64 concurrent streams, one connection per instance"
            );
        }
    }
}

/// A gRPC-style call over h2c: the echoed message and the `grpc-status`
/// trailer (0, then a non-zero one) reach the client, and the client's own
/// request trailer reaches the backend (echoed back). To an h2 backend the
/// trailers are HTTP/2 trailers all the way; to an HTTP/1.1 backend they
/// travel as chunked trailers in between, which needs `te: trailers` and
/// `Trailer` passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_trailers_pass_through_over_h2c() {
    for protocol in ["h2", "http1"] {
        let shoal = Shoal::start(&app_config(1, protocol, ""));
        shoal.wait_healthy(1).await;
        let mut client = h2_client(shoal.proxy).await;
        let message = Bytes::from(grpc_message(b"hello over h2"));
        for (query, status, text) in [("", "0", "OK"), ("?status=13&message=boom", "13", "boom")] {
            let mut req_trailers = HeaderMap::new();
            req_trailers.insert("x-client-trailer", "from-the-client".parse().unwrap());
            let req = Request::post(format!("http://{}/grpc/echo{query}", shoal.proxy))
                .header("content-type", "application/grpc")
                .header("te", "trailers")
                // An HTTP/1.1 hop may carry only announced trailers.
                .header("trailer", "x-client-trailer")
                .body(body_with_trailers(
                    &[message.slice(..7), message.slice(7..)],
                    Some(req_trailers),
                ))
                .unwrap();
            let resp = client.send_request(req).await.expect("response");
            let a = collect(resp).await;
            assert_eq!(a.status, 200, "{protocol}");
            assert_eq!(a.headers["content-type"], "application/grpc");
            assert_eq!(a.body, message, "{protocol}: the message echoed");
            assert_eq!(
                trailer(&a, "grpc-status"),
                Some(status),
                "{protocol}: trailers {:?}",
                a.trailers
            );
            assert_eq!(trailer(&a, "grpc-message"), Some(text), "{protocol}");
            assert_eq!(
                trailer(&a, "x-client-trailer"),
                Some("from-the-client"),
                "{protocol}: the request trailer reached the backend"
            );
        }
    }
}

/// An HTTP/1.1 client that sends `te: trailers` gets the trailers in the
/// chunked body, from an HTTP/1.1 backend and from an h2 backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_client_gets_chunked_trailers() {
    for protocol in ["http1", "h2"] {
        let shoal = Shoal::start(&app_config(1, protocol, ""));
        shoal.wait_healthy(1).await;
        let stream = TcpStream::connect(shoal.proxy).await.unwrap();
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let req = Request::post("/grpc/echo?status=5&message=not-found")
            .header("host", "grpc.test")
            .header("te", "trailers")
            .header("content-type", "application/grpc")
            .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(resp.headers()["transfer-encoding"], "chunked", "{protocol}");
        let a = collect(resp).await;
        assert_eq!(a.status, 200);
        assert_eq!(&a.body[..], b"\0\0\0\0\x02hi");
        assert_eq!(
            trailer(&a, "grpc-status"),
            Some("5"),
            "{protocol}: trailers {:?}",
            a.trailers
        );
        assert_eq!(trailer(&a, "grpc-message"), Some("not-found"));
    }
}

/// HTTP/1.1 clients → an h2 instance: 40 concurrent requests, each on its
/// own client connection, share one upstream connection and run at once
/// (not one after another); the backend gets `:authority` from `Host` and
/// no connection-specific header, but `te: trailers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_clients_share_one_h2_upstream_connection() {
    let shoal = Shoal::start(&app_config(1, "h2", ""));
    shoal.wait_healthy(1).await;
    let proxy = shoal.proxy;
    let started = Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            tokio::spawn(async move {
                let r = crate::support::get(proxy, "/slow?ms=500").await?;
                (r.status == 200)
                    .then_some(())
                    .ok_or(format!("status {}", r.status))
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap().expect("slow request");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "40 × 500 ms took {took:?}: the requests were not multiplexed"
    );
    assert_eq!(
        connections_opened(&shoal, "instances").await,
        [1],
        "one upstream connection for all"
    );

    let req = Request::get("/headers")
        .header("host", "api.example.test")
        .header("connection", "keep-alive, x-hop")
        .header("keep-alive", "timeout=5")
        .header("x-hop", "1")
        .header("te", "trailers, deflate")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = request(proxy, req).await.unwrap();
    assert_eq!(r.status, 200, "{:?}", r.body);
    let seen = r.json();
    for gone in [
        "connection",
        "keep-alive",
        "x-hop",
        "host",
        "transfer-encoding",
    ] {
        assert!(
            seen.get(gone).is_none(),
            "{gone} reached the h2 backend: {seen}"
        );
    }
    assert_eq!(seen["te"], "trailers", "{seen}");
    assert_eq!(seen["x-end-to-end"], "kept");
    assert_eq!(seen["x-forwarded-host"], "api.example.test");
    let r = request(
        proxy,
        Request::get("/")
            .header("host", "api.example.test")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.json()["version"], "HTTP/2.0");
    assert_eq!(r.json()["host"], "api.example.test", "Host → :authority");
    assert_eq!(connections_opened(&shoal, "instances").await, [1]);
}

/// SIGKILL of one of 3 h2 instances while GETs are in flight on it: every
/// GET is retried elsewhere (zero non-2xx), and once the instance is back
/// shoal opens a new connection to it and it serves again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_h2_instance_costs_no_failed_get() {
    let shoal = Shoal::start(&app_config(
        3,
        "h2",
        "balance: { algorithm: round_robin }\n",
    ));
    let status = shoal.wait_healthy(3).await;
    let victim = status["instances"][1].clone();
    let victim_id = victim["id"].as_str().unwrap().to_string();
    let old_pid = victim["pid"].as_u64().unwrap() as u32;

    let (ok, failed, in_flight) = kill_instance_under_slow_gets(&shoal, 1).await;
    assert!(failed.is_empty(), "failed GETs: {failed:?}");
    assert!(ok > 200, "only {ok} GETs completed");
    assert!(
        in_flight > 0,
        "no request was in flight on the victim; the test proves nothing"
    );

    eventually(Duration::from_secs(10), "the instance back up", || async {
        let s = shoal.status().await;
        let i = s["instances"]
            .as_array()?
            .iter()
            .find(|i| i["id"] == victim_id.as_str())?
            .clone();
        (i["pid"].as_u64()? as u32 != old_pid && i["health"] == "up").then_some(())
    })
    .await;
    let before = shoal.status().await["instances"][1]["requests"]
        .as_u64()
        .unwrap();
    let mut client = Client::new(shoal.proxy);
    for _ in 0..9 {
        assert_eq!(client.get("/").await.unwrap().status, 200);
    }
    let s = shoal.status().await;
    assert!(
        s["instances"][1]["requests"].as_u64().unwrap() > before,
        "the restarted instance serves again: {s}"
    );
    assert!(
        s["instances"][1]["connections_opened"].as_u64().unwrap() >= 2,
        "a new connection to the new process: {s}"
    );
}

/// A process the test started, killed (by PID) when dropped.
struct Proc(std::process::Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn h2_upstreams(addrs: &[SocketAddr], extra: &str) -> String {
    let list: String = addrs
        .iter()
        .map(|a| format!("  - {{ url: \"http://{a}\", protocol: h2 }}\n"))
        .collect();
    format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n{list}\
         health: {{ path: /health, interval: 300ms, timeout: 250ms, fall: 1, rise: 1 }}\n{extra}"
    )
}

/// A graceful stop of an h2 backend (SIGTERM: GOAWAY, in-flight streams
/// finish, the process exits) and its restart, under a load of GETs and
/// 64 KiB POSTs: nothing fails, and shoal reconnects to the new process.
/// Health checks here are HTTP/2 too: an h2 upstream must come up at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_h2_backend_restart_loses_nothing() {
    let a = Backend::start("a").await;
    let _b = Backend::start("b").await;
    let addrs = [a.addr, _b.addr];
    let shoal = Shoal::start(&h2_upstreams(
        &addrs,
        "balance: { algorithm: round_robin }\nproxy: { fail_timeout: 1s }\n",
    ));
    shoal.wait_upstreams(2).await;

    let load = Load::with_paths(
        shoal.proxy,
        8,
        20,
        Duration::from_secs(4),
        "/slow?ms=20",
        "/echo?delay_ms=20",
    );
    tokio::time::sleep(Duration::from_millis(1000)).await;
    kill(Pid::from_raw(a.child.id() as i32), Signal::SIGTERM).unwrap();
    let exited = tokio::task::spawn_blocking(move || {
        let mut a = a;
        let status = a.child.wait();
        (a, status)
    });
    let (_a, status) = tokio::time::timeout(Duration::from_secs(10), exited)
        .await
        .expect("backend a drained and exited")
        .unwrap();
    assert!(status.unwrap().success(), "a graceful exit");
    let _a2 = Backend::start_on(addrs[0].port(), "a2").await;
    let report = load.finish().await;
    assert!(report.failed.is_empty(), "failed: {:?}", report.failed);
    assert!(report.ok > 300, "only {} requests", report.ok);

    // The new process is in use again, over a new connection.
    shoal.wait_upstreams(2).await;
    let mut client = Client::new(shoal.proxy);
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..10 {
        let r = client.get("/").await.unwrap();
        assert_eq!(r.status, 200);
        seen.insert(r.json()["instance"].as_str().unwrap().to_string());
    }
    assert!(seen.contains("a2"), "{seen:?}");
    let opened = connections_opened(&shoal, "upstreams").await;
    assert!(opened[0] >= 2, "reconnected to a: {opened:?}");
}

/// nginx as an h2c backend with `keepalive_requests 50`: after 50 streams
/// on a connection it sends GOAWAY, and the streams shoal had already
/// multiplexed past that point (h2load keeps 16 in flight) are not
/// processed. shoal retries them on a new connection: all 1000 GETs
/// succeed, over about 20 connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goaway_from_nginx_is_retried_on_a_new_connection() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    // One process (no master and workers), so killing it by PID leaves
    // nothing behind.
    let conf = format!(
        "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log off;\n  keepalive_requests 50;\n  client_body_temp_path {d}/body;\n\
           proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n\
           scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port} http2;\n    location / {{ return 200 \"nginx\\n\"; }}\n  }}\n}}\n",
        d = dir.path().display()
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let error_log = dir.path().join("error.log");
    let nginx = Proc(
        std::process::Command::new(crate::support::nginx::exe())
            .args(["-p", dir.path().to_str().unwrap(), "-e"])
            .arg(&error_log)
            .arg("-c")
            .arg(&conf_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("nginx (Debian package nginx) must be installed"),
    );
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    // No retry budget at all: a stream nginx did not process is not a retry
    // of work the backend did, so it must not need any.
    let shoal = Shoal::start(&h2_upstreams(
        &[addr],
        "proxy: { retries: 2, retry_budget_percent: 0, retry_budget_min: 0 }\n",
    ));
    shoal.wait_upstreams(1).await;

    let url = format!("http://{}/", shoal.proxy);
    let (code, out, err) = run(
        "h2load",
        &["-n", "1000", "-c", "2", "-m", "8", "-T", "20", &url],
        Duration::from_secs(60),
    )
    .await;
    let nginx_log = std::fs::read_to_string(&error_log).unwrap_or_default();
    drop(nginx);
    assert_eq!(code, 0, "h2load failed: {err}\n{out}");
    assert_eq!(
        h2load_summary(&out),
        (1000, 0, 0, 0, 1000),
        "(succeeded, failed, errored, timeout, 2xx):\n{out}\nnginx: {nginx_log}"
    );
    let opened = connections_opened(&shoal, "upstreams").await[0];
    assert!(
        (20..=60).contains(&opened),
        "1000 requests, 50 per connection: {opened} connections"
    );
    assert!(
        shoal
            .log()
            .iter()
            .any(|l| l.contains("reach=Refused(GoAway)")),
        "some streams were above nginx's GOAWAY and retried"
    );
}

/// An h2 server (the `h2` crate) that refuses every stream with
/// `REFUSED_STREAM`, as an overloaded gRPC server or Envoy does; counts them.
async fn refusing_server() -> (SocketAddr, Arc<AtomicUsize>, tokio::task::JoinHandle<()>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let refused = Arc::new(AtomicUsize::new(0));
    let count = refused.clone();
    let task = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let count = count.clone();
            tokio::spawn(async move {
                let Ok(mut conn) = h2::server::handshake(socket).await else {
                    return;
                };
                while let Some(Ok((_req, mut respond))) = conn.accept().await {
                    count.fetch_add(1, Ordering::SeqCst);
                    respond.send_reset(h2::Reason::REFUSED_STREAM);
                }
            });
        }
    });
    (addr, refused, task)
}

/// Streams refused with `REFUSED_STREAM` were not processed (RFC 9113
/// §8.7): they go to another backend without costing retry budget (here
/// none at all) and without counting against the refusing backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_streams_go_to_another_backend() {
    let (refuser, refused, task) = refusing_server().await;
    let good = Backend::start("good").await;
    let good_addr = good.addr;
    let list = format!(
        "  - {{ url: \"http://{refuser}\", protocol: h2 }}\n  - {{ url: \"http://{good_addr}\", protocol: h2 }}\n"
    );
    let config = format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n{list}\
         health: {{ interval: 1m, timeout: 1s }}\nbalance: {{ algorithm: round_robin }}\n\
         proxy: {{ retries: 1, max_fails: 1, retry_budget_percent: 0, retry_budget_min: 0 }}\n"
    );
    let shoal = Shoal::start(&config);
    shoal.wait_upstreams(2).await;
    let mut client = Client::new(shoal.proxy);
    for i in 0..20 {
        let r = client.get("/").await.unwrap();
        assert_eq!(r.status, 200, "request {i}: {:?}", r.body);
        assert_eq!(r.json()["instance"], "good");
    }
    assert!(
        refused.load(Ordering::SeqCst) >= 8,
        "round robin sent half the requests to the refuser first: {}",
        refused.load(Ordering::SeqCst)
    );
    // A POST is not idempotent, but a refused stream was not processed:
    // its body (under proxy.replay_body_size, read in full first) goes to
    // the other backend. Two in a row, so one of them meets the refuser.
    let before = refused.load(Ordering::SeqCst);
    for i in 0..2 {
        let post = http::Request::post("/echo")
            .header("host", "x")
            .body(Full::new(Bytes::from(vec![b'p'; 4096])))
            .unwrap();
        let r = client.send(post).await.unwrap();
        assert_eq!(r.status, 200, "POST {i}: {:?}", r.body);
        assert_eq!(r.body.len(), 4096);
    }
    assert!(
        refused.load(Ordering::SeqCst) > before,
        "no POST met the refuser"
    );
    let s = shoal.status().await;
    assert_eq!(
        s["upstreams"][0]["health"], "up",
        "a refusal is not a failure: {s}"
    );
    task.abort();
}

/// HPACK (RFC 7541): a value new on every response (the request id, the
/// rate limit's remaining count and reset) is sent as "never indexed", so
/// it does not push out of the connection's table the fields that repeat;
/// those are still indexed. Decoded by an independent HPACK decoder (the
/// `hpack` package), under both engines.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_response_values_are_never_indexed_by_hpack() {
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/e2e/support/hpack_fields.py");
    for engine in ["native", "hyper"] {
        let shoal = Shoal::start(&demo_config(
            1,
            &format!(
                "proxy:\n  engine: {engine}\nrate_limits:\n  - name: per_ip\n    rate: 1000/second\n    burst: 1000\n"
            ),
        ));
        shoal.wait_healthy(1).await;
        let (host, port) = (shoal.proxy.ip().to_string(), shoal.proxy.port().to_string());
        let (code, out, err) = run(
            "python3",
            &[script.to_str().unwrap(), &host, &port, "/", "12"],
            Duration::from_secs(30),
        )
        .await;
        assert_eq!(
            code, 0,
            "{engine}: the client failed (needs the pip package hpack; scripts/test installs it): {err}"
        );
        let got: Value = serde_json::from_str(&out).unwrap();
        let responses = got["responses"].as_array().unwrap();
        assert_eq!(responses.len(), 12, "{engine}: {out}");
        let mut ids = std::collections::HashSet::new();
        for fields in responses {
            let field = |name: &str| {
                fields
                    .as_array()
                    .unwrap()
                    .iter()
                    .find(|f| f[0] == name)
                    .unwrap_or_else(|| panic!("{engine}: no {name} in {fields}"))
            };
            assert_eq!(field(":status")[1], "200", "{engine}: {fields}");
            for name in ["x-request-id", "ratelimit-remaining", "ratelimit-reset"] {
                assert_eq!(
                    field(name)[2],
                    false,
                    "{engine}: {name} must be never indexed: {fields}"
                );
            }
            assert_eq!(field("content-type")[2], true, "{engine}: {fields}");
            ids.insert(field("x-request-id")[1].as_str().unwrap().to_string());
        }
        assert_eq!(ids.len(), 12, "{engine}: one request id per response");
        let table: Vec<&str> = got["table"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[0].as_str().unwrap())
            .collect();
        assert!(
            table.contains(&"content-type"),
            "{engine}: a repeated field is remembered: {table:?}"
        );
        for name in ["x-request-id", "ratelimit-remaining", "ratelimit-reset"] {
            assert!(
                !table.contains(&name),
                "{engine}: {name} is in the table: {table:?}"
            );
        }
    }
}
