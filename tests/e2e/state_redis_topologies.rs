//! The Redis state backend behind Sentinel (a master, a replica, three
//! sentinels; the master killed under load) and on a three-master Cluster
//! (limits exact for keys on every node, two shoal replicas).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

use crate::state_redis::{backend_up, config, lines, metric, spread, PER_KEY};
use crate::support::redis::{Cluster, SentinelGroup};
use crate::support::{eventually, Backend, Client, Shoal};

#[tokio::test]
async fn sentinel_failover_under_load_keeps_limits_working() {
    let backend = Backend::start("b").await;
    let mut group = SentinelGroup::start();
    let old_master = group.master.port;
    let state = format!(
        "  backend: redis\n  sentinel:\n    master: {}\n    nodes: [{}]\n  on_error: local\n  command_timeout: 1s\n  connect_timeout: 500ms",
        SentinelGroup::NAME,
        group.nodes().join(", ")
    );
    let shoal = Shoal::start(&config(backend.addr, &state, PER_KEY));
    backend_up(&shoal, 1.0, Duration::from_secs(10)).await;
    assert_eq!(spread(&[shoal.proxy], 30, Some("before")).await, (20, 10));

    // The load: 4 clients, a new key each request, until told to stop;
    // every answer within 2 s.
    let proxy = shoal.proxy;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|w| {
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut client = Client::new(proxy);
                let until = Instant::now() + Duration::from_secs(40);
                let (mut n, mut slowest) = (0u32, Duration::ZERO);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < until {
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

    tokio::time::sleep(Duration::from_millis(500)).await;
    let killed = Instant::now();
    group.master.stop();
    backend_up(&shoal, 0.0, Duration::from_secs(5)).await;
    // During the failover, on_error (local) decides: counted here.
    let during = spread(&[proxy], 30, Some("during")).await;
    let still_down = metric(&shoal, "shoal_state_backend_up").await == 0.0;
    if still_down {
        assert_eq!(during, (20, 10));
    }
    backend_up(&shoal, 1.0, Duration::from_secs(30)).await;
    let gap = killed.elapsed().as_secs_f64();
    eprintln!(
        "sentinel failover: shoal counted in Redis again {gap:.1} s after the master was killed"
    );
    // The sentinel shoal asked named the new master; the one asked here
    // may be a moment behind.
    let new_master = eventually(
        Duration::from_secs(10),
        "the sentinels name the promoted replica",
        || async { group.master_port().filter(|p| *p != old_master) },
    )
    .await;
    assert_eq!(new_master, group.replica.port);

    // Limits keep working, on the new master.
    assert_eq!(spread(&[proxy], 30, Some("after")).await, (20, 10));
    assert_eq!(group.replica.cli(&["EXISTS", "shoal:rl:{lim:after}"]), "1");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = 0;
    for t in load {
        let (n, slowest) = t.await.unwrap();
        assert!(
            slowest < Duration::from_secs(2),
            "a request took {slowest:?}"
        );
        total += n;
    }
    eprintln!("{total} requests under load during the failover, all answered 200");
    assert_eq!(
        lines(&shoal, "Redis is unreachable"),
        1,
        "{:#?}",
        shoal.log()
    );
    assert!(!shoal.log().iter().any(|l| l.contains("panicked")));
}

#[tokio::test]
async fn cluster_limits_are_exact_for_keys_on_every_node() {
    let backend = Backend::start("b").await;
    let cluster = Cluster::start();
    let state = format!(
        "  backend: redis\n  cluster: [{}]\n  on_error: deny\n  command_timeout: 1s\n  connect_timeout: 1s",
        cluster.urls().join(", ")
    );
    let a = Shoal::start(&config(backend.addr, &state, PER_KEY));
    let b = Shoal::start(&config(backend.addr, &state, PER_KEY));
    backend_up(&a, 1.0, Duration::from_secs(10)).await;
    backend_up(&b, 1.0, Duration::from_secs(10)).await;

    // 24 keys (spread over the slots, so over the three masters), 30
    // requests each over both replicas: exactly the burst of 20 passes.
    let replicas = [a.proxy, b.proxy];
    let runs: Vec<_> = (0..24)
        .map(|k| tokio::spawn(async move { spread(&replicas, 30, Some(&format!("k{k}"))).await }))
        .collect();
    for (k, run) in runs.into_iter().enumerate() {
        assert_eq!(run.await.unwrap(), (20, 10), "key k{k}");
    }
    for node in &cluster.nodes {
        let keys: u32 = node.cli(&["DBSIZE"]).parse().unwrap();
        assert!(keys > 0, "node {} holds no key", node.port);
    }
    assert_eq!(metric(&a, "shoal_state_backend_errors").await, 0.0);
}
