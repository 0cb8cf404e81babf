//! The stored responses: the in-memory tier (L1, `moka`), the shared tier
//! (L2, Redis: `shared.rs`) behind it when configured, the `Vary` names
//! remembered per primary key, and the process's one store (it outlives
//! reloads).
//!
//! A lookup asks memory first, then Redis (filling memory with what it
//! finds); a store writes memory, and Redis behind it; a purge reaches
//! memory, Redis and, through Redis, every replica's memory.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderName};
use http::StatusCode;
use moka::notification::RemovalCause;
use moka::Expiry;
use shoal_config::{CacheMemory, CacheRedis};

use super::coalesce::Coalescer;
use super::policy::{Directives, Times};
use super::shared::{self, Shared};
use super::vary;
use crate::state::RedisStore;

/// One stored response: a `GET`'s status, headers (hop-by-hop ones gone)
/// and whole body, with what its age and freshness are worked out from.
#[derive(Debug)]
pub struct Entry {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
    pub times: Times,
    /// The freshness lifetime, worked out when it was stored.
    pub lifetime: Duration,
    pub cc: Directives,
    /// How long the store keeps it: its lifetime, the stale windows it
    /// allows, and a while more when it can be revalidated.
    pub keep: Duration,
}

/// `headers` with values of their own: a parsed value may be a slice of
/// the connection's read buffer, which a stored entry would keep alive.
pub fn owned(headers: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        let mut v =
            http::HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
        v.set_sensitive(value.is_sensitive());
        out.append(name.clone(), v);
    }
    out
}

/// A stored response is kept this much past its freshness when it has a
/// validator (an `ETag` or `Last-Modified`), so the next request asks
/// the backend with a conditional request instead of a full one.
const REVALIDATE_FOR: Duration = Duration::from_secs(3600);

impl Entry {
    pub fn new(
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
        times: Times,
        lifetime: Duration,
    ) -> Entry {
        let cc = Directives::of_response(&headers);
        let secs = |s: Option<u64>| Duration::from_secs(s.unwrap_or(0));
        let validator = headers.contains_key(http::header::ETAG)
            || headers.contains_key(http::header::LAST_MODIFIED);
        let stale = secs(cc.stale_while_revalidate).max(secs(cc.stale_if_error));
        let extra = if validator {
            REVALIDATE_FOR
        } else {
            Duration::ZERO
        };
        let keep = lifetime.saturating_sub(times.initial_age) + stale.max(extra);
        Entry {
            status,
            headers,
            body,
            times,
            lifetime,
            cc,
            keep: keep.max(Duration::from_secs(1)),
        }
    }

    /// Bytes it takes, roughly: body, headers, and the rest.
    pub fn weight(&self, key: &str) -> u32 {
        let headers: usize = self
            .headers
            .iter()
            .map(|(n, v)| n.as_str().len() + v.len() + 32)
            .sum();
        (self.body.len() + headers + key.len() + 256).min(u32::MAX as usize) as u32
    }
}

/// A tier's figures, for the admin API and the metrics.
#[derive(Debug, Clone, Copy)]
pub struct TierStats {
    /// `memory`, `redis`: the metrics' `tier` label.
    pub name: &'static str,
    pub entries: u64,
    /// Bytes its responses take (known for memory only).
    pub bytes: Option<u64>,
}

/// Counts a purge's or an eviction's removals.
#[derive(Debug, Default)]
pub struct Counts {
    pub stores: AtomicU64,
    pub evictions: AtomicU64,
}

/// L1: `moka`'s concurrent cache (TinyLFU admission, LRU eviction),
/// weighed in bytes, each entry expiring after its own `keep`.
pub struct Memory {
    cache: moka::sync::Cache<String, Arc<Entry>>,
    counts: Arc<Counts>,
}

struct Keep;

impl Expiry<String, Arc<Entry>> for Keep {
    fn expire_after_create(&self, _: &String, e: &Arc<Entry>, _: Instant) -> Option<Duration> {
        Some(e.keep)
    }

