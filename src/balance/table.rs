//! The one endpoint table every source publishes into and the balancer reads.
//!
//! Readers take a lock-free snapshot (`ArcSwap`); writers (supervisor, static
//! list, later DNS discovery) replace the whole set. Per-endpoint health lives in
//! the endpoints themselves, so health changes never rebuild the set.

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::endpoint::Endpoint;

/// An immutable set of endpoints.
#[derive(Debug, Default)]
pub struct EndpointSet {
    pub endpoints: Vec<Arc<Endpoint>>,
}

impl EndpointSet {
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
            EndpointSet { endpoints }
        });
    }

    /// Remove an endpoint by key; in-flight requests keep their own reference.
    pub fn remove(&self, key: u64) {
        self.current.rcu(|set| EndpointSet {
            endpoints: set
                .endpoints
                .iter()
                .filter(|e| e.key() != key)
                .cloned()
                .collect(),
        });
    }
}
