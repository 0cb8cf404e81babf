//! The instances' own output: each instance's recent lines at
//! `GET /api/v1/instances/{id}/logs` and `/api/v1/logs` (NDJSON, `lines`,
//! `since`, `follow`), `shoal logs [INSTANCE] [-f]`, and with
//! `log.format: json` every line of shoal's output is a JSON object.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::support::{cli, demo_config, eventually, get, request, Shoal};

fn ndjson(body: &[u8]) -> Vec<Value> {
    body.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

/// The demo app prints a line per request it serves (`GET /path 200 …`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_instances_recent_lines_and_a_follower() {
    let shoal = Shoal::start(&demo_config(2, ""));
    shoal.wait_healthy(2).await;
    for i in 0..6 {
        get(shoal.proxy, &format!("/?n={i}")).await.unwrap();
    }
    // One instance's lines: its own, with the fields.
    let lines = eventually(Duration::from_secs(5), "app-1's lines", || async {
        let r = get(shoal.admin, "/api/v1/instances/app-1/logs")
            .await
            .unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-type"], "application/x-ndjson");
        let l = ndjson(&r.body);
        l.iter()
            .any(|l| l["line"].as_str().unwrap_or("").contains("GET /"))
            .then_some(l)
    })
    .await;
    let pids = shoal.instance_pids().await;
    for l in &lines {
        assert_eq!(l["instance"], "app-1");
        assert_eq!(l["generation"], 1);
        assert!(pids.contains(&(l["pid"].as_u64().unwrap() as u32)), "{l}");
        assert!(matches!(l["stream"].as_str(), Some("stdout" | "stderr")));
        assert!(l["time"].as_str().unwrap().ends_with('Z'));
    }
    // Every instance's, in order, at most `lines`.
    let r = get(shoal.admin, "/api/v1/logs?lines=3").await.unwrap();
    let all = ndjson(&r.body);
    assert_eq!(all.len(), 3, "{all:#?}");
    let seqs: Vec<u64> = all.iter().map(|l| l["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    // `since` in the future of every line: none.
    let r = get(shoal.admin, "/api/v1/logs?since=0s").await.unwrap();
    assert!(ndjson(&r.body).len() <= 1);
    let r = get(shoal.admin, "/api/v1/instances/app-9/logs")
        .await
        .unwrap();
    assert_eq!(r.status, 200, "a slot that may come: empty, not an error");
    assert!(ndjson(&r.body).is_empty());
    let r = get(shoal.admin, "/api/v1/instances/nope/logs")
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    let r = get(shoal.admin, "/api/v1/logs?lines=x").await.unwrap();
    assert_eq!(r.status, 400);

    // A follower gets a line written after it asked.
    let stream = tokio::net::TcpStream::connect(shoal.admin).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let resp = sender
        .send_request(
            Request::get("/api/v1/logs?lines=0&follow")
                .header("host", "admin")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body();
    get(shoal.proxy, "/status/299").await.unwrap();
    let found = tokio::time::timeout(Duration::from_secs(5), async {
        let mut seen = Vec::new();
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                seen.extend_from_slice(&data);
                if ndjson(&seen)
                    .iter()
                    .any(|l| l["line"].as_str().unwrap_or("").contains("GET /status/299"))
                {
                    return true;
                }
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "the follower saw the new line");

    // The CLI.
    let (code, out, err) = cli(shoal.admin, &["logs", "app-2", "-n", "50"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.lines().all(|l| l.starts_with("app-2")), "{out}");
    assert!(out.contains("app-2 | "), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_json_logs_instances_lines_are_json_too() {
    let shoal = Shoal::start(&demo_config(1, "log: { format: json }\n"));
    shoal.wait_healthy(1).await;
    let r = request(
        shoal.proxy,
        Request::get("/status/298")
            .header("host", "x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(r.status, 298);
    let line = eventually(Duration::from_secs(5), "the instance's line", || async {
        shoal
            .log()
            .into_iter()
            .find(|l| l.contains("GET /status/298"))
    })
    .await;
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
    assert_eq!(v["instance"], "app-1");
    assert_eq!(v["stream"], "stdout");
    assert!(
        v["line"].as_str().unwrap().contains("GET /status/298"),
        "{v}"
    );
    // shoal's own lines are JSON as well: the whole stream parses.
    for l in shoal.log() {
        assert!(serde_json::from_str::<Value>(&l).is_ok(), "not JSON: {l}");
    }
}
