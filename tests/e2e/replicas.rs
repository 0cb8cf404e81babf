//! Several shoal replicas sharing one Redis (a real `redis-server`): each
//! `/api/v1/status` says which replica answered and lists the others it
//! sees through Redis; one that shuts down leaves the list at once, one
//! killed without a goodbye leaves it within `STALE` (5 s).

use std::time::Duration;

use nix::sys::signal::Signal;
use serde_json::Value;

use crate::support::redis::RedisServer;
use crate::support::{eventually, upstreams_config, Backend, Shoal};

fn replica(backend: std::net::SocketAddr, redis: u16, id: &str) -> Shoal {
    Shoal::start_env(
        &upstreams_config(
            &[backend],
            &format!("state:\n  backend: redis\n  url: redis://127.0.0.1:{redis}\n"),
        ),
        &[("SHOAL_REPLICA_ID", id)],
    )
}

fn peer_ids(status: &Value) -> Vec<String> {
    status["peers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap().to_string())
        .collect()
}

async fn wait_peers(shoal: &Shoal, want: &[&str], within: Duration) -> Value {
    eventually(within, &format!("peers {want:?}"), || async {
        let s = shoal.status().await;
        (peer_ids(&s) == want).then_some(s)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_see_each_other_through_redis() {
    let redis = RedisServer::start();
    let backend = Backend::start("a").await;
    let one = replica(backend.addr, redis.port, "one");
    let mut two = replica(backend.addr, redis.port, "two");

    let s = wait_peers(&one, &["two"], Duration::from_secs(5)).await;
    assert_eq!(s["replica"]["id"], "one");
    let peer = &s["peers"][0];
    assert_eq!(peer["listen"], two.proxy.to_string());
    assert_eq!(peer["admin"], two.admin.to_string());
    assert_eq!(peer["pid"], two.pid());
    let s = wait_peers(&two, &["one"], Duration::from_secs(5)).await;
    assert_eq!(s["replica"]["id"], "two");

    // A graceful stop leaves the list at once (well within STALE).
    two.signal(Signal::SIGTERM);
    assert_eq!(two.wait_exit(Duration::from_secs(20)), Some(0));
    wait_peers(&one, &[], Duration::from_secs(3)).await;

    // Killed without a goodbye: gone once its entry is stale.
    let three = replica(backend.addr, redis.port, "three");
    wait_peers(&one, &["three"], Duration::from_secs(5)).await;
    three.signal(Signal::SIGKILL);
    wait_peers(&one, &[], Duration::from_secs(9)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_memory_store_there_are_no_peers() {
    let backend = Backend::start("a").await;
    let shoal = Shoal::start_env(
        &upstreams_config(&[backend.addr], ""),
        &[("SHOAL_REPLICA_ID", "solo")],
    );
    shoal.wait_upstreams(1).await;
    let s = shoal.status().await;
    assert_eq!(s["replica"]["id"], "solo");
    assert_eq!(s["peers"], serde_json::json!([]));
}
