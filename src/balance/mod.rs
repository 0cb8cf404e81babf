//! Balancing: the endpoint table and the algorithms that pick from it.
//!
//! The balancer never knows where endpoints come from (supervised instances or
//! static upstreams); it sees only the table's current snapshot.

mod endpoint;
mod least_conn;
mod round_robin;
mod table;

pub use endpoint::{Endpoint, Health, HealthWord, InFlight};
pub use least_conn::LeastConn;
pub use round_robin::RoundRobin;
pub use table::{EndpointSet, EndpointTable};

use shoal_config::Algorithm;

/// Endpoints a request has already tried, so a retry goes elsewhere.
#[derive(Debug, Default, Clone)]
pub struct Tried {
    keys: [u64; 12],
    len: usize,
}

impl Tried {
    pub fn push(&mut self, key: u64) {
        if self.len < self.keys.len() {
            self.keys[self.len] = key;
            self.len += 1;
        }
    }

    #[inline]
    pub fn contains(&self, key: u64) -> bool {
        self.keys[..self.len].contains(&key)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Picks one endpoint for a request.
pub trait Balance: Send + Sync {
    /// Index into `set.endpoints` of an endpoint in rotation and not in
    /// `tried`, or `None` when there is none.
    fn pick(&self, set: &EndpointSet, tried: &Tried) -> Option<usize>;
}

#[inline]
fn eligible(endpoint: &Endpoint, tried: &Tried) -> bool {
    endpoint.in_rotation() && (tried.is_empty() || !tried.contains(endpoint.key()))
}

pub fn for_algorithm(algorithm: Algorithm) -> Box<dyn Balance> {
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::default()),
        Algorithm::LeastConn => Box::new(LeastConn::default()),
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use super::*;
    use crate::proxy::pool::PoolSettings;

    pub fn endpoints(weights: &[u32]) -> EndpointSet {
        let endpoints = weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let e = Endpoint::new(
                    format!("e{i}"),
                    ([127, 0, 0, 1], 10_000 + i as u16).into(),
                    *w,
                    &PoolSettings::default(),
                );
                e.begin_epoch(Health::Up);
                e
            })
            .collect::<Vec<Arc<Endpoint>>>();
        EndpointSet { endpoints }
    }
}
