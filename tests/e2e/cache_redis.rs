//! The cache's shared tier (`cache.redis`) in a real `redis-server`: two
//! shoal replicas with one config share hits (a response cached through
//! one is a HIT through the other, its `Vary` variants too) and purges
//! (through the admin API or a POST on one, seen by both); a response too
//! large for Redis stays in one replica's memory, or is not stored, as
//! `too_large` says; with Redis gone the cache goes on in memory and a
//! purge says Redis was not reached.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cache::{admin, answer, body, config, get, h, send};
use crate::support::origin::Origin;
use crate::support::redis::RedisServer;
use crate::support::{eventually, Client, Shoal};

crate::under_both_engines!(two_replicas_share_hits_and_purges);

fn cache_config(origin: &Origin, redis: u16, cache: &str) -> String {
    config(
        origin,
        &format!(
            "state:\n  backend: redis\n  url: redis://127.0.0.1:{redis}\ncache:\n  redis: {cache}\n"
        ),
    )
}

async fn replica(origin: &Origin, redis: u16, cache: &str) -> Shoal {
    let shoal = Shoal::start(&cache_config(origin, redis, cache));
    shoal.wait_upstreams(1).await;
    shoal
}

async fn cache_stats(shoal: &Shoal) -> Value {
    let r = admin(shoal, "GET", "/api/v1/cache", false).await;
    assert_eq!(r.status, 200);
    serde_json::from_slice(&r.body).unwrap()
}

/// Until `shoal` has written `n` responses to Redis (it writes behind
/// the client's answer).
async fn wait_written(shoal: &Shoal, n: u64) {
    eventually(
        Duration::from_secs(5),
        &format!("{n} stored in Redis"),
        || async {
            (cache_stats(shoal).await["redis"]["stores"].as_u64() >= Some(n)).then_some(())
        },
    )
    .await
}

/// GET `path` through `c` until the cache's answer is `want` (each other
/// answer must be `HIT`: the purge is not seen yet); how long it took.
async fn until(c: &mut Client, path: &str, want: &str, within: Duration) -> Duration {
    let start = Instant::now();
    loop {
        let r = get(c, path, &[]).await;
        match h(&r, "x-cache") {
            Some(x) if x == want => return start.elapsed(),
            Some("HIT") if start.elapsed() < within => {
                tokio::time::sleep(Duration::from_millis(50)).await
            }
            other => panic!(
                "{path}: {other:?} after {:?}, wanted {want}",
                start.elapsed()
            ),
        }
    }
}

