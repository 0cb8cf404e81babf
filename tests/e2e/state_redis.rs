//! The Redis state backend with a standalone redis-server started here:
//! two shoal replicas count as one (the same passes as one replica
//! alone), a run-time change reaches the other replica within a second,
//! Redis stopped and restarted under load (on_error local: counted in the
//! process meanwhile; one log line per change; the gauge; recovery), and
//! shoal started with Redis down answering by on_error deny and allow.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::support::redis::RedisServer;
use crate::support::{eventually, free_port, request, upstreams_config, Backend, Client, Shoal};

/// A shoal in front of `backend` with `state` and one rule.
pub fn config(backend: SocketAddr, state: &str, rule: &str) -> String {
    upstreams_config(
        &[backend],
        &format!("state:\n{state}\nrate_limits:\n  - name: lim\n{rule}\n"),
    )
}

pub const PER_IP: &str = "    key: client_ip\n    rate: 100/hour\n    burst: 100";
pub const PER_KEY: &str = "    key: header:X-Key\n    rate: 20/hour\n    burst: 20";

fn redis_state(url: &str, on_error: &str) -> String {
    format!("  backend: redis\n  url: {url}\n  on_error: {on_error}\n  command_timeout: 1s\n  connect_timeout: 500ms")
}

/// `n` GETs spread over `replicas` by 8 keep-alive clients, each with
/// `X-Key: key` (if any); (passed, refused). Anything else fails the test.
pub async fn spread(replicas: &[SocketAddr], n: usize, key: Option<&str>) -> (usize, usize) {
    let workers = 8;
    let tasks: Vec<_> = (0..workers)
        .map(|w| {
            let replicas = replicas.to_vec();
            let key = key.map(str::to_string);
            tokio::spawn(async move {
                let mut clients: Vec<Client> = replicas.iter().map(|a| Client::new(*a)).collect();
                let (mut ok, mut refused) = (0, 0);
                for i in (w..n).step_by(workers) {
                    let c = i % clients.len();
                    let mut req = Request::get("/").header("host", "t");
                    if let Some(k) = &key {
                        req = req.header("x-key", k.as_str());
                    }
                    let req = req.body(Full::new(Bytes::new())).unwrap();
                    let reply = tokio::time::timeout(Duration::from_secs(5), clients[c].send(req))
                        .await
                        .expect("no request waits")
                        .expect("an answer");
                    match reply.status {
                        StatusCode::OK => ok += 1,
                        StatusCode::TOO_MANY_REQUESTS => refused += 1,
                        s => panic!("unexpected {s}"),
                    }
                }
                (ok, refused)
            })
        })
        .collect();
    let mut total = (0, 0);
    for t in tasks {
        let (ok, refused) = t.await.unwrap();
        total.0 += ok;
        total.1 += refused;
    }
    total
}

pub async fn metric(shoal: &Shoal, name: &str) -> f64 {
    shoal
        .metrics()
        .await
        .iter()
        .find(|(k, _)| k.starts_with(name))
        .map(|(_, v)| *v)
        .unwrap_or(f64::NAN)
}

pub async fn backend_up(shoal: &Shoal, want: f64, within: Duration) {
    eventually(
        within,
        &format!("shoal_state_backend_up {want}"),
        || async { (metric(shoal, "shoal_state_backend_up").await == want).then_some(()) },
    )
    .await;
}

pub fn lines(shoal: &Shoal, needle: &str) -> usize {
    shoal.log().iter().filter(|l| l.contains(needle)).count()
}

async fn admin(addr: SocketAddr, method: &str, path: &str, body: &str) -> serde_json::Value {
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let reply = request(addr, req).await.expect("admin answers");
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    reply.json()
}

