use std::time::Duration;

use nix::sys::signal::Signal;

use crate::support::{alive, demo_config, get, pids_with_environ, Shoal, SHOAL};

/// SIGTERM while a 2-second request is in flight: it completes with 200,
/// shoal exits 0, no instance process remains.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_in_flight_request_then_stops_everything() {
    sigterm_drain("").await;
}

/// The same with `workers: 1`, which runs shoal on a current-thread
/// runtime (every task, the supervisor's and the admin API's included, on
/// one thread): instances start and pass their checks, requests are
/// served, scaling works, and the drain ends as above.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_worker_thread_runs_everything_and_drains() {
    let mut shoal = Shoal::start(&demo_config(2, "workers: 1\n"));
    shoal.wait_healthy(2).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let reply = get(shoal.proxy, "/").await.expect("served");
        assert_eq!(reply.status, 200);
        seen.insert(reply.json()["instance"].as_str().unwrap_or("").to_string());
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
    let (code, out, err) = crate::support::cli(shoal.admin, &["scale", "3"]).await;
    assert_eq!(code, 0, "{out}{err}");
    shoal.wait_healthy(3).await;
    shoal.signal(Signal::SIGTERM);
    let code = tokio::task::block_in_place(|| shoal.wait_exit(Duration::from_secs(15)));
    assert_eq!(code, Some(0), "{:#?}", shoal.log());
    sigterm_drain("workers: 1\n").await;
}

async fn sigterm_drain(extra: &str) {
    let mut shoal = Shoal::start(&demo_config(3, extra));
    shoal.wait_healthy(3).await;
    let pids = shoal.instance_pids().await;
    assert_eq!(pids.len(), 3);

    let proxy = shoal.proxy;
    let slow = tokio::spawn(async move { get(proxy, "/slow?ms=2000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    shoal.signal(Signal::SIGTERM);

    // While draining: not ready, and no new connections.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let ready = get(shoal.admin, "/ready")
        .await
        .expect("admin still answers while draining");
    assert_eq!(ready.status, 503);
    assert_eq!(ready.json()["reason"], "shutting down");
    assert!(
        get(shoal.proxy, "/").await.is_err(),
        "new connections refused while draining"
    );

    let reply = slow.await.unwrap().expect("in-flight request completes");
    assert_eq!(reply.status, 200);
    assert!(
        reply.json()["instance"].is_string(),
        "full body: {:?}",
        reply.body
    );

    let code = shoal.wait_exit(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{:#?}", shoal.log());
    for p in pids {
        assert!(!alive(p), "instance {p} outlived shoal");
    }
}

/// SIGKILL of shoal: no instance survives it, for an argv command, a simple
/// shell string and a compound shell string (whose real process is a
/// grandchild of shoal).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_shoal_leaves_no_instance() {
    // A marker in the instances' environment finds every process of this
    // test, including a shell's grandchildren, and only those.
    let marker = format!("shoal-orphan-test-{}", std::process::id());
    for command in [
        format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
        format!(r#""{SHOAL} demo-app --port {{port}}""#),
        format!(r#""true && {SHOAL} demo-app --port {{port}}""#),
    ] {
        let config = format!(
            r#"listen: 127.0.0.1:0
admin: {{ listen: 127.0.0.1:0 }}
app:
  command: {command}
  instances: 2
  env: {{ SHOAL_TEST_MARKER: "{marker}" }}
  health: {{ path: /health, interval: 500ms, timeout: 500ms }}
"#
        );
        let mut shoal = Shoal::start(&config);
        shoal.wait_healthy(2).await;
        let before = pids_with_environ(&marker);
        assert!(
            before.len() >= 2,
            "{command}: instances not found: {before:?}"
        );
        shoal.signal(Signal::SIGKILL);
        assert_eq!(
            shoal.wait_exit(Duration::from_secs(5)),
            None,
            "killed, so no exit code"
        );
        let deadline = std::time::Instant::now() + Duration::from_secs(6);
        loop {
            let left = pids_with_environ(&marker);
            if left.is_empty() {
                break;
            }
            if std::time::Instant::now() > deadline {
                for p in &left {
                    let _ = nix::sys::signal::kill(
                        nix::unistd::Pid::from_raw(*p as i32),
                        Signal::SIGKILL,
                    );
                }
                panic!("{command}: processes outlived a SIGKILL of shoal: {left:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A second signal during the graceful drain forces the exit at once; the
/// instances are still stopped by the guard. The command is a compound shell
/// string, so the demo app is a grandchild that PDEATHSIG alone would miss.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_signal_forces_exit_without_orphans() {
    let marker = format!("shoal-forced-exit-{}", std::process::id());
    let mut shoal = Shoal::start(
        &demo_config(2, "")
            .replace(
                &format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
                &format!(r#""true && {SHOAL} demo-app --port {{port}}""#),
            )
            .replace(
                "  instances: 2\n",
                &format!("  instances: 2\n  env: {{ SHOAL_TEST_MARKER: \"{marker}\" }}\n"),
            ),
    );
    shoal.wait_healthy(2).await;
    let pids = pids_with_environ(&marker);
    assert!(pids.len() >= 4, "two shells and two demo apps: {pids:?}");
    let proxy = shoal.proxy;
    let slow = tokio::spawn(async move { get(proxy, "/slow?ms=20000").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    shoal.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        shoal.wait_exit(Duration::from_millis(10)),
        None,
        "still draining"
    );
    shoal.signal(Signal::SIGTERM);
    assert_eq!(
        shoal.wait_exit(Duration::from_secs(3)),
        Some(130),
        "{:#?}",
        shoal.log()
    );
    assert!(
        slow.await.unwrap().is_err(),
        "the forced exit cut the slow request"
    );
    crate::support::eventually(
        Duration::from_secs(6),
        "instances stopped by the guard",
        || async { pids.iter().all(|p| !alive(*p)).then_some(()) },
    )
    .await;
}

/// `shutdown.delay`: `/ready` turns 503 at once, but shoal keeps serving new
/// connections for the delay, so a balancer in front can stop sending first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_delay_keeps_serving_while_not_ready() {
    let mut shoal = Shoal::start(&demo_config(2, "shutdown: { delay: 1500ms, grace: 5s }\n"));
    shoal.wait_healthy(2).await;
    let t0 = std::time::Instant::now();
    shoal.signal(Signal::SIGTERM);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ready = get(shoal.admin, "/ready").await.unwrap();
    assert_eq!(ready.status, 503);
    let r = get(shoal.proxy, "/")
        .await
        .expect("still accepting during the delay");
    assert_eq!(r.status, 200);
    crate::support::eventually(Duration::from_secs(5), "the listener to close", || async {
        get(shoal.proxy, "/").await.is_err().then_some(())
    })
    .await;
    assert!(
        t0.elapsed() >= Duration::from_millis(1400),
        "closed after {:?}",
        t0.elapsed()
    );
    assert_eq!(shoal.wait_exit(Duration::from_secs(15)), Some(0));
}
