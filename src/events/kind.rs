//! What kinds of event there are: the `kind` field, in snake_case.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A process of an instance was spawned (first start or restart).
    InstanceStarted,
    /// Passed its health check: in rotation (first pass, or back after failing).
    Healthy,
    /// Failed `fall` health checks in a row: out of rotation.
    Unhealthy,
    /// Passive health: too many failed requests; out of rotation for a while.
    Ejected,
    /// The ejection's time is over: back in rotation.
    Returned,
    /// The process exited on its own.
    Exited,
    /// An exited instance is started again (at once, or after its backoff).
    Restarted,
    /// Too many restarts within `restart_window`: no longer restarted.
    CrashLoop,
    /// Taken out of rotation, its in-flight requests finished, stopped.
    Drained,
    /// A scale finished (or failed).
    Scaled,
    /// One step of an operation (scale, rolling reload, config reload).
    Step,
    /// A rolling reload finished (or stopped).
    Reloaded,
    /// shoal's own config was re-read and applied.
    ConfigReloaded,
    /// A config reload changed nothing because it failed.
    ConfigReloadFailed,
    /// The autoscaler decided (hook for `autoscale`).
    Autoscale,
    /// The rate-limit state store changed state: connected, lost, back
    /// (hook for a remote store).
    StoreState,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::InstanceStarted => "instance_started",
            Kind::Healthy => "healthy",
            Kind::Unhealthy => "unhealthy",
            Kind::Ejected => "ejected",
            Kind::Returned => "returned",
            Kind::Exited => "exited",
            Kind::Restarted => "restarted",
            Kind::CrashLoop => "crash_loop",
            Kind::Drained => "drained",
            Kind::Scaled => "scaled",
            Kind::Step => "step",
            Kind::Reloaded => "reloaded",
            Kind::ConfigReloaded => "config_reloaded",
            Kind::ConfigReloadFailed => "config_reload_failed",
            Kind::Autoscale => "autoscale",
            Kind::StoreState => "store_state",
        }
    }

    /// Logged as a warning: something an operator should look at.
    pub fn is_trouble(self) -> bool {
        matches!(
            self,
            Kind::Unhealthy
                | Kind::Ejected
                | Kind::Exited
                | Kind::CrashLoop
                | Kind::ConfigReloadFailed
        )
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