#[tokio::test]
async fn two_replicas_sharing_redis_count_as_one_and_share_changes() {
    let backend = Backend::start("b").await;
    let redis = RedisServer::start();

    // One replica alone (the in-process store): the reference count.
    let alone = Shoal::start(&config(backend.addr, "  backend: memory", PER_IP));
    let (ok_alone, refused_alone) = spread(&[alone.proxy], 400, None).await;
    drop(alone);
    assert_eq!((ok_alone, refused_alone), (100, 300));

    let state = redis_state(&redis.url(), "deny");
    let a = Shoal::start(&config(backend.addr, &state, PER_IP));
    let b = Shoal::start(&config(backend.addr, &state, PER_IP));
    backend_up(&a, 1.0, Duration::from_secs(10)).await;
    backend_up(&b, 1.0, Duration::from_secs(10)).await;
    let started = Instant::now();
    let (ok, refused) = spread(&[a.proxy, b.proxy], 400, None).await;
    eprintln!(
        "two replicas: {ok} passed, {refused} refused in {:?}",
        started.elapsed()
    );
    assert_eq!(
        (ok, refused),
        (ok_alone, refused_alone),
        "exactly as one replica"
    );

    // A run-time change on one replica reaches the other within 1 s.
    let put = Instant::now();
    let changed = admin(
        a.admin,
        "PUT",
        "/api/v1/rate-limits/lim",
        r#"{"burst": 150}"#,
    )
    .await;
    assert_eq!(changed["burst"], 150);
    let seen = eventually(
        Duration::from_secs(1),
        "the change on the other replica",
        || async {
            let list = admin(b.admin, "GET", "/api/v1/rate-limits", "").await;
            (list["rules"][0]["burst"] == 150).then(|| put.elapsed())
        },
    )
    .await;
    eprintln!("the change reached the other replica after {seen:?}");
    assert!(b.log_contains("rate limit changed by another replica"));
    // 100 of 150 used: 50 more pass, over both.
    assert_eq!(spread(&[a.proxy, b.proxy], 100, None).await, (50, 50));

    // A replica started now takes the change from Redis.
    let c = Shoal::start(&config(backend.addr, &state, PER_IP));
    eventually(
        Duration::from_secs(5),
        "the change on a new replica",
        || async {
            let list = admin(c.admin, "GET", "/api/v1/rate-limits", "").await;
            (list["rules"][0]["burst"] == 150).then_some(())
        },
    )
    .await;
    drop(c);

    // Back to the config's settings, on the other one this time.
    let back = admin(b.admin, "DELETE", "/api/v1/rate-limits/lim/override", "").await;
    assert_eq!(back["burst"], 100);
    eventually(
        Duration::from_secs(1),
        "the removal on the first replica",
        || async {
            let list = admin(a.admin, "GET", "/api/v1/rate-limits", "").await;
            (list["rules"][0]["overridden"] == false).then_some(())
        },
    )
    .await;

    // Redis holds the bucket and its expiry; /metrics has the round trips.
    // (The client address is in the key as its 4 bytes.)
    let ttl: i64 = redis
        .cli(&[
            "EVAL",
            "return redis.call('PTTL', redis.call('KEYS', 'shoal:rl:{lim:*')[1])",
            "0",
        ])
        .parse()
        .unwrap();
    assert!(ttl > 3_600_000, "ttl {ttl} ms");
    let count = metric(&a, "shoal_state_backend_latency_seconds_count").await;
    let sum = metric(&a, "shoal_state_backend_latency_seconds_sum").await;
    eprintln!(
        "Redis round trip: {:.0} µs on average over {count} calls",
        sum / count * 1e6
    );
    assert!(count >= 200.0);
    assert_eq!(metric(&a, "shoal_state_backend_errors").await, 0.0);
}