    fn expire_after_update(
        &self,
        _: &String,
        e: &Arc<Entry>,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        Some(e.keep)
    }
}

impl Memory {
    pub fn new(max_size: u64, counts: Arc<Counts>) -> Memory {
        let evicted = counts.clone();
        let cache = moka::sync::Cache::builder()
            .max_capacity(max_size)
            .weigher(|k: &String, e: &Arc<Entry>| e.weight(k))
            .expire_after(Keep)
            .eviction_listener(move |_, _, cause| {
                if matches!(cause, RemovalCause::Size | RemovalCause::Expired) {
                    evicted.evictions.fetch_add(1, Relaxed);
                }
            })
            .build();
        Memory { cache, counts }
    }
}

impl Memory {
    fn get(&self, key: &str) -> Option<Arc<Entry>> {
        self.cache.get(key)
    }

    fn put(&self, key: String, entry: Arc<Entry>) {
        self.counts.stores.fetch_add(1, Relaxed);
        self.cache.insert(key, entry);
    }

    /// Fills in a response another tier had (not a store: no count).
    fn fill(&self, key: String, entry: Arc<Entry>) {
        self.cache.insert(key, entry);
    }

    fn remove_where(&self, matches: &dyn Fn(&str) -> bool) -> u64 {
        let keys: Vec<Arc<String>> = self
            .cache
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k)
            .collect();
        for k in &keys {
            self.cache.invalidate(k.as_str());
        }
        self.cache.run_pending_tasks();
        keys.len() as u64
    }

    fn bytes(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.weighted_size()
    }

    fn entries(&self) -> u64 {
        self.cache.run_pending_tasks();
        self.cache.entry_count()
    }
}

/// What a purge takes.
#[derive(Debug, Clone)]
pub enum Purge {
    /// Every stored response of this URL (every variant, every extra key
    /// part).
    Url(String),
    /// Every stored response whose URL starts with this.
    Prefix(String),
    All,
}

/// The cache: its tiers, the `Vary` names per primary key, and the
/// misses in flight.
pub struct Store {
    l1: Memory,
    /// The shared tier, when the config has `cache.redis` (set and
    /// cleared by [`Store::attach`] as configs come and go).
    l2: ArcSwapOption<Shared>,
    /// The task that follows the other replicas' purges runs.
    following: AtomicBool,
    /// The header names the last stored response of a primary key varied
    /// on (absent: it did not vary).
    vary: moka::sync::Cache<String, Arc<[HeaderName]>>,
    pub coalescer: Coalescer,
    pub counts: Arc<Counts>,
    pub memory: CacheMemory,
}

