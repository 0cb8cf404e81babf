//! `mode: lease`: a replica takes several tokens of a key's bucket in one
//! store call and spends them here, one request each, and remembers a
//! refusal until one more request could pass — so most decisions need no
//! round trip.
//!
//! What it costs in exactness. Every request let through was counted in
//! the store (as part of a lease) before it passed, so a lease never lets
//! more through in total than `exact`; what changes is *when*: tokens a
//! replica holds may be spent later than they were counted. In any window
//! at most N × (L − 1) more requests pass than `exact` would let through,
//! for N replicas and leases of L tokens (the tokens held when the window
//! opens; when several requests of one key miss at once on a replica, each
//! takes a lease and the tokens add up: (L − 1) per such request). A remembered refusal can only refuse what the store would have
//! refused then or lets one through later than it could have (a key reset
//! by the admin API, or a bigger limit set at run time, is seen at once:
//! both drop what is held here). Leases held when a rule changes are
//! dropped; a lease is used at most until its bucket would be full again.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;

use super::{Quota, Verdict};

const SHARDS: usize = 16;

/// One shard: what is held per key.
type Shard = HashMap<Box<[u8]>, Held>;

/// Tokens a lease takes: 5 % of the burst, at least 1, at most 1000.
pub fn size(quota: Quota) -> u32 {
    quota.burst.div_ceil(20).clamp(1, 1000)
}

/// What this replica holds for one key.
#[derive(Debug, Clone, Copy)]
struct Held {
    /// The settings it was taken under; another quota drops it.
    quota: Quota,
    /// Tokens left to spend here.
    tokens: u32,
    /// The bucket's `remaining` once every token held is spent.
    remaining: u32,
    /// When the bucket would be full again (policy clock, ns).
    full_at: u64,
    /// A refusal remembered until then (0: none).
    refused_until: u64,
    retry_full_at: u64,
}

pub struct Leases {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: usize,
}

impl Leases {
    pub fn new(max_keys: u64) -> Leases {
        Leases {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            hasher: RandomState::new(),
            per_shard: (max_keys as usize).div_ceil(SHARDS).max(1),
        }
    }

    fn shard(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Shard> {
        let i = self.hasher.hash_one(key) as usize % SHARDS;
        self.shards[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The decision from what is held here, if it can be made here.
    pub fn take(&self, key: &[u8], quota: Quota, now: u64) -> Option<Verdict> {
        let mut shard = self.shard(key);
        let held = shard.get_mut(key)?;
        if held.quota != quota || now >= held.full_at.max(held.refused_until) {
            shard.remove(key);
            return None;
        }
        if now < held.refused_until {
            return Some(Verdict {
                allowed: false,
                remaining: 0,
                reset_ns: held.retry_full_at.saturating_sub(now),
                retry_after_ns: held.refused_until - now,
            });
        }
        if held.tokens == 0 {
            shard.remove(key);
            return None;
        }
        held.tokens -= 1;
        let verdict = Verdict {
            allowed: true,
            remaining: held.remaining + held.tokens,
            reset_ns: held.full_at - now,
            retry_after_ns: 0,
        };
        if held.tokens == 0 {
            shard.remove(key);
        }
        Some(verdict)
    }

    /// The store's answer for a lease of `key` (the first token, if any,
    /// already spent on the request that asked); returns that request's
    /// verdict.
    pub fn keep(&self, key: &[u8], quota: Quota, now: u64, v: Verdict, granted: u32) -> Verdict {
        let held = if v.allowed {
            if granted <= 1 {
                return v;
            }
            Held {
                quota,
                tokens: granted - 1,
                remaining: v.remaining,
                full_at: now + v.reset_ns,
                refused_until: 0,
                retry_full_at: 0,
            }
        } else {
            Held {
                quota,
                tokens: 0,
                remaining: 0,
                full_at: 0,
                refused_until: now + v.retry_after_ns,
                retry_full_at: now + v.reset_ns,
            }
        };
        let mut shard = self.shard(key);
        if shard.len() >= self.per_shard && !shard.contains_key(key) {
            // Full: drop what has run out; if nothing has, one at random
            // (its tokens are lost: fewer requests pass, never more).
            shard.retain(|_, h| now < h.full_at.max(h.refused_until));
            if shard.len() >= self.per_shard {
                if let Some(k) = shard.keys().next().cloned() {
                    shard.remove(&k);
                }
            }
        }
        let held = match shard.get(key) {
            // Requests that missed at once each took a lease: the tokens
            // add up (a refusal never hides tokens still held).
            Some(old) if old.quota == quota && old.tokens > 0 => Held {
                tokens: old.tokens + held.tokens,
                remaining: held.remaining,
                full_at: old.full_at.max(held.full_at),
                ..*old
            },
            _ => held,
        };
        shard.insert(key.into(), held);
        Verdict {
            remaining: v.remaining + held.tokens,
            ..v
        }
    }

    /// Drop what is held for `key` (the admin API's reset).
    pub fn forget(&self, key: &[u8]) {
        self.shard(key).remove(key);
    }

    /// Drop everything held (a rule changed at run time).
    pub fn clear(&self) {
        for s in self.shards.iter() {
            s.lock().unwrap_or_else(|p| p.into_inner()).clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn a_lease_is_spent_here_then_asked_again() {
        let leases = Leases::new(100);
        let q = Quota::new(Duration::from_secs(36), 100);
        assert_eq!(size(q), 5);
        assert_eq!(leases.take(b"k", q, SEC), None);
        // The store granted 5 of 100: 95 left there.
        let first = Verdict {
            allowed: true,
            remaining: 95,
            reset_ns: 5 * 36 * SEC,
            retry_after_ns: 0,
        };
        let v = leases.keep(b"k", q, SEC, first, 5);
        assert_eq!(v.remaining, 99);
        for want in (95..99).rev() {
            let v = leases.take(b"k", q, SEC).unwrap();
            assert!(v.allowed);
            assert_eq!(v.remaining, want);
        }
        assert_eq!(leases.take(b"k", q, SEC), None, "spent: ask the store");
    }

    #[test]
    fn a_refusal_is_remembered_until_it_would_pass() {
        let leases = Leases::new(100);
        let q = Quota::new(Duration::from_secs(1), 10);
        let refused = Verdict {
            allowed: false,
            remaining: 0,
            reset_ns: 10 * SEC,
            retry_after_ns: SEC,
        };
        leases.keep(b"k", q, 0, refused, 0);
        let v = leases.take(b"k", q, SEC / 2).unwrap();
        assert!(!v.allowed);
        assert_eq!(v.retry_after_ns, SEC / 2);
        assert_eq!(leases.take(b"k", q, SEC), None);
        // Another quota (a run-time change) drops it at once.
        leases.keep(b"k", q, 0, refused, 0);
        assert_eq!(
            leases.take(b"k", Quota::new(Duration::from_secs(1), 20), 1),
            None
        );
    }
}
