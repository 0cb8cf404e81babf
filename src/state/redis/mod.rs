//! The Redis store: every shoal sharing one Redis (standalone, Sentinel or
//! Cluster) counts each key as one.
//!
//! A decision is one atomic Lua script call per key ([`script::GCRA`], by
//! its SHA with `EVALSHA`, loaded again on `NOSCRIPT`) on Redis's own
//! clock; the asks of one request go in one pipeline (one round trip) to
//! a standalone or Sentinel master, one after another to a Cluster (their
//! keys may be on different slots). Keys are `{prefix}:rl:{<key>}`: the
//! hash tag keeps each key on one slot of a Cluster.
//!
//! `pool_size` multiplexed connections, opened and reopened by one
//! background task ([`RedisStore::new`] never waits for Redis: shoal starts
//! when Redis is down); a call takes the next connected one, and with none
//! connected fails at once, so a request never waits for a connect. Every
//! call is bounded by `command_timeout`; a connection that failed or timed
//! out is dropped and opened again (with Sentinel: at the master the
//! sentinels name now). What a failed call's request gets is `on_error`'s
//! (the [`crate::ratelimit::Limiter`]); [`Health`] says each change of
//! reachability once.

mod cache;
mod connect;
mod health;
mod script;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Once, Weak};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redis::{ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};
use shoal_config::StateConfig;

pub use cache::PurgeMessage;
pub use health::Health;

use self::connect::{Conn, Topology};
use super::{Ask, StateError, Store, Verdict};

#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    topology: Topology,
    slots: Box<[ArcSwapOption<Conn>]>,
    next: AtomicUsize,
    script: redis::Script,
    prefix: String,
    connect_timeout: Duration,
    command_timeout: Duration,
    /// `allow`, `deny` or `local`, for the log line.
    on_error: &'static str,
    /// Where Redis is, for logs (no password).
    what: String,
    health: Health,
    /// A connection was dropped: the connect task opens another.
    wake: tokio::sync::Notify,
    started: Once,
}

impl RedisStore {
    /// The store for `state` (`backend: redis`); connects in the
    /// background (now if a runtime runs, else at the first call).
    pub fn new(state: &StateConfig) -> Result<RedisStore, String> {
        let topology = Topology::for_config(state)?;
        let what = describe(state);
        let on_error = match state.on_error {
            shoal_config::OnError::Allow => "allow",
            shoal_config::OnError::Deny => "deny",
            shoal_config::OnError::Local => "local",
        };
        let store = RedisStore {
            inner: Arc::new(Inner {
                topology,
                slots: (0..state.pool_size.max(1))
                    .map(|_| ArcSwapOption::empty())
                    .collect(),
                next: AtomicUsize::new(0),
                script: redis::Script::new(script::GCRA),
                prefix: state.key_prefix.clone(),
                connect_timeout: state.connect_timeout,
                command_timeout: state.command_timeout,
                on_error,
                what,
                health: Health::default(),
                wake: tokio::sync::Notify::new(),
                started: Once::new(),
            }),
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            store.start();
        }
        Ok(store)
    }

    fn start(&self) {
        self.inner.started.call_once(|| {
            tokio::spawn(keep_connected(Arc::downgrade(&self.inner)));
        });
    }

    pub fn health(&self) -> &Health {
        &self.inner.health
    }

