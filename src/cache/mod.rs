//! The response cache (#15): RFC 9111 for a shared cache, in memory (L1),
//! as the *lookup* and *respond* phases of hyper's path (the native
//! engine hands a caching route's requests to it). See docs/CACHE.md.
//!
//! - `policy.rs`: what may be stored, for how long, how old it is, whether
//!   it answers a request — pure functions;
//! - `key.rs`: the primary key; `vary.rs`: the secondary keys;
//! - `store.rs`: the `Tier` trait, the memory tier (moka), the store;
//! - `coalesce.rs`: one miss per key at the backend;
//! - `body.rs`: the tee that stores a body while it streams;
//! - `serve.rs`: the two phases; `stats.rs`: the counters.

mod body;
pub mod coalesce;
pub mod key;
pub mod policy;
pub mod serve;
pub mod stats;
pub mod store;
pub mod vary;

pub use serve::{Fetch, Lookup, Refresh, RouteCache};
pub use stats::Outcome;
