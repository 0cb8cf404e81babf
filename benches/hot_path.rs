//! Micro-benchmarks of the pieces every proxied request goes through.
//!
//! `cargo bench --bench hot_path` (add `-- --quick` for a fast look). No
//! network: endpoints are built in memory and never connected to. The figures
//! and how they compare with the targets are in `docs/BENCHMARKS.md`.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion};
use http::header::{HeaderMap, HeaderName, HeaderValue};
use shoal::balance::{from_config, Endpoint, EndpointSet, Headers, Health, RequestView, Tried};
use shoal::proxy::headers::{add_forwarded, strip_hop_by_hop};
use shoal::proxy::pool::PoolSettings;
use shoal::proxy::request_id;
use shoal_config::{Algorithm, BalanceConfig, HashKey};

/// `n` endpoints, all in rotation, with a little in-flight load spread over
/// them so least_conn and p2c_ewma have real comparisons to make (not all
/// zeros), and a latency estimate each (1–4 ms) for p2c_ewma.
fn endpoint_set(n: usize) -> (EndpointSet, Vec<shoal::balance::InFlight>) {
    let settings = PoolSettings::default();
    let endpoints: Vec<Arc<Endpoint>> = (0..n)
        .map(|i| {
            let port = 20_000 + u16::try_from(i).unwrap_or(0);
            let addr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
            let e = Endpoint::new(format!("http://{addr}"), addr, 1, &settings);
            e.begin_epoch(Health::Up);
            e
        })
        .collect();
    // Endpoint i carries i % 4 requests in flight.
    let mut held = Vec::new();
    for (i, e) in endpoints.iter().enumerate() {
        for _ in 0..(i % 4) {
            held.push(e.start_request());
        }
        e.observe_latency(Duration::from_millis(1 + (i % 4) as u64));
    }
    (EndpointSet::new(endpoints), held)
}

/// One pick per algorithm at 3 and 100 backends. The hashing algorithms get
/// a different key each time (as different clients would), computed outside
/// the timed part; `key/*` times computing a key from a request.
fn balancer_pick(c: &mut Criterion) {
    let mut group = c.benchmark_group("pick");
    for algorithm in Algorithm::ALL {
        for n in [3usize, 100] {
            let (set, _held) = endpoint_set(n);
            let balancer = from_config(&BalanceConfig {
                algorithm,
                hash_key: (algorithm == Algorithm::Hash)
                    .then(|| HashKey::Header("x-user-id".into())),
                ..Default::default()
            });
            let tried = Tried::default();
            let mut key = 0u64;
            group.bench_with_input(BenchmarkId::new(algorithm.as_str(), n), &n, |b, _| {
                b.iter(|| {
                    key = key.wrapping_add(0x9e37_79b9_7f4a_7c15);
                    black_box(balancer.pick(black_box(&set), black_box(&tried), Some(key)))
                });
            });
        }
    }
    // least_conn stops at the first idle endpoint; with none idle it scans
    // them all, its worst case.
    for n in [3usize, 100] {
        let (set, _held) = endpoint_set(n);
        let _busy: Vec<_> = set.endpoints.iter().map(|e| e.start_request()).collect();
        let balancer = from_config(&BalanceConfig {
            algorithm: Algorithm::LeastConn,
            ..Default::default()
        });
        let tried = Tried::default();
        group.bench_with_input(BenchmarkId::new("least_conn_none_idle", n), &n, |b, _| {
            b.iter(|| black_box(balancer.pick(black_box(&set), black_box(&tried), None)));
        });
    }
    group.finish();

    // The first hash pick after the set of endpoints changed builds the
    // Maglev table (65537 slots): a one-off cost per set change.
    let mut group = c.benchmark_group("set_change");
    group.sample_size(10);
    for n in [3usize, 100] {
        let (set, _held) = endpoint_set(n);
        let tried = Tried::default();
        group.bench_with_input(BenchmarkId::new("hash_table_build", n), &n, |b, _| {
            b.iter_batched(
                || {
                    from_config(&BalanceConfig {
                        algorithm: Algorithm::IpHash,
                        ..Default::default()
                    })
                },
                |balancer| black_box(balancer.pick(&set, &tried, Some(1))),
                BatchSize::LargeInput,
            );
        });
    }
    group.finish();

    let mut group = c.benchmark_group("key");
    let mut headers = typical_request_headers();
    headers.insert(
        HeaderName::from_static("x-user-id"),
        HeaderValue::from_static("7d0e3f1a-4c2b"),
    );
    let uri: http::Uri = "/api/v1/items?user=42&page=3".parse().unwrap();
    let req = RequestView {
        listener: "",
        host: None,
        client: IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23)),
        method: "GET",
        target: uri.path_and_query().unwrap().as_str(),
        headers: Headers::Map(&headers),
    };
    for (name, algorithm, hash_key) in [
        ("ip_hash", Algorithm::IpHash, None),
        (
            "hash_header",
            Algorithm::Hash,
            Some(HashKey::Header("x-user-id".into())),
        ),
        (
            "hash_cookie",
            Algorithm::Hash,
            Some(HashKey::Cookie("session".into())),
        ),
        (
            "hash_query",
            Algorithm::Hash,
            Some(HashKey::Query("user".into())),
        ),
    ] {
        let balancer = from_config(&BalanceConfig {
            algorithm,
            hash_key,
            ..Default::default()
        });
        group.bench_function(name, |b| {
            b.iter(|| black_box(balancer.request_key(black_box(&req))))
        });
    }
    group.finish();
}

