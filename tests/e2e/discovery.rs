//! Discovery of an upstream group's backends (issue #18): a real DNS server
//! (Debian's dnsmasq, on a free loopback port, answering from a hosts file
//! the test rewrites and reloads with SIGHUP) and real backends on
//! 127.0.0.2 … 127.0.0.4 (the demo app, `HOST` set), all on one port, as
//! the pods behind a Kubernetes headless Service. A backend added to the
//! name takes traffic within the TTL and one interval; one removed under
//! load fails no request; with the DNS server gone the last set keeps
//! serving. SRV records give ports and weights; a watched file of
//! addresses works the same way. scripts/test installs dnsmasq and sets
//! `SHOAL_DNS_TEST=1`, which makes a missing dnsmasq a failure. The same
//! across hosts (network namespaces): tests/e2e/multihost.rs.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::dns::{dnsmasq, AppAt, Dns};
use crate::support::load::Load;
use crate::support::spread::{spread, wait_for_set};
use crate::support::{eventually, free_port, Shoal};

/// Free loopback ports for shoal's own listeners.
const LISTEN: &str = "listen: 127.0.0.1:0\nadmin: { listen: 127.0.0.1:0 }\n";

const HEALTH: &str =
    "    health: { path: /health, interval: 200ms, timeout: 200ms, rise: 1, fall: 1 }\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dns_names_add_and_remove_backends_and_survive_the_server() {
    let Some(bin) = dnsmasq() else { return };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _a = AppAt::start("127.0.0.2", port, "a").await;
    let _b = AppAt::start("127.0.0.3", port, "b").await;
    let _c = AppAt::start("127.0.0.4", port, "c").await;
    let mut dns = Dns::start(
        &bin,
        dir.path(),
        "127.0.0.2 api.test\n127.0.0.3 api.test\n",
        &[],
    );
    let shoal = Shoal::start(&format!(
        "{LISTEN}upstreams:\n  api:\n    dns: {{ name: api.test, port: {port}, server: 127.0.0.1:{}, interval: 1s, min_interval: 200ms, timeout: 500ms }}\n{HEALTH}    balance: {{ algorithm: round_robin }}\nroutes:\n  - to: api\n",
        dns.addr.port()
    ));
    wait_for_set(&shoal, &["a", "b"], Duration::from_secs(10)).await;

    // A new address: traffic within the TTL (1 s) and one interval (1 s),
    // once its health check has passed.
    dns.set("127.0.0.2 api.test\n127.0.0.3 api.test\n127.0.0.4 api.test\n");
    let t = Instant::now();
    wait_for_set(&shoal, &["a", "b", "c"], Duration::from_secs(4)).await;
    let added_in = t.elapsed();

    // One removed under load: no request fails.
    let load = Load::with_paths(
        shoal.proxy,
        4,
        25,
        Duration::from_secs(3),
        "/slow?ms=20",
        "/echo?delay_ms=20",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    dns.set("127.0.0.3 api.test\n127.0.0.4 api.test\n");
    let report = load.finish().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.ok > 150, "only {} requests", report.ok);
    wait_for_set(&shoal, &["b", "c"], Duration::from_secs(4)).await;

    // The server gone: the failures count, and the last set keeps serving.
    dns.stop();
    let key = |name: &str| format!("{name}{{group=\"api\",source=\"dns\"}}");
    eventually(Duration::from_secs(5), "a failed lookup", || async {
        let m = shoal.metrics().await;
        (m.get(&key("shoal_discovery_failures_total"))
            .copied()
            .unwrap_or(0.0)
            >= 2.0)
            .then_some(())
    })
    .await;
    let seen: Vec<String> = spread(&shoal, 24).await.into_keys().collect();
    assert_eq!(seen, ["b", "c"]);
    let m = shoal.metrics().await;
    assert_eq!(m.get(&key("shoal_discovery_backends")), Some(&2.0), "{m:?}");
    assert!(
        shoal.log_contains("discovery failed; the last backends found keep serving"),
        "{:#?}",
        shoal.log()
    );
    eprintln!("a new backend took traffic after {added_in:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srv_records_give_ports_and_weights() {
    let Some(bin) = dnsmasq() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (p1, p2) = (free_port(), free_port());
    let _a = AppAt::start("127.0.0.2", p1, "a").await;
    let _b = AppAt::start("127.0.0.3", p2, "b").await;
    let dns = Dns::start(
        &bin,
        dir.path(),
        "127.0.0.2 a.test\n127.0.0.3 b.test\n",
        &[
            format!("--srv-host=_http._tcp.api.test,a.test,{p1},0,3"),
            format!("--srv-host=_http._tcp.api.test,b.test,{p2},0,1"),
            // A higher priority number: only used when the others are gone.
            "--srv-host=_http._tcp.api.test,c.test,9,1,1".to_string(),
        ],
    );
    let shoal = Shoal::start(&format!(
        "{LISTEN}upstreams:\n  api:\n    dns: {{ name: _http._tcp.api.test, srv: true, server: 127.0.0.1:{}, interval: 1s, min_interval: 200ms }}\n{HEALTH}    balance: {{ algorithm: round_robin }}\nroutes:\n  - to: api\n",
        dns.addr.port()
    ));
    wait_for_set(&shoal, &["a", "b"], Duration::from_secs(10)).await;
    let seen = spread(&shoal, 40).await;
    assert_eq!(seen.get("a"), Some(&30), "weights 3:1: {seen:?}");
    assert_eq!(seen.get("b"), Some(&10), "weights 3:1: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_addresses_is_followed_and_a_bad_line_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _a = AppAt::start("127.0.0.2", port, "a").await;
    let _b = AppAt::start("127.0.0.3", port, "b").await;
    let list = dir.path().join("backends.txt");
    std::fs::write(&list, format!("# the api\n127.0.0.2:{port}\n")).unwrap();
    let shoal = Shoal::start(&format!(
        "{LISTEN}upstreams:\n  api:\n    file: {{ path: {}, interval: 200ms }}\n{HEALTH}routes:\n  - to: api\n",
        list.display()
    ));
    wait_for_set(&shoal, &["a"], Duration::from_secs(10)).await;
    std::fs::write(&list, format!("127.0.0.2:{port}\n127.0.0.3:{port} 2\n")).unwrap();
    wait_for_set(&shoal, &["a", "b"], Duration::from_secs(4)).await;
    std::fs::write(&list, format!("127.0.0.2:{port}\n127.0.0.3\n")).unwrap();
    shoal
        .wait_log(&format!(
            "{}:2: `127.0.0.3` is not HOST:PORT",
            list.display()
        ))
        .await;
    let seen: Vec<String> = spread(&shoal, 24).await.into_keys().collect();
    assert_eq!(seen, ["a", "b"], "a bad line changes nothing");
    std::fs::write(&list, format!("127.0.0.3:{port}\n")).unwrap();
    wait_for_set(&shoal, &["b"], Duration::from_secs(4)).await;
    assert!(shoal.log_contains("discovery works again"));
}

const TOKEN: &str = "registry-test-token-0123456789";

/// `POST /api/v1/backends` (a registration or a heartbeat), with the token
/// or without.
async fn register(admin: SocketAddr, body: &str, token: bool) -> (u16, String) {
    let mut req = http::Request::post("/api/v1/backends").header("host", "admin");
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    let req = req
        .header("content-type", "application/json")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            body.to_string(),
        )))
        .unwrap();
    let r = crate::support::request(admin, req).await.unwrap();
    (
        r.status.as_u16(),
        String::from_utf8_lossy(&r.body).into_owned(),
    )
}

