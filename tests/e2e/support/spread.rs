//! Which instances answer: the demo app says its `INSTANCE_ID` in the body
//! of `GET /` (`"instance"`), so a run of GETs through shoal shows the set
//! of backends in rotation.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::{Client, Shoal};

/// Which instances answer `n` GETs of `/` (or `status N` for a non-200).
pub async fn spread(shoal: &Shoal, n: usize) -> BTreeMap<String, usize> {
    let mut client = Client::new(shoal.proxy);
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        let r = client.get("/").await.expect("GET /");
        let id = match r.status {
            s if s == 200 => r.json()["instance"].as_str().unwrap().to_string(),
            other => format!("status {other}"),
        };
        *seen.entry(id).or_insert(0) += 1;
    }
    seen
}

/// Wait until 24 GETs in a row are answered by exactly `want` (sorted).
pub async fn wait_for_set(shoal: &Shoal, want: &[&str], within: Duration) {
    let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    let deadline = Instant::now() + within;
    loop {
        let seen: Vec<String> = spread(shoal, 24).await.into_keys().collect();
        if seen == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "wanted {want:?} within {within:?}, still {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
