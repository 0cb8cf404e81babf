//! Issue 16: the autoscaler on a real shoal and real demo-app instances,
//! under a load from the test bounded in time: it grows the fleet from
//! `min` to the count the policy predicts, returns to `min` after the down
//! window with no failed request, and records why in its history; a manual
//! `shoal scale` pauses it; a new instance that crash-loops is a failed
//! operation, rolled back, retried only after a growing backoff.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{cli, demo_config, eventually, get, Client, Shoal, SHOAL};

/// `workers` keep-alive clients, each sending `GET path` every
/// `1/per_worker_rps` s for `duration`, started evenly spread over one
/// interval (so the requests in flight are steady, not in bursts). Returns
/// (ok, failures).
fn load(
    addr: SocketAddr,
    workers: u32,
    per_worker_rps: u32,
    duration: Duration,
    path: &'static str,
) -> tokio::task::JoinHandle<(usize, Vec<String>)> {
    tokio::spawn(async move {
        let every = Duration::from_secs(1) / per_worker_rps;
        let tasks: Vec<_> = (0..workers)
            .map(|w| {
                tokio::spawn(async move {
                    tokio::time::sleep(every / workers * w).await;
                    let mut client = Client::new(addr);
                    let mut tick = tokio::time::interval(every);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let deadline = tokio::time::Instant::now() + duration;
                    let (mut ok, mut failed) = (0, Vec::new());
                    while tokio::time::Instant::now() < deadline {
                        tick.tick().await;
                        match client.get(path).await {
                            Ok(r) if r.status == 200 => ok += 1,
                            Ok(r) => failed.push(format!("{path} -> {}", r.status)),
                            Err(e) => failed.push(format!("{path}: {e}")),
                        }
                    }
                    (ok, failed)
                })
            })
            .collect();
        let (mut ok, mut failed) = (0, Vec::new());
        for t in tasks {
            let (o, f) = t.await.expect("load worker");
            ok += o;
            failed.extend(f);
        }
        (ok, failed)
    })
}

async fn autoscale(shoal: &Shoal) -> Value {
    let r = get(shoal.admin, "/api/v1/autoscale")
        .await
        .expect("autoscale");
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).expect("autoscale json");
    v["apps"][0].clone()
}

/// Instances in rotation, and all not leaving.
async fn counts(shoal: &Shoal) -> (usize, usize) {
    let s = shoal.status().await;
    let list = s["instances"].as_array().cloned().unwrap_or_default();
    let up = list.iter().filter(|i| i["health"] == "up").count();
    let staying = list
        .iter()
        .filter(|i| !matches!(i["state"].as_str(), Some("draining" | "stopping")))
        .count();
    (up, staying)
}

