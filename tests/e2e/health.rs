use std::time::{Duration, Instant};

use crate::support::{control, eventually, Client, Shoal, SHOAL};

/// fall × interval to leave, rise × interval to return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_health_check_takes_instance_out_and_back() {
    let interval_ms = 300;
    let config = format!(
        r#"listen: 127.0.0.1:0
admin: {{ listen: 127.0.0.1:0 }}
app:
  command: ["{SHOAL}", "demo-app", "--port", "{{port}}"]
  instances: 3
  health: {{ path: /health, interval: {interval_ms}ms, timeout: 200ms, fall: 3, rise: 2 }}
balance: {{ algorithm: round_robin }}
"#
    );
    let shoal = Shoal::start(&config);
    let status = shoal.wait_healthy(3).await;
    let sick = status["instances"][0].clone();
    let sick_id = sick["id"].as_str().unwrap().to_string();
    let port = sick["port"].as_u64().unwrap() as u16;

    control(port, "health?status=503").await;
    let t0 = Instant::now();
    eventually(
        Duration::from_secs(5),
        "instance out of rotation",
        || async {
            let s = shoal.status().await;
            (s["instances"][0]["health"] == "down").then_some(())
        },
    )
    .await;
    let took = t0.elapsed();
    // fall × interval, plus one interval of phase and scheduling slack.
    let bound = Duration::from_millis(interval_ms * (3 + 1) + 300);
    assert!(
        took <= bound,
        "left rotation after {took:?}, bound {bound:?}"
    );
    assert!(
        took >= Duration::from_millis(interval_ms * 2),
        "left too early: {took:?}"
    );

    // No traffic reaches it while it is out.
    let mut client = Client::new(shoal.proxy);
    for _ in 0..20 {
        let r = client.get("/").await.unwrap();
        assert_eq!(r.status, 200);
        assert_ne!(r.json()["instance"], sick_id.as_str());
    }

    control(port, "health?status=200").await;
    let t1 = Instant::now();
    eventually(
        Duration::from_secs(5),
        "instance back in rotation",
        || async {
            let s = shoal.status().await;
            (s["instances"][0]["health"] == "up").then_some(())
        },
    )
    .await;
    let took = t1.elapsed();
    let bound = Duration::from_millis(interval_ms * (2 + 1) + 300);
    assert!(took <= bound, "returned after {took:?}, bound {bound:?}");
    let mut seen = false;
    for _ in 0..9 {
        seen |= client.get("/").await.unwrap().json()["instance"] == sick_id.as_str();
    }
    assert!(seen, "recovered instance gets traffic again");
}

/// Without a health path the check is a TCP connect; an instance that is not
/// listening yet gets no traffic, and /ready says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_check_gates_readiness() {
    let config = format!(
        r#"listen: 127.0.0.1:0
admin: {{ listen: 127.0.0.1:0 }}
app:
  command: ["{SHOAL}", "demo-app", "--port", "{{port}}"]
  instances: 2
  env: {{ DEMO_STARTUP_DELAY_MS: "1500" }}
  health: {{ interval: 200ms, timeout: 200ms }}
"#
    );
    let shoal = Shoal::start(&config);
    let r = crate::support::get(shoal.admin, "/ready").await.unwrap();
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["reason"], "no healthy backend");
    let r = crate::support::get(shoal.proxy, "/").await.unwrap();
    assert_eq!(r.status, 503);
    assert!(r.headers.contains_key("retry-after"));
    assert!(String::from_utf8_lossy(&r.body).contains("request id"));
    shoal.wait_healthy(2).await;
    let r = crate::support::get(shoal.admin, "/ready").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(
        crate::support::get(shoal.proxy, "/").await.unwrap().status,
        200
    );
}

/// Three shoals whose checks differ only in what passes: a 2xx/3xx range
/// (the default) accepts a 203; `expect_status: 200` does not; a body
/// check fails a 503 that the status range `200-599` lets through; and
/// `method: POST` makes the demo app answer 405. Each failure shows in
/// `/api/v1/status` with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_check_method_status_and_body() {
    async fn first_check(health: &str, knob: u16) -> (String, serde_json::Value) {
        let config = format!(
            r#"listen: 127.0.0.1:0
admin: {{ listen: 127.0.0.1:0 }}
app:
  command: ["{SHOAL}", "demo-app", "--port", "{{port}}"]
  instances: 1
  env: {{ DEMO_HEALTH_STATUS: "{knob}" }}
  health: {{ path: /health, interval: 300ms, timeout: 250ms, fall: 1, rise: 1, {health} }}
"#
        );
        let shoal = Shoal::start(&config);
        eventually(Duration::from_secs(15), "a health check result", || async {
            let s = shoal.status().await;
            let i = &s["instances"][0];
            let check = &i["last_check"];
            // A pass is recorded just before the move into rotation; the
            // first checks may find the app not listening yet.
            let refused = check["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("connect"));
            let settled = (check["passed"] == false && !refused) || i["health"] == "up";
            (!check.is_null() && settled)
                .then(|| (i["health"].as_str().unwrap().to_string(), check.clone()))
        })
        .await
    }

    // 203 is healthy by default (2xx and 3xx)...
    let (health, check) = first_check("method: GET", 203).await;
    assert_eq!(
        (health.as_str(), &check["passed"]),
        ("up", &true.into()),
        "{check}"
    );
    // ... but not when exactly 200 is expected.
    let (health, check) = first_check("expect_status: 200", 203).await;
    assert_eq!(health, "starting");
    assert_eq!(check["detail"], "status 203", "{check}");

    // The status range lets a 503 through; the body check does not.
    let (health, check) = first_check(
        r#"expect_status: 200-599, expect_body: '"status":"ok"'"#,
        503,
    )
    .await;
    assert_eq!(health, "starting");
    assert_eq!(check["detail"], "expected text not in the body", "{check}");
    let (health, _) = first_check(
        r#"expect_status: 200-599, expect_body: '"status":"ok"'"#,
        200,
    )
    .await;
    assert_eq!(health, "up");

    // The configured method is the one sent: the demo app's /health is GET only.
    let (health, check) = first_check("method: POST", 200).await;
    assert_eq!(health, "starting");
    assert_eq!(check["detail"], "status 405", "{check}");
}
