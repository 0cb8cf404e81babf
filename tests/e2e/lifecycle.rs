//! Issue 4: scale, drain, rolling reload, hot config reload, restart policy
//! and memory limits — under a steady load, with zero failed requests.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use nix::sys::signal::Signal;

use crate::support::load::Load;
use crate::support::{alive, cli, demo_config, eventually, get, request, Client, Shoal, SHOAL};

fn pids(status: &serde_json::Value) -> BTreeSet<u64> {
    status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["pid"].as_u64())
        .collect()
}

/// `shoal reload` of 3 instances during ~200 req/s (half 64 KiB POSTs) for
/// 20 s: zero failed requests, every response intact, every pid changed.
/// The app exits at once on SIGTERM and every request takes 50 ms, so POSTs
/// (which cannot be replayed) are in flight whenever an instance leaves: only
/// shoal's draining saves them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_reload_under_load_fails_no_request() {
    let shoal = Shoal::start(&demo_config(3, "").replace(
        "  instances: 3\n",
        "  instances: 3\n  env: { DEMO_ABRUPT_EXIT: \"1\" }\n",
    ));
    let before = pids(&shoal.wait_healthy(3).await);
    let load = Load::with_paths(
        shoal.proxy,
        10,
        20,
        Duration::from_secs(20),
        "/slow?ms=50",
        "/echo?delay_ms=50",
    );
    tokio::time::sleep(Duration::from_secs(3)).await;

    let (code, out, err) = cli(shoal.admin, &["reload"]).await;
    assert_eq!(code, 0, "reload failed: {out}\n{err}");
    assert!(out.contains("rolling reload done"), "{out}");
    assert!(
        out.contains("[3/3]"),
        "progress lines when not on a terminal: {out}"
    );

    let report = load.finish().await;
    assert!(
        report.failed.is_empty(),
        "{} failed: {:?}",
        report.failed.len(),
        &report.failed[..report.failed.len().min(5)]
    );
    assert!(report.ok > 2500, "only {} requests in 20 s", report.ok);

    let status = shoal.wait_healthy(3).await;
    let after = pids(&status);
    assert_eq!(after.len(), 3);
    assert!(
        before.is_disjoint(&after),
        "every pid changed: {before:?} -> {after:?}"
    );
    for i in status["instances"].as_array().unwrap() {
        assert_eq!(i["generation"], 2, "{i}");
    }
    for p in before {
        assert!(!alive(p as u32), "old instance {p} still running");
    }
}