/// What a browser-ish client sends through a proxy: 9 headers, one of them a
/// `Connection` header naming another (`keep-alive`), plus an earlier hop's
/// `X-Forwarded-For`.
fn typical_request_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "api.example.com"),
        (
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        ),
        (
            "accept",
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
        ),
        ("accept-language", "en-US,en;q=0.5"),
        ("accept-encoding", "gzip, deflate, br"),
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("cookie", "session=4f6c0e2a9b; theme=dark"),
        ("x-forwarded-for", "203.0.113.7"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

/// A typical upstream response: 6 headers, one hop-by-hop.
fn typical_response_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("server", "nginx"),
        ("date", "Mon, 23 Nov 2026 14:00:00 GMT"),
        ("content-type", "text/plain"),
        ("content-length", "100"),
        ("connection", "keep-alive"),
        ("x-request-id", "0123456789abcdef0123456789abcdef"),
    ] {
        h.append(HeaderName::from_static(k), HeaderValue::from_static(v));
    }
    h
}

fn header_rewriting(c: &mut Criterion) {
    let mut group = c.benchmark_group("headers");
    let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 23));
    let request = typical_request_headers();
    let response = typical_response_headers();

    // The clone that provides a fresh map each time is set up outside the timing.
    group.bench_function("request_strip_hop_by_hop_and_add_forwarded", |b| {
        b.iter_batched_ref(
            || request.clone(),
            |h| {
                strip_hop_by_hop(h, None);
                add_forwarded(h, black_box(client), black_box(client), "http");
            },
            BatchSize::SmallInput,
        );
    });
    group.bench_function("response_strip_hop_by_hop", |b| {
        b.iter_batched_ref(
            || response.clone(),
            |h| strip_hop_by_hop(h, None),
            BatchSize::SmallInput,
        );
    });
    group.bench_function("clone_request_map_for_reference", |b| {
        b.iter(|| black_box(request.clone()));
    });
    group.finish();
}

fn request_ids(c: &mut Criterion) {
    let mut group = c.benchmark_group("request_id");
    group.bench_function("generate", |b| b.iter(|| black_box(request_id::generate())));
    let request = typical_request_headers();
    group.bench_function("ensure_absent_generate_and_insert", |b| {
        b.iter_batched_ref(
            || request.clone(),
            |h| black_box(request_id::ensure(h)),
            BatchSize::SmallInput,
        );
    });
    let mut with_id = typical_request_headers();
    with_id.insert(
        HeaderName::from_static("x-request-id"),
        HeaderValue::from_static("5b1c7d0e-3f1a-4c2b-9d8e-7a6f5e4d3c2b"),
    );
    group.bench_function("ensure_present_validate_and_keep", |b| {
        b.iter_batched_ref(
            || with_id.clone(),
            |h| black_box(request_id::ensure(h)),
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

/// The *route* phase over 100 routes (each a host and a path prefix, as a
/// gateway in front of many services has): a request the last route takes,
/// and one that none takes — both scan them all. Issue #13's bound: under
/// 200 ns per request.
fn route_matching(c: &mut Criterion) {
    let mut yaml = String::from("app: {command: x}\nroutes:\n");
    for i in 0..100 {
        yaml.push_str(&format!(
            "  - {{match: {{host: svc{i}.example.com, path_prefix: /api/v{i}}}, to: app}}\n"
        ));
    }
    let config = shoal_config::load_str(&yaml, "bench", &|_| None).expect("valid routes");
    let table = shoal::routes::RouteTable::new(&config, &|_| Some(0));
    let lines = |host: &'static [u8]| {
        [
            httparse::Header {
                name: "Host",
                value: host,
            },
            httparse::Header {
                name: "User-Agent",
                value: b"Mozilla/5.0 (X11; Linux x86_64)",
            },
            httparse::Header {
                name: "Accept",
                value: b"text/html,application/json",
            },
            httparse::Header {
                name: "Accept-Encoding",
                value: b"gzip, br",
            },
            httparse::Header {
                name: "Cookie",
                value: b"session=abc123; theme=dark",
            },
        ]
    };
    let mut group = c.benchmark_group("route_matching");
    for (name, host, target) in [
        (
            "100_routes_last_matches",
            &b"svc99.example.com"[..],
            "/api/v99/users/42?x=1",
        ),
        (
            "100_routes_none_matches",
            &b"other.example.com"[..],
            "/api/v7/users/42?x=1",
        ),
    ] {
        let lines = lines(host);
        let view = RequestView {
            listener: "",
            host: Some(host),
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
            method: "GET",
            target,
            headers: Headers::Lines(&lines),
        };
        group.bench_function(name, |b| b.iter(|| black_box(table.find(black_box(&view)))));
    }
    group.finish();
}

criterion_group! {
    name = hot_path;
    // Short windows: this machine is shared and the pieces are tiny, so 1 s of
    // warm-up and 3 s of samples already give tight intervals.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = balancer_pick, header_rewriting, request_ids, route_matching
}
criterion_main!(hot_path);
