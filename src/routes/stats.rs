//! Per-route counts for `/metrics` (`shoal_route_requests_total{route}`):
//! kept by route name across config reloads, so a reload does not reset
//! them; the label's values are the config's route names, so bounded.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, Default)]
pub struct RouteStats {
    requests: AtomicU64,
}

impl RouteStats {
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }
}

static ROUTES: Mutex<BTreeMap<String, Arc<RouteStats>>> = Mutex::new(BTreeMap::new());

fn registry() -> std::sync::MutexGuard<'static, BTreeMap<String, Arc<RouteStats>>> {
    ROUTES.lock().unwrap_or_else(|p| p.into_inner())
}

/// The counters of the routes named `names` (a new config's), the others
/// forgotten.
pub fn for_routes(names: &[&str]) -> Vec<Arc<RouteStats>> {
    let mut all = registry();
    all.retain(|name, _| names.contains(&name.as_str()));
    names
        .iter()
        .map(|n| all.entry(n.to_string()).or_default().clone())
        .collect()
}

/// Every route's name and count, for a scrape.
pub fn snapshot() -> Vec<(String, u64)> {
    registry()
        .iter()
        .map(|(n, s)| (n.clone(), s.requests()))
        .collect()
}
