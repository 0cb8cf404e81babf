//! shoal: one binary that runs a stateless HTTP service as many supervised
//! instances behind a fast load balancer. See `docs/ARCHITECTURE.md`.

#![deny(unsafe_code)]

pub mod access_log;
pub mod admin;
pub mod app;
pub mod autoscale;
pub mod balance;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod compress;
pub mod dashboard;
pub mod deploy;
pub mod discovery;
pub mod events;
pub mod files;
#[cfg(any(test, fuzzing))]
pub mod fuzz;
pub mod health;
pub mod metrics;
pub mod proxy;
pub mod ratelimit;
pub mod routes;
pub mod state;
pub mod sticky;
pub mod supervisor;
pub mod systemd;
#[cfg(test)]
mod test_alloc;
pub mod tls;
pub mod utc;
