use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http_body_util::Full;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{demo_config, get, request, Shoal};

async fn request_id_and_forwarding_headers() {
    let shoal = Shoal::start(&demo_config(2, ""));
    shoal.wait_healthy(2).await;

    // Generated when absent, returned to the client.
    let r = get(shoal.proxy, "/headers").await.unwrap();
    assert_eq!(r.status, 200);
    let id = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(id.len(), 32);
    let seen = r.json();
    assert_eq!(
        seen["x-request-id"],
        id.as_str(),
        "backend saw the same id: {seen}"
    );
    assert_eq!(seen["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-proto"], "http");
    assert_eq!(seen["x-forwarded-host"], shoal.proxy.to_string());

    // Kept when present. From an untrusted peer (no trusted_proxies), a
    // client's X-Forwarded-For is replaced, not believed; hop-by-hop
    // headers are dropped.
    let req = http::Request::get("/headers")
        .header("host", "example.test")
        .header("x-request-id", "client-chosen-1")
        .header("x-forwarded-for", "203.0.113.9")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "secret")
        .header("keep-alive", "timeout=5")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = request(shoal.proxy, req).await.unwrap();
    assert_eq!(r.headers["x-request-id"], "client-chosen-1");
    let seen = r.json();
    assert_eq!(seen["x-request-id"], "client-chosen-1");
    assert_eq!(
        seen["x-forwarded-for"], "127.0.0.1",
        "spoofed entry dropped"
    );
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
    assert_eq!(seen["x-forwarded-host"], "example.test");
    assert!(seen.get("x-hop").is_none(), "{seen}");
    assert!(seen.get("keep-alive").is_none(), "{seen}");
    // The backend's access log line carries the id.
    crate::support::eventually(Duration::from_secs(2), "access log line", || async {
        shoal.log_contains("client-chosen-1").then_some(())
    })
    .await;
}

/// From a trusted proxy, X-Forwarded-For is extended and the client is the
/// right-most untrusted entry.
async fn trusted_proxy_forwarding_is_extended() {
    let shoal = Shoal::start(&demo_config(1, "trusted_proxies: [127.0.0.0/8]\n"));
    shoal.wait_healthy(1).await;
    let req = http::Request::get("/headers")
        .header("host", "example.test")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let seen = request(shoal.proxy, req).await.unwrap().json();
    assert_eq!(seen["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen["x-real-ip"], "203.0.113.9");
    assert_eq!(
        seen["x-forwarded-proto"], "https",
        "kept from a trusted proxy"
    );
}

async fn bodies_stream_both_ways() {
    let shoal = Shoal::start(&demo_config(2, ""));
    shoal.wait_healthy(2).await;
    let body: Vec<u8> = (0..8 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let req = http::Request::post("/echo")
        .header("host", "x")
        .header("content-type", "application/octet-stream")
        .body(Full::new(Bytes::from(body.clone())))
        .unwrap();
    let r = request(shoal.proxy, req).await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), body.len());
    assert!(r.body == body, "echoed body differs");

    let r = get(shoal.proxy, "/download?bytes=5000000").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), 5_000_000);
}

async fn websocket_passes_through() {
    let shoal = Shoal::start(&demo_config(2, ""));
    shoal.wait_healthy(2).await;
    let url = format!("ws://{}/ws", shoal.proxy);
    let (mut ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    assert_eq!(resp.status(), 101);
    for i in 0..100 {
        ws.send(Message::text(format!("hello {i}"))).await.unwrap();
        let m = ws.next().await.unwrap().unwrap();
        assert_eq!(m.into_text().unwrap().as_str(), format!("hello {i}"));
    }
    ws.close(None).await.unwrap();
}

async fn status_api_and_upstream_errors() {
    let shoal = Shoal::start(&demo_config(3, ""));
    let s = shoal.wait_healthy(3).await;
    for i in s["instances"].as_array().unwrap() {
        for key in ["id", "pid", "port", "state", "restarts", "in_flight"] {
            assert!(!i[key].is_null(), "status lacks {key}: {i}");
        }
        assert_eq!(i["state"], "running");
    }
    assert_eq!(get(shoal.admin, "/health").await.unwrap().status, 200);
    assert_eq!(get(shoal.admin, "/nope").await.unwrap().status, 404);
    // The app's own /health is reachable through the proxy, not shadowed.
    let r = get(shoal.proxy, "/health").await.unwrap();
    assert!(r.json()["instance"].is_string());
    // Status codes from the app pass through untouched.
    assert_eq!(get(shoal.proxy, "/status/418").await.unwrap().status, 418);
}

/// A static upstream that refuses connections never passes its health
/// check, so there is no backend to try: 503 (`no_healthy_backend`) with
/// the request id in the header and the JSON body. (A refused connect to a
/// backend in rotation is a 502: `closed_upstream_gets_502…` below.)
async fn never_healthy_static_upstream_gets_503_with_the_request_id() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = format!(
        r#"listen: 127.0.0.1:0
admin: {{ listen: 127.0.0.1:0 }}
upstreams:
  - {{ url: "http://127.0.0.1:{port}" }}
health: {{ interval: 200ms, timeout: 200ms }}
"#
    );
    let shoal = Shoal::start(&config);
    let req = http::Request::get("/")
        .header("host", "x")
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = request(shoal.proxy, req).await.unwrap();
    assert_eq!(r.status, 503, "never healthy, so no backend");
    let body = r.json();
    assert_eq!(body["error"], "no_healthy_backend");
    assert_eq!(
        body["request_id"],
        r.headers["x-request-id"].to_str().unwrap()
    );
}