    /// `standalone`, `sentinel` or `cluster`.
    pub fn topology(&self) -> &'static str {
        self.inner.topology.kind()
    }

    /// Connections open now.
    pub fn connected(&self) -> usize {
        self.inner
            .slots
            .iter()
            .filter(|s| s.load().is_some())
            .count()
    }

    fn bucket(&self, key: &[u8]) -> Vec<u8> {
        let mut k = Vec::with_capacity(self.inner.prefix.len() + key.len() + 6);
        k.extend_from_slice(self.inner.prefix.as_bytes());
        k.extend_from_slice(b":rl:{");
        k.extend_from_slice(key);
        k.push(b'}');
        k
    }

    fn overrides_key(&self) -> String {
        format!("{}:overrides", self.inner.prefix)
    }

    /// The next connected connection, if any.
    fn pick(&self) -> Option<Arc<Conn>> {
        let slots = &self.inner.slots;
        let start = self.inner.next.fetch_add(1, Relaxed);
        (0..slots.len()).find_map(|i| slots[(start + i) % slots.len()].load_full())
    }

    /// `work` on a connection within `command_timeout`, with the health
    /// and the connection kept up to date.
    async fn call<T, F, Fut>(&self, work: F) -> Result<T, StateError>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        self.start();
        let inner = &*self.inner;
        let Some(conn) = self.pick() else {
            inner.health.errors.fetch_add(1, Relaxed);
            inner
                .health
                .failed(&inner.what, "not connected", inner.on_error);
            return Err(StateError::Failed("Redis is not connected".into()));
        };
        let (started, since) = (Instant::now(), inner.health.since());
        let result = tokio::time::timeout(inner.command_timeout, work((*conn).clone())).await;
        match result {
            Ok(Ok(v)) => {
                inner.health.answered(started.elapsed(), &inner.what, since);
                Ok(v)
            }
            Ok(Err(e)) => {
                inner.health.errors.fetch_add(1, Relaxed);
                // A connection no longer in the pool (dropped while this
                // call was on it, and maybe replaced since) says nothing
                // of the ones that are: they stay.
                if unreachable(&e) && self.in_pool(&conn) {
                    self.drop_conn(&conn);
                    inner
                        .health
                        .failed(&inner.what, &e.to_string(), inner.on_error);
                }
                Err(StateError::Failed(e.to_string()))
            }
            Err(_) => {
                inner.health.errors.fetch_add(1, Relaxed);
                self.drop_one(&conn);
                inner.health.failed(
                    &inner.what,
                    &format!("no answer within {:?}", inner.command_timeout),
                    inner.on_error,
                );
                Err(StateError::Timeout(inner.command_timeout))
            }
        }
    }

    /// Whether `conn` is one of the pool's now.
    fn in_pool(&self, conn: &Arc<Conn>) -> bool {
        self.inner
            .slots
            .iter()
            .any(|slot| slot.load().as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)))
    }

    /// Forget the connections after one failed: the server behind them is
    /// likely gone (or no longer the master), and a connection left in
    /// the pool would fail a request later and say so again. A cluster
    /// connection mends itself, so it stays.
    fn drop_conn(&self, conn: &Arc<Conn>) {
        if matches!(**conn, Conn::Cluster(_)) {
            return;
        }
        for slot in self.inner.slots.iter() {
            slot.store(None);
        }
        self.inner.wake.notify_one();
    }

    /// Forget only the connection that timed out (a connection cut off
    /// without a reset never fails by itself; a slow Redis is no reason
    /// to reopen the others).
    fn drop_one(&self, conn: &Arc<Conn>) {
        if matches!(**conn, Conn::Cluster(_)) {
            return;
        }
        for slot in self.inner.slots.iter() {
            let current = slot.load();
            if current.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
                slot.compare_and_swap(&*current, None);
            }
        }
        self.inner.wake.notify_one();
    }

    /// Publish rule `name`'s run-time setting (JSON) to every replica, or
    /// remove it (`None`).
    pub async fn publish_override(
        &self,
        name: &str,
        setting: Option<String>,
    ) -> Result<(), StateError> {
        let key = self.overrides_key();
        self.call(|mut conn| async move {
            let cmd = match &setting {
                Some(s) => {
                    let mut c = redis::cmd("HSET");
                    c.arg(&key).arg(name).arg(s);
                    c
                }
                None => {
                    let mut c = redis::cmd("HDEL");
                    c.arg(&key).arg(name);
                    c
                }
            };
            let _: i64 = cmd.query_async(&mut conn).await?;
            Ok(())
        })
        .await
    }

    fn peers_key(&self) -> String {
        format!("{}:peers", self.inner.prefix)
    }

    /// Say this replica is alive (`id` → its description, JSON with a
    /// `seen_ms` wall-clock stamp), and drop entries older than `stale_ms`;
    /// returns every replica's entry, this one's included.
    pub async fn heartbeat(
        &self,
        id: &str,
        entry: String,
        now_ms: u64,
        stale_ms: u64,
    ) -> Result<HashMap<String, String>, StateError> {
        let key = self.peers_key();
        let all = self
            .call(|mut conn| {
                let key = key.clone();
                async move {
                    let _: i64 = redis::cmd("HSET")
                        .arg(&key)
                        .arg(id)
                        .arg(&entry)
                        .query_async(&mut conn)
                        .await?;
                    redis::cmd("HGETALL")
                        .arg(&key)
                        .query_async::<HashMap<String, String>>(&mut conn)
                        .await
                }
            })
            .await?;
        let stale: Vec<String> = all
            .iter()
            .filter(|(_, v)| {
                serde_json::from_str::<serde_json::Value>(v)
                    .ok()
                    .and_then(|j| j["seen_ms"].as_u64())
                    .is_none_or(|seen| seen + stale_ms < now_ms)
            })
            .map(|(k, _)| k.clone())
            .collect();
        let mut all = all;
        all.retain(|k, _| !stale.contains(k));
        if !stale.is_empty() {
            let _ = self.forget_peers(stale).await;
        }
        Ok(all)
    }

    /// Remove replicas from the list (this one at shutdown, stale ones).
    pub async fn forget_peers(&self, ids: Vec<String>) -> Result<(), StateError> {
        let key = self.peers_key();
        self.call(|mut conn| async move {
            let _: i64 = redis::cmd("HDEL")
                .arg(&key)
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
            Ok(())
        })
        .await
    }

    /// Every rule's published run-time setting, by name.
    pub async fn overrides(&self) -> Result<HashMap<String, String>, StateError> {
        let key = self.overrides_key();
        self.call(|mut conn| async move {
            redis::cmd("HGETALL")
                .arg(&key)
                .query_async::<HashMap<String, String>>(&mut conn)
                .await
        })
        .await
    }
}

