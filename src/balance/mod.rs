//! Balancing: the endpoint table and the algorithms that pick from it.
//!
//! The balancer never knows where endpoints come from (supervised instances or
//! static upstreams); it sees only the table's current snapshot.
//!
//! Every algorithm picks without a lock and without allocating: what an
//! algorithm precomputes for a set of endpoints (the smooth weighted schedule,
//! the Maglev table, the alias table) is built once per set and cached behind
//! an `ArcSwap`, keyed by the set's generation ([`cache::PerSet`]).

mod cache;
mod endpoint;
mod ewma;
mod hash;
mod least_conn;
mod p2c;
pub mod panic;
mod random;
mod round_robin;
pub mod slow_start;
mod table;

pub use endpoint::{
    CheckReport, Endpoint, Health, HealthWord, InFlight, PassiveHealth, RESPONSE_CLASSES,
};
pub use hash::Hash;
pub use least_conn::LeastConn;
pub use p2c::P2cEwma;
pub use random::Random;
pub use round_robin::RoundRobin;
pub use table::{EndpointSet, EndpointTable};

use shoal_config::{Algorithm, BalanceConfig};

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

/// What a balancer may look at in a request: the engine-neutral view of
/// its head (client address, target, headers).
pub use crate::proxy::view::{Headers, RequestView};

/// Picks one endpoint for a request.
///
/// A pick happens in two steps so that the request's parts never need to be
/// kept (or copied) across the retry loop:
///
/// 1. [`request_key`](Balance::request_key), once per request, before the
///    request's parts are moved into the request that is sent: it reduces
///    whatever the algorithm needs of the request (the client's address for
///    `ip_hash`, a header, cookie, query parameter or the path for `hash`)
///    to one `u64` — a hash computed in place, with no allocation. The other
///    algorithms need nothing and return `None` (the default).
/// 2. [`pick`](Balance::pick), once per attempt, with that key: a retry of
///    the same request passes the same key, so hashing algorithms walk on
///    deterministically from the key's place to the next eligible endpoint.
pub trait Balance: Send + Sync {
    /// The request's affinity key, or `None` when the algorithm does not use
    /// one or the request does not carry it (then `hash` spreads the request
    /// at random in proportion to weight).
    fn request_key(&self, _req: &RequestView<'_>) -> Option<u64> {
        None
    }

    /// Whether [`request_key`](Balance::request_key) can return a key:
    /// when not, an engine need not build the request's view for it.
    fn uses_key(&self) -> bool {
        false
    }

    /// Index into `set.endpoints` of an endpoint in rotation and not in
    /// `tried`, or `None` when there is none. `key` is what
    /// [`request_key`](Balance::request_key) returned for this request.
    fn pick(&self, set: &EndpointSet, tried: &Tried, key: Option<u64>) -> Option<usize>;
}

#[inline]
fn eligible(endpoint: &Endpoint, tried: &Tried) -> bool {
    endpoint.in_rotation() && (tried.is_empty() || !tried.contains(endpoint.key()))
}

/// The balancer `balance` describes.
pub fn from_config(balance: &BalanceConfig) -> Box<dyn Balance> {
    match balance.algorithm {
        Algorithm::Hash => Box::new(Hash::on(balance.hash_key.as_ref())),
        other => for_algorithm(other),
    }
}

/// The balancer for an algorithm that needs no other setting (`hash` without
/// its `hash_key` spreads every request at random, weighted).
pub fn for_algorithm(algorithm: Algorithm) -> Box<dyn Balance> {
    match algorithm {
        // `weighted` is nginx's name for the same smooth weighted round robin.
        Algorithm::RoundRobin | Algorithm::Weighted => Box::new(RoundRobin::default()),
        Algorithm::LeastConn => Box::new(LeastConn::default()),
        Algorithm::IpHash => Box::new(Hash::client_ip()),
        Algorithm::Hash => Box::new(Hash::on(None)),
        Algorithm::Random => Box::new(Random::default()),
        Algorithm::P2cEwma => Box::new(P2cEwma),
    }
}

/// A stable 64-bit hash (the same in every shoal process and version, unlike
/// std's `DefaultHasher`), so that shoal processes in front of the same
/// backends send a key to the same one. A wyhash-style multiply-fold per
/// 8 bytes; quality is ample for balancing, it is not meant to resist
/// chosen inputs (a client can pin itself to one backend anyway by reusing
/// one key).
#[inline]
pub(crate) fn stable_hash(bytes: &[u8]) -> u64 {
    const K0: u64 = 0xa076_1d64_78bd_642f;
    const K1: u64 = 0xe703_7ed1_a0b4_28db;
    const K2: u64 = 0x8ebc_6af0_9c88_c6e3;
    #[inline]
    fn fold(a: u64, b: u64) -> u64 {
        let r = u128::from(a) * u128::from(b);
        (r as u64) ^ ((r >> 64) as u64)
    }
    let mut h = K0 ^ bytes.len() as u64;
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        h = fold(h ^ u64::from_le_bytes(w), K1);
    }
    let rest = chunks.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = fold(h ^ u64::from_le_bytes(w), K1);
    }
    fold(h ^ K2, K1 ^ K2)
}

