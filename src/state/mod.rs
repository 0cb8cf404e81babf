//! Shared state: what must be counted the same way by every request and,
//! with Redis, by every shoal replica — today the rate limits' buckets.
//!
//! One interface ([`Store`]), two implementations: [`MemoryStore`] (this
//! process, the default) and the Redis store (standalone, Sentinel or
//! Cluster). [`Backend`] is the one a config asks for; the behaviour tests
//! in `tests.rs` run against each and must give the same results.

pub mod gcra;
pub mod lease;
pub mod memory;
pub mod redis;

use std::future::Future;

pub use self::redis::RedisStore;
pub use gcra::{Quota, Verdict};
pub use lease::Leases;
pub use memory::MemoryStore;

/// One rate-limit question: may one more request with this key pass?
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    /// The whole key: the rule's name and what the rule counts by.
    pub key: &'a [u8],
    pub quota: Quota,
}

/// A store could not answer.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("the state store did not answer within {0:?}")]
    Timeout(std::time::Duration),
    #[error("the state store failed: {0}")]
    Failed(String),
}

/// Where buckets are kept.
pub trait Store: Send + Sync {
    /// Decide every ask (in order; each counted when allowed), appending a
    /// verdict each to `out`.
    fn check(
        &self,
        asks: &[Ask<'_>],
        out: &mut Vec<Verdict>,
    ) -> impl Future<Output = Result<(), StateError>> + Send;

    /// Forget one key's count (the admin API's reset); `true` if it had one.
    fn forget(&self, key: &[u8]) -> impl Future<Output = Result<bool, StateError>> + Send;
}

/// The store a config asks for (`state.backend`).
pub enum Backend {
    Memory(MemoryStore),
    Redis(RedisStore),
}

impl Backend {
    /// The config's store. A Redis store never waits for Redis here (it
    /// connects in the background); a Redis address the client refuses
    /// (the config's checks let few through) is logged and the counts stay
    /// in this process.
    pub fn for_config(state: &shoal_config::StateConfig) -> Backend {
        match state.backend {
            shoal_config::StateBackend::Memory => Backend::Memory(MemoryStore::new(state.max_keys)),
            shoal_config::StateBackend::Redis => match RedisStore::new(state) {
                Ok(store) => Backend::Redis(store),
                Err(e) => {
                    tracing::error!(error = %e, "state.backend: redis cannot be used; counting in this process");
                    Backend::Memory(MemoryStore::new(state.max_keys))
                }
            },
        }
    }

    /// The in-process store, when it is that: decided without a future.
    pub fn in_process(&self) -> Option<&MemoryStore> {
        match self {
            Backend::Memory(m) => Some(m),
            Backend::Redis(_) => None,
        }
    }

    /// `memory` or `redis`, for the status API and logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }
}

impl Store for Backend {
    async fn check(&self, asks: &[Ask<'_>], out: &mut Vec<Verdict>) -> Result<(), StateError> {
        match self {
            Backend::Memory(m) => m.check(asks, out).await,
            Backend::Redis(r) => r.check(asks, out).await,
        }
    }

    async fn forget(&self, key: &[u8]) -> Result<bool, StateError> {
        match self {
            Backend::Memory(m) => m.forget(key).await,
            Backend::Redis(r) => r.forget(key).await,
        }
    }
}

#[cfg(test)]
mod tests;
