//! The one endpoint table every source publishes into and the balancer reads.
//!
//! Readers take a lock-free snapshot (`ArcSwap`); writers (supervisor, static
//! list, later DNS discovery) replace the whole set. Per-endpoint health lives in
//! the endpoints themselves, so health changes never rebuild the set.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::endpoint::Endpoint;

/// An immutable set of endpoints.
#[derive(Debug, Default)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<Endpoint>>,
    /// Unique per set built with [`EndpointSet::new`] (0 for the empty
    /// default): what balancers key their per-set caches on, in O(1) and
    /// without the address-reuse hazard of comparing pointers.
    generation: u64,
    /// Every endpoint is cleartext HTTP/1.1, which the native engine
    /// serves on raw sockets; else (an h2 or TLS backend among them) it
    /// hands requests to hyper's path before the balancer picks.
    all_raw: bool,
}

static NEXT_GENERATION: AtomicU64 = AtomicU64::new(1);

impl EndpointSet {
    /// A set of `endpoints`, in this order. Sets are not changed once built:
    /// a change is a new set.
    pub fn new(endpoints: Vec<Arc<Endpoint>>) -> EndpointSet {
        EndpointSet {
            all_raw: endpoints.iter().all(|e| e.pool.raw_ok()),
            endpoints,
            generation: NEXT_GENERATION.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Whether the native engine can serve requests to any endpoint of the
    /// set (all are cleartext HTTP/1.1).
    #[inline]
    pub fn all_raw(&self) -> bool {
        self.all_raw
    }

    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn any_in_rotation(&self) -> bool {
        self.endpoints.iter().any(|e| e.in_rotation())
    }
}

#[derive(Debug, Default)]
pub struct EndpointTable {
    current: ArcSwap<EndpointSet>,
}

impl EndpointTable {
    pub fn new() -> Self {
        Self::default()
    }

    #[inline]
    pub fn snapshot(&self) -> arc_swap::Guard<Arc<EndpointSet>> {
        self.current.load()
    }

    pub fn load_full(&self) -> Arc<EndpointSet> {
        self.current.load_full()
    }

    /// Add an endpoint (keeps the order of the existing ones).
    pub fn insert(&self, endpoint: Arc<Endpoint>) {
        self.current.rcu(|set| {
            let mut endpoints = set.endpoints.clone();
            endpoints.push(endpoint.clone());
            EndpointSet::new(endpoints)
        });
    }

    /// Remove an endpoint by key; in-flight requests keep their own reference.
    pub fn remove(&self, key: u64) {
        self.current.rcu(|set| {
            EndpointSet::new(
                set.endpoints
                    .iter()
                    .filter(|e| e.key() != key)
                    .cloned()
                    .collect(),
            )
        });
    }
}
