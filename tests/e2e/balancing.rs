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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_is_smooth_round_robin_too() {
    let counts = spread("weighted").await;
    assert_eq!(counts.len(), 3, "{counts:?}");
    for (id, n) in &counts {
        assert_eq!(*n, 10, "{id} got {n}: {counts:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_p2c_ewma_use_every_instance() {
    for algorithm in ["random", "p2c_ewma"] {
        let counts = spread(algorithm).await;
        assert_eq!(
            counts.values().sum::<usize>(),
            30,
            "{algorithm}: {counts:?}"
        );
        // Missing one of three in 30 picks: (2/3)^30 ≈ 5e-6 for random.
        assert_eq!(counts.len(), 3, "{algorithm}: {counts:?}");
    }
}

/// The instance that answered a request.
async fn instance(client: &mut Client, path: &str, user: Option<&str>) -> String {
    let mut req = http::Request::get(path).header("host", "shoal.test");
    if let Some(user) = user {
        req = req.header("x-user-id", user);
    }
    let r = client
        .send(
            req.body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap(),
        )
        .await
        .expect("GET");
    assert_eq!(r.status, 200);
    r.json()["instance"].as_str().expect("instance").to_string()
}

/// `hash` on a header: each user stays on one instance, users spread over
/// the instances, and requests without the header are still served. Under
/// both engines; the native engine reads the key itself (no hand-off).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hash_on_a_header_keeps_each_user_on_one_instance() {
    for engine in ["native", "hyper"] {
        let shoal = Shoal::start(&demo_config(
            3,
            &format!(
                "balance: {{ algorithm: hash, hash_key: 'header:X-User-Id' }}\nproxy: {{ engine: {engine} }}\n"
            ),
        ));
        shoal.wait_healthy(3).await;
        let mut client = Client::new(shoal.proxy);
        let mut homes = HashMap::new();
        for round in 0..3 {
            for u in 0..12 {
                let user = format!("user-{u}");
                let got = instance(&mut client, "/", Some(&user)).await;
                let home = homes.entry(user.clone()).or_insert_with(|| got.clone());
                assert_eq!(*home, got, "{engine}: {user} moved in round {round}");
            }
        }
        let used: std::collections::HashSet<_> = homes.values().collect();
        assert!(
            used.len() >= 2,
            "{engine}: 12 users all on one instance: {homes:?}"
        );
        let mut anonymous = std::collections::HashSet::new();
        for _ in 0..30 {
            anonymous.insert(instance(&mut client, "/", None).await);
        }
        assert!(anonymous.len() >= 2, "{engine}: {anonymous:?}");
        if engine == "native" {
            let handoffs = shoal.metrics().await["shoal_native_handoffs_total"];
            assert_eq!(handoffs, 0.0, "served without a hand-off");
        }
    }
}

/// `ip_hash`: every request of this test comes from 127.0.0.1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ip_hash_keeps_a_client_on_one_instance() {
    let counts = spread("ip_hash").await;
    assert_eq!(counts.len(), 1, "{counts:?}");
}
