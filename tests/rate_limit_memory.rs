//! The in-process rate-limit store under 1,000,000 distinct client
//! addresses: it keeps at most `state.max_keys` keys (the default,
//! 100,000), and this process's RSS grows by less than 32 MiB.
//!
//! Its own test binary, so that the RSS measured is this test's alone. The
//! requests go through the rules' own code (`RateLimits::asks`, `decide`)
//! with an engine-neutral request view, not over HTTP: a million requests
//! through the debug build's sockets would take minutes (tests/e2e's
//! `rate_limits` checks the same code behind both engines).

use std::net::{IpAddr, Ipv6Addr};
use std::sync::Arc;

use http::HeaderMap;
use shoal::balance::{EndpointTable, Headers, RequestView};
use shoal::proxy::Routing;
use shoal::ratelimit::Outcome;

fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "current_thread")]
async fn a_million_client_addresses_keep_memory_bounded() {
    let config: shoal_config::Config = serde_yaml_ng::from_str(
        "upstreams: [{url: 'http://127.0.0.1:9'}]
rate_limits:
  - name: per_ip
    rate: 1/hour
    burst: 1
",
    )
    .unwrap();
    assert_eq!(config.state.max_keys, 100_000, "the documented default");
    let routing = Routing::single(Arc::new(EndpointTable::new()), &config);
    let headers = HeaderMap::new();
    let view = |client: IpAddr| RequestView {
        client,
        method: "GET",
        target: "/",
        headers: Headers::Map(&headers),
        listener: "",
        host: None,
    };
    // Warm up the allocator with the first 100,000 keys (the store's
    // whole size), then measure what the next 900,000 add.
    let mut allowed = 0u32;
    let start = rss();
    let mut before = 0;
    for i in 0..1_000_000u32 {
        if i == 100_000 {
            before = rss();
        }
        let ip = IpAddr::V6(Ipv6Addr::new(
            0x2001,
            0xdb8,
            0,
            0,
            0,
            0,
            (i >> 16) as u16,
            i as u16,
        ));
        let asked = routing.limits.asks(&view(ip), None, "");
        if let Outcome::Pass(_) = routing.limits.decide(asked).await {
            allowed += 1;
        }
    }
    let grown = rss().saturating_sub(before);
    let total = rss().saturating_sub(start);
    let keys = routing.limits.limiter().local_keys();
    assert_eq!(allowed, 1_000_000, "every new address passes once");
    assert!(keys <= 100_000, "{keys} keys held");
    assert!(
        total < 32 << 20,
        "RSS grew {} MiB over 1,000,000 addresses",
        total >> 20
    );
    // Once the store is full, more addresses cost (almost) nothing.
    assert!(
        grown < 8 << 20,
        "RSS grew {} MiB over the last 900,000 addresses",
        grown >> 20
    );
    println!(
        "keys held: {keys}; RSS growth: {} KiB in all, {} KiB after the first 100,000",
        total >> 10,
        grown >> 10
    );
}