/// Wait for `count(shoal)` to be `want` (0: in rotation, 1: staying); on a
/// time-out, the panic shows the autoscaler's decisions, which say why.
async fn wait_count(shoal: &Shoal, timeout: Duration, which: usize, want: usize) {
    let deadline = Instant::now() + timeout;
    loop {
        let c = counts(shoal).await;
        let got = if which == 0 { c.0 } else { c.1 };
        if got == want {
            return;
        }
        if Instant::now() > deadline {
            let report = autoscale(shoal).await;
            panic!(
                "timed out after {timeout:?} waiting for {want} instances (have {c:?}); decisions:\n{:#?}",
                report["history"]
                    .as_array()
                    .map(|h| h.iter().map(|d| format!("{} {} {}", d["target"], d["signals"], d["reason"])).collect::<Vec<_>>())
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Watch the count while `until` runs; the highest seen.
async fn highest_while<T>(shoal: &Shoal, until: tokio::task::JoinHandle<T>) -> (usize, T) {
    let mut highest = 0;
    let mut until = until;
    loop {
        tokio::select! {
            r = &mut until => return (highest, r.expect("load")),
            _ = tokio::time::sleep(Duration::from_millis(250)) => {
                highest = highest.max(counts(shoal).await.1);
            }
        }
    }
}

/// The statistics once no autoscale operation runs.
async fn settled(shoal: &Shoal) -> Value {
    eventually(
        Duration::from_secs(10),
        "no autoscale operation",
        || async {
            let r = autoscale(shoal).await;
            r["operation"].is_null().then(|| r["stats"].clone())
        },
    )
    .await
}

/// Every decision that changed the count: (target, signals, reason).
fn changes(report: &Value) -> Vec<String> {
    report["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] != "none")
        .map(|d| format!("{} {} {}", d["target"], d["signals"], d["reason"]))
        .collect()
}

fn actions(report: &Value, action: &str) -> Vec<String> {
    report["history"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["action"] == action)
        .map(|d| d["reason"].as_str().unwrap_or_default().to_string())
        .collect()
}

const FAST: &str = "    interval: 1s
    behavior:
      scale_up: { period: 1s }
      scale_down: { stabilization: 5s, period: 1s }
";

/// A CPU-bound endpoint: 20 requests/s of 20 ms of CPU each is 40 % of a
/// core; with a target of 16 % per instance the policy asks for
/// ceil(40 / 16) = 3 (anything above 32 % and up to 48 % gives 3: the load
/// generator lags a little while instances start, so 40 % is kept in the
/// middle). The fleet grows from 1 to 3, then, once the load stops, back to
/// 1 after the 5 s down window, one instance a second; no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_load_grows_the_fleet_then_it_returns_to_min() {
    let shoal = Shoal::start(&demo_config(
        1,
        &format!("  autoscale:\n    min: 1\n    max: 4\n    targets: {{ cpu: 16 }}\n    window: 4s\n{FAST}"),
    ));
    shoal.wait_healthy(1).await;
    let t = Instant::now();
    let running = load(shoal.proxy, 4, 5, Duration::from_secs(14), "/cpu?ms=20");
    wait_count(&shoal, Duration::from_secs(12), 0, 3).await;
    let grew_in = t.elapsed();
    let (highest, (ok, failed)) = highest_while(&shoal, running).await;
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    assert!(ok > 200, "only {ok} requests");
    assert_eq!(
        highest, 3,
        "the policy's count, not more (3 after {grew_in:?})"
    );

    wait_count(&shoal, Duration::from_secs(15), 1, 1).await;
    settled(&shoal).await;
    let report = autoscale(&shoal).await;
    assert_eq!(report["enabled"], true);
    let ups = actions(&report, "scale_up");
    assert!(
        !ups.is_empty() && ups.iter().all(|r| r.contains("cpu")),
        "{ups:?}"
    );
    let downs = actions(&report, "scale_down");
    assert!(!downs.is_empty(), "{report:#}");
    assert!(
        actions(&report, "none")
            .iter()
            .any(|r| r.contains("down stabilization")),
        "the down window held the count once the load stopped"
    );
    let stats = &report["stats"];
    assert_eq!(stats["failed_ops"], 0, "{stats}");
    assert!(stats["scale_ups"].as_u64().unwrap() >= 1, "{stats}");
    assert_eq!(
        stats["scale_downs"],
        2,
        "3 → 2 → 1: {stats}\n{:#?}",
        changes(&report)
    );
    assert!(stats["avg_time_to_healthy_secs"].as_f64().unwrap() > 0.0);

    let m = shoal.metrics().await;
    assert_eq!(
        m.get(r#"shoal_autoscale_operations_total{app="app",outcome="scale_down"}"#),
        Some(&2.0),
        "{m:?}"
    );
    // `shoal status` shows it.
    let (code, out, err) = cli(shoal.admin, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("autoscale: proportional 1–4:"), "{out}");
    assert!(out.contains("last decision:"), "{out}");
}

/// A fixed-latency endpoint: 8 clients each sending one 100 ms request
/// every 200 ms keep 4 requests in flight; with a target of 1.8 per
/// instance the policy asks for ceil(4 / 1.8) = 3 (anything above 3.6 and
/// up to 5.4 in flight gives 3: the requests only get slower on a busy
/// host, so 4 is kept near the bottom of that range).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_on_a_slow_endpoint_grows_the_fleet() {
    let shoal = Shoal::start(&demo_config(
        1,
        &format!(
            "  autoscale:\n    min: 1\n    max: 5\n    targets: {{ in_flight_per_instance: 1.8 }}\n    window: 5s\n{FAST}"
        ),
    ));
    shoal.wait_healthy(1).await;
    let running = load(shoal.proxy, 8, 5, Duration::from_secs(14), "/slow?ms=100");
    wait_count(&shoal, Duration::from_secs(12), 0, 3).await;
    let (highest, (ok, failed)) = highest_while(&shoal, running).await;
    assert!(failed.is_empty(), "{failed:?}");
    assert!(ok > 300, "only {ok} requests");
    assert_eq!(highest, 3, "{:#?}", changes(&autoscale(&shoal).await));
    wait_count(&shoal, Duration::from_secs(15), 1, 1).await;
    let report = autoscale(&shoal).await;
    let ups = actions(&report, "scale_up");
    assert!(
        !ups.is_empty() && ups.iter().all(|r| r.contains("in_flight_per_instance")),
        "{ups:?}"
    );
}

/// The rule for `shoal scale` while autoscaling: the count it sets holds for
/// `autoscale.manual_pause`; then the policy takes over again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_scale_pauses_the_autoscaler() {
    let shoal = Shoal::start(&demo_config(
        1,
        &format!(
            "  autoscale:\n    min: 1\n    max: 4\n    targets: {{ cpu: 50 }}\n    window: 2s\n    manual_pause: 5s\n{FAST}"
        ),
    ));
    shoal.wait_healthy(1).await;
    let (code, out, err) = cli(shoal.admin, &["scale", "3"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let scaled = Instant::now();
    shoal.wait_healthy(3).await;
    // Idle, the policy wants 1; paused, the count stays.
    while scaled.elapsed() < Duration::from_secs(4) {
        assert_eq!(counts(&shoal).await.1, 3, "held during the pause");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let report = autoscale(&shoal).await;
    assert!(report["paused_secs"].as_f64().is_some(), "{report:#}");
    assert_eq!(actions(&report, "manual").len(), 1, "{report:#}");
    assert!(
        actions(&report, "none")
            .iter()
            .any(|r| r.contains("paused after a manual scale")),
        "{report:#}"
    );
    let (_, out, _) = cli(shoal.admin, &["status"]).await;
    assert!(out.contains("(manual scale)"), "{out}");
    // After the pause (5 s) and the down window (3 s): back to min.
    wait_count(&shoal, Duration::from_secs(15), 1, 1).await;
    // The operation is counted once the drained instance has stopped.
    let stats = settled(&shoal).await;
    assert_eq!(stats["manual_scales"], 1, "{stats}");
    assert_eq!(stats["scale_downs"], 2, "{stats}");
}

/// A new instance that exits at once: the scale-up fails, the instance is
/// stopped (not left to restart), and the next try waits for a backoff
/// that doubles: 1 s, 2 s, 4 s … — a handful of tries in 10 s, not dozens.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_new_instance_is_a_failed_operation() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(
        &script,
        format!(
            "[ \"$SHOAL_INSTANCE_INDEX\" = 1 ] || {{ echo broken build; exit 1; }}\n\
             exec {SHOAL} demo-app --port \"$PORT\"\n"
        ),
    )
    .unwrap();
    // min 2 with 1 instance: the autoscaler wants a second one at once.
    let config = demo_config(
        1,
        "  ready_timeout: 3s\n  autoscale:\n    min: 2\n    max: 3\n    targets: { cpu: 50 }\n    window: 2s\n    interval: 1s\n    behavior: { failure_backoff: 1s }\n",
    )
    .replace(
        &format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
        &format!(r#"["sh", "{}"]"#, script.display()),
    );
    let shoal = Shoal::start(&config);
    shoal.wait_healthy(1).await;
    let t = Instant::now();
    eventually(Duration::from_secs(10), "a failed operation", || async {
        let r = autoscale(&shoal).await;
        (r["stats"]["failed_ops"].as_u64()? >= 1).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10).saturating_sub(t.elapsed())).await;
    let report = autoscale(&shoal).await;
    let failed = report["stats"]["failed_ops"].as_u64().unwrap();
    // Tries at about 0, 1+, 3+, 7+ s: at most 4 (and each one fails fast).
    assert!(
        (1..=4).contains(&failed),
        "{failed} failed operations in 10 s"
    );
    let last = &report["stats"]["last_event"];
    assert_eq!(last["kind"], "failed", "{last}");
    assert!(
        last["message"].as_str().unwrap().contains("back to 1"),
        "{last}"
    );
    assert!(
        actions(&report, "none")
            .iter()
            .any(|r| r.contains("backing off after")),
        "{report:#}"
    );
    // The broken instance does not stay behind restarting.
    eventually(Duration::from_secs(5), "only app-1 left", || async {
        let s = shoal.status().await;
        let ids: Vec<String> = s["instances"]
            .as_array()?
            .iter()
            .map(|i| i["id"].as_str().unwrap_or_default().to_string())
            .collect();
        (ids == ["app-1"]).then_some(())
    })
    .await;
}
