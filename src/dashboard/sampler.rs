//! The task that takes a [`Sample`](super::Sample) every second.

use std::sync::{Arc, Weak};
use std::time::Instant;

use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;

use super::history::{Sampler, EVERY};
use crate::app::State;

/// Sample until `stop`, or until the state is gone.
pub fn spawn(state: Weak<State>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut sampler = Sampler::default();
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            let Some(state) = state.upgrade() else { return };
            let endpoints: Vec<Arc<crate::balance::Endpoint>> = state
                .tables
                .all()
                .iter()
                .flat_map(|t| t.snapshot().endpoints.clone())
                .collect();
            let generated = crate::metrics::counters::generated_counts();
            if let Some(sample) = sampler.sample(&endpoints, generated, Instant::now()) {
                state.history.push(sample);
            }
        }
    });
}