/// Scale 3 → 6 → 2 under the same load: zero failed requests, counts reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_up_and_down_under_load_fails_no_request() {
    let shoal = Shoal::start(&demo_config(3, ""));
    shoal.wait_healthy(3).await;
    let load = Load::start(shoal.proxy, 10, 20, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(2)).await;

    let t = std::time::Instant::now();
    let (code, out, err) = cli(shoal.admin, &["scale", "6"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let s = shoal.wait_healthy(6).await;
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "6 healthy after {:?}",
        t.elapsed()
    );
    assert_eq!(s["app"]["instances"], 6);
    tokio::time::sleep(Duration::from_secs(3)).await;

    let t = std::time::Instant::now();
    let (code, out, err) = cli(shoal.admin, &["scale", "2"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let s = eventually(Duration::from_secs(10), "2 instances left", || async {
        let s = shoal.status().await;
        (s["instances"].as_array()?.len() == 2).then_some(s)
    })
    .await;
    assert!(t.elapsed() < Duration::from_secs(10));
    let ids: Vec<&str> = s["instances"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["app-1", "app-2"], "highest-numbered removed first");

    let report = load.finish().await;
    assert!(
        report.failed.is_empty(),
        "{} failed: {:?}",
        report.failed.len(),
        &report.failed[..report.failed.len().min(5)]
    );
    assert!(
        report.instances.len() >= 6,
        "the new instances served too: {:?}",
        report.instances
    );
}

/// Scale bounds and an unreachable admin API give clear CLI errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_errors_are_clear() {
    let shoal = Shoal::start(
        &demo_config(2, "").replace("  instances: 2\n", "  instances: 2\n  min: 1\n  max: 4\n"),
    );
    shoal.wait_healthy(2).await;
    let (code, _, err) = cli(shoal.admin, &["scale", "9"]).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("must be between 1 and 4 (app.min and app.max)"),
        "{err}"
    );

    let (code, out, _) = cli(shoal.admin, &["status"]).await;
    assert_eq!(code, 0);
    assert!(out.contains("app-1") && out.contains("app-2"), "{out}");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody: std::net::SocketAddr = ([127, 0, 0, 1], port).into();
    let (code, _, err) = cli(nobody, &["status"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("no shoal answers at"), "{err}");
}

/// A reload to a build that never becomes healthy: the rollout stops, the
/// old instances keep serving, the CLI exits non-zero with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rollout_keeps_old_instances() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, format!("exec {SHOAL} demo-app --port \"$PORT\"\n")).unwrap();
    let config = demo_config(3, "")
        .replace(
            &format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
            &format!(r#"["sh", "{}"]"#, script.display()),
        )
        .replace("  instances: 3\n", "  instances: 3\n  ready_timeout: 2s\n");
    let shoal = Shoal::start(&config);
    let before = pids(&shoal.wait_healthy(3).await);
    let load = Load::start(shoal.proxy, 10, 20, Duration::from_secs(6));

    // "Deploy" a build whose health check never passes.
    std::fs::write(
        &script,
        format!("DEMO_HEALTH_STATUS=503 exec {SHOAL} demo-app --port \"$PORT\"\n"),
    )
    .unwrap();
    let (code, out, err) = cli(shoal.admin, &["reload"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("rollout stopped after 0 of 3"), "{err}");
    assert!(err.contains("not healthy within"), "{err}");

    let report = load.finish().await;
    assert!(
        report.failed.is_empty(),
        "{:?}",
        &report.failed[..report.failed.len().min(5)]
    );
    let status = shoal.wait_healthy(3).await;
    assert_eq!(pids(&status), before, "the old instances keep serving");
    assert_eq!(
        status["instances"].as_array().unwrap().len(),
        3,
        "failed replacements removed"
    );
}

/// SIGHUP with an invalid file keeps the running config; a valid change
/// (algorithm, instance count, listen address) applies without a failed request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_rejects_invalid_and_applies_valid() {
    let base = demo_config(2, "balance: { algorithm: round_robin }\n");
    let mut shoal = Shoal::start(&base);
    shoal.wait_healthy(2).await;
    let path = shoal.config_path();

    std::fs::write(&path, base.replace("instances: 2", "instanses: 2")).unwrap();
    shoal.signal(Signal::SIGHUP);
    eventually(
        Duration::from_secs(5),
        "the rejection in the log",
        || async { shoal.log_contains("config not applied").then_some(()) },
    )
    .await;
    shoal.wait_log("did you mean `instances`").await;
    let (code, _, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("config not applied"), "{err}");
    assert_eq!(get(shoal.proxy, "/").await.unwrap().status, 200);
    assert_eq!(shoal.status().await["balance"], "round_robin");

    // A valid change under load: algorithm and instance count.
    let load = Load::start(shoal.proxy, 10, 20, Duration::from_secs(6));
    let changed = base
        .replace("instances: 2", "instances: 3")
        .replace("round_robin", "least_conn");
    std::fs::write(&path, &changed).unwrap();
    shoal.signal(Signal::SIGHUP);
    let s = shoal.wait_healthy(3).await;
    assert_eq!(s["balance"], "least_conn");
    let report = load.finish().await;
    assert!(
        report.failed.is_empty(),
        "{:?}",
        &report.failed[..report.failed.len().min(5)]
    );
    shoal.wait_log("config reloaded").await;

    // A new listen address: bound first, then the old socket stops accepting;
    // a request in flight on the old one finishes.
    let old_proxy = shoal.proxy;
    let in_flight = tokio::spawn(async move { get(old_proxy, "/slow?ms=1500").await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let new_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        &path,
        changed.replace(
            "listen: 127.0.0.1:0\nadmin",
            &format!("listen: 127.0.0.1:{new_port}\nadmin"),
        ),
    )
    .unwrap();
    let (code, out, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("public listener moved to 127.0.0.1:{new_port}")),
        "{out}"
    );
    assert_eq!(
        shoal.status().await["listen"],
        format!("127.0.0.1:{new_port}")
    );
    assert_eq!(
        get(([127, 0, 0, 1], new_port).into(), "/")
            .await
            .unwrap()
            .status,
        200
    );
    assert!(
        get(shoal.proxy, "/").await.is_err(),
        "the old listener stopped accepting"
    );
    let r = in_flight
        .await
        .unwrap()
        .expect("the request on the old listener completes");
    assert_eq!(r.status, 200);
    shoal.proxy = ([127, 0, 0, 1], new_port).into();
}

/// An instance that keeps crashing becomes `failed` after `max_restarts`;
/// shoal keeps serving from the others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_loop_marks_instance_failed() {
    let config = demo_config(3, "")
        .replace(
            &format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
            &format!(r#"'if [ "$INSTANCE_ID" = app-2 ]; then echo boom >&2; exit 3; fi; exec {SHOAL} demo-app --port {{port}}'"#),
        )
        .replace("  instances: 3\n", "  instances: 3\n  max_restarts: 3\n  restart_window: 1m\n");
    let shoal = Shoal::start(&config);
    let s = eventually(Duration::from_secs(15), "app-2 failed", || async {
        let s = shoal.status().await;
        (s["instances"][1]["state"] == "failed").then_some(s)
    })
    .await;
    assert_eq!(s["instances"][1]["restarts"], 3);
    assert_eq!(s["instances"][1]["last_exit"], "exit code 3");
    shoal.wait_log("crash loop").await;
    shoal.wait_log("app-2 | boom").await;
    let mut client = Client::new(shoal.proxy);
    for _ in 0..10 {
        let r = client.get("/").await.unwrap();
        assert_eq!(r.status, 200);
        assert_ne!(r.json()["instance"], "app-2");
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        shoal.status().await["instances"][1]["restarts"],
        3,
        "no more restarts"
    );
    let (_, out, _) = cli(shoal.admin, &["status"]).await;
    assert!(out.contains("failed"), "{out}");
}

/// `restart: never` leaves an exited instance down; `on-failure` does not
/// restart after a clean exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_policy_is_obeyed() {
    for (policy, code, restarted) in [
        ("never", 3, false),
        ("on-failure", 0, false),
        ("on-failure", 4, true),
    ] {
        let shoal = Shoal::start(&demo_config(1, "").replace(
            "  instances: 1\n",
            &format!("  instances: 1\n  restart: {policy}\n"),
        ));
        let s = shoal.wait_healthy(1).await;
        let port = s["instances"][0]["port"].as_u64().unwrap() as u16;
        let req = http::Request::post(format!("/control/exit?code={code}"))
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let _ = request(([127, 0, 0, 1], port).into(), req).await;
        let s = eventually(Duration::from_secs(5), "the exit noticed", || async {
            let s = shoal.status().await;
            (s["instances"][0]["last_exit"] == format!("exit code {code}").as_str()).then_some(s)
        })
        .await;
        if restarted {
            shoal.wait_healthy(1).await;
        } else {
            tokio::time::sleep(Duration::from_millis(800)).await;
            let s = shoal.status().await;
            assert_eq!(s["instances"][0]["state"], "exited", "{policy}/{code}: {s}");
            assert!(s["instances"][0]["pid"].is_null());
        }
        let _ = s;
    }
}

