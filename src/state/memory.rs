//! The in-process store: each key's TAT in one of 64 shards, a plain map
//! under a mutex each (a decision holds one shard's lock for one lookup).
//! At most `max_keys` keys: when a shard is full, the keys whose TAT has
//! passed go first — forgetting them changes no decision (`gcra`) — and if
//! that frees too little, the keys closest to full go next (their clients
//! lose what they had used of their burst).
//!
//! Keys are hashed with foldhash, seeded per process: a decision is on
//! every request, and SipHash cost more than the rest of it. foldhash's
//! random seed keeps a client from choosing colliding keys without knowing
//! it, and a shard holds at most `max_keys / 64` keys, so even a chain of
//! collisions is bounded.

use std::collections::HashMap;
use std::hash::BuildHasher;

use foldhash::fast::RandomState;
use std::sync::Mutex;

use super::gcra::{self, Quota, Verdict};
use super::{Ask, StateError, Store};

const SHARDS: usize = 64;

/// One shard: each key's TAT.
type Shard = HashMap<Box<[u8]>, u64, RandomState>;

pub struct MemoryStore {
    shards: Box<[Mutex<Shard>]>,
    /// Which shard a key is in (seeded per process).
    hasher: RandomState,
    per_shard: usize,
}

impl MemoryStore {
    pub fn new(max_keys: u64) -> MemoryStore {
        let per_shard = (max_keys as usize).div_ceil(SHARDS).max(1);
        MemoryStore {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::default(),
            per_shard,
        }
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        // The top bits: the map inside uses the low ones.
        let i = (self.hasher.hash_one(key) >> 58) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decision for `key` now (on the policy clock), counted.
    pub fn decide(&self, key: &[u8], quota: Quota, now: u64) -> Verdict {
        let mut shard = self.shard(key);
        let tat = shard.get(key).copied();
        let (verdict, new_tat) = gcra::decide(tat, now, quota, 1);
        if let Some(new_tat) = new_tat {
            match shard.get_mut(key) {
                Some(t) => *t = new_tat,
                None => {
                    if shard.len() >= self.per_shard {
                        make_room(&mut shard, now, self.per_shard);
                    }
                    shard.insert(key.into(), new_tat);
                }
            }
        }
        verdict
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|p| p.into_inner()).len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn forget_key(&self, key: &[u8]) -> bool {
        self.shard(key).remove(key).is_some()
    }
}

/// Frees at least an eighth of a full shard: keys already back to full
/// first, then the ones nearest to it.
fn make_room(shard: &mut Shard, now: u64, cap: usize) {
    shard.retain(|_, tat| *tat > now);
    let target = cap - cap.div_ceil(8);
    if shard.len() <= target {
        return;
    }
    let mut tats: Vec<u64> = shard.values().copied().collect();
    let cut = shard.len() - target;
    let (_, nth, _) = tats.select_nth_unstable(cut - 1);
    let nth = *nth;
    let mut dropped = 0;
    shard.retain(|_, tat| {
        if *tat <= nth && dropped < cut {
            dropped += 1;
            false
        } else {
            true
        }
    });
}

impl Store for MemoryStore {
    async fn check(&self, asks: &[Ask<'_>], out: &mut Vec<Verdict>) -> Result<(), StateError> {
        let now = crate::clock::now_ns();
        out.extend(asks.iter().map(|a| self.decide(a.key, a.quota, now)));
        Ok(())
    }

    async fn forget(&self, key: &[u8]) -> Result<bool, StateError> {
        Ok(self.forget_key(key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn keys_stay_within_max_keys() {
        let store = MemoryStore::new(6_400);
        let q = Quota::new(Duration::from_secs(3600), 10);
        for i in 0..100_000u32 {
            store.decide(&i.to_be_bytes(), q, 1_000);
        }
        assert!(store.len() <= 6_400, "{} keys", store.len());
        assert!(store.len() >= 5_000, "{} keys", store.len());
    }

    #[test]
    fn expired_keys_go_first() {
        // 16 keys a shard; one long-lived key among 10,000 short-lived
        // ones (each back to full 1 ms after it was counted; time moves
        // 2 ms between two): every full shard finds room in expired keys.
        let store = MemoryStore::new(1_024);
        let short = Quota::new(Duration::from_millis(1), 1);
        let long = Quota::new(Duration::from_secs(3600), 1);
        store.decide(b"kept", long, 0);
        for i in 0..10_000u32 {
            store.decide(&i.to_be_bytes(), short, u64::from(i + 1) * 2_000_000);
        }
        // `kept` is still counted: a second request is refused.
        assert!(!store.decide(b"kept", long, 20_001_000_000).allowed);
    }
}
