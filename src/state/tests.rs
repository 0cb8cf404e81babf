//! The behaviour suite every [`Store`] must pass, with the same results:
//! [`behaviour`] runs on the memory store here and on a real
//! `redis-server` in `state::redis`'s tests. Real time (Redis counts on its
//! own clock): rates are slow enough that a test's own pace cannot blur a
//! count, except in the one refill check, which waits for it.

use std::time::Duration;

use super::{Ask, MemoryStore, Quota, Store, Verdict};

async fn one<S: Store>(store: &S, key: &str, quota: Quota) -> Verdict {
    let mut out = Vec::new();
    store
        .check(
            &[Ask {
                key: key.as_bytes(),
                quota,
            }],
            &mut out,
        )
        .await
        .expect("the store answers");
    out[0]
}

/// Every check a store must pass; `tag` keeps the keys of one run apart
/// from another's in a shared store.
pub(crate) async fn behaviour<S: Store>(store: &S, tag: &str) {
    let hour = Quota::new(Duration::from_secs(3600), 5);
    let key = format!("{tag}:a");

    // A burst of 5 passes, counting down; the sixth is refused with a
    // Retry-After of about one interval.
    for want in (0..5).rev() {
        let v = one(store, &key, hour).await;
        assert!(v.allowed, "within the burst");
        assert_eq!(v.remaining, want);
    }
    let v = one(store, &key, hour).await;
    assert!(!v.allowed);
    assert_eq!(v.remaining, 0);
    let secs = v.retry_after_ns as f64 / 1e9;
    assert!((3590.0..=3600.0).contains(&secs), "retry after {secs} s");
    let reset = v.reset_ns as f64 / 1e9;
    assert!(
        (5.0 * 3600.0 - 10.0..=5.0 * 3600.0).contains(&reset),
        "reset {reset} s"
    );

    // Another key is counted apart.
    let v = one(store, &format!("{tag}:b"), hour).await;
    assert!(v.allowed && v.remaining == 4);

    // Several asks at once: each decided and counted in order.
    let mut out = Vec::new();
    let k1 = format!("{tag}:c");
    let asks = [
        Ask {
            key: k1.as_bytes(),
            quota: Quota::new(Duration::from_secs(3600), 1),
        },
        Ask {
            key: k1.as_bytes(),
            quota: Quota::new(Duration::from_secs(3600), 1),
        },
    ];
    store.check(&asks, &mut out).await.unwrap();
    assert_eq!(
        out.iter().map(|v| v.allowed).collect::<Vec<_>>(),
        [true, false]
    );

    // Forgetting a key resets its count.
    assert!(store.forget(key.as_bytes()).await.unwrap());
    assert!(!store
        .forget(format!("{tag}:never").as_bytes())
        .await
        .unwrap());
    let v = one(store, &key, hour).await;
    assert!(v.allowed && v.remaining == 4);

    // The steady rate refills: 10/s with a burst of 1.
    let fast = Quota::new(Duration::from_millis(100), 1);
    let key = format!("{tag}:d");
    assert!(one(store, &key, fast).await.allowed);
    assert!(!one(store, &key, fast).await.allowed);
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert!(one(store, &key, fast).await.allowed);

    // A changed quota applies to the same key's count at once (a rule
    // changed at run time): 3 used of 5, now a burst of 3 → refused.
    let key = format!("{tag}:e");
    for _ in 0..3 {
        assert!(one(store, &key, hour).await.allowed);
    }
    let smaller = Quota::new(Duration::from_secs(3600), 3);
    assert!(!one(store, &key, smaller).await.allowed);
    let bigger = Quota::new(Duration::from_secs(3600), 10);
    let v = one(store, &key, bigger).await;
    assert!(v.allowed && v.remaining == 6, "{v:?}");
}

#[tokio::test]
async fn the_memory_store_passes_the_behaviour_suite() {
    behaviour(&MemoryStore::new(1_000), "t").await;
}
