//! One instance's life: start, watch, restart with backoff, stop.

use std::sync::atomic::{AtomicU32, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_config::AppConfig;
use tokio::process::Child;
use tokio_util::sync::CancellationToken;

use super::guard::Guard;
use super::output::{self, Stream};
use super::spawn::{self, Slot};
use crate::balance::{Endpoint, Health};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum ProcState {
    /// Process being started, or running but not yet passed a health check.
    Starting = 0,
    Running = 1,
    /// Exited unexpectedly; waiting out the restart delay.
    Backoff = 2,
    Stopping = 3,
    Stopped = 4,
}

impl ProcState {
    fn from_u8(v: u8) -> ProcState {
        match v {
            0 => ProcState::Starting,
            1 => ProcState::Running,
            2 => ProcState::Backoff,
            3 => ProcState::Stopping,
            _ => ProcState::Stopped,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProcState::Starting => "starting",
            ProcState::Running => "running",
            ProcState::Backoff => "backoff",
            ProcState::Stopping => "stopping",
            ProcState::Stopped => "stopped",
        }
    }
}

pub struct Instance {
    pub id: String,
    pub index: u32,
    pub port: u16,
    pub endpoint: Arc<Endpoint>,
    pid: AtomicU32,
    restarts: AtomicU32,
    state: AtomicU8,
    started_at: Mutex<Option<Instant>>,
    last_exit: Mutex<Option<String>>,
    pub(super) stop: CancellationToken,
}

impl Instance {
    pub fn new(
        id: String,
        index: u32,
        port: u16,
        endpoint: Arc<Endpoint>,
        stop: CancellationToken,
    ) -> Instance {
        Instance {
            id,
            index,
            port,
            endpoint,
            pid: AtomicU32::new(0),
            restarts: AtomicU32::new(0),
            state: AtomicU8::new(ProcState::Starting as u8),
            started_at: Mutex::new(None),
            last_exit: Mutex::new(None),
            stop,
        }
    }

    /// Pid of the running process, if any.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::Acquire) {
            0 => None,
            p => Some(p),
        }
    }

    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::Relaxed)
    }

    pub fn state(&self) -> ProcState {
        let s = ProcState::from_u8(self.state.load(Ordering::Acquire));
        if s == ProcState::Starting && self.endpoint.health_word().health() != Health::Starting {
            // Past its first health check: the process is up, whatever its
            // health is now (health is reported separately).
            return ProcState::Running;
        }
        s
    }

    fn set_state(&self, s: ProcState) {
        self.state.store(s as u8, Ordering::Release);
    }

    pub fn uptime(&self) -> Option<Duration> {
        self.started_at.lock().ok()?.map(|t| t.elapsed())
    }

    pub fn last_exit(&self) -> Option<String> {
        self.last_exit.lock().ok()?.clone()
    }
}

/// Runs until the instance's stop token is cancelled and its process is gone.
pub async fn supervise(inst: Arc<Instance>, app: Arc<AppConfig>, guard: Option<Arc<Guard>>) {
    let restart = &app.restart;
    let mut backoff = restart.backoff_initial;
    while !inst.stop.is_cancelled() {
        inst.set_state(ProcState::Starting);
        let slot = Slot {
            id: &inst.id,
            index: inst.index,
            port: inst.port,
            host: app.host,
        };
        let started = Instant::now();
        let outcome = match spawn::spawn(&app, &slot) {
            Ok(child) => run_once(&inst, child, &app, guard.as_deref()).await,
            Err(e) => {
                tracing::error!(instance = %inst.id, error = %e, "could not start instance");
                Outcome::Exited(format!("could not start: {e}"))
            }
        };
        let why = match outcome {
            Outcome::Stopped => break,
            Outcome::Exited(why) => why,
        };
        inst.restarts.fetch_add(1, Ordering::Relaxed);
        if let Ok(mut l) = inst.last_exit.lock() {
            *l = Some(why.clone());
        }
        if started.elapsed() >= restart.reset_after {
            backoff = restart.backoff_initial;
        }
        tracing::warn!(instance = %inst.id, reason = %why, restart_in = ?backoff, restarts = inst.restarts(), "instance exited");
        inst.set_state(ProcState::Backoff);
        tokio::select! {
            _ = inst.stop.cancelled() => break,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(restart.backoff_max);
    }
    inst.endpoint.begin_epoch(Health::Stopped);
    inst.set_state(ProcState::Stopped);
}

enum Outcome {
    /// Told to stop, and stopped.
    Stopped,
    /// Exited on its own; the reason.
    Exited(String),
}

async fn run_once(
    inst: &Instance,
    mut child: Child,
    app: &AppConfig,
    guard: Option<&Guard>,
) -> Outcome {
    let pid = child.id().unwrap_or(0);
    // The process leads its own group (process_group(0)), so pgid == pid.
    let pgid = pid;
    if let Some(g) = guard {
        g.watch(pgid);
    }
    if let Some(out) = child.stdout.take() {
        output::forward(out, inst.id.clone(), Stream::Stdout);
    }
    if let Some(err) = child.stderr.take() {
        output::forward(err, inst.id.clone(), Stream::Stderr);
    }
    inst.pid.store(pid, Ordering::Release);
    if let Ok(mut s) = inst.started_at.lock() {
        *s = Some(Instant::now());
    }
    inst.endpoint.begin_epoch(Health::Starting);
    tracing::info!(instance = %inst.id, pid, port = inst.port, "instance started");

    let outcome = tokio::select! {
        status = child.wait() => {
            inst.endpoint.begin_epoch(Health::Stopped);
            inst.endpoint.pool.clear();
            let why = match status {
                Ok(s) => describe(s),
                Err(e) => format!("wait failed: {e}"),
            };
            // Whatever the leader left behind in its group goes with it.
            signal_group(pgid, Signal::SIGKILL);
            Outcome::Exited(why)
        }
        _ = inst.stop.cancelled() => {
            inst.set_state(ProcState::Stopping);
            inst.endpoint.begin_epoch(Health::Stopped);
            inst.endpoint.pool.clear();
            terminate(inst, &mut child, pgid, app.stop_timeout).await;
            Outcome::Stopped
        }
    };
    inst.pid.store(0, Ordering::Release);
    if let Ok(mut s) = inst.started_at.lock() {
        *s = None;
    }
    if let Some(g) = guard {
        g.unwatch(pgid);
    }
    outcome
}

fn describe(status: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(sig)) => match Signal::try_from(sig) {
            Ok(s) => format!("killed by {s}"),
            Err(_) => format!("killed by signal {sig}"),
        },
        _ => "exited".to_string(),
    }
}

fn signal_group(pgid: u32, sig: Signal) {
    if pgid > 1 {
        let _ = killpg(Pid::from_raw(pgid as i32), sig);
    }
}

/// SIGTERM to the group, SIGKILL after `timeout`, then reap.
async fn terminate(inst: &Instance, child: &mut Child, pgid: u32, timeout: Duration) {
    tracing::info!(instance = %inst.id, pid = pgid, "stopping instance (SIGTERM)");
    signal_group(pgid, Signal::SIGTERM);
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(status) => {
            tracing::info!(instance = %inst.id, status = %status.map(describe).unwrap_or_default(), "instance stopped");
        }
        Err(_) => {
            tracing::warn!(instance = %inst.id, timeout = ?timeout, "instance did not stop in time; SIGKILL");
            signal_group(pgid, Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
    signal_group(pgid, Signal::SIGKILL);
}
