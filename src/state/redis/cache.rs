//! The response cache's shared tier (`cache.redis`) in the state
//! backend's Redis: the commands, not what they hold (`cache::shared`
//! encodes the responses and decides what to purge).
//!
//! - `{prefix}:cache:<key>`: one stored response (or a primary key's
//!   `Vary` names), expiring with the response (`SET … PX`);
//! - `{prefix}:cache:index`: a sorted set of the stored keys, scored by
//!   when each expires (pruned on every write), so a purge by URL or
//!   prefix finds its keys without a `SCAN` of the whole keyspace (one
//!   key: one slot of a Cluster);
//! - `{prefix}:cache:purges`: a stream of purges (capped), which every
//!   replica reads after the last one it applied, to drop what it holds
//!   in memory.

use std::time::Duration;

use redis::Value;

use super::connect::Conn;
use super::RedisStore;
use crate::state::StateError;

/// How many purges the stream keeps (about: `MAXLEN ~`).
const PURGES_KEPT: u64 = 10_000;
/// Keys deleted per command.
const BATCH: usize = 500;

/// One purge read from the stream: its id, and its fields in order.
pub type PurgeMessage = (String, Vec<String>);

impl RedisStore {
    fn cache_key(&self, key: &str) -> Vec<u8> {
        let prefix = self.inner.prefix.as_bytes();
        let mut k = Vec::with_capacity(prefix.len() + 7 + key.len());
        k.extend_from_slice(prefix);
        k.extend_from_slice(b":cache:");
        k.extend_from_slice(key.as_bytes());
        k
    }

    fn cache_index(&self) -> String {
        format!("{}:cache:index", self.inner.prefix)
    }

    fn cache_purges(&self) -> String {
        format!("{}:cache:purges", self.inner.prefix)
    }

    /// The value stored under cache key `key`, if any.
    pub async fn cache_get(&self, key: &str) -> Result<Option<Vec<u8>>, StateError> {
        let k = self.cache_key(key);
        self.call(|mut conn| async move {
            redis::cmd("GET")
                .arg(k)
                .query_async::<Option<Vec<u8>>>(&mut conn)
                .await
        })
        .await
    }

    /// Stores `value` under `key` for `ttl`, in the index until then;
    /// drops the index's entries that have expired (`now_ms`: the
    /// wall clock, as every replica's index scores are).
    pub async fn cache_put(
        &self,
        key: &str,
        value: Vec<u8>,
        ttl: Duration,
        now_ms: u64,
    ) -> Result<(), StateError> {
        let k = self.cache_key(key);
        let index = self.cache_index();
        let ttl_ms = ttl.as_millis().clamp(1, u64::MAX as u128) as u64;
        let member = key.to_string();
        self.call(|mut conn| async move {
            let mut set = redis::cmd("SET");
            set.arg(k).arg(value).arg("PX").arg(ttl_ms);
            let mut add = redis::cmd("ZADD");
            add.arg(&index)
                .arg(now_ms.saturating_add(ttl_ms))
                .arg(member);
            let mut prune = redis::cmd("ZREMRANGEBYSCORE");
            prune.arg(&index).arg("-inf").arg(now_ms);
            match conn {
                Conn::Cluster(_) => {
                    // Different slots: one command at a time.
                    let _: Value = set.query_async(&mut conn).await?;
                    let _: Value = add.query_async(&mut conn).await?;
                    let _: Value = prune.query_async(&mut conn).await?;
                }
                Conn::Single(_) => {
                    let mut pipe = redis::pipe();
                    pipe.add_command(set).add_command(add).add_command(prune);
                    let _: Vec<Value> = pipe.query_async(&mut conn).await?;
                }
            }
            Ok(())
        })
        .await
    }

    /// Every key in the index (those expired but not pruned yet too).
    pub async fn cache_keys(&self) -> Result<Vec<String>, StateError> {
        let index = self.cache_index();
        self.call(|mut conn| async move {
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, page): (u64, Vec<String>) = redis::cmd("ZSCAN")
                    .arg(&index)
                    .arg(cursor)
                    .arg("COUNT")
                    .arg(1000)
                    .query_async(&mut conn)
                    .await?;
                // ZSCAN gives member, score, member, score…
                keys.extend(page.into_iter().step_by(2));
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            keys.sort_unstable();
            keys.dedup();
            Ok(keys)
        })
        .await
    }

    /// Deletes cache keys `keys` (and their index entries); how many
    /// were stored.
    pub async fn cache_delete(&self, keys: Vec<String>) -> Result<u64, StateError> {
        if keys.is_empty() {
            return Ok(0);
        }
        let full: Vec<Vec<u8>> = keys.iter().map(|k| self.cache_key(k)).collect();
        let index = self.cache_index();
        self.call(|mut conn| async move {
            let mut removed = 0u64;
            let cluster = matches!(conn, Conn::Cluster(_));
            for (names, members) in full.chunks(BATCH).zip(keys.chunks(BATCH)) {
                if cluster {
                    for k in names {
                        let n: u64 = redis::cmd("DEL").arg(k).query_async(&mut conn).await?;
                        removed += n;
                    }
                } else {
                    let n: u64 = redis::cmd("DEL").arg(names).query_async(&mut conn).await?;
                    removed += n;
                }
                let _: Value = redis::cmd("ZREM")
                    .arg(&index)
                    .arg(members)
                    .query_async(&mut conn)
                    .await?;
            }
            Ok(removed)
        })
        .await
    }

    /// Stored keys not expired yet, by the index.
    pub async fn cache_entries(&self, now_ms: u64) -> Result<u64, StateError> {
        let index = self.cache_index();
        self.call(|mut conn| async move {
            redis::cmd("ZCOUNT")
                .arg(&index)
                .arg(now_ms)
                .arg("+inf")
                .query_async::<u64>(&mut conn)
                .await
        })
        .await
    }

    /// Adds a purge (`fields`: name, value, …) to the stream every
    /// replica reads; its id.
    pub async fn cache_publish_purge(&self, fields: &[(&str, &str)]) -> Result<String, StateError> {
        let stream = self.cache_purges();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(&stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(PURGES_KEPT)
            .arg("*");
        for (name, value) in fields {
            cmd.arg(*name).arg(*value);
        }
        self.call(|mut conn| async move { cmd.query_async::<String>(&mut conn).await })
            .await
    }

    /// The purges after id `after` (at most `count`), oldest first.
    pub async fn cache_purges_after(
        &self,
        after: &str,
        count: usize,
    ) -> Result<Vec<PurgeMessage>, StateError> {
        let stream = self.cache_purges();
        let start = format!("({after}");
        self.call(|mut conn| async move {
            redis::cmd("XRANGE")
                .arg(&stream)
                .arg(start)
                .arg("+")
                .arg("COUNT")
                .arg(count)
                .query_async::<Vec<PurgeMessage>>(&mut conn)
                .await
        })
        .await
    }
}
