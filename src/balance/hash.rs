//! Consistent hashing (`hash` and `ip_hash`) with a Maglev lookup table.
//!
//! Maglev (Eisenbud et al., NSDI 2016; Envoy's `MAGLEV`): each backend has a
//! pseudo-random permutation of the `M` table slots derived from its id, and
//! the backends take turns claiming their next free slot until the table is
//! full. A key's backend is `table[key mod M]`: O(1), one memory read. Every
//! backend ends up with a near-equal share of slots (weighted: in proportion
//! to its weight), and removing one of N backends reassigns about 1/N of the
//! slots — mostly its own.
//!
//! - A backend's permutation follows its id (the URL of a static upstream,
//!   `app-N` for an instance) and backends claim slots in the order of their
//!   id's hash, so the table does not depend on the order of the endpoint
//!   set: shoal processes in front of the same upstreams agree, and a
//!   replaced instance takes over its slot's keys.
//! - An endpoint out of rotation (or already tried by this request) keeps
//!   its slots; a key that lands on one walks on to the next slot whose
//!   endpoint is eligible. So a key's backend is stable while the set and
//!   health are, a backend going down moves only its own keys (spread over
//!   the others by weight), and they come back when it does.
//! - A request without the key (`hash` with the header, cookie or parameter
//!   absent or empty) goes to a random slot: spread at random in proportion
//!   to weight.
//!
//! The table has `M` = 65537 slots (a prime, Envoy's default) whatever the
//! number of endpoints: were `M` to follow the set's size, a change of set
//! crossing a size step would remap nearly every key. It is built once per
//! endpoint set (about a millisecond, by the first pick that sees the set)
//! and cached lock-free; 256 KiB.

use std::net::IpAddr;

use http::header::HeaderName;
use shoal_config::HashKey;

use super::cache::PerSet;
use super::{eligible, stable_hash, Balance, EndpointSet, RequestView, Tried};

/// Slots in the table: a prime, so every permutation visits every slot.
const M: usize = 65537;
/// Slots walked past ineligible endpoints before scanning the endpoints
/// themselves (only when most of them are out of rotation or tried).
const WALK: usize = 64;

pub struct Hash {
    source: Source,
    table: PerSet<Maglev>,
}

enum Source {
    /// `ip_hash`.
    Client,
    Header(HeaderName),
    Cookie(String),
    Query(String),
    Path,
    /// `hash` without a key: every request is spread at random.
    Nothing,
}

impl Hash {
    /// `ip_hash`: the client's address, all of it (not nginx's /24).
    pub fn client_ip() -> Hash {
        Hash::with(Source::Client)
    }

    /// `hash` on `key`.
    pub fn on(key: Option<&HashKey>) -> Hash {
        Hash::with(match key {
            Some(HashKey::Header(name)) => match HeaderName::from_bytes(name.as_bytes()) {
                Ok(name) => Source::Header(name),
                // Validation accepts only valid names; be safe anyway.
                Err(_) => Source::Nothing,
            },
            Some(HashKey::Cookie(name)) => Source::Cookie(name.clone()),
            Some(HashKey::Query(name)) => Source::Query(name.clone()),
            Some(HashKey::Path) => Source::Path,
            None => Source::Nothing,
        })
    }

    fn with(source: Source) -> Hash {
        Hash {
            source,
            table: PerSet::default(),
        }
    }
}

/// The hash of an address: the 4 bytes of an IPv4 address (also when it
/// arrives IPv4-mapped on an IPv6 socket), the 16 of an IPv6 one.
pub(crate) fn hash_ip(ip: IpAddr) -> u64 {
    match ip.to_canonical() {
        IpAddr::V4(v4) => stable_hash(&v4.octets()),
        IpAddr::V6(v6) => stable_hash(&v6.octets()),
    }
}

/// The raw value of the first query parameter `name`.
fn query<'a>(req: &RequestView<'a>, name: &str) -> Option<&'a [u8]> {
    req.query()?.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k == name).then_some(v.as_bytes())
    })
}

impl Balance for Hash {
    fn uses_key(&self) -> bool {
        !matches!(self.source, Source::Nothing)
    }