async fn two_replicas_share_hits_and_purges() {
    let redis = RedisServer::start();
    let origin = Origin::start(answer).await;
    let one = replica(&origin, redis.port, "{}").await;
    let two = replica(&origin, redis.port, "{}").await;
    let (mut a, mut b) = (Client::new(one.proxy), Client::new(two.proxy));

    // Cached through one: a HIT through the other, the backend asked once.
    let r = get(&mut a, "/item", &[]).await;
    assert_eq!(
        (h(&r, "x-cache"), body(&r).as_str()),
        (Some("MISS"), "/item #1")
    );
    wait_written(&one, 1).await;
    let r = get(&mut b, "/item", &[]).await;
    assert_eq!(
        (h(&r, "x-cache"), body(&r).as_str()),
        (Some("HIT"), "/item #1")
    );
    assert!(h(&r, "age").is_some());
    let r = get(&mut b, "/item", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("HIT"), "then from two's memory");
    assert_eq!(origin.count("/item"), 1);
    assert_eq!(cache_stats(&two).await["redis"]["hits"], 1);

    // Variants: each is shared under its own secondary key.
    let en = [("accept-language", "en")];
    let fr = [("accept-language", "fr")];
    let r = get(&mut a, "/vary", &en).await;
    assert_eq!(body(&r), "en #1");
    wait_written(&one, 2).await;
    let r = get(&mut b, "/vary", &en).await;
    assert_eq!(
        (h(&r, "x-cache"), body(&r).as_str()),
        (Some("HIT"), "en #1")
    );
    let r = get(&mut b, "/vary", &fr).await;
    assert_eq!(
        (h(&r, "x-cache"), body(&r).as_str()),
        (Some("MISS"), "fr #2")
    );
    wait_written(&two, 1).await;
    let r = get(&mut a, "/vary", &fr).await;
    assert_eq!(
        (h(&r, "x-cache"), body(&r).as_str()),
        (Some("HIT"), "fr #2")
    );

    // A purge through one: gone from Redis at once, and from two's
    // memory within its next read of the purges (250 ms).
    let r = admin(
        &one,
        "DELETE",
        "/api/v1/cache?key=http://cache.test/item",
        true,
    )
    .await;
    assert_eq!(r.status, 200, "{}", body(&r));
    let purged: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(purged["purged"], 1, "{purged}");
    assert_eq!(purged["purged_redis"], 1, "{purged}");
    let took = until(&mut b, "/item", "MISS", Duration::from_secs(2)).await;
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert_eq!(origin.count("/item"), 2);
    // What two fetched again is shared again.
    wait_written(&two, 2).await;
    let r = get(&mut a, "/item", &[]).await;
    assert_eq!(
        (h(&r, "x-cache"), body(&r).as_str()),
        (Some("HIT"), "/item #2")
    );

    // A POST through two invalidates the URL for one too.
    let r = send(&mut b, "POST", "/item", &[]).await;
    assert_eq!(r.status, 200);
    until(&mut a, "/item", "MISS", Duration::from_secs(2)).await;

    // The stats and metrics say which tier answered.
    let m = two.metrics().await;
    assert!(
        m["shoal_cache_redis_lookups_total{result=\"hit\"}"] >= 2.0,
        "{m:?}"
    );
    assert!(m["shoal_cache_redis_stores_total"] >= 2.0, "{m:?}");
    assert_eq!(m["shoal_cache_redis_errors_total"], 0.0, "{m:?}");
    eventually(Duration::from_secs(3), "redis entries counted", || async {
        let m = two.metrics().await;
        (m["shoal_cache_entries{tier=\"redis\"}"] >= 1.0).then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_response_too_large_for_redis_stays_in_memory_or_is_passed() {
    let redis = RedisServer::start();
    let origin = Origin::start(answer).await;
    let one = replica(&origin, redis.port, "{ max_item_size: 100KiB }").await;
    let two = replica(&origin, redis.port, "{ max_item_size: 100KiB }").await;
    let (mut a, mut b) = (Client::new(one.proxy), Client::new(two.proxy));
    let r = get(&mut a, "/mib", &[]).await;
    assert_eq!((r.body.len(), h(&r, "x-cache")), (1 << 20, Some("MISS")));
    let r = get(&mut a, "/mib", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("HIT"), "kept in one's memory");
    let r = get(&mut a, "/small", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("MISS"));
    wait_written(&one, 1).await;
    assert_eq!(cache_stats(&one).await["redis"]["stores"], 1, "/small only");
    let r = get(&mut b, "/mib", &[]).await;
    assert_eq!((r.body.len(), h(&r, "x-cache")), (1 << 20, Some("MISS")));
    assert_eq!(origin.count("/mib"), 2);

    let origin = Origin::start(answer).await;
    let pass = replica(
        &origin,
        redis.port,
        "{ max_item_size: 100KiB, too_large: pass }",
    )
    .await;
    let mut c = Client::new(pass.proxy);
    for _ in 0..2 {
        let r = get(&mut c, "/mib", &[]).await;
        assert_eq!((r.body.len(), h(&r, "x-cache")), (1 << 20, Some("MISS")));
    }
    assert_eq!(origin.count("/mib"), 2, "not stored anywhere");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_cache_goes_on_in_memory() {
    let mut redis = RedisServer::start();
    let origin = Origin::start(answer).await;
    let shoal = replica(&origin, redis.port, "{}").await;
    let mut c = Client::new(shoal.proxy);
    let r = get(&mut c, "/before", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("MISS"));
    redis.stop();
    let start = Instant::now();
    let r = get(&mut c, "/after", &[]).await;
    assert_eq!((r.status.as_u16(), h(&r, "x-cache")), (200, Some("MISS")));
    let r = get(&mut c, "/after", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("HIT"), "from memory");
    let r = get(&mut c, "/before", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("HIT"));
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "no request waits on the missing Redis: {:?}",
        start.elapsed()
    );
    // A purge clears this replica's memory and says Redis was not reached.
    let r = admin(&shoal, "DELETE", "/api/v1/cache", true).await;
    assert_eq!(r.status, 502, "{}", body(&r));
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["purged"], 2, "{v}");
    assert!(v["error"].as_str().unwrap().contains("Redis"), "{v}");
    let r = get(&mut c, "/after", &[]).await;
    assert_eq!(h(&r, "x-cache"), Some("MISS"));
}
