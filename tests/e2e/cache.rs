//! The response cache (`cache:`, docs/CACHE.md) in front of an in-process
//! origin that counts what reaches it: hits with `Age`, what is not
//! stored (no-store, private, Set-Cookie, too large), `Vary` variants,
//! revalidation with the stored validators (304), client conditionals,
//! `HEAD` from a stored `GET`, coalesced misses, invalidation after a
//! POST, stale-if-error, the purge API with and without the token, and a
//! route without `cache` untouched. The key tests run under both engines.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::origin::{Answer, Origin, Seen};
use crate::support::{request, upstreams_config, Client, Reply, Shoal};

crate::under_both_engines!(
    a_hit_is_served_with_its_age_and_head_from_get,
    what_must_not_be_stored_is_not,
    vary_keeps_one_response_per_variant,
    a_stale_response_is_revalidated_with_its_etag,
    concurrent_misses_reach_the_backend_once,
    post_invalidates_and_the_purge_api_needs_the_token,
);

pub(crate) const TOKEN: &str = "cache-token-0123456789";

pub(crate) fn config(origin: &Origin, cache: &str) -> String {
    upstreams_config(&[origin.addr], cache).replace(
        "admin: { listen: 127.0.0.1:0 }",
        &format!("admin: {{ listen: 127.0.0.1:0, token: {TOKEN} }}"),
    )
}

/// The origin most tests use: the path says what it answers.
pub(crate) fn answer(s: &Seen, n: usize) -> Answer {
    let path = s.target.split('?').next().unwrap_or("");
    let body = format!("{path} #{n}");
    match path {
        "/fresh" => Answer::ok(&[("cache-control", "max-age=60"), ("etag", "\"f1\"")], body),
        "/no-store" => Answer::ok(&[("cache-control", "no-store, max-age=60")], body),
        "/private" => Answer::ok(&[("cache-control", "private, max-age=60")], body),
        "/cookie" => Answer::ok(
            &[("cache-control", "max-age=60"), ("set-cookie", "a=b")],
            body,
        ),
        "/nothing" => Answer::ok(&[], body),
        "/vary" => {
            let lang = s
                .headers
                .get("accept-language")
                .map_or("none", |v| v.to_str().unwrap());
            Answer::ok(
                &[("cache-control", "max-age=60"), ("vary", "Accept-Language")],
                format!("{lang} #{n}"),
            )
        }
        "/etag" => {
            if s.headers
                .get("if-none-match")
                .is_some_and(|v| v == "\"e1\"")
            {
                Answer::ok(&[("cache-control", "max-age=0"), ("etag", "\"e1\"")], "").status(304)
            } else {
                Answer::ok(&[("cache-control", "max-age=0"), ("etag", "\"e1\"")], body)
            }
        }
        "/slow" => {
            Answer::ok(&[("cache-control", "max-age=60")], body).after(Duration::from_millis(400))
        }
        "/swr" => Answer::ok(
            &[("cache-control", "max-age=2, stale-while-revalidate=30")],
            body,
        ),
        "/mib" => Answer::ok(&[("cache-control", "max-age=60")], vec![b'y'; 1 << 20]),
        "/huge" => {
            Answer::ok(&[("cache-control", "max-age=60")], vec![b'z'; 64 << 10]).repeated(4096)
        }
        "/gone" => {
            let a = Answer::ok(&[("cache-control", "max-age=1, stale-if-error=60")], body);
            if n == 1 {
                a
            } else {
                a.after(Duration::from_secs(3))
            }
        }
        "/big" => Answer::ok(&[("cache-control", "max-age=60")], vec![b'x'; 1 << 20]),
        "/flaky" => {
            if n == 1 {
                Answer::ok(&[("cache-control", "max-age=1, stale-if-error=60")], body)
            } else {
                Answer::ok(&[], "down").status(503)
            }
        }
        _ => Answer::ok(&[("cache-control", "max-age=60")], body),
    }
}

pub(crate) async fn get(client: &mut Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(client, "GET", path, headers).await
}

