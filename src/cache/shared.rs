//! The shared tier (L2, `cache.redis`): stored responses in the state
//! backend's Redis, so every replica sharing it shares their hits; and
//! the purges every replica applies to its own memory tier.
//!
//! - A lookup that misses in memory asks Redis (one `GET`; two when the
//!   key's responses vary); what it finds fills the memory tier.
//! - A store writes to Redis behind the memory tier, in the background:
//!   the client never waits for Redis.
//! - A purge (the admin API, an unsafe method's success) deletes from
//!   Redis and adds itself to a stream; every replica reads the stream
//!   each [`FOLLOW`] and drops the same responses from its memory.
//! - Redis down: every call fails at once or within `command_timeout`
//!   (the state backend's), read as a miss; memory goes on alone.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::HeaderName;
use shoal_config::{CacheRedis, TooLarge};

use super::key;
use super::record::{self, Record};
use super::store::{Entry, Purge, Store};
use crate::state::RedisStore;

/// How often a replica reads the purges the others made.
pub const FOLLOW: Duration = Duration::from_millis(250);

/// The Redis tier's counters.
#[derive(Debug, Default)]
pub struct SharedCounts {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub errors: AtomicU64,
    pub stores: AtomicU64,
    pub written_bytes: AtomicU64,
    /// Stored responses not expired yet (by the index), read each second.
    pub entries: AtomicU64,
}

