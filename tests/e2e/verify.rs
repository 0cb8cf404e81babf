//! `shoal verify` against real deployments: a healthy one exits 0 with
//! every check passed; a dead backend, replicas whose sticky keys differ,
//! an unreachable Redis, or replicas that count a rate limit each on their
//! own each exit 1 and name the failing check.

use std::net::SocketAddr;

use serde_json::Value;

use crate::support::{demo_config, refusing_port, upstreams_config, Backend, Shoal, SHOAL};

const KEY: &str = "verify-test-sticky-key-0123456789";

/// `shoal verify -c CONFIG URL… --admin URL… --json`: (exit code, report).
async fn verify(config: &Shoal, replicas: &[&Shoal], extra: &[&str]) -> (i32, Value) {
    let mut cmd = tokio::process::Command::new(SHOAL);
    cmd.arg("verify")
        .arg("-c")
        .arg(config.config_path())
        .arg("--json");
    for r in replicas {
        cmd.arg(format!("http://{}", r.proxy));
    }
    for r in replicas {
        cmd.arg("--admin").arg(format!("http://{}", r.admin));
    }
    let out = cmd.args(extra).kill_on_drop(true).output().await.unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{e}: {text}\n{}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), report)
}

/// The checks that ended `result`: their names.
fn named(report: &Value, result: &str) -> Vec<String> {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["result"] == result)
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect()
}

fn detail<'a>(report: &'a Value, name: &str) -> &'a str {
    report["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"].as_str().unwrap().starts_with(name))
        .and_then(|c| c["detail"].as_str())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_deployment_passes_and_chaos_loses_nothing() {
    let config = demo_config(3, "").replace(
        "  stop_timeout: 5s\n",
        &format!("  stop_timeout: 5s\n  sticky: {{ key: \"{KEY}\" }}\n"),
    );
    let shoal = Shoal::start(&config);
    shoal.wait_healthy(3).await;
    let (code, report) = verify(&shoal, &[&shoal], &["--chaos"]).await;
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["ok"], true);
    assert_eq!(
        named(&report, "pass"),
        [
            "balancer health",
            "balancer ready",
            "backends healthy",
            "traffic spread (30 requests)",
            "session persistence",
            "chaos (one instance killed under load)"
        ],
        "{report:#}"
    );
    assert_eq!(named(&report, "skip"), ["redis", "rate limits shared"]);
    // 30 requests, round robin over 3: ten each.
    let spread = detail(&report, "traffic spread");
    for id in ["app-1 10", "app-2 10", "app-3 10"] {
        assert!(spread.contains(id), "{spread}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_backend_fails_the_health_check() {
    let a = Backend::start("a").await;
    let (port, _refusing) = refusing_port();
    let dead: SocketAddr = ([127, 0, 0, 1], port).into();
    let shoal = Shoal::start(&upstreams_config(
        &[a.addr, dead],
        "balance: { algorithm: round_robin }\n",
    ));
    shoal.wait_upstreams(1).await;
    let (code, report) = verify(&shoal, &[&shoal], &[]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(named(&report, "fail"), ["backends healthy"], "{report:#}");
    assert!(
        detail(&report, "backends healthy").contains(&dead.to_string()),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_must_share_the_sticky_key() {
    let a = Backend::start("a").await;
    let b = Backend::start("b").await;
    let with_key = |key: &str| {
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  api:\n    servers:\n      - url: http://{}\n      - url: http://{}\n    balance: {{ algorithm: round_robin }}\n    sticky: {{ key: \"{key}\" }}\nhealth: {{ interval: 1m, timeout: 1s }}\nroutes:\n  - to: api\n",
            a.addr, b.addr
        )
    };
    let one = Shoal::start(&with_key(KEY));
    let two = Shoal::start(&with_key(KEY));
    one.wait_upstreams(2).await;
    two.wait_upstreams(2).await;
    let (code, report) = verify(&one, &[&one, &two], &[]).await;
    assert_eq!(code, 0, "the same key: {report:#}");
    assert!(
        detail(&report, "session persistence").contains("across 2 replicas"),
        "{report:#}"
    );

    let other = Shoal::start(&with_key("another-sticky-key-9876543210"));
    other.wait_upstreams(2).await;
    let (code, report) = verify(&one, &[&one, &other], &[]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(
        named(&report, "fail"),
        ["session persistence"],
        "{report:#}"
    );
    assert!(
        detail(&report, "session persistence")
            .contains("is `sticky.key` the same on every replica?"),
        "{report:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_redis_fails() {
    let (closed, _refusing) = refusing_port();
    let shoal = Shoal::start(&demo_config(
        1,
        &format!(
            "state:\n  backend: redis\n  url: redis://127.0.0.1:{closed}\n  on_error: allow\n"
        ),
    ));
    shoal.wait_healthy(1).await;
    let (code, report) = verify(&shoal, &[&shoal], &["--requests", "4"]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(named(&report, "fail"), ["redis"], "{report:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_must_count_rate_limits_in_one_redis() {
    let redis = crate::support::redis::RedisServer::start();
    let a = Backend::start("a").await;
    let rule = "rate_limits:\n  - name: per_ip\n    key: client_ip\n    rate: 1000/hour\n    burst: 1000\n";
    let redis_state = format!(
        "state:\n  backend: redis\n  url: redis://127.0.0.1:{}\n{rule}",
        redis.port
    );
    let one = Shoal::start(&upstreams_config(&[a.addr], &redis_state));
    let two = Shoal::start(&upstreams_config(&[a.addr], &redis_state));
    one.wait_upstreams(1).await;
    two.wait_upstreams(1).await;
    let (code, report) = verify(&one, &[&one, &two], &["--requests", "4"]).await;
    assert_eq!(code, 0, "{report:#}");
    assert!(
        detail(&report, "rate limits shared").contains("per_ip counted in Redis by all 2 replicas"),
        "{report:#}"
    );

    let alone = Shoal::start(&upstreams_config(&[a.addr], rule));
    alone.wait_upstreams(1).await;
    let (code, report) = verify(&one, &[&one, &alone], &["--requests", "4"]).await;
    assert_eq!(code, 1, "{report:#}");
    assert_eq!(named(&report, "fail"), ["rate limits shared"], "{report:#}");
    assert!(
        detail(&report, "rate limits shared").contains("count in memory"),
        "{report:#}"
    );
}