#[tokio::test]
async fn redis_stopped_and_restarted_under_load_follows_on_error_local() {
    let backend = Backend::start("b").await;
    let mut redis = RedisServer::start();
    let shoal = Shoal::start(&config(
        backend.addr,
        &redis_state(&redis.url(), "local"),
        PER_KEY,
    ));
    backend_up(&shoal, 1.0, Duration::from_secs(10)).await;

    // The load: 4 clients, a new key each request (always allowed), for
    // 5 s; every answer within a second.
    let proxy = shoal.proxy;
    let load: Vec<_> = (0..4)
        .map(|w| {
            tokio::spawn(async move {
                let mut client = Client::new(proxy);
                let until = Instant::now() + Duration::from_secs(5);
                let (mut n, mut slowest) = (0u32, Duration::ZERO);
                while Instant::now() < until {
                    let req = Request::get("/")
                        .header("host", "t")
                        .header("x-key", format!("load-{w}-{n}"))
                        .body(Full::new(Bytes::new()))
                        .unwrap();
                    let t = Instant::now();
                    let reply = tokio::time::timeout(Duration::from_secs(2), client.send(req))
                        .await
                        .expect("no stuck request")
                        .expect("an answer");
                    assert_eq!(reply.status, StatusCode::OK);
                    slowest = slowest.max(t.elapsed());
                    n += 1;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (n, slowest)
            })
        })
        .collect();

    tokio::time::sleep(Duration::from_millis(800)).await;
    redis.stop();
    backend_up(&shoal, 0.0, Duration::from_secs(3)).await;
    // Counted in the process meanwhile: 20 of 30 pass.
    assert_eq!(spread(&[proxy], 30, Some("outage")).await, (20, 10));

    redis.restart();
    let back = Instant::now();
    backend_up(&shoal, 1.0, Duration::from_secs(5)).await;
    eprintln!(
        "shoal used Redis again {:?} after it restarted",
        back.elapsed()
    );
    // Redis counts again (it never saw the key: 20 pass).
    assert_eq!(spread(&[proxy], 30, Some("outage")).await, (20, 10));

    let mut total = 0;
    for t in load {
        let (n, slowest) = t.await.unwrap();
        assert!(
            slowest < Duration::from_secs(2),
            "a request took {slowest:?}"
        );
        total += n;
    }
    eprintln!("{total} requests under load, all answered 200");
    assert!(total > 100);
    // One line per change: reachable, unreachable, reachable again.
    assert_eq!(
        lines(&shoal, "Redis is unreachable"),
        1,
        "{:#?}",
        shoal.log()
    );
    assert_eq!(lines(&shoal, "Redis is reachable"), 2, "{:#?}", shoal.log());
    assert!(metric(&shoal, "shoal_state_backend_errors").await >= 1.0);
    assert!(!shoal.log().iter().any(|l| l.contains("panicked")));
}

#[tokio::test]
async fn shoal_starts_with_redis_down_and_follows_on_error_deny_and_allow() {
    let backend = Backend::start("b").await;
    // Nothing listens there.
    let url = format!("redis://127.0.0.1:{}", free_port());
    let deny = Shoal::start(&config(backend.addr, &redis_state(&url, "deny"), PER_KEY));
    let allow = Shoal::start(&config(backend.addr, &redis_state(&url, "allow"), PER_KEY));
    let t = Instant::now();
    assert_eq!(spread(&[deny.proxy], 10, Some("k")).await, (0, 10));
    assert_eq!(spread(&[allow.proxy], 30, Some("k")).await, (30, 0));
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    for shoal in [&deny, &allow] {
        backend_up(shoal, 0.0, Duration::from_secs(1)).await;
        assert_eq!(
            lines(shoal, "Redis is unreachable"),
            1,
            "{:#?}",
            shoal.log()
        );
        assert!(metric(shoal, "shoal_state_backend_errors").await >= 10.0);
    }
}

#[tokio::test]
async fn lease_mode_over_two_replicas_stays_within_the_stated_overshoot() {
    let backend = Backend::start("b").await;
    let redis = RedisServer::start();
    let state = redis_state(&redis.url(), "deny");
    let rule = format!("{PER_IP}\n    mode: lease");
    let a = Shoal::start(&config(backend.addr, &state, &rule));
    let b = Shoal::start(&config(backend.addr, &state, &rule));
    backend_up(&a, 1.0, Duration::from_secs(10)).await;
    backend_up(&b, 1.0, Duration::from_secs(10)).await;
    let calls_before = metric(&a, "shoal_state_backend_latency_seconds_count").await
        + metric(&b, "shoal_state_backend_latency_seconds_count").await;
    let (ok, refused) = spread(&[a.proxy, b.proxy], 400, None).await;
    let calls = metric(&a, "shoal_state_backend_latency_seconds_count").await
        + metric(&b, "shoal_state_backend_latency_seconds_count").await
        - calls_before;
    eprintln!("lease mode: {ok} passed, {refused} refused; {calls} Redis calls");
    // Leases of 5 (5 % of 100): never more than exact mode's 100 in
    // total; fewer only by tokens still held when the run ended.
    assert_eq!(ok + refused, 400);
    assert!((100 - 2 * 4..=100).contains(&ok), "{ok} passed");
    // The poll of run-time changes adds about 4 calls a second per replica.
    assert!(calls < 120.0, "{calls} calls for 400 requests");
}

#[tokio::test]
async fn redis_paused_past_the_command_timeout_follows_on_error_deny() {
    use nix::sys::signal::Signal;
    let backend = Backend::start("b").await;
    let redis = RedisServer::start();
    let state = format!(
        "  backend: redis\n  url: {}\n  on_error: deny\n  command_timeout: 200ms\n  connect_timeout: 300ms",
        redis.url()
    );
    let shoal = Shoal::start(&config(backend.addr, &state, PER_KEY));
    backend_up(&shoal, 1.0, Duration::from_secs(10)).await;
    let mut client = Client::new(shoal.proxy);
    let mut n = 0;
    let mut one = async |client: &mut Client| {
        n += 1;
        let req = Request::get("/")
            .header("host", "t")
            .header("x-key", format!("k{n}"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let t = Instant::now();
        let reply = tokio::time::timeout(Duration::from_secs(2), client.send(req))
            .await
            .expect("no stuck request")
            .expect("an answer");
        (reply.status, t.elapsed())
    };
    assert_eq!(one(&mut client).await.0, StatusCode::OK);

    // Redis stops answering (nothing is closed): each request waits at
    // most the command timeout, then on_error (deny) answers.
    redis.signal(Signal::SIGSTOP);
    let mut slowest = Duration::ZERO;
    for _ in 0..10 {
        let (status, took) = one(&mut client).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        slowest = slowest.max(took);
    }
    eprintln!("while Redis was paused: 429 within {slowest:?}");
    assert!(slowest < Duration::from_millis(1000), "{slowest:?}");
    assert_eq!(metric(&shoal, "shoal_state_backend_up").await, 0.0);

    redis.signal(Signal::SIGCONT);
    let back = Instant::now();
    loop {
        if one(&mut client).await.0 == StatusCode::OK {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "Redis never used again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("Redis used again {:?} after it resumed", back.elapsed());
    backend_up(&shoal, 1.0, Duration::from_secs(1)).await;
    assert_eq!(
        lines(&shoal, "Redis is unreachable"),
        1,
        "{:#?}",
        shoal.log()
    );
    assert_eq!(lines(&shoal, "Redis is reachable"), 2, "{:#?}", shoal.log());
}

#[tokio::test]
async fn rediss_reaches_a_tls_redis_whose_ca_the_trust_store_has() {
    use crate::support::tls::TestCa;
    let backend = Backend::start("b").await;
    let certs = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(certs.path());
    let (cert, key) = ca
        .leaf(&["127.0.0.1"], "redis")
        .write(certs.path(), "redis");
    let port = free_port();
    let path = |p: &std::path::Path| p.display().to_string();
    let redis = RedisServer::start_with(
        port,
        &[
            "--port",
            "0",
            "--tls-port",
            &port.to_string(),
            "--tls-cert-file",
            &path(&cert),
            "--tls-key-file",
            &path(&key),
            "--tls-ca-cert-file",
            &path(&ca_file),
            "--tls-auth-clients",
            "no",
        ],
    );
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let state = redis_state(&url, "deny");
    // The CA in the trust store (rustls-native-certs reads SSL_CERT_FILE).
    let trusted = Shoal::start_env(
        &config(backend.addr, &state, PER_KEY),
        &[("SSL_CERT_FILE", &path(&ca_file))],
    );
    backend_up(&trusted, 1.0, Duration::from_secs(10)).await;
    assert_eq!(spread(&[trusted.proxy], 30, Some("tls")).await, (20, 10));
    // Without it the server's certificate is refused: Redis stays away.
    let untrusted = Shoal::start(&config(backend.addr, &state, PER_KEY));
    assert_eq!(spread(&[untrusted.proxy], 5, Some("tls2")).await, (0, 5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metric(&untrusted, "shoal_state_backend_up").await, 0.0);
    assert!(untrusted.log_contains("Redis is unreachable"));
}
