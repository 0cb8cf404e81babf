//! `SHOAL_LOG=debug` shows the data plane's own events: connections
//! accepted and closed, the backend picked, each failed attempt and its
//! retry, the native engine's hand-off to hyper. At `info` none of them.
//! Two backends, one of them dead (killed after its one health check, so it
//! is still in rotation); GETs (the native engine, under `native`) and
//! POSTs with a body (hyper's path on both).

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{get, request, upstreams_config, Backend, Shoal};
use crate::under_both_engines;

async fn gets(shoal: &Shoal, n: usize) {
    for i in 0..n {
        let r = get(shoal.proxy, &format!("/?get={i}")).await.expect("GET");
        assert_eq!(r.status, 200);
    }
}

async fn posts(shoal: &Shoal, n: usize) {
    for i in 0..n {
        let post = Request::post(format!("/echo?post={i}"))
            .header("host", "example.test")
            .body(Full::new(Bytes::from_static(b"a body")))
            .unwrap();
        let r = request(shoal.proxy, post).await.expect("POST");
        assert_eq!(r.status, 200);
    }
}

/// Starts shoal in front of a live and a dead backend with this
/// SHOAL_LOG; returns it and the dead one's address.
async fn started(log: &str) -> (Shoal, Backend, String) {
    let live = Backend::start("live").await;
    let dead = Backend::start("dead").await;
    let shoal = Shoal::start_env(
        &upstreams_config(
            &[live.addr, dead.addr],
            "proxy: { retries: 2 }\nbalance: { algorithm: round_robin }\n",
        ),
        &[("SHOAL_LOG", log)],
    );
    shoal.wait_upstreams(2).await;
    let dead_addr = dead.addr.to_string();
    drop(dead);
    (shoal, live, dead_addr)
}

fn lines_with<'a>(log: &'a [String], all: &[&str]) -> Vec<&'a String> {
    log.iter()
        .filter(|l| all.iter().all(|n| l.contains(n)))
        .collect()
}

async fn debug_shows_connections_picks_and_retries() {
    let native = crate::support::with_test_engine("").contains("native");
    let (shoal, live, dead) = started("debug").await;
    // Round robin: one of two GETs goes to the dead backend first, on the
    // test's engine.
    gets(&shoal, 2).await;
    crate::support::eventually(Duration::from_secs(5), "a GET's retry line", || async {
        let log = shoal.log();
        (!lines_with(&log, &["attempt failed; retrying", &dead]).is_empty()).then_some(())
    })
    .await;
    posts(&shoal, 2).await;
    // A connection's close may trail its response.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let log = shoal.log();
    let engine = if native { "native" } else { "hyper" };
    let accepted = lines_with(&log, &["connection accepted", "peer=127.0.0.1:"]);
    assert!(
        accepted
            .iter()
            .any(|l| l.contains(&format!("engine=\"{engine}\"")) && l.contains("listener=")),
        "no accepted line on {engine}: {accepted:#?}"
    );
    let live_addr = live.addr.to_string();
    assert!(
        !lines_with(
            &log,
            &[
                "picked backend",
                &live_addr,
                "algorithm=\"round_robin\"",
                "attempt=1",
                "pool="
            ]
        )
        .is_empty(),
        "no pick line naming {live_addr}"
    );
    // The dead backend: picked, refused, the request goes elsewhere.
    let retries = lines_with(&log, &["attempt failed; retrying", &dead]);
    assert!(!retries.is_empty(), "no retry line naming {dead}: {log:#?}");
    assert!(
        retries
            .iter()
            .all(|l| l.contains("reason=") && l.contains("next=\"elsewhere")),
        "{retries:#?}"
    );
    // The retry is picked for: a second attempt of the same request.
    let get_retried = retries.iter().any(|l| {
        log.iter().any(|p| {
            p.contains("picked backend")
                && p.contains("attempt=2")
                && request_of(l) == request_of(p)
        })
    });
    assert!(get_retried, "no second pick after a retry");
    assert!(
        !lines_with(&log, &["connection closed", "requests=1", "why="]).is_empty(),
        "no closed line: {log:#?}"
    );
    if native {
        assert!(
            !lines_with(
                &log,
                &["connection handed from the native engine to hyper", "why="]
            )
            .is_empty(),
            "no hand-off line"
        );
        assert!(!lines_with(&log, &["connection closed", "engine=\"native\""]).is_empty());
        assert!(!lines_with(&log, &["connection closed", "hand-off"]).is_empty());
    }
}

/// The `request_id=…` field of a line, if any.
fn request_of(line: &str) -> Option<&str> {
    let rest = &line[line.find("request_id=")?..];
    rest.split_whitespace().next()
}

async fn info_shows_none_of_them() {
    let (shoal, _live, _dead) = started("info").await;
    gets(&shoal, 2).await;
    posts(&shoal, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for needle in [
        "connection accepted",
        "connection closed",
        "picked backend",
        "attempt failed",
        "handed from the native engine",
    ] {
        assert!(
            !shoal.log_contains(needle),
            "`{needle}` at info: {:#?}",
            shoal.log()
        );
    }
}

under_both_engines!(
    debug_shows_connections_picks_and_retries,
    info_shows_none_of_them
);