#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use super::*;
    use crate::proxy::pool::PoolSettings;

    /// Pick 10,000 times and check each endpoint's share is within 2 points
    /// of its weight's share.
    pub fn assert_weight_shares(b: &dyn Balance, weights: &[u32], what: &str) {
        let set = endpoints(weights);
        let mut counts = vec![0u32; weights.len()];
        for _ in 0..10_000 {
            counts[b.pick(&set, &Tried::default(), None).unwrap()] += 1;
        }
        let total: u32 = weights.iter().sum();
        for (i, w) in weights.iter().enumerate() {
            let want = f64::from(*w) / f64::from(total);
            let got = f64::from(counts[i]) / 10_000.0;
            assert!((got - want).abs() < 0.02, "{what} {weights:?}: {counts:?}");
        }
    }

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
        EndpointSet::new(endpoints)
    }

    /// A request with no headers, from `client`, for `target`.
    pub fn request(
        client: [u8; 4],
        target: &str,
    ) -> (std::net::IpAddr, http::HeaderMap, http::Uri) {
        (
            std::net::IpAddr::from(client),
            http::HeaderMap::new(),
            target.parse().unwrap(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::endpoints;
    use super::*;

    fn all() -> Vec<(&'static str, Box<dyn Balance>)> {
        Algorithm::ALL
            .into_iter()
            .map(|a| {
                let config = BalanceConfig {
                    algorithm: a,
                    hash_key: (a == Algorithm::Hash).then_some(shoal_config::HashKey::Path),
                    ..BalanceConfig::default()
                };
                (a.as_str(), from_config(&config))
            })
            .collect()
    }

    #[test]
    fn every_algorithm_skips_ineligible_and_tried_endpoints() {
        for (name, b) in all() {
            let set = endpoints(&[1, 2, 1, 3, 1]);
            set.endpoints[1].begin_epoch(Health::Down);
            set.endpoints[3].begin_epoch(Health::Starting);
            let mut tried = Tried::default();
            tried.push(set.endpoints[0].key());
            for k in 0..200u64 {
                let key = Some(k.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                for key in [key, None] {
                    let i = b.pick(&set, &tried, key).unwrap();
                    assert!(i == 2 || i == 4, "{name} picked {i}");
                }
            }
            tried.push(set.endpoints[2].key());
            for k in 0..50u64 {
                assert_eq!(b.pick(&set, &tried, Some(k)), Some(4), "{name}");
                assert_eq!(b.pick(&set, &tried, None), Some(4), "{name}");
            }
            tried.push(set.endpoints[4].key());
            assert_eq!(b.pick(&set, &tried, Some(7)), None, "{name}");
            assert_eq!(b.pick(&set, &tried, None), None, "{name}");
            // Nothing in rotation at all.
            let down = endpoints(&[1, 1, 1]);
            for e in &down.endpoints {
                e.begin_epoch(Health::Stopped);
            }
            assert_eq!(b.pick(&down, &Tried::default(), Some(1)), None, "{name}");
            assert_eq!(b.pick(&down, &Tried::default(), None), None, "{name}");
            assert_eq!(
                b.pick(&EndpointSet::default(), &Tried::default(), None),
                None,
                "{name}"
            );
            // A single endpoint.
            let one = endpoints(&[5]);
            assert_eq!(b.pick(&one, &Tried::default(), Some(3)), Some(0), "{name}");
        }
    }

    #[test]
    fn every_algorithm_uses_every_endpoint_and_follows_set_changes() {
        for (name, b) in all() {
            let set = endpoints(&[1, 1, 1, 1]);
            let mut seen = [false; 4];
            for k in 0..400u64 {
                let key = Some(stable_hash(&k.to_le_bytes()));
                seen[b.pick(&set, &Tried::default(), key).unwrap()] = true;
            }
            assert_eq!(seen, [true; 4], "{name}");
            // A smaller set right after (a cached schedule or table must not
            // be reused for it).
            let small = endpoints(&[1, 1]);
            for k in 0..100u64 {
                assert!(b.pick(&small, &Tried::default(), Some(k)).unwrap() < 2);
            }
        }
    }

    #[test]
    fn stable_hash_is_stable_and_spreads() {
        // Fixed values: a change here remaps every hashed key in production
        // (and shoal processes of two versions would disagree).
        assert_eq!(stable_hash(b""), 0x32fd_7808_eec6_a275);
        assert_eq!(stable_hash(b"alice"), 0x1f13_5451_59e5_f8e2);
        assert_eq!(stable_hash(b"/a/b/c/d/e/f/g"), 0xee2c_6a7c_04b1_3c9d);
        assert_ne!(stable_hash(b"a"), stable_hash(b"b"));
        assert_ne!(stable_hash(b"abcdefgh"), stable_hash(b"abcdefgh\0"));
        let mut buckets = [0u32; 16];
        for i in 0..16_000u32 {
            buckets[(stable_hash(format!("user-{i}").as_bytes()) >> 60) as usize] += 1;
        }
        for b in buckets {
            assert!((900..1100).contains(&b), "{buckets:?}");
        }
    }
}
