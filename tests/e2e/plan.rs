//! `shoal plan` against the demo app. With `DEMO_CPU_WORKERS=1` one
//! instance burns one request's CPU at a time, so its true capacity is
//! 1000 ÷ ms requests per second while its burning thread has a core to
//! itself. This machine is shared (2 cores, other tests in parallel), so
//! the truth the plan is held to is what the instance really did: its
//! burns' count over their wall time while it was measured (`GET
//! /cpu/stats`), which is 1000 ÷ ms on an idle machine and less on a busy
//! one.

use std::time::Duration;

use serde_json::Value;

use crate::support::{demo_config, free_port, get, Shoal, SHOAL};

/// Each request's CPU cost: large enough that shoal's own time per
/// request (a debug build's) is noise beside it.
const COST_MS: u64 = 40;

/// `shoal plan ARGS`: (exit code, stdout, stderr), bounded in time.
async fn plan(args: &[&str]) -> (i32, String, String) {
    let out = tokio::time::timeout(
        Duration::from_secs(90),
        tokio::process::Command::new(SHOAL)
            .arg("plan")
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("shoal plan finished within 90 s")
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn one_worker_demo() -> Shoal {
    Shoal::start(&demo_config(
        1,
        "  env: { DEMO_CPU_WORKERS: \"1\", DEMO_ACCESS_LOG: \"off\" }\n",
    ))
}

fn json(out: &str, err: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}\n{err}"))
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_capacity_found_is_the_instances_true_one() {
    let shoal = one_worker_demo();
    shoal.wait_healthy(1).await;
    let path = format!("/cpu?ms={COST_MS}");
    let (code, out, err) = plan(&[
        &format!("http://{}", shoal.proxy),
        "--admin",
        &format!("http://{}", shoal.admin),
        "--path",
        &path,
        "--target-rps",
        "180",
        "--step-seconds",
        "4",
        "--max-seconds",
        "30",
        "--json",
    ])
    .await;
    assert_eq!(code, 0, "{out}\n{err}");
    let p = json(&out, &err);

    let reply = get(shoal.proxy, "/cpu/stats").await.unwrap();
    let stats = reply.json();
    assert!(stats.is_object(), "{}: {:?}", reply.status, reply.body);
    let burns = f(&stats["burns"]);
    // The burns cost what was asked: the CPU clock is the thread's own.
    let cpu_each = f(&stats["cpu_ms"]) / burns;
    assert!(
        (cpu_each - COST_MS as f64).abs() < 2.0,
        "{cpu_each} ms each: {stats}"
    );
    // The truth: how many burns the one worker got through per second of
    // wall time during the knee's step — the burns of that step are, in
    // the demo's list of the latest, before those of the later steps. The
    // machine is shared: a step can get more or less of a core than
    // another, and what counts is what the instance could do while it was
    // measured.
    let steps = p["steps"].as_array().unwrap();
    let k = steps
        .iter()
        .position(|s| s["concurrency"] == p["knee_concurrency"])
        .unwrap();
    assert_eq!(steps[k]["errors"], 0);
    let count = |s: &Value| s["requests"].as_u64().unwrap() as usize;
    let later: usize = steps[k + 1..].iter().map(count).sum();
    let walls: Vec<f64> = stats["recent_wall_ms"]
        .as_array()
        .unwrap()
        .iter()
        .map(f)
        .collect();
    let end = walls.len() - later;
    let knee_walls = &walls[end - count(&steps[k])..end];
    let truth = knee_walls.len() as f64 * 1000.0 / knee_walls.iter().sum::<f64>();
    let capacity = f(&p["capacity_rps"]["value"]);
    eprintln!(
        "capacity {capacity:.1} req/s; true {truth:.1} req/s (nominal {}, the burns got {:.0} % of a core); stopped: {}",
        1000.0 / COST_MS as f64,
        100.0 * COST_MS as f64 * truth / 1000.0,
        p["stopped"]
    );
    assert!(
        (capacity - truth).abs() <= 0.2 * truth,
        "capacity {capacity:.1} is not within 20 % of the true {truth:.1}: {p:#}"
    );

    // The instance count follows from the capacity found…
    let instances = p["instances"]["value"].as_u64().unwrap();
    assert_eq!(instances, (180.0 / capacity).ceil() as u64 + 1, "{p:#}");
    // …and is the true one's, give or take the 20 %.
    let from = |capacity: f64| (180.0 / capacity).ceil() as u64 + 1;
    assert!(
        (from(1.2 * truth)..=from(0.8 * truth)).contains(&instances),
        "{instances} instances, {} from the truth",
        from(truth)
    );
    assert_eq!(p["instance"], "app-1");
    assert_eq!(p["kind"], "instance");
    // The stepping stopped at the knee: the worker was saturated.
    assert!(
        ["plateau", "p95"].contains(&p["stopped"]["reason"].as_str().unwrap()),
        "{p:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_figure_comes_with_its_formula() {
    let shoal = one_worker_demo();
    shoal.wait_healthy(1).await;
    let common = [
        format!("http://{}", shoal.proxy),
        "--admin".into(),
        format!("http://{}", shoal.admin),
        "--path".into(),
        "/cpu?ms=10".into(),
        "--target-rps".into(),
        "250".into(),
        "--pool-size".into(),
        "20".into(),
        "--limit-keys".into(),
        "5000".into(),
        "--step-seconds".into(),
        "1".into(),
        "--max-concurrency".into(),
        "2".into(),
    ];
    let mut args: Vec<&str> = common.iter().map(String::as_str).collect();
    args.push("--json");
    let (code, out, err) = plan(&args).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let p = json(&out, &err);

    assert_eq!(p["url"], format!("http://{}", shoal.proxy));
    assert_eq!(p["path"], "/cpu?ms=10");
    assert_eq!(f(&p["target_rps"]), 250.0);
    assert_eq!(f(&p["p95_target_ms"]), 250.0);
    let steps = p["steps"].as_array().unwrap();
    assert!(!steps.is_empty() && steps.len() <= 2, "{p:#}");
    for (i, s) in steps.iter().enumerate() {
        assert_eq!(s["concurrency"], [1, 2][i]);
        for key in ["requests", "errors", "seconds", "rps", "p50_ms", "p95_ms"] {
            assert!(s[key].is_number(), "steps[{i}].{key}: {s}");
        }
        assert!(f(&s["rss_bytes"]) > 0.0, "{s}");
        assert_eq!(s["errors"], 0, "{s}");
    }
    assert!(p["stopped"]["reason"].is_string());

    let capacity = f(&p["capacity_rps"]["value"]);
    assert!(capacity > 0.0);
    assert!(p["capacity_rps"]["formula"]
        .as_str()
        .unwrap()
        .starts_with("the most requests/s within the p95 target"));
    let n = p["instances"]["value"].as_u64().unwrap();
    assert_eq!(n, (250.0 / capacity).ceil() as u64 + 1);
    assert!(p["instances"]["formula"]
        .as_str()
        .unwrap()
        .starts_with("ceil(250 ÷ "));
    let rss = p["memory_per_instance_bytes"]["value"].as_u64().unwrap();
    assert!(rss > 1 << 20, "{rss}");
    assert_eq!(p["memory_total_bytes"]["value"].as_u64().unwrap(), n * rss);
    assert!(p["memory_total_bytes"]["formula"]
        .as_str()
        .unwrap()
        .starts_with(&format!("{n} × ")));
    // instances × pool × 1.5 + 50
    assert_eq!(p["db_connections"]["value"].as_u64().unwrap(), n * 30 + 50);
    assert_eq!(
        p["db_connections"]["formula"],
        format!("{n} × 20 × 1.5 + 50")
    );
    // ≈ 100 bytes × active limit keys
    assert_eq!(p["redis_memory_bytes"]["value"], 500_000);
    assert_eq!(
        p["redis_memory_bytes"]["formula"],
        "100 B × 5000 active limit keys"
    );
    let a = &p["autoscale"]["value"];
    assert_eq!(a["min"], 2);
    assert!(a["max"].as_u64().unwrap() >= n, "{a}");
    assert_eq!(
        a["rps_per_instance"].as_u64().unwrap(),
        ((0.7 * capacity).floor() as u64).max(1)
    );
    assert!(p["autoscale"]["formula"]
        .as_str()
        .unwrap()
        .starts_with("min = 2 (redundancy); max = ceil(2 × 250 ÷ "));

    // The same figures in words, each with its formula.
    let (code, out, err) = plan(&args[..args.len() - 1]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    for needle in [
        "capacity per instance",
        "instances for 250 req/s",
        "+ 1 (one spare: redundancy)",
        "memory per instance",
        "memory in total",
        "autoscale: { min: 2, max: ",
        "× 20 × 1.5 + 50 (pool 20 per instance: --pool-size)",
        "100 B × 5000 active limit keys",
        "stopped: ",
    ] {
        assert!(out.contains(needle), "no `{needle}` in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_url_exits_1_and_says_so() {
    let (proxy, admin) = (free_port(), free_port());
    let (code, out, err) = plan(&[
        &format!("http://127.0.0.1:{proxy}"),
        "--admin",
        &format!("http://127.0.0.1:{admin}"),
        "-c",
        "/nonexistent/shoal.yaml",
    ])
    .await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains(&format!("nothing answers at http://127.0.0.1:{proxy}"))
            && err.contains("is shoal running there?"),
        "{err}"
    );
    assert!(out.is_empty(), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_are_refused_with_what_to_do() {
    let shoal = Shoal::start(&demo_config(2, ""));
    shoal.wait_healthy(2).await;
    let (code, out, err) = plan(&[
        &format!("http://{}", shoal.proxy),
        "--admin",
        &format!("http://{}", shoal.admin),
    ])
    .await;
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(
        err.contains("served by 2 backends (app-1, app-2)") && err.contains("shoal scale 1"),
        "{err}"
    );
}
