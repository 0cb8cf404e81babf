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

/// least_conn prefers idle instances: with two instances busy on slow
/// requests, every new request goes to the third (round robin would not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_avoids_busy_instances() {
    let shoal = Shoal::start(&demo_config(3, "balance: { algorithm: least_conn }\n"));
    shoal.wait_healthy(3).await;
    let proxy = shoal.proxy;
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { crate::support::get(proxy, "/slow?ms=3000").await }))
        .collect();
    crate::support::eventually(
        std::time::Duration::from_secs(2),
        "two busy instances",
        || async {
            let s = shoal.status().await;
            let busy = s["instances"]
                .as_array()?
                .iter()
                .filter(|i| i["in_flight"] == 1)
                .count();
            (busy == 2).then_some(())
        },
    )
    .await;
    let s = shoal.status().await;
    let idle = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["in_flight"] == 0)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut client = Client::new(shoal.proxy);
    for _ in 0..9 {
        let r = client.get("/").await.unwrap();
        assert_eq!(
            r.json()["instance"],
            idle.as_str(),
            "least_conn picked a busy instance"
        );
    }
    for s in slow {
        assert_eq!(s.await.unwrap().unwrap().status, 200);
    }
}