/// A backend that accepts, reads the request and closes without answering:
/// 502 with the request id, and a POST (not safe to repeat) reaches it once.
async fn closed_upstream_gets_502_and_post_is_not_replayed() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::AsyncReadExt;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let posts = Arc::new(AtomicUsize::new(0));
    let gets = Arc::new(AtomicUsize::new(0));
    let (p, g) = (posts.clone(), gets.clone());
    let bad = tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                break;
            };
            let (p, g) = (p.clone(), g.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let n = s.read(&mut buf).await.unwrap_or(0);
                if buf[..n].starts_with(b"POST ") {
                    p.fetch_add(1, Ordering::SeqCst);
                } else if buf[..n].starts_with(b"GET ") {
                    g.fetch_add(1, Ordering::SeqCst);
                }
                // Close without a response.
            });
        }
    });
    // TCP health checks: the bad backend accepts connections, so it is "up".
    let config = format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  - {{ url: \"http://{addr}\" }}\nhealth: {{ interval: 500ms, timeout: 500ms }}\n"
    );
    let shoal = Shoal::start(&config);
    crate::support::eventually(Duration::from_secs(5), "upstream up", || async {
        (shoal.status().await["upstreams"][0]["health"] == "up").then_some(())
    })
    .await;

    let req = http::Request::post("/submit")
        .header("host", "x")
        .header("accept", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"order\": 1}")))
        .unwrap();
    let r = request(shoal.proxy, req).await.unwrap();
    assert_eq!(r.status, 502);
    let body = r.json();
    assert_eq!(body["error"], "upstream_failed");
    assert_eq!(
        body["request_id"],
        r.headers["x-request-id"].to_str().unwrap()
    );
    assert_eq!(
        posts.load(Ordering::SeqCst),
        1,
        "a sent POST is never sent again"
    );

    let r = get(shoal.proxy, "/").await.unwrap();
    assert_eq!(r.status, 502);
    assert!(String::from_utf8_lossy(&r.body).contains("request id"));
    assert_eq!(
        gets.load(Ordering::SeqCst),
        1,
        "one backend: nowhere else to replay the GET"
    );
    shoal.wait_log("request failed").await;
    bad.abort();
}

/// Upstream connections are kept alive and reused: 60 sequential requests
/// over 2 instances open only a few connections.
async fn upstream_connections_are_reused() {
    let shoal = Shoal::start(&demo_config(2, "balance: { algorithm: round_robin }\n"));
    shoal.wait_healthy(2).await;
    let mut client = crate::support::Client::new(shoal.proxy);
    for i in 0..60 {
        let path = if i % 3 == 0 {
            "/download?bytes=100000"
        } else {
            "/"
        };
        assert_eq!(client.get(path).await.unwrap().status, 200);
    }
    let s = shoal.status().await;
    for i in s["instances"].as_array().unwrap() {
        let opened = i["connections_opened"].as_u64().unwrap();
        assert!(i["requests"].as_u64().unwrap() >= 30);
        assert!(
            opened <= 2,
            "{} opened {opened} connections for 30 requests",
            i["id"]
        );
    }
}

/// `trusted_proxies` survives a reload that changes something else, and a
/// reload that changes only `trusted_proxies` applies it.
async fn trusted_proxies_follow_config_reloads() {
    let config = |extra: &str| demo_config(1, extra);
    let shoal = Shoal::start(&config("trusted_proxies: [127.0.0.0/8]\n"));
    shoal.wait_healthy(1).await;
    let seen_xff = || async {
        let req = http::Request::get("/headers")
            .header("host", "example.test")
            .header("x-forwarded-for", "203.0.113.9")
            .body(Full::new(Bytes::new()))
            .unwrap();
        request(shoal.proxy, req).await.unwrap().json()["x-forwarded-for"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(seen_xff().await, "203.0.113.9, 127.0.0.1");

    let reload = |yaml: String| {
        std::fs::write(shoal.config_path(), crate::support::with_test_engine(&yaml)).unwrap();
        shoal.signal(nix::sys::signal::Signal::SIGHUP);
    };
    // Something else changes: the trusted peers stay trusted.
    reload(config(
        "trusted_proxies: [127.0.0.0/8]\nbalance: { algorithm: round_robin }\n",
    ));
    crate::support::eventually(Duration::from_secs(10), "the reload", || async {
        (shoal.status().await["balance"] == "round_robin").then_some(())
    })
    .await;
    assert_eq!(seen_xff().await, "203.0.113.9, 127.0.0.1");

    // Only trusted_proxies changes: the client's header is replaced now.
    reload(config("balance: { algorithm: round_robin }\n"));
    crate::support::eventually(Duration::from_secs(10), "untrusted", || async {
        (seen_xff().await == "127.0.0.1").then_some(())
    })
    .await;
}

crate::under_both_engines!(
    request_id_and_forwarding_headers,
    trusted_proxy_forwarding_is_extended,
    bodies_stream_both_ways,
    websocket_passes_through,
    status_api_and_upstream_errors,
    never_healthy_static_upstream_gets_503_with_the_request_id,
    closed_upstream_gets_502_and_post_is_not_replayed,
    upstream_connections_are_reused,
    trusted_proxies_follow_config_reloads,
);