/// An error that says the connection (or the server behind it) cannot be
/// used now, rather than one about the command.
fn unreachable(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.is_timeout()
        || e.is_unrecoverable_error()
        || matches!(
            e.kind(),
            ErrorKind::ClusterConnectionNotFound
                | ErrorKind::Server(
                    ServerErrorKind::ReadOnly
                        | ServerErrorKind::BusyLoading
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::TryAgain
                )
        )
}

/// `url`, `sentinel` or `cluster` without passwords.
fn describe(state: &StateConfig) -> String {
    let strip = |u: &str| match (u.split_once("://"), u.rsplit_once('@')) {
        (Some((scheme, _)), Some((_, host))) => format!("{scheme}://{host}"),
        _ => u.to_string(),
    };
    if let Some(s) = &state.sentinel {
        format!("sentinel {} via {}", s.master, s.nodes.join(","))
    } else if !state.cluster.is_empty() {
        let nodes: Vec<String> = state.cluster.iter().map(|u| strip(u)).collect();
        format!("cluster {}", nodes.join(","))
    } else {
        strip(state.url.as_deref().unwrap_or_default())
    }
}

/// Opens every missing connection, again and again while Redis is away
/// (from 50 ms up to 500 ms apart: a failover is seen soon after the sentinels agree on it), until the store is gone.
async fn keep_connected(store: Weak<Inner>) {
    const FIRST: Duration = Duration::from_millis(50);
    let mut backoff = FIRST;
    loop {
        let Some(inner) = store.upgrade() else {
            return;
        };
        let mut failed = false;
        for slot in inner.slots.iter() {
            if slot.load().is_some() {
                continue;
            }
            match inner
                .topology
                .connect(inner.connect_timeout, inner.command_timeout)
                .await
            {
                // Reachable is said when a call answers (the run-time
                // changes' poll makes one within 250 ms): a Redis that
                // accepts connections but answers too late stays down.
                Ok(conn) => slot.store(Some(Arc::new(conn))),
                Err(e) => {
                    inner.health.failed(&inner.what, &e, inner.on_error);
                    failed = true;
                    break;
                }
            }
        }
        let wait = if failed {
            let w = backoff;
            backoff = (backoff * 2).min(Duration::from_millis(500));
            w
        } else {
            backoff = FIRST;
            Duration::from_secs(1)
        };
        // Woken early when a connection is dropped; the store is looked
        // at again at least each second (and the task ends with it).
        let _ = tokio::time::timeout(wait, inner.wake.notified()).await;
    }
}