/// `max_memory`: an instance that grows past it is replaced, the new one first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_memory_replaces_a_growing_instance() {
    let shoal = Shoal::start(
        &demo_config(2, "").replace("  instances: 2\n", "  instances: 2\n  max_memory: 96MiB\n"),
    );
    let s = shoal.wait_healthy(2).await;
    let victim_pid = s["instances"][0]["pid"].as_u64().unwrap();
    let port = s["instances"][0]["port"].as_u64().unwrap() as u16;
    let load = Load::start(shoal.proxy, 4, 20, Duration::from_secs(8));
    let req = http::Request::post("/control/allocate?mb=160")
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = request(([127, 0, 0, 1], port).into(), req).await.unwrap();
    assert!(r.status.is_success(), "{}", r.status);
    let s = eventually(Duration::from_secs(10), "app-1 replaced", || async {
        let s = shoal.status().await;
        let app1: Vec<_> = s["instances"]
            .as_array()?
            .iter()
            .filter(|i| i["id"] == "app-1")
            .cloned()
            .collect();
        (app1.len() == 1 && app1[0]["pid"].as_u64()? != victim_pid && app1[0]["health"] == "up")
            .then_some(s)
    })
    .await;
    assert!(!alive(victim_pid as u32));
    shoal.wait_log("max_memory").await;
    let report = load.finish().await;
    assert!(
        report.failed.is_empty(),
        "{:?}",
        &report.failed[..report.failed.len().min(5)]
    );
    assert_eq!(s["instances"].as_array().unwrap().len(), 2);
}