pub struct Shared {
    redis: RedisStore,
    pub settings: CacheRedis,
    /// This process's name in the purge stream (it skips its own).
    me: String,
    pub counts: SharedCounts,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Shared {
    pub fn new(redis: RedisStore, settings: CacheRedis) -> Shared {
        Shared {
            redis,
            settings,
            me: format!("{}-{:016x}", std::process::id(), fastrand::u64(..)),
            counts: SharedCounts::default(),
        }
    }

    /// Whether a response of `len` bytes goes to Redis; `None`: it is
    /// not stored anywhere (`too_large: pass`).
    pub fn takes(&self, len: usize) -> Option<bool> {
        if len as u64 <= self.settings.max_item_size {
            Some(true)
        } else if self.settings.too_large == TooLarge::Memory {
            Some(false)
        } else {
            None
        }
    }

    async fn read(&self, key: &str) -> Option<Record> {
        match self.redis.cache_get(key).await {
            Ok(Some(v)) => record::decode(v),
            Ok(None) => None,
            Err(_) => {
                self.counts.errors.fetch_add(1, Relaxed);
                None
            }
        }
    }

    /// The response stored for `primary` whose `Vary` headers match `req`,
    /// and the names it varies on (empty: it does not).
    pub async fn get(
        &self,
        primary: &str,
        known: Option<Arc<[HeaderName]>>,
        req: &http::HeaderMap,
    ) -> Option<(Arc<Entry>, Vec<HeaderName>)> {
        // Unless the names are known, the primary key holds the response
        // itself, or the names its responses vary on.
        let names = match known {
            Some(names) => names.to_vec(),
            None => match self.read(primary).await {
                Some(Record::Entry(e)) => return self.found(Some((e, Vec::new()))),
                Some(Record::Vary(names)) => names,
                None => return self.found(None),
            },
        };
        let secondary = super::vary::secondary(primary, &names, req);
        let entry = match self.read(&secondary).await {
            Some(Record::Entry(e)) => Some((e, names)),
            _ => None,
        };
        self.found(entry)
    }

    /// Counts a lookup's result.
    fn found<T>(&self, found: Option<T>) -> Option<T> {
        let counter = if found.is_some() {
            &self.counts.hits
        } else {
            &self.counts.misses
        };
        counter.fetch_add(1, Relaxed);
        found
    }

    /// Writes `entry` (under `key`; `vary`: the primary key and its names
    /// when it varies) in the background, for as long as it is kept.
    pub fn put(
        self: &Arc<Self>,
        key: String,
        vary: Option<(String, Vec<HeaderName>)>,
        entry: &Arc<Entry>,
    ) {
        if tokio::runtime::Handle::try_current().is_err() {
            return;
        }
        let elapsed = SystemTime::now()
            .duration_since(entry.times.response)
            .unwrap_or_default();
        let ttl = entry.keep.saturating_sub(elapsed);
        if ttl < Duration::from_millis(10) {
            return;
        }
        let value = record::encode_entry(entry);
        let me = self.clone();
        tokio::spawn(async move {
            let now = now_ms();
            let len = value.len() as u64;
            if let Some((primary, names)) = vary {
                // The names outlive any one variant (kept as long as the
                // memory tier keeps them).
                let names = record::encode_vary(&names);
                if me
                    .redis
                    .cache_put(&primary, names, Duration::from_secs(86_400), now)
                    .await
                    .is_err()
                {
                    me.counts.errors.fetch_add(1, Relaxed);
                    return;
                }
            }
            match me.redis.cache_put(&key, value, ttl, now).await {
                Ok(()) => {
                    me.counts.stores.fetch_add(1, Relaxed);
                    me.counts.written_bytes.fetch_add(len, Relaxed);
                }
                Err(_) => {
                    me.counts.errors.fetch_add(1, Relaxed);
                }
            }
        });
    }

    /// Deletes what `purge` names from Redis and tells every replica;
    /// how many responses Redis held.
    pub async fn purge(&self, purge: &Purge) -> Result<u64, String> {
        let keys = self.redis.cache_keys().await.map_err(|e| e.to_string())?;
        let doomed: Vec<String> = keys
            .into_iter()
            // A primary key's `Vary` names are under the key itself,
            // so they go with its responses.
            .filter(|k| purge.takes(k))
            .collect();
        let removed = self
            .redis
            .cache_delete(doomed)
            .await
            .map_err(|e| e.to_string())?;
        let (kind, value) = match purge {
            Purge::Url(u) => ("url", u.as_str()),
            Purge::Prefix(p) => ("prefix", p.as_str()),
            Purge::All => ("all", ""),
        };
        self.redis
            .cache_publish_purge(&[("from", &self.me), ("kind", kind), ("value", value)])
            .await
            .map_err(|e| e.to_string())?;
        Ok(removed)
    }

    /// A purge the others made, from the stream's fields; `None` when it
    /// is this process's own (applied already) or not understood.
    fn purge_of(&self, fields: &[String]) -> Option<Purge> {
        let field = |name: &str| {
            fields
                .chunks(2)
                .find(|kv| kv[0] == name)
                .and_then(|kv| kv.get(1))
                .cloned()
        };
        if field("from").as_deref() == Some(self.me.as_str()) {
            return None;
        }
        match (field("kind")?.as_str(), field("value")) {
            ("url", Some(u)) => Some(Purge::Url(u)),
            ("prefix", Some(p)) => Some(Purge::Prefix(p)),
            ("all", _) => Some(Purge::All),
            _ => None,
        }
    }
}

/// While `store` lives: each [`FOLLOW`], apply the purges other replicas
/// made to the memory tier; each second, count Redis's entries.
pub async fn follow(store: Weak<Store>) {
    let mut tick = tokio::time::interval(FOLLOW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // A stream id is Redis's clock in ms: start with the purges since
    // a little before this process began caching (the clocks may differ
    // a little; a purge applied to a memory tier still empty costs
    // nothing), not after whatever the stream's last one is when Redis is
    // first reached, which may be a purge made since.
    let mut last = format!("{}-0", now_ms().saturating_sub(5_000));
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        let Some(store) = store.upgrade() else { return };
        let Some(shared) = store.l2() else { continue };
        if shared.redis.connected() == 0 {
            continue;
        }
        ticks += 1;
        if ticks % 4 == 1 {
            if let Ok(n) = shared.redis.cache_entries(now_ms()).await {
                shared.counts.entries.store(n, Relaxed);
            }
        }
        let Ok(purges) = shared.redis.cache_purges_after(&last, 1000).await else {
            continue;
        };
        for (id, fields) in purges {
            if let Some(purge) = shared.purge_of(&fields) {
                let n = store.purge_memory(&purge);
                tracing::debug!(?purge, removed = n, "cache: a purge from another replica");
            }
            last = id;
        }
    }
}

impl Purge {
    /// Whether the response stored under key `k` is one this purge takes.
    pub fn takes(&self, k: &str) -> bool {
        match self {
            Purge::Url(u) => key::url(k) == u,
            Purge::Prefix(p) => key::url(k).starts_with(p.as_str()),
            Purge::All => true,
        }
    }
}
