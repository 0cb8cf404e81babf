use std::collections::HashMap;

use crate::support::{demo_config, Client, Shoal};

async fn spread(algorithm: &str) -> HashMap<String, usize> {
    let shoal = Shoal::start(&demo_config(
        3,
        &format!("balance: {{ algorithm: {algorithm} }}\n"),
    ));
    shoal.wait_healthy(3).await;
    let mut client = Client::new(shoal.proxy);
    let mut counts = HashMap::new();
    for _ in 0..30 {
        let r = client.get("/").await.expect("GET /");
        assert_eq!(r.status, 200);
        let id = r.json()["instance"]
            .as_str()
            .expect("instance in body")
            .to_string();
        *counts.entry(id).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_sends_exactly_a_third_to_each() {
    let counts = spread("round_robin").await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (id, n) in &counts {
        assert_eq!(*n, 10, "{id} got {n}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_spreads_sequential_requests() {
    let counts = spread("least_conn").await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (id, n) in &counts {
        assert!((7..=13).contains(n), "{id} got {n}: {counts:?}");
    }
}