/// SIGUSR2 starts a rolling reload, as `shoal reload` does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_rolls_the_instances() {
    let shoal = Shoal::start(&demo_config(2, ""));
    let before = pids(&shoal.wait_healthy(2).await);
    shoal.signal(Signal::SIGUSR2);
    let s = eventually(
        Duration::from_secs(15),
        "generation 2 in rotation",
        || async {
            let s = shoal.status().await;
            let list = s["instances"].as_array()?;
            (list.len() == 2
                && list
                    .iter()
                    .all(|i| i["generation"] == 2 && i["health"] == "up"))
            .then_some(s)
        },
    )
    .await;
    assert!(before.is_disjoint(&pids(&s)));
    shoal.wait_log("rolling reload done").await;
}

/// A config reload adds and removes static upstreams; traffic follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_reload_changes_static_upstreams() {
    let a = crate::support::Backend::start("static-a").await;
    let b = crate::support::Backend::start("static-b").await;
    let config = |urls: &[std::net::SocketAddr]| {
        let list: String = urls
            .iter()
            .map(|u| format!("  - {{ url: \"http://{u}\" }}\n"))
            .collect();
        format!(
            "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n{list}health: {{ path: /health, interval: 500ms, timeout: 500ms }}\nbalance: {{ algorithm: round_robin }}\n"
        )
    };
    let shoal = Shoal::start(&config(&[a.addr]));
    let seen = |n: usize| {
        let proxy = shoal.proxy;
        async move {
            let mut client = Client::new(proxy);
            let mut ids = BTreeSet::new();
            for _ in 0..n {
                let r = client.get("/").await.unwrap();
                assert_eq!(r.status, 200);
                ids.insert(r.json()["instance"].as_str().unwrap().to_string());
            }
            ids
        }
    };
    eventually(Duration::from_secs(5), "static-a healthy", || async {
        (shoal.status().await["upstreams"][0]["health"] == "up").then_some(())
    })
    .await;
    assert_eq!(seen(6).await, BTreeSet::from(["static-a".to_string()]));

    std::fs::write(shoal.config_path(), config(&[a.addr, b.addr])).unwrap();
    let (code, out, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("upstream http://{} added", b.addr)),
        "{out}"
    );
    eventually(Duration::from_secs(5), "static-b healthy", || async {
        let s = shoal.status().await;
        let ups = s["upstreams"].as_array()?;
        (ups.len() == 2 && ups.iter().all(|u| u["health"] == "up")).then_some(())
    })
    .await;
    assert_eq!(seen(6).await.len(), 2, "both upstreams serve");

    std::fs::write(shoal.config_path(), config(&[b.addr])).unwrap();
    let (code, out, _) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0);
    assert!(
        out.contains(&format!("upstream http://{} removed", a.addr)),
        "{out}"
    );
    assert_eq!(seen(6).await, BTreeSet::from(["static-b".to_string()]));
}