impl Store {
    pub fn new(memory: CacheMemory) -> Store {
        let counts = Arc::new(Counts::default());
        Store {
            l1: Memory::new(memory.max_size, counts.clone()),
            vary: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(86_400))
                .build(),
            coalescer: Coalescer::default(),
            counts,
            memory,
            l2: ArcSwapOption::empty(),
            following: AtomicBool::new(false),
        }
    }

    /// Uses `redis` (the state backend's, with `cache.redis`'s settings)
    /// as the shared tier from now on, or none.
    pub fn attach(self: &Arc<Self>, redis: Option<(&RedisStore, CacheRedis)>) {
        let Some((redis, settings)) = redis else {
            self.l2.store(None);
            return;
        };
        match &*self.l2.load() {
            Some(l2) if l2.settings == settings => {}
            _ => self
                .l2
                .store(Some(Arc::new(Shared::new(redis.clone(), settings)))),
        }
        if tokio::runtime::Handle::try_current().is_ok() && !self.following.swap(true, Relaxed) {
            tokio::spawn(shared::follow(Arc::downgrade(self)));
        }
    }

    /// The shared tier, if one is attached.
    pub fn l2(&self) -> Option<Arc<Shared>> {
        self.l2.load_full()
    }

    /// The stored response for `primary` whose `Vary` headers match `req`:
    /// from memory, else from the shared tier (then kept in memory too).
    pub async fn get(&self, primary: &str, req: &HeaderMap) -> Option<Arc<Entry>> {
        let known = self.vary.get(primary);
        let found = match &known {
            Some(names) => self.l1.get(&vary::secondary(primary, names, req)),
            None => self.l1.get(primary),
        };
        if found.is_some() {
            return found;
        }
        let l2 = self.l2()?;
        let (entry, names) = l2.get(primary, known, req).await?;
        let key = if names.is_empty() {
            primary.to_string()
        } else {
            let key = vary::secondary(primary, &names, req);
            self.vary.insert(primary.to_string(), names.into());
            key
        };
        self.l1.fill(key, entry.clone());
        Some(entry)
    }

    /// The response stored in memory under `primary` when its responses
    /// do not vary (a lookup without the request's headers).
    pub fn get_plain(&self, primary: &str) -> Option<Arc<Entry>> {
        if self.vary.contains_key(primary) {
            return None;
        }
        self.l1.get(primary)
    }

    /// Stores `entry`, the response to `req`, under `primary`: in memory,
    /// and behind it in the shared tier when it fits there (one too large
    /// for it is kept in memory, or not at all, as `too_large` says).
    pub fn put(&self, primary: &str, req: &HeaderMap, entry: Arc<Entry>) {
        let l2 = self.l2();
        let shared = match &l2 {
            Some(l2) => match l2.takes(entry.body.len()) {
                Some(fits) => fits,
                None => return,
            },
            None => false,
        };
        let names = vary::names(&entry.headers);
        let key = if names.is_empty() {
            self.vary.invalidate(primary);
            primary.to_string()
        } else {
            vary::secondary(primary, &names, req)
        };
        if let (Some(l2), true) = (&l2, shared) {
            let varies = (!names.is_empty()).then(|| (primary.to_string(), names.clone()));
            l2.put(key.clone(), varies, &entry);
        }
        if !names.is_empty() {
            self.vary.insert(primary.to_string(), names.into());
        }
        self.l1.put(key, entry);
    }

    /// Removes what `purge` names from this process's memory; how many
    /// responses.
    pub fn purge_memory(&self, purge: &Purge) -> u64 {
        let removed = match purge {
            Purge::Url(_) | Purge::Prefix(_) => self.l1.remove_where(&|k| purge.takes(k)),
            Purge::All => {
                let n = self.l1.entries();
                self.l1.cache.invalidate_all();
                self.l1.cache.run_pending_tasks();
                n
            }
        };
        if let Purge::All = purge {
            self.vary.invalidate_all();
        }
        removed
    }

    /// Removes what `purge` names from memory, from the shared tier and
    /// from every replica's memory (they read it within
    /// [`shared::FOLLOW`]).
    pub async fn purge(&self, purge: &Purge) -> Purged {
        let memory = self.purge_memory(purge);
        let redis = match self.l2() {
            Some(l2) => Some(l2.purge(purge).await),
            None => None,
        };
        Purged { memory, redis }
    }

    /// Removes every stored response of URL `url` (an unsafe method
    /// succeeded on it): here at once, in the shared tier and the other
    /// replicas in the background.
    pub fn invalidate(&self, url: &str) {
        let purge = Purge::Url(url.to_string());
        self.purge_memory(&purge);
        if let (Some(l2), Ok(_)) = (self.l2(), tokio::runtime::Handle::try_current()) {
            tokio::spawn(async move {
                if let Err(e) = l2.purge(&purge).await {
                    tracing::warn!(url = ?purge, error = %e, "cache: the shared tier was not purged");
                }
            });
        }
    }

    pub fn tiers(&self) -> Vec<TierStats> {
        let mut tiers = vec![TierStats {
            name: "memory",
            entries: self.l1.entries(),
            bytes: Some(self.l1.bytes()),
        }];
        if let Some(l2) = self.l2() {
            tiers.push(TierStats {
                name: "redis",
                entries: l2.counts.entries.load(Relaxed),
                bytes: None,
            });
        }
        tiers
    }
}

