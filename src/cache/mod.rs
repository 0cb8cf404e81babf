//! The response cache (#15): RFC 9111 for a shared cache, in memory (L1)
//! and in the state backend's Redis (L2, shared by replicas), as the *lookup* and *respond* phases of hyper's path (the native
//! engine hands a caching route's requests to it). See docs/CACHE.md.
//!
//! - `policy.rs`: what may be stored, for how long, how old it is, whether
//!   it answers a request — pure functions;
//! - `key.rs`: the primary key; `vary.rs`: the secondary keys;
//! - `store.rs`: the memory tier (moka) and the store over the tiers;
//! - `shared.rs`: the shared tier in Redis, and other replicas' purges;
//! - `record.rs`: a stored response as Redis keeps it;
//! - `coalesce.rs`: one miss per key at the backend;
//! - `body.rs`: the tee that stores a body while it streams;
//! - `serve.rs`: the two phases; `stats.rs`: the counters.

mod body;
pub mod coalesce;
pub mod key;
pub mod policy;
mod record;
pub mod serve;
pub mod shared;
pub mod stats;
pub mod store;
pub mod vary;

pub use serve::{Fetch, Lookup, Refresh, RouteCache};
pub use stats::Outcome;
