//! Beyond one machine (issue #18): a test network of network namespaces
//! ([`netns`](crate::support::netns): veth pairs into one bridge, 10.77.X.0/24,
//! nothing routed off the machine) with two shoal replicas on two hosts,
//! the demo app on two more (a third joins), and a DNS server on a host of
//! its own (Debian's dnsmasq, answering from a hosts file the test rewrites
//! and reloads with SIGHUP, TTL 1 s). Both replicas run the same config:
//! `upstreams.api.dns` with no `server`, so each finds the DNS server in
//! its host's `/etc/resolv.conf`, as a pod does behind a headless Service.
//!
//! Shown: an app host added to the name takes traffic from both replicas
//! within the TTL and one interval (and its health check); one removed
//! under load through both replicas — out of DNS first, then stopped once
//! both have let it go — fails no request; with the DNS server stopped,
//! both replicas count the failures and keep serving the last set.
//!
//! Needs root and `ip netns` (iproute2), and dnsmasq: without them the test
//! skips, saying why — unless `SHOAL_NETNS_TEST=1` (scripts/test sets it),
//! which makes it fail instead.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::support::dns::{dnsmasq, AppAt, Dns};
use crate::support::load::Load;
use crate::support::netns::{net_or_skip, Host};
use crate::support::spread::{spread, wait_for_set};
use crate::support::{eventually, Shoal, SHOAL};

/// Every app host listens on this port; shoal on 8080, its admin API on
/// 9090 — each host is a namespace of its own, so fixed ports never clash.
const APP_PORT: u16 = 8000;

/// dnsmasq's TTL (`--local-ttl=1`) and the replicas' `dns.interval`.
const TTL: Duration = Duration::from_secs(1);
const INTERVAL: Duration = Duration::from_secs(1);
/// On top of those: the new host's health check (every 300 ms, rise 1)
/// and the rounds of 24 GETs that show the change, on a busy machine.
const SLACK: Duration = Duration::from_secs(2);

const TOKEN: &str = "multihost-test-token-0123456789";

/// The one config both replicas run: every interface (the admin API then
/// needs a token), the group from DNS.
fn config() -> String {
    format!(
        "listen: 0.0.0.0:8080
admin: {{ listen: 0.0.0.0:9090, token: {TOKEN} }}
upstreams:
  api:
    dns: {{ name: api.shoal.test, port: {APP_PORT}, interval: {}s, min_interval: 200ms, timeout: 500ms }}
    health: {{ path: /health, interval: 300ms, timeout: 300ms, rise: 1, fall: 2 }}
    balance: {{ algorithm: round_robin }}
routes:
  - to: api
",
        INTERVAL.as_secs()
    )
}

/// A replica on `host`; its addresses are the host's.
fn replica(host: &Host) -> Shoal {
    let id = host.ns.clone();
    let mut shoal = Shoal::start_wrapped(&config(), &[("SHOAL_REPLICA_ID", &id)], &host.wrapper());
    assert!(shoal.proxy.ip().is_unspecified(), "{}", shoal.proxy);
    shoal.proxy = SocketAddr::new(host.ip.into(), shoal.proxy.port());
    shoal.admin = SocketAddr::new(host.ip.into(), shoal.admin.port());
    shoal
}

/// The hosts file: `api.shoal.test` on each of these hosts.
fn hosts(of: &[&Host]) -> String {
    of.iter()
        .map(|h| format!("{} api.shoal.test\n", h.ip))
        .collect()
}

async fn app(host: &Host, id: &str) -> AppAt {
    AppAt::start_with(
        host.command(SHOAL),
        SocketAddr::new(host.ip.into(), APP_PORT),
        id,
    )
    .await
}

/// Both replicas answered by exactly `want` within `within`; how long it took.
async fn both_see(replicas: &[&Shoal; 2], want: &[&str], within: Duration) -> Duration {
    let t = Instant::now();
    tokio::join!(
        wait_for_set(replicas[0], want, within),
        wait_for_set(replicas[1], want, within)
    );
    t.elapsed()
}