/// The instances' command as a script the test can "redeploy".
fn scripted(instances: u32, extra_app: &str) -> (tempfile::TempDir, std::path::PathBuf, String) {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("run.sh");
    std::fs::write(&script, format!("exec {SHOAL} demo-app --port \"$PORT\"\n")).unwrap();
    let config = demo_config(instances, "")
        .replace(
            &format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
            &format!(r#"["sh", "{}"]"#, script.display()),
        )
        .replace(
            &format!("  instances: {instances}\n"),
            &format!("  instances: {instances}\n  ready_timeout: 2s\n{extra_app}"),
        );
    (dir, script, config)
}

fn break_build(script: &std::path::Path) {
    std::fs::write(
        script,
        format!("DEMO_HEALTH_STATUS=503 exec {SHOAL} demo-app --port \"$PORT\"\n"),
    )
    .unwrap();
}

/// With `max_surge: 0` the old instance of a step is stopped first; when its
/// replacement (a new command, from a config reload) never becomes healthy,
/// the previous command is put back in that slot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_rollout_without_surge_restores_previous_build() {
    let (_dir, script, config) = scripted(2, "  max_surge: 0\n  max_unavailable: 1\n");
    let shoal = Shoal::start(&config);
    shoal.wait_healthy(2).await;
    let broken = script.with_file_name("broken.sh");
    break_build(&broken);
    std::fs::write(
        shoal.config_path(),
        config.replace(&script.display().to_string(), &broken.display().to_string()),
    )
    .unwrap();
    let (code, _, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("rollout stopped after 0 of 2"), "{err}");
    assert!(err.contains("restored with the previous build"), "{err}");
    let s = shoal.wait_healthy(2).await;
    assert_eq!(s["instances"].as_array().unwrap().len(), 2, "{s}");
    for i in s["instances"].as_array().unwrap() {
        assert_eq!(i["generation"], 1, "{i}");
    }
}

/// A config reload whose app change fails keeps the old app section, and
/// trying again really tries again (it is not "unchanged").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_config_reload_of_the_app_can_be_retried() {
    let (_dir, script, config) = scripted(2, "");
    let shoal = Shoal::start(&config);
    let before = pids(&shoal.wait_healthy(2).await);
    // A new command whose instances never become healthy.
    let broken = script.with_file_name("broken.sh");
    std::fs::write(
        &broken,
        format!("DEMO_HEALTH_STATUS=503 exec {SHOAL} demo-app --port \"$PORT\"\n"),
    )
    .unwrap();
    let new_config = config.replace(&script.display().to_string(), &broken.display().to_string());
    std::fs::write(shoal.config_path(), &new_config).unwrap();
    for _ in 0..2 {
        let (code, out, err) = cli(shoal.admin, &["reload", "--config"]).await;
        assert_ne!(code, 0, "{out}");
        assert!(err.contains("except the `app` section"), "{err}");
        assert!(!out.contains("config unchanged"), "{out}");
    }
    assert_eq!(pids(&shoal.wait_healthy(2).await), before);
}

/// `shoal scale` sets the running count; a config reload that changes other
/// app keys leaves it alone; changing `app.instances` in the file wins.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_target_survives_unrelated_reloads() {
    let config = demo_config(2, "");
    let shoal = Shoal::start(&config);
    shoal.wait_healthy(2).await;
    let (code, _, err) = cli(shoal.admin, &["scale", "3"]).await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(shoal.status().await["app"]["target"], 3);

    std::fs::write(
        shoal.config_path(),
        config.replace("stop_timeout: 5s", "stop_timeout: 4s"),
    )
    .unwrap();
    let (code, _, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0, "{err}");
    let s = shoal.status().await;
    assert_eq!(s["app"]["instances"], 3, "{s}");

    std::fs::write(
        shoal.config_path(),
        config.replace("instances: 2", "instances: 4"),
    )
    .unwrap();
    let (code, _, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0, "{err}");
    let s = shoal.wait_healthy(4).await;
    assert_eq!(s["app"]["target"], 4);
}

/// One operation at a time: a second one gets 409 with what is running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_operations_get_409() {
    let shoal = Shoal::start(&demo_config(2, "").replace(
        "  instances: 2\n",
        "  instances: 2\n  env: { DEMO_STARTUP_DELAY_MS: \"1500\" }\n",
    ));
    shoal.wait_healthy(2).await;
    let admin = shoal.admin;
    let reload = tokio::spawn(async move { cli(admin, &["reload"]).await });
    crate::support::eventually(Duration::from_secs(5), "the rollout to start", || async {
        shoal.status().await["app"]["operation"]
            .as_str()
            .map(|_| ())
    })
    .await;
    let req = http::Request::post("/api/v1/scale")
        .header("host", "x")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"instances\": 3}")))
        .unwrap();
    let r = request(shoal.admin, req).await.unwrap();
    assert_eq!(r.status, 409);
    assert!(
        r.json()["error"]
            .as_str()
            .unwrap()
            .contains("rolling reload"),
        "{:?}",
        r.body
    );
    let (code, out, err) = reload.await.unwrap();
    assert_eq!(code, 0, "{out}\n{err}");
}
