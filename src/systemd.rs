//! systemd's service notification (`Type=notify`, sd_notify(3)), written by
//! the `sd-notify` crate to the datagram socket systemd names in
//! `NOTIFY_SOCKET`. Without that variable every call here does nothing.
//!
//! - `READY=1` once a backend is in rotation (what `/ready` answers), so
//!   `systemctl start` returns when shoal can serve, and units ordered
//!   `After=` it start then;
//! - `RELOADING=1` with `MONOTONIC_USEC` when a config reload begins
//!   (SIGHUP, which the unit's `ExecReload` sends, or the admin API), and
//!   `READY=1` when it has ended, applied or not;
//! - `STOPPING=1` when shutdown begins;
//! - `WATCHDOG=1` every half `WatchdogSec` while the runtime runs, when
//!   systemd set `WATCHDOG_USEC` for this process: a stuck runtime stops
//!   the pings and systemd restarts the service.
//!
//! The app's instances must not inherit these variables (an app that
//! speaks sd_notify would tell systemd its own state as shoal's):
//! [`CHILD_ENV`] lists what the supervisor removes from their environment.

use std::sync::{Arc, Weak};
use std::time::Duration;

use sd_notify::NotifyState;
use tokio_util::sync::CancellationToken;

use crate::app::State;

/// The variables of the notification protocol, removed from every child's
/// environment.
pub const CHILD_ENV: [&str; 3] = ["NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID"];

/// Whether a service manager listens.
pub fn enabled() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some()
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(states) {
        tracing::warn!(error = %e, "cannot notify systemd (NOTIFY_SOCKET)");
    }
}

/// `READY=1`, with a status line `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// `RELOADING=1` and the monotonic clock, as systemd 253 and later require.
pub fn reloading() {
    if !enabled() {
        return;
    }
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[
            NotifyState::Reloading,
            now,
            NotifyState::Status("reloading the config"),
        ]),
        Err(e) => tracing::warn!(error = %e, "cannot read the monotonic clock for systemd"),
    }
}

/// `STOPPING=1`.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("shutting down")]);
}

/// The status line of a ready shoal.
fn serving(state: &State) -> String {
    let (healthy, backends) = state.readiness();
    format!("serving: {healthy} of {backends} backends in rotation")
}

/// Says `READY=1` once a backend is in rotation, and pings the watchdog
/// until `stop`. Does nothing without `NOTIFY_SOCKET`.
pub fn spawn(state: Weak<State>, stop: CancellationToken) {
    if !enabled() {
        return;
    }
    if let Some(every) = sd_notify::watchdog_enabled() {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every / 2);
            loop {
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tick.tick() => send(&[NotifyState::Watchdog]),
                }
            }
        });
    }
    tokio::spawn(async move {
        loop {
            let Some(state) = state.upgrade() else { return };
            if state.readiness().0 > 0 {
                ready(&serving(&state));
                return;
            }
            drop(state);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    });
}

/// After a config reload, applied or not: `READY=1` again.
pub fn reloaded(state: &Arc<State>) {
    if enabled() {
        ready(&serving(state));
    }
}
