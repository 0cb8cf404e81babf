//! A steady, bounded load: `workers` keep-alive clients, each sending one
//! request every `1/rate` seconds for `duration`, alternating a GET of `/` and
//! a POST of a 64 KiB body to `/echo`. Every response is checked: status 200
//! and, for POSTs, the exact body back. Nothing runs past `duration`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use tokio::task::JoinHandle;

use super::Client;

pub struct LoadReport {
    pub ok: usize,
    pub failed: Vec<String>,
    pub instances: std::collections::BTreeSet<String>,
}

pub struct Load {
    workers: Vec<JoinHandle<LoadReport>>,
}

impl Load {
    /// About `workers × per_worker_rps` requests per second.
    pub fn start(
        addr: SocketAddr,
        workers: usize,
        per_worker_rps: u32,
        duration: Duration,
    ) -> Load {
        Load::with_paths(addr, workers, per_worker_rps, duration, "/", "/echo")
    }

    /// As `start`, with other targets (e.g. `/slow?ms=50` and
    /// `/echo?delay_ms=50`, so requests are always in flight when an
    /// instance leaves).
    pub fn with_paths(
        addr: SocketAddr,
        workers: usize,
        per_worker_rps: u32,
        duration: Duration,
        get_path: &'static str,
        post_path: &'static str,
    ) -> Load {
        let body: Arc<Bytes> = Arc::new(
            (0..64 * 1024u32)
                .map(|i| (i * 7 % 251) as u8)
                .collect::<Vec<u8>>()
                .into(),
        );
        let workers = (0..workers)
            .map(|w| {
                let body = body.clone();
                tokio::spawn(async move {
                    let mut client = Client::new(addr);
                    let mut report = LoadReport {
                        ok: 0,
                        failed: Vec::new(),
                        instances: Default::default(),
                    };
                    let mut tick = tokio::time::interval(Duration::from_secs(1) / per_worker_rps);
                    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    let deadline = tokio::time::Instant::now() + duration;
                    let mut n = w;
                    while tokio::time::Instant::now() < deadline {
                        tick.tick().await;
                        n += 1;
                        let result = if n % 2 == 0 {
                            client.get(get_path).await.and_then(|r| {
                                if r.status != 200 {
                                    return Err(format!(
                                        "GET {get_path} -> {} {:?}",
                                        r.status, r.body
                                    ));
                                }
                                let id = r.json()["instance"].as_str().unwrap_or("?").to_string();
                                Ok(id)
                            })
                        } else {
                            let req = http::Request::post(post_path)
                                .header("host", "load")
                                .header("content-type", "application/octet-stream")
                                .body(Full::new((*body).clone()))
                                .unwrap();
                            client.send(req).await.and_then(|r| {
                                if r.status != 200 {
                                    return Err(format!(
                                        "POST {post_path} -> {} {:?}",
                                        r.status, r.body
                                    ));
                                }
                                if r.body != *body {
                                    return Err(format!(
                                        "POST /echo: body of {} bytes differs",
                                        r.body.len()
                                    ));
                                }
                                Ok(r.headers
                                    .get("x-demo-instance")
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or("?")
                                    .to_string())
                            })
                        };
                        match result {
                            Ok(id) => {
                                report.ok += 1;
                                report.instances.insert(id);
                            }
                            Err(e) => report.failed.push(e),
                        }
                    }
                    report
                })
            })
            .collect();
        Load { workers }
    }

    pub async fn finish(self) -> LoadReport {
        let mut all = LoadReport {
            ok: 0,
            failed: Vec::new(),
            instances: Default::default(),
        };
        for w in self.workers {
            let r = w.await.expect("load worker");
            all.ok += r.ok;
            all.failed.extend(r.failed);
            all.instances.extend(r.instances);
        }
        all
    }
}