/// What a purge removed: from memory, and from the shared tier (`None`:
/// there is none; an error: Redis did not answer, so the other replicas
/// were not told either).
#[derive(Debug)]
pub struct Purged {
    pub memory: u64,
    pub redis: Option<Result<u64, String>>,
}

static SHARED: Mutex<Option<Arc<Store>>> = Mutex::new(None);

/// The process's store, made on first use with `memory`'s sizes; a
/// config with other sizes gets a new (empty) one.
pub fn shared(memory: &CacheMemory) -> Arc<Store> {
    let mut shared = SHARED.lock().unwrap_or_else(|p| p.into_inner());
    match &*shared {
        Some(s) if s.memory == *memory => s.clone(),
        _ => {
            let s = Arc::new(Store::new(*memory));
            *shared = Some(s.clone());
            s
        }
    }
}

/// The process's store, if a config made one.
pub fn current() -> Option<Arc<Store>> {
    SHARED.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;
    use std::time::SystemTime;

    fn entry(vary: Option<&'static str>, body: &'static str) -> Arc<Entry> {
        let mut h = HeaderMap::new();
        if let Some(v) = vary {
            h.insert(http::header::VARY, HeaderValue::from_static(v));
        }
        let now = SystemTime::now();
        let times = Times::new(&h, now, now);
        Arc::new(Entry::new(
            StatusCode::OK,
            h,
            Bytes::from_static(body.as_bytes()),
            times,
            Duration::from_secs(60),
        ))
    }

    fn req(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in lines {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    #[tokio::test]
    async fn variants_by_vary_and_purges() {
        let s = Store::new(CacheMemory::default());
        let gz = req(&[("accept-encoding", "gzip")]);
        let br = req(&[("accept-encoding", "br")]);
        s.put("http://a/x", &gz, entry(Some("Accept-Encoding"), "gz"));
        s.put("http://a/x", &br, entry(Some("Accept-Encoding"), "br"));
        assert_eq!(&s.get("http://a/x", &gz).await.unwrap().body[..], b"gz");
        assert_eq!(&s.get("http://a/x", &br).await.unwrap().body[..], b"br");
        assert!(s.get("http://a/x", &HeaderMap::new()).await.is_none());
        s.put("http://a/y", &gz, entry(None, "y"));
        s.put("http://a/z\ncookie a=1", &gz, entry(None, "z"));
        assert!(s.get("http://a/y", &br).await.is_some());
        assert_eq!(s.purge_memory(&Purge::Url("http://a/x".into())), 2);
        assert!(s.get("http://a/x", &gz).await.is_none());
        assert_eq!(s.purge_memory(&Purge::Prefix("http://a/z".into())), 1);
        assert_eq!(s.purge_memory(&Purge::All), 1);
        assert_eq!(s.tiers()[0].entries, 0);
    }

    #[test]
    fn size_bounds_the_store() {
        let s = Store::new(CacheMemory {
            max_size: 64 << 10,
            max_item_size: 16 << 10,
        });
        static BODY: [u8; 10_000] = [b'x'; 10_000];
        for i in 0..50 {
            let now = SystemTime::now();
            let h = HeaderMap::new();
            let times = Times::new(&h, now, now);
            let e = Entry::new(
                StatusCode::OK,
                h,
                Bytes::from_static(&BODY),
                times,
                Duration::from_secs(60),
            );
            s.put(&format!("http://a/{i}"), &HeaderMap::new(), Arc::new(e));
        }
        assert!(
            s.tiers()[0].bytes.unwrap() <= 64 << 10,
            "{}",
            s.tiers()[0].bytes.unwrap()
        );
        assert!(s.counts.evictions.load(Relaxed) > 0);
    }
}