/// An instance's agent: registers, then renews every 300 ms (TTL 1 s).
fn heartbeat(shoal: &Shoal, ip: &'static str, port: u16) -> tokio::task::JoinHandle<()> {
    let admin = shoal.admin;
    tokio::spawn(async move {
        let body = format!(r#"{{"group": "api", "address": "{ip}:{port}", "ttl": "1s"}}"#);
        loop {
            let (code, said) = register(admin, &body, true).await;
            assert!((200..300).contains(&code), "{code}: {said}");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registered_instances_stay_while_they_heartbeat() {
    let port = free_port();
    let _a = AppAt::start("127.0.0.2", port, "a").await;
    let _b = AppAt::start("127.0.0.3", port, "b").await;
    let _c = AppAt::start("127.0.0.4", port, "c").await;
    let shoal = Shoal::start(&format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0, token: {TOKEN} }}\nupstreams:\n  api:\n    registry: true\n{HEALTH}    balance: {{ algorithm: round_robin }}\nroutes:\n  - to: api\n"
    ));

    // Registering changes the pool: the token is required; bad input is 400;
    // a group without `registry: true` is 404.
    let ok = format!(r#"{{"group": "api", "address": "127.0.0.2:{port}", "ttl": "1s"}}"#);
    assert_eq!(register(shoal.admin, &ok, false).await.0, 401);
    let (code, said) = register(shoal.admin, r#"{"group": "api", "address": "nope"}"#, true).await;
    assert_eq!(code, 400, "{said}");
    assert!(said.contains("is not IP:PORT"), "{said}");
    let (code, said) = register(
        shoal.admin,
        &format!(r#"{{"group": "api", "address": "127.0.0.2:{port}", "ttl": "1h"}}"#),
        true,
    )
    .await;
    assert_eq!(code, 400, "{said}");
    let (code, said) = register(
        shoal.admin,
        &format!(r#"{{"group": "web", "address": "127.0.0.2:{port}"}}"#),
        true,
    )
    .await;
    assert_eq!(code, 404, "{said}");
    assert_eq!(register(shoal.admin, &ok, true).await.0, 201, "new");
    assert_eq!(register(shoal.admin, &ok, true).await.0, 200, "renewed");

    let agents = [
        heartbeat(&shoal, "127.0.0.2", port),
        heartbeat(&shoal, "127.0.0.3", port),
        heartbeat(&shoal, "127.0.0.4", port),
    ];
    wait_for_set(&shoal, &["a", "b", "c"], Duration::from_secs(5)).await;

    // One agent stops: that instance is out within its TTL; under load,
    // no request fails.
    let load = Load::with_paths(
        shoal.proxy,
        4,
        25,
        Duration::from_secs(3),
        "/slow?ms=20",
        "/echo?delay_ms=20",
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    agents[0].abort();
    let t = Instant::now();
    wait_for_set(&shoal, &["b", "c"], Duration::from_secs(3)).await;
    let gone_in = t.elapsed();
    let report = load.finish().await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);
    assert!(report.ok > 150, "only {} requests", report.ok);
    assert!(
        gone_in < Duration::from_millis(1600),
        "out within the 1 s TTL and a tick: {gone_in:?}"
    );

    // Leaving at once.
    let mut del = http::Request::delete(format!(
        "/api/v1/backends?group=api&address=127.0.0.3:{port}"
    ))
    .header("host", "admin")
    .body(http_body_util::Full::new(bytes::Bytes::new()))
    .unwrap();
    del.headers_mut()
        .insert("authorization", format!("Bearer {TOKEN}").parse().unwrap());
    agents[1].abort();
    let r = crate::support::request(shoal.admin, del).await.unwrap();
    assert_eq!(r.status, 200);
    wait_for_set(&shoal, &["c"], Duration::from_millis(800)).await;
    agents[2].abort();
}