pub(crate) async fn send(
    client: &mut Client,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "cache.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client
        .send(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

pub(crate) fn h<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

pub(crate) fn body(r: &Reply) -> String {
    String::from_utf8_lossy(&r.body).into_owned()
}

async fn start(origin: &Origin, cache: &str) -> Shoal {
    let shoal = Shoal::start(&config(origin, cache));
    shoal.wait_upstreams(1).await;
    shoal
}

async fn a_hit_is_served_with_its_age_and_head_from_get() {
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: { header: X-Shoal-Cache }\n").await;
    let mut c = Client::new(shoal.proxy);
    let r = get(&mut c, "/fresh", &[]).await;
    assert_eq!((r.status.as_u16(), body(&r).as_str()), (200, "/fresh #1"));
    assert_eq!(h(&r, "x-shoal-cache"), Some("MISS"));
    let r = get(&mut c, "/fresh", &[]).await;
    assert_eq!(body(&r), "/fresh #1");
    assert_eq!(h(&r, "x-shoal-cache"), Some("HIT"));
    assert!(
        h(&r, "x-request-id").is_some(),
        "a hit has its own request id"
    );
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(&mut c, "/fresh", &[]).await;
    let age: u64 = h(&r, "age").unwrap().parse().unwrap();
    assert!((1..=3).contains(&age), "age {age}");
    // HEAD from the stored GET: the length, no body.
    let r = send(&mut c, "HEAD", "/fresh", &[]).await;
    assert_eq!(h(&r, "x-shoal-cache"), Some("HIT"));
    assert_eq!(h(&r, "content-length"), Some("9"));
    assert!(r.body.is_empty());
    // The client's own conditional, answered from the fresh entry.
    let r = get(&mut c, "/fresh", &[("if-none-match", "\"f1\"")]).await;
    assert_eq!(r.status, 304);
    // Request no-cache: to the backend again (and stored anew).
    let r = get(&mut c, "/fresh", &[("cache-control", "no-cache")]).await;
    assert_ne!(h(&r, "x-shoal-cache"), Some("HIT"));
    assert_eq!(origin.count("/fresh"), 2);
    // A large response (1 MiB, under max_item_size) is stored as it streams.
    let r = get(&mut c, "/mib", &[]).await;
    assert_eq!(
        (r.body.len(), h(&r, "x-shoal-cache")),
        (1 << 20, Some("MISS"))
    );
    let r = get(&mut c, "/mib", &[]).await;
    assert_eq!(
        (r.body.len(), h(&r, "x-shoal-cache")),
        (1 << 20, Some("HIT"))
    );
    let m = shoal.metrics().await;
    assert!(
        m["shoal_cache_requests_total{outcome=\"hit\"}"] >= 3.0,
        "{m:?}"
    );
    assert!(m["shoal_cache_stores_total"] >= 1.0);
    assert!(m["shoal_cache_entries{tier=\"memory\"}"] >= 1.0);
}

async fn what_must_not_be_stored_is_not() {
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: { memory: { max_item_size: 64KiB } }\n").await;
    let mut c = Client::new(shoal.proxy);
    for path in ["/no-store", "/private", "/cookie", "/nothing", "/big"] {
        for _ in 0..2 {
            let r = get(&mut c, path, &[]).await;
            assert_eq!(r.status, 200, "{path}");
            assert_eq!(h(&r, "x-cache"), Some("MISS"), "{path}");
            if path == "/big" {
                assert_eq!(r.body.len(), 1 << 20, "delivered whole");
            }
        }
        assert_eq!(
            origin.count(path),
            2,
            "{path} reached the backend each time"
        );
    }
    // A request's Authorization: not stored without public/s-maxage.
    get(&mut c, "/auth", &[("authorization", "Bearer x")]).await;
    let r = get(&mut c, "/auth", &[("authorization", "Bearer x")]).await;
    assert_eq!(h(&r, "x-cache"), Some("MISS"));
}

async fn vary_keeps_one_response_per_variant() {
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: {}\n").await;
    let mut c = Client::new(shoal.proxy);
    let fr = [("accept-language", "fr")];
    let de = [("accept-language", "de")];
    assert_eq!(body(&get(&mut c, "/vary", &fr).await), "fr #1");
    assert_eq!(body(&get(&mut c, "/vary", &de).await), "de #2");
    let r = get(&mut c, "/vary", &fr).await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("fr #1", Some("HIT"))
    );
    let r = get(&mut c, "/vary", &de).await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("de #2", Some("HIT"))
    );
    assert_eq!(body(&get(&mut c, "/vary", &[]).await), "none #3");
    assert_eq!(origin.count("/vary"), 3);
}

