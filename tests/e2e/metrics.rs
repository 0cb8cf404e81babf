//! `GET /metrics` on the admin listener: what it counts matches what the
//! test did, in the Prometheus (OpenMetrics) text format.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::support::{demo_config, eventually, get, samples, Client, Shoal};

fn sum(samples: &BTreeMap<String, f64>, prefix: &str, having: &str) -> f64 {
    samples
        .iter()
        .filter(|(k, _)| k.starts_with(prefix) && k.contains(having))
        .map(|(_, v)| v)
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_what_happened() {
    let shoal = Shoal::start(&demo_config(
        2,
        "balance: { algorithm: round_robin }\nlimits: { max_body_size: 10 }\n",
    ));
    shoal.wait_healthy(2).await;
    let mut client = Client::new(shoal.proxy);
    for _ in 0..10 {
        assert_eq!(client.get("/").await.unwrap().status, 200);
    }
    assert_eq!(client.get("/status/503").await.unwrap().status, 503);
    let big = http::Request::post("/echo")
        .header("host", "x")
        .body(Full::new(Bytes::from(vec![b'x'; 100])))
        .unwrap();
    // (On a connection of its own: shoal closes it after the 413.)
    assert_eq!(
        Client::new(shoal.proxy).send(big).await.unwrap().status,
        413
    );

    let r = get(shoal.admin, "/metrics").await.unwrap();
    assert_eq!(r.status, 200);
    let content_type = r.headers["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("application/openmetrics-text"),
        "{content_type}"
    );
    let text = String::from_utf8(r.body.to_vec()).unwrap();
    assert!(text.trim_end().ends_with("# EOF"), "{text}");
    let s = samples(&text);

    // Ten 2xx spread over both instances, one 5xx from a backend.
    assert_eq!(
        sum(&s, "shoal_backend_responses_total{", "code=\"2xx\""),
        10.0,
        "{text}"
    );
    assert_eq!(
        s[r#"shoal_backend_responses_total{backend="app-1",code="2xx"}"#],
        5.0
    );
    assert_eq!(
        sum(&s, "shoal_backend_responses_total{", "code=\"5xx\""),
        1.0
    );
    // The histogram saw every backend response.
    assert_eq!(
        sum(&s, "shoal_backend_response_seconds_count{", ""),
        11.0,
        "{text}"
    );
    assert_eq!(
        sum(&s, "shoal_backend_response_seconds_bucket{", "le=\"+Inf\""),
        11.0
    );
    // The 413 was shoal's own answer; the 503 was the backend's, not shoal's.
    assert_eq!(s[r#"shoal_generated_responses_total{code="413"}"#], 1.0);
    assert_eq!(s[r#"shoal_generated_responses_total{code="503"}"#], 0.0);
    assert_eq!(sum(&s, "shoal_backend_up{", ""), 2.0);
    assert_eq!(s[r#"shoal_instances{app="app",state="running"}"#], 2.0);
    assert_eq!(s[r#"shoal_instances_target{app="app"}"#], 2.0);
    // `client`'s connection and the 413's (admin connections not counted).
    assert_eq!(s["shoal_client_connections_accepted_total"], 2.0, "{text}");
    // `client` is still connected.
    assert!(s["shoal_client_connections_open"] >= 1.0, "{text}");
    // Memory is sampled about once a second.
    eventually(Duration::from_secs(10), "an RSS sample", || async {
        let r = get(shoal.admin, "/metrics").await.ok()?;
        let s = samples(std::str::from_utf8(&r.body).ok()?);
        (s[r#"shoal_instance_resident_memory_bytes{instance="app-1"}"#] > 1e6).then_some(())
    })
    .await;
}
