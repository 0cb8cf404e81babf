//! The autoscaler: one per app, deciding how many instances the app should
//! run from what the balancer and the supervisor already see.
//!
//! - `signals.rs`: per-second samples of the existing counters, smoothed
//!   over a sliding window;
//! - `supervisor::procfs`: CPU time and RSS of each instance's process group;
//! - `policy.rs`: the decision as pure functions of config, signals and time;
//! - `history.rs`: every decision with its inputs and reason, and statistics;
//! - `driver.rs`: the loop — sample every second, decide every `interval`,
//!   scale through the supervisor (its op lock, its drain).
//!
//! docs/AUTOSCALING.md describes the policy for users.

mod driver;
pub mod history;
pub mod policy;
pub mod signals;
#[cfg(test)]
mod simulation;

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::supervisor::Supervisor;
pub use history::{Action, Decision, Report, Stats, Summary};

/// One app's autoscaler. It runs whether or not `app.autoscale` is set, so a
/// config reload can turn it on or off; without the key it only watches.
pub struct Autoscaler {
    sup: Arc<Supervisor>,
    inner: Mutex<driver::Inner>,
}

impl Autoscaler {
    /// Start the loop for `sup`'s app; it ends when `stop` is cancelled.
    pub fn spawn(sup: Arc<Supervisor>, stop: CancellationToken) -> Arc<Autoscaler> {
        let a = Arc::new(Autoscaler {
            inner: Mutex::new(driver::Inner::new(sup.target())),
            sup,
        });
        tokio::spawn(driver::run(a.clone(), stop));
        a
    }

    pub fn app(&self) -> &str {
        self.sup.name()
    }

    /// What `GET /api/v1/autoscale` shows.
    pub fn report(&self) -> Report {
        let spec = self.sup.spec();
        let cfg = spec.autoscale.as_ref();
        let inner = self.inner.lock();
        let (paused, operation, signals, stats, history) = match &inner {
            Ok(i) => (
                i.paused_secs(),
                i.operation.clone(),
                i.signals.clone(),
                i.stats.clone(),
                i.history.all(),
            ),
            Err(_) => (None, None, None, Stats::default(), Vec::new()),
        };
        Report {
            app: self.app().to_string(),
            enabled: cfg.is_some(),
            mode: cfg.map(|c| c.mode),
            min: cfg.map(|c| c.min),
            max: cfg.map(|c| c.max),
            target: self.sup.target(),
            paused_secs: paused,
            operation,
            signals,
            stats,
            history,
        }
    }

    /// What `shoal status` shows: `None` when `app.autoscale` is not set.
    pub fn summary(&self) -> Option<Summary> {
        let spec = self.sup.spec();
        let cfg = spec.autoscale.as_ref()?;
        let inner = self.inner.lock().ok()?;
        Some(Summary {
            mode: Some(cfg.mode),
            min: Some(cfg.min),
            max: Some(cfg.max),
            paused_secs: inner.paused_secs(),
            operation: inner.operation.clone(),
            stats: inner.stats.clone(),
            last_decision: inner.history.last().cloned(),
        })
    }
}
