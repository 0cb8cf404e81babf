//! Lifecycle events: a scale and a killed instance show up in the history
//! (`GET /api/v1/events`), in the Server-Sent Events stream (`?follow`),
//! in `shoal events` and `shoal events -f`, and as `shoal::events` log lines.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use crate::support::{cli, demo_config, eventually, get, Shoal, SHOAL};

/// The kinds and instances of the history now.
async fn history(shoal: &Shoal) -> Vec<(String, String)> {
    let r = get(shoal.admin, "/api/v1/events").await.expect("events");
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).expect("events json");
    v["events"]
        .as_array()
        .expect("events array")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_string(),
                e["instance"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn has(events: &[(String, String)], kind: &str, instance: &str) -> bool {
    events.iter().any(|(k, i)| k == kind && i == instance)
}

/// Everything the SSE stream sent so far, read in the background.
fn follow(shoal: &Shoal) -> Arc<Mutex<String>> {
    let seen = Arc::new(Mutex::new(String::new()));
    let admin = shoal.admin;
    let into = seen.clone();
    tokio::spawn(async move {
        let mut s = TcpStream::connect(admin).await.expect("connect admin");
        s.write_all(
            format!("GET /api/v1/events?follow HTTP/1.1\r\nHost: {admin}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => into
                    .lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n])),
            }
        }
    });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scale_and_a_killed_instance_are_events() {
    let shoal = Shoal::start(&demo_config(1, ""));
    shoal.wait_healthy(1).await;
    let stream = follow(&shoal);
    eventually(Duration::from_secs(5), "the SSE stream's head", || async {
        let s = stream.lock().unwrap().clone();
        s.contains("text/event-stream").then_some(())
    })
    .await;

    let (code, _, err) = cli(shoal.admin, &["scale", "2"]).await;
    assert_eq!(code, 0, "{err}");
    let status = shoal.wait_healthy(2).await;
    let victim = status["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["id"] == "app-1")
        .expect("app-1");
    let pid = victim["pid"].as_u64().unwrap() as i32;
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();

    // The history: both starts, app-2's health, the scale, and app-1's
    // exit, restart and return.
    let events = eventually(Duration::from_secs(20), "app-1 back", || async {
        let h = history(&shoal).await;
        let restarted = h
            .iter()
            .rposition(|(k, i)| k == "restarted" && i == "app-1")?;
        h[restarted..]
            .iter()
            .any(|(k, i)| k == "healthy" && i == "app-1")
            .then_some(h)
    })
    .await;
    for (kind, instance) in [
        ("instance_started", "app-1"),
        ("instance_started", "app-2"),
        ("healthy", "app-2"),
        ("exited", "app-1"),
        ("restarted", "app-1"),
    ] {
        assert!(
            has(&events, kind, instance),
            "{kind} {instance}: {events:?}"
        );
    }
    assert!(events.iter().any(|(k, _)| k == "scaled"), "{events:?}");
    assert!(events.iter().any(|(k, _)| k == "step"), "{events:?}");

    // The stream, opened before the scale, carried them as they happened,
    // each an `id:` and a `data:` line of JSON.
    let sse = stream.lock().unwrap().clone();
    for needle in [
        r#""kind":"scaled""#,
        r#""kind":"exited","app":"app","instance":"app-1""#,
        r#""kind":"restarted","app":"app","instance":"app-1""#,
        r#""kind":"healthy","app":"app","instance":"app-2""#,
    ] {
        assert!(sse.contains(needle), "{needle} in {sse}");
    }
    assert!(sse.contains("\nid: "), "{sse}");

    // `shoal events` prints the history, one line each.
    let (code, out, err) = cli(shoal.admin, &["events"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(
        out.lines()
            .any(|l| l.contains("restarted") && l.contains("app-1")),
        "{out}"
    );
    assert!(out.lines().any(|l| l.contains("scaled")), "{out}");

    // `shoal events -f` prints the history, then what happens next.
    let mut child = tokio::process::Command::new(SHOAL)
        .args([
            "events",
            "-f",
            "--admin",
            &format!("http://{}", shoal.admin),
        ])
        .stdout(std::process::Stdio::piped())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("shoal events -f");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (code, _, err) = cli(shoal.admin, &["scale", "1"]).await;
    assert_eq!(code, 0, "{err}");
    let mut printed = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            let done = line.contains("drained") && line.contains("app-2");
            printed.push(line);
            if done {
                break;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no `drained app-2` from events -f: {printed:#?}"));
    assert!(printed.iter().any(|l| l.contains("instance_started")));
    let _ = child.kill().await;

    // And the log has them as structured lines.
    assert!(
        shoal.log_contains("event=\"restarted\"") || shoal.log_contains("event=restarted"),
        "no event line in the log"
    );
}

/// With `admin.read: token`, the events and the dashboard's data need the
/// token; the page's own files do not (they hold no data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_read_token_the_data_needs_it_and_the_page_does_not() {
    const TOKEN: &str = "events-token-0123456789";
    let shoal = Shoal::start(&demo_config(1, "").replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!("admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}\n  read: token"),
    ));
    for path in ["/", "/dashboard.js", "/dashboard.css"] {
        assert_eq!(get(shoal.admin, path).await.unwrap().status, 200, "{path}");
    }
    for path in [
        "/api/v1/events",
        "/api/v1/events?follow",
        "/api/v1/metrics/history",
        "/api/v1/metrics/history?follow",
    ] {
        assert_eq!(get(shoal.admin, path).await.unwrap().status, 401, "{path}");
    }
    let out = tokio::process::Command::new(SHOAL)
        .args([
            "events",
            "--json",
            "--admin",
            &format!("http://{}", shoal.admin),
        ])
        .env("SHOAL_ADMIN_TOKEN", TOKEN)
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let first = String::from_utf8_lossy(&out.stdout)
        .lines()
        .next()
        .map(str::to_owned);
    let event: Value = serde_json::from_str(&first.expect("an event")).unwrap();
    assert_eq!(event["kind"], "instance_started");
    let (code, _, err) = cli(shoal.admin, &["events"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("unauthorized"), "{err}");
}
