//! Lifecycle events: what happened to the instances, the backends and the
//! config, as structured log lines (target `shoal::events`, field `event`)
//! and in a bounded history that `GET /api/v1/events[?follow]`, `shoal
//! events [-f]` and the dashboard read.
//!
//! Any module reports one with [`emit`]; it is called where a state
//! changes (a process started or exited, a health transition, the end of
//! an operation), never once per request. One process, one history: the
//! bus is process-wide so that code far from the admin API (the health
//! checkers, the rate-limit store) can report without plumbing.

mod bus;
mod kind;

use std::sync::{Arc, LazyLock};

use serde::{Deserialize, Serialize};

pub use bus::{Bus, Follow, HISTORY};
pub use kind::Kind;

/// One event, as the API serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Increasing from 1 in this process; the SSE `id:`.
    pub id: u64,
    /// Seconds since the Unix epoch.
    pub at: f64,
    pub kind: Kind,
    /// The app it concerns, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    /// The instance (`NAME-N`) or backend it concerns, when one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// What happened, in words.
    pub message: String,
}

static BUS: LazyLock<Bus> = LazyLock::new(|| Bus::new(HISTORY));

/// The process's event bus.
pub fn bus() -> &'static Bus {
    &BUS
}

/// Report an event: logged once (target `shoal::events`), kept in the
/// history, sent to every follower. A mutex taken for a moment and one
/// log line: for state changes, not for anything per request.
pub fn emit(kind: Kind, app: Option<&str>, instance: Option<&str>, message: impl Into<String>) {
    let message = message.into();
    // `None` fields are left out of the line.
    let (app_field, instance_field) = (app, instance);
    if kind.is_trouble() {
        tracing::warn!(target: "shoal::events", event = kind.as_str(), app = app_field, instance = instance_field, "{message}");
    } else {
        tracing::info!(target: "shoal::events", event = kind.as_str(), app = app_field, instance = instance_field, "{message}");
    }
    BUS.publish(kind, app, instance, message);
}

/// The events kept now, oldest first.
pub fn history() -> Vec<Arc<Event>> {
    BUS.since(0).0
}

#[cfg(test)]
mod tests;