async fn a_stale_response_is_revalidated_with_its_etag() {
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: {}\n").await;
    let mut c = Client::new(shoal.proxy);
    let r = get(&mut c, "/etag", &[]).await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("/etag #1", Some("MISS"))
    );
    // max-age=0: every request asks the backend, with the stored ETag.
    let r = get(&mut c, "/etag", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("/etag #1", Some("REVALIDATED"))
    );
    let seen = origin.seen();
    assert_eq!(seen.len(), 2);
    assert!(seen[0].headers.get("if-none-match").is_none());
    assert_eq!(seen[1].headers.get("if-none-match").unwrap(), "\"e1\"");
    // The client's own conditional after the revalidation: 304.
    let r = get(&mut c, "/etag", &[("if-none-match", "\"e1\"")]).await;
    assert_eq!(r.status, 304);
    assert_eq!(origin.count("/etag"), 3);

    // stale-if-error: the backend fails, the stored response stands in.
    let r = get(&mut c, "/flaky", &[]).await;
    assert_eq!(body(&r), "/flaky #1");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = get(&mut c, "/flaky", &[]).await;
    assert_eq!((r.status.as_u16(), body(&r).as_str()), (200, "/flaky #1"));
    assert_eq!(h(&r, "x-cache"), Some("STALE"));

    // stale-while-revalidate: the stale one at once, a new one fetched in
    // the background (once), then served.
    get(&mut c, "/swr", &[]).await;
    // (max-age=2: `Date` has whole seconds, so a response may arrive up
    // to a second old.)
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&mut c, "/swr", &[]).await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("/swr #1", Some("STALE"))
    );
    crate::support::eventually(Duration::from_secs(5), "the background refresh", || {
        let n = origin.count("/swr");
        async move { (n == 2).then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = get(&mut c, "/swr", &[]).await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("/swr #2", Some("HIT"))
    );
    assert_eq!(origin.count("/swr"), 2);
}

async fn concurrent_misses_reach_the_backend_once() {
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: { coalesce: { wait: 5s } }\n").await;
    let proxy = shoal.proxy;
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(async move {
                let mut c = Client::new(proxy);
                get(&mut c, "/slow", &[]).await
            })
        })
        .collect();
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!((r.status.as_u16(), body(&r).as_str()), (200, "/slow #1"));
    }
    assert_eq!(
        origin.count("/slow"),
        1,
        "100 concurrent misses, one backend request"
    );
}

pub(crate) async fn admin(shoal: &Shoal, method: &str, path: &str, token: bool) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", shoal.admin.to_string());
    if token {
        req = req.header("authorization", format!("Bearer {TOKEN}"));
    }
    request(shoal.admin, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

async fn post_invalidates_and_the_purge_api_needs_the_token() {
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: {}\n").await;
    let mut c = Client::new(shoal.proxy);
    get(&mut c, "/item", &[]).await;
    assert_eq!(h(&get(&mut c, "/item", &[]).await, "x-cache"), Some("HIT"));
    let r = send(&mut c, "POST", "/item", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("BYPASS"));
    let r = get(&mut c, "/item", &[]).await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("/item #3", Some("MISS"))
    );

    // Purge one URL: refused without the token, done with it.
    let url = "/api/v1/cache?key=http://cache.test/item";
    assert_eq!(admin(&shoal, "DELETE", url, false).await.status, 401);
    assert_eq!(h(&get(&mut c, "/item", &[]).await, "x-cache"), Some("HIT"));
    let r = admin(&shoal, "DELETE", url, true).await;
    assert_eq!(
        (r.status.as_u16(), r.json()["purged"].as_u64()),
        (200, Some(1))
    );
    assert_eq!(h(&get(&mut c, "/item", &[]).await, "x-cache"), Some("MISS"));
    // By prefix, and everything.
    get(&mut c, "/p/a", &[]).await;
    get(&mut c, "/p/b", &[]).await;
    let r = admin(
        &shoal,
        "DELETE",
        "/api/v1/cache?prefix=http://cache.test/p/",
        true,
    )
    .await;
    assert_eq!(r.json()["purged"].as_u64(), Some(2));
    assert_eq!(h(&get(&mut c, "/p/a", &[]).await, "x-cache"), Some("MISS"));
    let stats = admin(&shoal, "GET", "/api/v1/cache", false).await.json();
    assert!(
        stats["tiers"][0]["entries"].as_u64().unwrap() >= 2,
        "{stats}"
    );
    assert!(stats["requests"]["hit"].as_u64().unwrap() >= 2, "{stats}");
    let r = admin(&shoal, "DELETE", "/api/v1/cache", true).await;
    assert!(r.json()["purged"].as_u64().unwrap() >= 2);
    assert_eq!(h(&get(&mut c, "/item", &[]).await, "x-cache"), Some("MISS"));
}