fn failures(m: &std::collections::BTreeMap<String, f64>) -> f64 {
    m.get("shoal_discovery_failures_total{group=\"api\",source=\"dns\"}")
        .copied()
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_two_hosts_follow_app_hosts_through_dns() {
    let Some(bin) = dnsmasq() else { return };
    // Declared first, dropped last: the processes below are stopped by
    // their own guards before the network goes (and on a panic too).
    let Some(mut net) = net_or_skip() else { return };
    let dir = tempfile::tempdir().unwrap();
    let dns_host = net.host("dns", 53);
    let (s1, s2) = (net.host("s1", 11), net.host("s2", 12));
    let (a1, a2, a3) = (net.host("a1", 21), net.host("a2", 22), net.host("a3", 23));
    for s in [&s1, &s2] {
        net.resolv_conf(
            s,
            &format!("nameserver {}\noptions timeout:1 attempts:1\n", dns_host.ip),
        );
    }
    let mut dns = Dns::start_with(
        dns_host.command(&bin),
        SocketAddr::new(dns_host.ip.into(), 53),
        dir.path(),
        &hosts(&[&a1, &a2]),
        &[],
    );
    let mut app1 = app(&a1, "a1").await;
    let _app2 = app(&a2, "a2").await;
    let r1 = replica(&s1);
    let r2 = replica(&s2);
    let both = [&r1, &r2];
    both_see(&both, &["a1", "a2"], Duration::from_secs(15)).await;
    // Each replica says which one answered.
    assert_eq!(r1.status().await["replica"]["id"], s1.ns.as_str());
    assert_eq!(r2.status().await["replica"]["id"], s2.ns.as_str());

    // (1) A third app host joins the name: both replicas send it traffic
    // within the TTL and one interval, once its health check has passed.
    let _app3 = app(&a3, "a3").await;
    dns.set(&hosts(&[&a1, &a2, &a3]));
    let added_in = both_see(&both, &["a1", "a2", "a3"], TTL + INTERVAL + SLACK).await;

    // (2) One app host leaves under load through both replicas: out of DNS
    // first; once neither replica sends it anything, it stops. Drained,
    // not cut: no request fails.
    let load = |shoal: &Shoal, secs: u64| {
        Load::with_paths(
            shoal.proxy,
            3,
            20,
            Duration::from_secs(secs),
            "/slow?ms=20",
            "/echo?delay_ms=20",
        )
    };
    let (l1, l2) = (load(&r1, 5), load(&r2, 5));
    tokio::time::sleep(Duration::from_millis(500)).await;
    dns.set(&hosts(&[&a2, &a3]));
    let removed_in = both_see(&both, &["a2", "a3"], TTL + INTERVAL + SLACK).await;
    // SIGTERM and a wait: off the runtime's workers, which carry the load.
    tokio::task::block_in_place(|| app1.stop());
    let stopped_at = Instant::now();
    let (rep1, rep2) = tokio::join!(l1.finish(), l2.finish());
    let under_load = rep1.ok + rep2.ok;
    for (name, rep) in [("s1", &rep1), ("s2", &rep2)] {
        assert!(rep.failed.is_empty(), "through {name}: {:?}", rep.failed);
        assert!(rep.ok > 150, "through {name}: only {} requests", rep.ok);
        assert!(
            rep.instances.contains("a1") && rep.instances.contains("a3"),
            "through {name}: {:?}",
            rep.instances
        );
    }
    assert!(
        stopped_at.elapsed() > Duration::from_millis(500),
        "the load ended too soon after a1 stopped to show that its stop failed nothing"
    );

    // (3) The DNS server goes: both replicas count failed lookups, log
    // them, and keep serving the last set found.
    let before = [failures(&r1.metrics().await), failures(&r2.metrics().await)];
    dns.stop();
    for (shoal, before) in both.iter().zip(before) {
        eventually(Duration::from_secs(6), "failed lookups", || async {
            (failures(&shoal.metrics().await) >= before + 2.0).then_some(())
        })
        .await;
        shoal
            .wait_log("discovery failed; the last backends found keep serving")
            .await;
        let m = shoal.metrics().await;
        assert_eq!(
            m.get("shoal_discovery_backends{group=\"api\",source=\"dns\"}"),
            Some(&2.0),
            "{m:?}"
        );
    }
    let (l1, l2) = (load(&r1, 2), load(&r2, 2));
    let (rep1, rep2) = tokio::join!(l1.finish(), l2.finish());
    for (name, rep) in [("s1", &rep1), ("s2", &rep2)] {
        assert!(rep.failed.is_empty(), "through {name}: {:?}", rep.failed);
        let seen: Vec<&str> = rep.instances.iter().map(|s| s.as_str()).collect();
        assert_eq!(seen, ["a2", "a3"], "through {name}");
    }
    for shoal in both {
        let seen: Vec<String> = spread(shoal, 24).await.into_keys().collect();
        assert_eq!(seen, ["a2", "a3"]);
    }
    eprintln!(
        "multihost: a new host took traffic from both replicas after {added_in:?}; \
         a removed one left both after {removed_in:?}; {under_load} requests under load, none failed"
    );
}