    fn request_key(&self, req: &RequestView<'_>) -> Option<u64> {
        let bytes: &[u8] = match &self.source {
            Source::Client => return Some(hash_ip(req.client)),
            Source::Header(name) => req.headers.get(name.as_str())?,
            Source::Cookie(name) => req.cookie(name)?,
            Source::Query(name) => query(req, name)?,
            Source::Path => req.path().as_bytes(),
            Source::Nothing => return None,
        };
        (!bytes.is_empty()).then(|| stable_hash(bytes))
    }

    fn pick(&self, set: &EndpointSet, tried: &Tried, key: Option<u64>) -> Option<usize> {
        match set.endpoints.len() {
            0 => None,
            1 => eligible(&set.endpoints[0], tried).then_some(0),
            _ => self.table.with(set, Maglev::build, |table| {
                let slot = match key {
                    Some(key) => table.slot(key),
                    None => fastrand::usize(..table.entries.len()),
                };
                table.walk(set, tried, slot)
            }),
        }
    }
}

/// The Maglev lookup table of one endpoint set: slot → index into the set.
struct Maglev {
    entries: Vec<u32>,
}

impl Maglev {
    fn build(set: &EndpointSet) -> Maglev {
        let n = set.endpoints.len();
        let m = M;
        // Each endpoint's permutation: offset + j·skip (mod m), skip ≠ 0, so
        // it visits every slot (m is prime).
        let mut order: Vec<(u64, usize)> = set
            .endpoints
            .iter()
            .enumerate()
            .map(|(i, e)| (stable_hash(e.id.as_bytes()), i))
            .collect();
        order.sort_unstable();
        let perms: Vec<(usize, usize)> = order
            .iter()
            .map(|&(h, _)| {
                let h2 = stable_hash(&h.to_le_bytes());
                ((h % m as u64) as usize, (h2 % (m as u64 - 1)) as usize + 1)
            })
            .collect();
        let weights: Vec<u64> = order
            .iter()
            .map(|&(_, i)| u64::from(set.endpoints[i].weight.max(1)))
            .collect();
        let max_weight = weights.iter().copied().max().unwrap_or(1);

        const EMPTY: u32 = u32::MAX;
        let mut entries = vec![EMPTY; m];
        let mut next = perms.iter().map(|&(offset, _)| offset).collect::<Vec<_>>();
        let mut credit = vec![0u64; n];
        let mut filled = 0;
        // Weighted turns (Envoy's scheme): each round an endpoint earns its
        // weight and claims a slot per `max_weight` earned, so the heaviest
        // claims one every round and the others in proportion.
        'fill: loop {
            for (k, &(_, skip)) in perms.iter().enumerate() {
                credit[k] += weights[k];
                if credit[k] < max_weight {
                    continue;
                }
                credit[k] -= max_weight;
                loop {
                    let slot = next[k];
                    next[k] += skip;
                    if next[k] >= m {
                        next[k] -= m;
                    }
                    if entries[slot] == EMPTY {
                        entries[slot] = order[k].1 as u32;
                        break;
                    }
                }
                filled += 1;
                if filled == m {
                    break 'fill;
                }
            }
        }
        Maglev { entries }
    }

    /// The slot of `key`: a multiply-shift range reduction (no division).
    #[inline]
    fn slot(&self, key: u64) -> usize {
        ((u128::from(key) * self.entries.len() as u128) >> 64) as usize
    }

    /// The endpoint at `slot`, or the next slot's when that one is not
    /// eligible, and so on; deterministic for a given set and health.
    #[inline]
    fn walk(&self, set: &EndpointSet, tried: &Tried, slot: usize) -> Option<usize> {
        let m = self.entries.len();
        let mut at = slot;
        for _ in 0..WALK {
            let i = self.entries[at] as usize;
            if eligible(&set.endpoints[i], tried) {
                return Some(i);
            }
            at += 1;
            if at == m {
                at = 0;
            }
        }
        // Most endpoints are ineligible: scan them, from the slot's own.
        let n = set.endpoints.len();
        let start = self.entries[slot] as usize;
        (start..n)
            .chain(0..start)
            .find(|&i| eligible(&set.endpoints[i], tried))
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{endpoints, request};
    use super::super::Headers;
    use super::super::{Endpoint, Health};
    use super::*;
    use crate::proxy::pool::PoolSettings;
    use std::sync::Arc;

    fn key_of(i: u32) -> u64 {
        stable_hash(format!("user-{i}").as_bytes())
    }

    fn endpoint(id: &str, weight: u32) -> Arc<Endpoint> {
        let e = Endpoint::new(
            id.to_string(),
            ([127, 0, 0, 1], 1).into(),
            weight,
            &PoolSettings::default(),
        );
        e.begin_epoch(Health::Up);
        e
    }

    fn ids(n: usize) -> Vec<Arc<Endpoint>> {
        (0..n)
            .map(|i| endpoint(&format!("http://10.0.0.{i}:80"), 1))
            .collect()
    }

    /// Where each of `keys` goes, by endpoint id.
    fn assignment(b: &Hash, set: &EndpointSet, keys: u32) -> Vec<String> {
        (0..keys)
            .map(|k| {
                let i = b.pick(set, &Tried::default(), Some(key_of(k))).unwrap();
                set.endpoints[i].id.clone()
            })
            .collect()
    }

    #[test]
    fn a_keys_backend_is_stable_while_the_set_is() {
        let set = endpoints(&[1, 1, 1, 1, 1]);
        let b = Hash::on(Some(&HashKey::Path));
        let first = assignment(&b, &set, 1000);
        for _ in 0..3 {
            assert_eq!(assignment(&b, &set, 1000), first);
        }
        // Another balancer (another shoal process, a reload) and the same
        // endpoints in another order agree.
        let mut reordered = set.endpoints.clone();
        reordered.reverse();
        let reordered = EndpointSet::new(reordered);
        assert_eq!(
            assignment(&Hash::on(Some(&HashKey::Path)), &reordered, 1000),
            first
        );
    }

    /// The property: with one of N backends removed, at most
    /// 1/N + 5% of the keys change backend.
    #[test]
    fn removing_one_of_n_remaps_about_one_nth() {
        for n in [3usize, 5, 10, 20] {
            let all = ids(n);
            let before = assignment(&Hash::client_ip(), &EndpointSet::new(all.clone()), 10_000);
            for gone in [0, n / 2, n - 1] {
                let mut rest = all.clone();
                rest.remove(gone);
                let after = assignment(&Hash::client_ip(), &EndpointSet::new(rest), 10_000);
                let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
                let share = moved as f64 / 10_000.0;
                assert!(
                    share <= 1.0 / n as f64 + 0.05,
                    "n={n}, removed {gone}: {share}"
                );
                // Every key of the removed backend moved, and only a few others.
                let own = before.iter().filter(|id| **id == all[gone].id).count();
                assert!(moved >= own);
            }
            // Adding one back moves about as few.
            let mut more = all.clone();
            more.push(endpoint("http://10.0.1.1:80", 1));
            let after = assignment(&Hash::client_ip(), &EndpointSet::new(more), 10_000);
            let moved = before.iter().zip(&after).filter(|(a, b)| a != b).count();
            assert!(moved as f64 / 10_000.0 <= 1.0 / (n + 1) as f64 + 0.05);
        }
    }

    #[test]
    fn shares_follow_weights() {
        let set = EndpointSet::new(vec![
            endpoint("a", 1),
            endpoint("b", 2),
            endpoint("c", 3),
            endpoint("d", 4),
        ]);
        let b = Hash::on(Some(&HashKey::Path));
        let mut counts = [0u32; 4];
        for k in 0..20_000 {
            counts[b.pick(&set, &Tried::default(), Some(key_of(k))).unwrap()] += 1;
        }
        for (i, c) in counts.iter().enumerate() {
            let want = (i + 1) as f64 / 10.0;
            assert!((f64::from(*c) / 20_000.0 - want).abs() < 0.02, "{counts:?}");
        }
    }

    #[test]
    fn a_backend_down_moves_only_its_keys_and_they_come_back() {
        let set = EndpointSet::new(ids(10));
        let b = Hash::client_ip();
        let before = assignment(&b, &set, 5000);
        set.endpoints[3].begin_epoch(Health::Down);
        let during = assignment(&b, &set, 5000);
        let mut spread = std::collections::HashSet::new();
        for (x, y) in before.iter().zip(&during) {
            if *x == set.endpoints[3].id {
                assert_ne!(y, x);
                spread.insert(y.clone());
            } else {
                assert_eq!(x, y);
            }
        }
        // The orphaned keys spread over the others rather than one neighbour.
        assert!(spread.len() >= 7, "{spread:?}");
        // Stable while down, too.
        assert_eq!(assignment(&b, &set, 5000), during);
        set.endpoints[3].begin_epoch(Health::Up);
        assert_eq!(assignment(&b, &set, 5000), before);
    }

    #[test]
    fn a_retry_walks_on_deterministically() {
        let set = EndpointSet::new(ids(5));
        let b = Hash::client_ip();
        for k in 0..100 {
            let key = Some(key_of(k));
            let first = b.pick(&set, &Tried::default(), key).unwrap();
            let mut tried = Tried::default();
            tried.push(set.endpoints[first].key());
            let second = b.pick(&set, &tried, key).unwrap();
            assert_ne!(first, second);
            assert_eq!(b.pick(&set, &tried, key), Some(second));
        }
    }

    #[test]
    fn requests_without_the_key_are_spread() {
        let set = endpoints(&[1, 1, 2]);
        let b = Hash::on(Some(&HashKey::Header("x-user".into())));
        let (client, headers, uri) = request([10, 0, 0, 1], "/");
        let req = RequestView {
            listener: "",
            host: None,
            client,
            method: "GET",
            target: uri.path_and_query().unwrap().as_str(),
            headers: Headers::Map(&headers),
        };
        assert_eq!(b.request_key(&req), None);
        let mut counts = [0u32; 3];
        for _ in 0..4000 {
            counts[b.pick(&set, &Tried::default(), None).unwrap()] += 1;
        }
        assert!(counts.iter().all(|&c| c > 700), "{counts:?}");
        assert!(counts[2] > counts[0] + 500, "{counts:?}");
    }

    #[test]
    fn keys_from_each_source() {
        let (client, mut headers, _) = request([192, 0, 2, 7], "/");
        headers.append("x-user-id", "alice".parse().unwrap());
        headers.append("cookie", "theme=dark; session=abc123".parse().unwrap());
        headers.append("cookie", "session=later".parse().unwrap());
        headers.append("x-empty", "".parse().unwrap());
        let uri: http::Uri = "http://h/a/b?x=1&user=bob&user=eve&flag".parse().unwrap();
        let req = RequestView {
            listener: "",
            host: None,
            client,
            method: "GET",
            target: uri.path_and_query().unwrap().as_str(),
            headers: Headers::Map(&headers),
        };
        let key = |k: Option<HashKey>| Hash::on(k.as_ref()).request_key(&req);
        let h = |s: &str| Some(stable_hash(s.as_bytes()));
        assert_eq!(key(Some(HashKey::Header("X-User-Id".into()))), h("alice"));
        assert_eq!(key(Some(HashKey::Cookie("session".into()))), h("abc123"));
        assert_eq!(key(Some(HashKey::Query("user".into()))), h("bob"));
        assert_eq!(key(Some(HashKey::Path)), h("/a/b"));
        // Absent or empty: no key.
        assert_eq!(key(Some(HashKey::Header("x-none".into()))), None);
        assert_eq!(key(Some(HashKey::Header("x-empty".into()))), None);
        assert_eq!(key(Some(HashKey::Cookie("sess".into()))), None);
        assert_eq!(key(Some(HashKey::Query("flag".into()))), None);
        assert_eq!(key(Some(HashKey::Query("us".into()))), None);
        assert_eq!(key(None), None);
        // ip_hash: the whole address; IPv4-mapped IPv6 is the same client.
        let ip = Hash::client_ip();
        let k = ip.request_key(&req);
        assert_eq!(k, Some(hash_ip(client)));
        let mapped = RequestView {
            listener: "",
            host: None,
            client: "::ffff:192.0.2.7".parse().unwrap(),
            ..req
        };
        assert_eq!(ip.request_key(&mapped), k);
        let neighbour = RequestView {
            listener: "",
            host: None,
            client: "192.0.2.8".parse().unwrap(),
            ..req
        };
        assert_ne!(ip.request_key(&neighbour), k);
    }

    #[test]
    fn tables_are_full_and_even() {
        for n in [2, 7, 100, 1000] {
            let set = EndpointSet::new(ids(n));
            let t = Maglev::build(&set);
            assert_eq!(t.entries.len(), M);
            let mut slots = vec![0usize; n];
            for &i in &t.entries {
                slots[i as usize] += 1;
            }
            let fair = M / n;
            // Maglev gives every backend its share, give or take one slot.
            assert!(
                slots.iter().all(|&s| s.abs_diff(fair) <= 1),
                "{n}: {slots:?}"
            );
        }
    }
}