/// A route without `cache` is passed through as before: no header, every
/// request to the backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_without_cache_is_untouched() {
    let origin = Origin::start(answer).await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("access.log");
    let shoal = start(
        &origin,
        &format!(
            "routes:\n  - {{ match: {{ path_prefix: /c }}, to: upstreams, cache: true }}\n  - {{ to: upstreams }}\naccess_log: {{ format: json, path: {} }}\n",
            log.display()
        ),
    )
    .await;
    let mut c = Client::new(shoal.proxy);
    for _ in 0..2 {
        let r = get(&mut c, "/other", &[]).await;
        assert_eq!(h(&r, "x-cache"), None);
    }
    assert_eq!(origin.count("/other"), 2);
    get(&mut c, "/c", &[]).await;
    assert_eq!(h(&get(&mut c, "/c", &[]).await, "x-cache"), Some("HIT"));
    assert_eq!(origin.count("/c"), 1);
    // The access log says what the cache did, only where it caches.
    let lines: Vec<serde_json::Value> =
        crate::support::eventually(Duration::from_secs(5), "four access-log lines", || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            async move {
                let lines: Vec<serde_json::Value> = text
                    .lines()
                    .filter_map(|l| serde_json::from_str(l).ok())
                    .collect();
                (lines.len() >= 4).then_some(lines)
            }
        })
        .await;
    let caches: Vec<Option<&str>> = lines.iter().map(|l| l["cache"].as_str()).collect();
    assert_eq!(caches, [None, None, Some("MISS"), Some("HIT")]);
}

/// A 256 MiB cacheable response streams through with shoal's RSS growing by
/// less than 64 MiB, and is not stored (it is over max_item_size).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_response_streams_and_is_not_stored() {
    use http_body_util::BodyExt;
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: {}\n").await;
    let mut c = Client::new(shoal.proxy);
    get(&mut c, "/warm", &[]).await;
    let before = crate::support::rss(shoal.pid());
    let mut peak = before;
    for _ in 0..2 {
        let stream = tokio::net::TcpStream::connect(shoal.proxy).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get("/huge")
            .header("host", "cache.test")
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        assert_eq!(h_map(resp.headers(), "x-cache"), Some("MISS"));
        let mut body = resp.into_body();
        let (mut n, mut frames) = (0usize, 0usize);
        while let Some(frame) = body.frame().await {
            n += frame.unwrap().data_ref().map_or(0, |d| d.len());
            frames += 1;
            if frames % 256 == 0 {
                peak = peak.max(crate::support::rss(shoal.pid()));
            }
        }
        assert_eq!(n, 256 << 20, "delivered whole");
    }
    let grew = peak.saturating_sub(before);
    assert!(grew < 64 << 20, "RSS grew by {} MiB", grew >> 20);
    assert_eq!(
        origin.count("/huge"),
        2,
        "not stored: the second went to the backend"
    );
}

fn h_map<'a>(headers: &'a http::HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).map(|v| v.to_str().unwrap())
}

/// `stale-if-error` when no backend answers at all (here: none within
/// `response_header_timeout`, a 504 shoal would make): the stored
/// response stands in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_if_error_when_the_backend_does_not_answer() {
    let origin = Origin::start(answer).await;
    let shoal = start(
        &origin,
        "cache: {}\nproxy: { response_header_timeout: 300ms, retries: 0 }\n",
    )
    .await;
    let mut c = Client::new(shoal.proxy);
    assert_eq!(body(&get(&mut c, "/gone", &[]).await), "/gone #1");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = get(&mut c, "/gone", &[]).await;
    assert_eq!((r.status.as_u16(), body(&r).as_str()), (200, "/gone #1"));
    assert_eq!(h(&r, "x-cache"), Some("STALE"));
}