impl RedisStore {
    /// Each ask's decision and the tokens it was granted: `wants[i]`
    /// tokens for ask `i` (1: one request, exactly; more: a lease, as many
    /// as its bucket has up to that).
    pub async fn decide(
        &self,
        asks: &[Ask<'_>],
        wants: &[u32],
    ) -> Result<Vec<(Verdict, u32)>, StateError> {
        let keys: Vec<Vec<u8>> = asks.iter().map(|a| self.bucket(a.key)).collect();
        let args: Vec<(u64, u32, u32)> = asks
            .iter()
            .zip(wants)
            .map(|(a, w)| (a.quota.interval_ns, a.quota.burst, (*w).max(1)))
            .collect();
        let script = &self.inner.script;
        let values = self
            .call(|mut conn| async move {
                match conn {
                    Conn::Cluster(_) => {
                        // Keys on different slots: one call each, in order.
                        let mut values = Vec::with_capacity(keys.len());
                        for (key, (interval, burst, want)) in keys.iter().zip(&args) {
                            let v: Value = script
                                .key(key.as_slice())
                                .arg(interval)
                                .arg(burst)
                                .arg(want)
                                .invoke_async(&mut conn)
                                .await?;
                            values.push(v);
                        }
                        Ok(values)
                    }
                    Conn::Single(_) => pipelined(&mut conn, script, &keys, &args).await,
                }
            })
            .await?;
        values
            .iter()
            .map(|v| {
                script::verdict(v).ok_or_else(|| {
                    self.inner.health.errors.fetch_add(1, Relaxed);
                    StateError::Failed(format!(
                        "unexpected answer from the rate-limit script: {v:?}"
                    ))
                })
            })
            .collect()
    }
}

impl Store for RedisStore {
    async fn check(&self, asks: &[Ask<'_>], out: &mut Vec<Verdict>) -> Result<(), StateError> {
        let ones = vec![1; asks.len()];
        let decided = self.decide(asks, &ones).await?;
        out.extend(decided.into_iter().map(|(v, _)| v));
        Ok(())
    }

    async fn forget(&self, key: &[u8]) -> Result<bool, StateError> {
        let key = self.bucket(key);
        self.call(|mut conn| async move {
            let n: i64 = redis::cmd("DEL").arg(&key).query_async(&mut conn).await?;
            Ok(n > 0)
        })
        .await
    }
}

/// The script once per key in one pipeline; the ones Redis did not know
/// the script for (`NOSCRIPT`: none ran) again once it is loaded.
async fn pipelined(
    conn: &mut Conn,
    script: &redis::Script,
    keys: &[Vec<u8>],
    args: &[(u64, u32, u32)],
) -> RedisResult<Vec<Value>> {
    let run = |todo: &[usize]| {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for &i in todo {
            pipe.cmd("EVALSHA")
                .arg(script.get_hash())
                .arg(1)
                .arg(keys[i].as_slice())
                .arg(args[i].0)
                .arg(args[i].1)
                .arg(args[i].2);
        }
        pipe
    };
    let all: Vec<usize> = (0..keys.len()).collect();
    let mut values: Vec<Value> = run(&all).query_async(conn).await?;
    let missing: Vec<usize> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| is_noscript(v))
        .map(|(i, _)| i)
        .collect();
    if !missing.is_empty() {
        script.load_async(conn).await?;
        let again: Vec<Value> = run(&missing).query_async(conn).await?;
        for (i, v) in missing.into_iter().zip(again) {
            values[i] = v;
        }
    }
    // A server error left in the answers is the call's error.
    for v in &values {
        if let Value::ServerError(e) = v {
            return Err(e.clone().into());
        }
    }
    Ok(values)
}

fn is_noscript(v: &Value) -> bool {
    matches!(v, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}

#[cfg(test)]
mod tests;