/// A reload keeps what is stored (the store is the process's); one that
/// changes `cache.memory` starts an empty one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_the_store() {
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: {}\n").await;
    let mut c = Client::new(shoal.proxy);
    get(&mut c, "/kept", &[]).await;
    assert_eq!(h(&get(&mut c, "/kept", &[]).await, "x-cache"), Some("HIT"));
    let reload = |cache: &'static str| {
        std::fs::write(shoal.config_path(), config(&origin, cache)).unwrap();
        admin(&shoal, "POST", "/api/v1/reload?config=1", true)
    };
    let r = reload("cache: { header: X-After }\n").await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let r = crate::support::eventually(Duration::from_secs(10), "the reload", || {
        let proxy = shoal.proxy;
        async move {
            let mut c = Client::new(proxy);
            let r = get(&mut c, "/kept", &[]).await;
            h(&r, "x-after").is_some().then_some(r)
        }
    })
    .await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-after")),
        ("/kept #1", Some("HIT"))
    );
    let r = reload("cache: { memory: { max_size: 32MiB } }\n").await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let r = crate::support::eventually(Duration::from_secs(10), "the second reload", || {
        let proxy = shoal.proxy;
        async move {
            let mut c = Client::new(proxy);
            let r = get(&mut c, "/kept", &[]).await;
            h(&r, "x-cache").is_some().then_some(r)
        }
    })
    .await;
    assert_eq!(
        (body(&r).as_str(), h(&r, "x-cache")),
        ("/kept #2", Some("MISS"))
    );
}

/// A plain hit is answered by the native engine itself (the connection
/// is not handed to hyper), with the same status, headers and body as
/// hyper's path gives the same hit; a request that needs the whole
/// lookup (a conditional) is handed over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_hit_stays_on_the_native_engine() {
    crate::support::set_test_engine("native");
    let origin = Origin::start(answer).await;
    let shoal = start(&origin, "cache: {}\n").await;
    let handoffs = || async { shoal.metrics().await["shoal_native_handoffs_total"] };
    // The miss goes to hyper's path, and its connection with it.
    let mut on_hyper = Client::new(shoal.proxy);
    let r = get(&mut on_hyper, "/fresh", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("MISS"));
    assert_eq!(handoffs().await, 1.0);
    let by_hyper = get(&mut on_hyper, "/fresh", &[]).await;
    assert_eq!(h(&by_hyper, "x-cache"), Some("HIT"));

    let mut native = Client::new(shoal.proxy);
    let r = get(&mut native, "/fresh", &[]).await;
    assert_eq!((r.status.as_u16(), body(&r).as_str()), (200, "/fresh #1"));
    let names = |r: &Reply| {
        let mut n: Vec<(String, String)> = r
            .headers
            .iter()
            .filter(|(n, _)| !["x-request-id", "age"].contains(&n.as_str()))
            .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
            .collect();
        n.sort();
        n
    };
    assert_eq!(names(&r), names(&by_hyper), "the same hit either way");
    assert!(h(&r, "x-request-id").is_some_and(|id| id != h(&by_hyper, "x-request-id").unwrap()));
    assert!(h(&r, "age").is_some());
    let r = send(&mut native, "HEAD", "/fresh", &[]).await;
    assert_eq!(
        (h(&r, "x-cache"), h(&r, "content-length")),
        (Some("HIT"), Some("9"))
    );
    assert!(r.body.is_empty());
    let r = get(&mut native, "/mib", &[]).await;
    assert_eq!((h(&r, "x-cache"), r.body.len()), (Some("MISS"), 1 << 20));
    assert_eq!(handoffs().await, 2.0, "a miss is hyper's");
    let mut native = Client::new(shoal.proxy);
    for _ in 0..3 {
        let r = get(&mut native, "/mib", &[]).await;
        assert_eq!((h(&r, "x-cache"), r.body.len()), (Some("HIT"), 1 << 20));
        assert!(r.body.iter().all(|b| *b == b'y'));
    }
    assert_eq!(
        handoffs().await,
        2.0,
        "hits on one connection, none handed over"
    );
    let r = get(&mut native, "/fresh", &[("if-none-match", "\"f1\"")]).await;
    assert_eq!(r.status, 304);
    assert_eq!(
        handoffs().await,
        3.0,
        "a conditional is looked up on hyper's path"
    );
    assert_eq!(origin.count("/fresh"), 1);
    assert_eq!(origin.count("/mib"), 1);
}
