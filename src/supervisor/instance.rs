//! One instance's life: start, watch, restart per policy with backoff, stop.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use shoal_config::{AppConfig, RestartPolicy};
use tokio::process::Child;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::guard::Guard;
use super::output::{self, Stream};
use super::program;
use super::spawn::{self, Slot};
use super::usage;
use crate::balance::{Endpoint, Health};
use crate::events::{self, Kind};

/// An instance's state; in the status API by its lowercase name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum ProcState {
    /// Process being started, or running but not yet passed a health check.
    Starting = 0,
    Running = 1,
    /// Exited unexpectedly; waiting out the restart delay.
    Backoff = 2,
    /// Out of rotation, finishing its in-flight requests before it stops.
    Draining = 3,
    Stopping = 4,
    Stopped = 5,
    /// Exited and not restarted, as `app.restart` says.
    Exited = 6,
    /// Crash loop: more than `max_restarts` within `restart_window`.
    Failed = 7,
}

impl ProcState {
    fn from_u8(v: u8) -> ProcState {
        match v {
            0 => ProcState::Starting,
            1 => ProcState::Running,
            2 => ProcState::Backoff,
            3 => ProcState::Draining,
            4 => ProcState::Stopping,
            5 => ProcState::Stopped,
            6 => ProcState::Exited,
            _ => ProcState::Failed,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProcState::Starting => "starting",
            ProcState::Running => "running",
            ProcState::Backoff => "backoff",
            ProcState::Draining => "draining",
            ProcState::Stopping => "stopping",
            ProcState::Stopped => "stopped",
            ProcState::Exited => "exited",
            ProcState::Failed => "failed",
        }
    }
}

pub struct Instance {
    /// `app-N`: N is the slot. A replacement takes its predecessor's slot.
    pub id: String,
    pub slot: u32,
    /// Which rollout started it (1 for the instances shoal started with).
    pub generation: u64,
    pub port: u16,
    /// The app config it was started with: its command, environment,
    /// directory and host (its "build") stay those across restarts.
    pub spec: Arc<AppConfig>,
    /// The supervisor's current app config: restart policy, backoff, crash
    /// loop limits, timeouts and memory limit follow a config reload.
    live: Arc<ArcSwap<AppConfig>>,
    pub endpoint: Arc<Endpoint>,
    pid: AtomicU32,
    restarts: AtomicU32,
    state: AtomicU8,
    retiring: AtomicBool,
    /// Consecutive memory samples above `app.max_memory`.
    pub(super) over_memory: AtomicU32,
    rss: AtomicU64,
    /// The last seconds' readings: CPU %, requests/s, p95 (`usage.rs`).
    usage: Mutex<usage::Window>,
    started_at: Mutex<Option<Instant>>,
    last_exit: Mutex<Option<String>>,
    /// Why it is `failed`: a crash loop, or a program that cannot run.
    failure: Mutex<Option<String>>,
    /// Its output's prefix and last lines.
    pub(super) output: Arc<output::Sink>,
    /// When its restart delay ends, while in `backoff`.
    due: Mutex<Option<Instant>>,
    /// Ends the restart delay early (no instance left in rotation).
    pub(super) wake: tokio::sync::Notify,
    /// Its last run passed a health check before it exited: a process that
    /// can serve, worth starting early when nothing else is in rotation.
    passed_last_run: AtomicBool,
    pub(super) stop: CancellationToken,
    pub(super) task: Mutex<Option<JoinHandle<()>>>,
}

impl Instance {
    /// The instance's id is its endpoint's (`NAME-N`).
    pub(super) fn new(
        slot: u32,
        generation: u64,
        port: u16,
        spec: Arc<AppConfig>,
        live: Arc<ArcSwap<AppConfig>>,
        endpoint: Arc<Endpoint>,
        stop: CancellationToken,
    ) -> Instance {
        let id = endpoint.id.clone();
        let output = Arc::new(output::Sink::new(&id, generation));
        Instance {
            id,
            slot,
            generation,
            port,
            spec,
            live,
            endpoint,
            pid: AtomicU32::new(0),
            restarts: AtomicU32::new(0),
            state: AtomicU8::new(ProcState::Starting as u8),
            retiring: AtomicBool::new(false),
            over_memory: AtomicU32::new(0),
            rss: AtomicU64::new(0),
            usage: Mutex::new(usage::Window::default()),
            started_at: Mutex::new(None),
            last_exit: Mutex::new(None),
            failure: Mutex::new(None),
            output,
            due: Mutex::new(None),
            wake: tokio::sync::Notify::new(),
            passed_last_run: AtomicBool::new(false),
            stop,
            task: Mutex::new(None),
        }
    }

    /// The app it is an instance of: its id without the `-N`.
    pub fn app(&self) -> &str {
        self.id.rsplit_once('-').map_or(&self.id, |(app, _)| app)
    }

    /// Report an event about this instance (see `events`).
    pub(super) fn emit(&self, kind: Kind, message: impl Into<String>) {
        events::emit(kind, Some(self.app()), Some(&self.id), message);
    }

    /// The settings that follow config reloads (see `live`).
    pub fn settings(&self) -> Arc<AppConfig> {
        self.live.load_full()
    }

    /// Pid of the running process, if any.
    /// Its output's sink: the recent lines (`shoal logs`).
    pub fn output(&self) -> &Arc<output::Sink> {
        &self.output
    }

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

    pub(super) fn set_state(&self, s: ProcState) {
        self.state.store(s as u8, Ordering::Release);
    }

    /// Being drained and stopped (scale down, replacement): not counted as
    /// one of the app's instances any more.
    pub fn is_retiring(&self) -> bool {
        self.retiring.load(Ordering::Acquire)
    }

    pub(super) fn mark_retiring(&self) -> bool {
        !self.retiring.swap(true, Ordering::AcqRel)
    }

    pub fn uptime(&self) -> Option<Duration> {
        self.started_at.lock().ok()?.map(|t| t.elapsed())
    }

    pub fn last_exit(&self) -> Option<String> {
        self.last_exit.lock().ok()?.clone()
    }

    /// Why it is `failed` (`crash loop (exit code 1)`, ``cannot run `x`: …``).
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok()?.clone()
    }

    fn set_last_exit(&self, why: &str) {
        if let Ok(mut l) = self.last_exit.lock() {
            *l = Some(why.to_string());
        }
    }

    fn fail(&self, why: String) {
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(why);
        }
        self.set_state(ProcState::Failed);
    }

    /// Whether its last run passed a health check before it exited.
    pub fn passed_last_run(&self) -> bool {
        self.passed_last_run.load(Ordering::Acquire)
    }

    /// When its restart delay ends, while it waits in `backoff`.
    pub fn restart_due(&self) -> Option<Instant> {
        *self.due.lock().ok()?
    }

    /// The last lines it printed (stdout and stderr), without prefix.
    pub fn output_tail(&self) -> Vec<String> {
        self.output.tail()
    }

    /// Resident memory at the last sample, in bytes (0 when not running).
    pub fn rss(&self) -> u64 {
        self.rss.load(Ordering::Relaxed)
    }

    pub(super) fn set_rss(&self, bytes: u64) {
        self.rss.store(bytes, Ordering::Relaxed);
    }

    /// Its CPU %, requests/s and p95 over the last seconds.
    pub fn rates(&self) -> usage::Rates {
        match self.usage.lock() {
            Ok(w) => w.rates(super::procfs::ticks_per_sec()),
            Err(_) => usage::Rates::default(),
        }
    }

    pub(super) fn record_usage(&self, reading: usage::Reading) {
        if let Ok(mut w) = self.usage.lock() {
            w.push(reading);
        }
    }
}

/// Runs until the instance's stop token is cancelled and its process is gone.
pub async fn supervise(inst: Arc<Instance>, guard: Option<Arc<Guard>>) {
    let mut restarts = Restarts::new(inst.settings().backoff.initial);
    while !inst.stop.is_cancelled() {
        let started = Instant::now();
        let Some(exit) = start_and_wait(&inst, guard.as_deref()).await else {
            break;
        };
        inst.set_last_exit(&exit.why);
        inst.emit(Kind::Exited, format!("{} exited ({})", inst.id, exit.why));
        if inst.is_retiring() {
            // It was on its way out anyway: never bring it back into rotation.
            tracing::info!(instance = %inst.id, reason = %exit.why, "draining instance exited");
            break;
        }
        match restarts.after(&inst, &exit, started) {
            Next::Now => {}
            Next::After(delay) => {
                if !wait_to_restart(&inst, delay).await {
                    break;
                }
            }
            Next::Never => {
                inst.stop.cancelled().await;
                break;
            }
        }
    }
    inst.endpoint.begin_epoch(Health::Stopped);
    if !matches!(inst.state(), ProcState::Failed | ProcState::Exited) {
        inst.set_state(ProcState::Stopped);
    }
}

/// How one run of the process ended, when it ended on its own.
struct Exit {
    why: String,
    success: bool,
    /// It had passed its health check and been in rotation for [`SERVED`].
    served: bool,
}

/// Start the process once and wait for it. `None`: told to stop, or the
/// program cannot be started at all (the instance is then failed, and this
/// returns once it is told to stop).
async fn start_and_wait(inst: &Instance, guard: Option<&Guard>) -> Option<Exit> {
    inst.set_state(ProcState::Starting);
    let app = &inst.spec;
    let slot = Slot {
        id: &inst.id,
        index: inst.slot,
        port: inst.port,
        host: app.host,
    };
    let child = match spawn::spawn(app, &slot) {
        Ok(child) => child,
        Err(e) => {
            let why = program::start_error(app, &e);
            if program::is_permanent(&e) {
                // Trying again cannot help: say what, and stop.
                tracing::error!(instance = %inst.id, "{why}; instance marked failed (fix app.command or app.cwd, then `shoal reload`)");
                inst.set_last_exit(&why);
                inst.fail(why);
                inst.stop.cancelled().await;
                return None;
            }
            tracing::error!(instance = %inst.id, "{why}");
            return Some(Exit {
                why,
                success: false,
                served: false,
            });
        }
    };
    match run_once(inst, child, guard).await {
        Outcome::Stopped => None,
        Outcome::Exited(exit) => Some(exit),
    }
}

/// What follows an exit.
enum Next {
    /// Start it again at once.
    Now,
    /// Start it again after this delay (the backoff).
    After(Duration),
    /// Not again: `app.restart` says so, or a crash loop.
    Never,
}

/// The restart policy's memory: the next backoff delay and the recent
/// restarts, counted toward a crash loop or not.
struct Restarts {
    backoff: Duration,
    /// Restarts after a crash, within `restart_window`.
    recent: VecDeque<Instant>,
    /// Restarts at once after an exit that followed serving (see `after`).
    recent_fast: VecDeque<Instant>,
}

impl Restarts {
    fn new(initial: Duration) -> Restarts {
        Restarts {
            backoff: initial,
            recent: VecDeque::new(),
            recent_fast: VecDeque::new(),
        }
    }

    /// Decide, from `app.restart`, `max_restarts` within `restart_window`
    /// and the backoff, what follows `exit` of a run begun at `started`;
    /// count the restart and mark the instance as the decision says.
    fn after(&mut self, inst: &Instance, exit: &Exit, started: Instant) -> Next {
        let settings = inst.settings();
        let backoff_cfg = &settings.backoff;
        let why = &exit.why;
        let restart = match settings.restart {
            RestartPolicy::Always => true,
            RestartPolicy::OnFailure => !exit.success,
            RestartPolicy::Never => false,
        };
        if !restart {
            tracing::warn!(instance = %inst.id, reason = %why, policy = ?settings.restart, "instance exited; not restarted (app.restart)");
            inst.set_state(ProcState::Exited);
            inst.emit(
                Kind::Exited,
                format!(
                    "{} not restarted (app.restart: {:?})",
                    inst.id, settings.restart
                ),
            );
            return Next::Never;
        }
        let now = Instant::now();
        forget_before(&mut self.recent_fast, now, settings.restart_window);
        if exit.served && self.recent_fast.len() < settings.max_restarts as usize {
            // It passed its health check and served: not a crash at
            // start-up. Start it again at once, with the delay back at
            // `initial`, and do not count it toward a crash loop — up to
            // `max_restarts` times within `restart_window`. Past that, an
            // app that passes /health and then dies (on its first real
            // request, say) is treated as crashing: the doubling delay, and
            // counted toward a crash loop, so it ends `failed`.
            self.recent_fast.push_back(now);
            inst.restarts.fetch_add(1, Ordering::Relaxed);
            self.backoff = backoff_cfg.initial;
            tracing::warn!(instance = %inst.id, reason = %why, restarts = inst.restarts(), "instance exited after serving; restarting it now");
            inst.emit(
                Kind::Restarted,
                format!(
                    "{} restarted at once after serving ({why}); restarts: {}",
                    inst.id,
                    inst.restarts()
                ),
            );
            return Next::Now;
        }
        if exit.served {
            tracing::warn!(
                instance = %inst.id, fast_restarts = self.recent_fast.len(), window = ?settings.restart_window,
                "instance keeps exiting after serving: restarting it with the backoff delay, counted toward a crash loop"
            );
        }
        forget_before(&mut self.recent, now, settings.restart_window);
        if self.recent.len() >= settings.max_restarts as usize {
            tracing::error!(
                instance = %inst.id, reason = %why, restarts = self.recent.len(),
                window = ?settings.restart_window,
                "crash loop: instance marked failed and no longer restarted (a reload or scale replaces it)"
            );
            inst.fail(format!("crash loop ({why})"));
            inst.emit(
                Kind::CrashLoop,
                format!(
                    "{} in a crash loop: {} restarts within {:?}; no longer restarted",
                    inst.id,
                    self.recent.len(),
                    settings.restart_window
                ),
            );
            return Next::Never;
        }
        self.recent.push_back(now);
        inst.restarts.fetch_add(1, Ordering::Relaxed);
        if started.elapsed() >= backoff_cfg.reset_after {
            self.backoff = backoff_cfg.initial;
        }
        let delay = self.backoff;
        tracing::warn!(instance = %inst.id, reason = %why, restart_in = ?delay, restarts = inst.restarts(), "instance exited");
        inst.emit(
            Kind::Restarted,
            format!(
                "{} restarts in {delay:?} ({why}); restarts: {}",
                inst.id,
                inst.restarts()
            ),
        );
        self.backoff = (delay * 2).min(backoff_cfg.max);
        Next::After(delay)
    }
}

/// In `backoff` for `delay`, or less when the supervisor wakes it (no
/// instance in rotation, and this one is due first). False: told to stop.
async fn wait_to_restart(inst: &Instance, delay: Duration) -> bool {
    if let Ok(mut d) = inst.due.lock() {
        *d = Some(Instant::now() + delay);
    }
    inst.set_state(ProcState::Backoff);
    let woken = tokio::select! {
        _ = inst.stop.cancelled() => return false,
        _ = tokio::time::sleep(delay) => false,
        // The supervisor: no instance is in rotation, and this one is due first.
        _ = inst.wake.notified() => true,
    };
    if let Ok(mut d) = inst.due.lock() {
        *d = None;
    }
    if woken {
        tracing::warn!(instance = %inst.id, "no instance in rotation: restarting this one before its delay is over");
    }
    true
}

/// Drops the times older than `window` from the front of `times`.
fn forget_before(times: &mut VecDeque<Instant>, now: Instant, window: Duration) {
    while times
        .front()
        .is_some_and(|t| now.duration_since(*t) > window)
    {
        times.pop_front();
    }
}

enum Outcome {
    /// Told to stop, and stopped.
    Stopped,
    /// Exited on its own.
    Exited(Exit),
}

/// In rotation this long before it exited: the process served, it did not
/// crash at start-up, so it is restarted at once (see `supervise`).
const SERVED: Duration = Duration::from_secs(1);

/// How long an exit waits for the process's output to be read to EOF.
const OUTPUT_WAIT: Duration = Duration::from_secs(1);

/// How long an instance may stay `starting` before the log says so: half
/// of `app.ready_timeout`, at most 10 s.
fn start_warning(app: &AppConfig) -> Duration {
    (app.ready_timeout / 2).min(Duration::from_secs(10))
}

async fn run_once(inst: &Instance, mut child: Child, guard: Option<&Guard>) -> Outcome {
    let pid = child.id().unwrap_or(0);
    // The process leads its own group (process_group(0)), so pgid == pid.
    let pgid = pid;
    if let Some(g) = guard {
        g.watch(pgid);
    }
    let open = output::Open::new();
    inst.output.set_pid(pid);
    if let Some(out) = child.stdout.take() {
        output::forward(out, inst.output.clone(), Stream::Stdout, &open);
    }
    if let Some(err) = child.stderr.take() {
        output::forward(err, inst.output.clone(), Stream::Stderr, &open);
    }
    inst.pid.store(pid, Ordering::Release);
    if let Ok(mut s) = inst.started_at.lock() {
        *s = Some(Instant::now());
    }
    inst.endpoint.begin_epoch(Health::Starting);
    tracing::info!(instance = %inst.id, generation = inst.generation, pid, port = inst.port, "instance started");
    inst.emit(
        Kind::InstanceStarted,
        format!(
            "{} started (pid {pid}, port {}, generation {})",
            inst.id, inst.port, inst.generation
        ),
    );

    let warn_after = tokio::time::sleep(start_warning(&inst.settings()));
    tokio::pin!(warn_after);
    let mut warned = false;
    let outcome = loop {
        tokio::select! {
            status = child.wait() => {
                let up = inst.endpoint.since_up();
                inst.passed_last_run.store(up.is_some(), Ordering::Release);
                let served = up.is_some_and(|up| up >= SERVED);
                inst.endpoint.begin_epoch(Health::Stopped);
                inst.endpoint.pool.clear();
                let (why, success) = match status {
                    Ok(s) => (describe(s), s.success()),
                    Err(e) => (format!("wait failed: {e}"), false),
                };
                // Whatever the leader left behind in its group goes with it.
                signal_group(pgid, Signal::SIGKILL);
                // Its last lines may still be in the pipes: read them to
                // the end before the exit is recorded, so a failed start's
                // message has them (however loaded the machine). Bounded:
                // a child outside the group may keep the pipes open.
                if !open.closed(OUTPUT_WAIT).await {
                    tracing::debug!(instance = %inst.id, "output still open {OUTPUT_WAIT:?} after the exit");
                }
                break Outcome::Exited(Exit { why, success, served });
            }
            _ = inst.stop.cancelled() => {
                inst.set_state(ProcState::Stopping);
                inst.endpoint.begin_epoch(Health::Stopped);
                inst.endpoint.pool.clear();
                terminate(inst, &mut child, pgid, inst.settings().stop_timeout).await;
                break Outcome::Stopped;
            }
            _ = &mut warn_after, if !warned => {
                warned = true;
                if inst.endpoint.health_word().health() == Health::Starting {
                    warn_still_starting(inst);
                }
            }
        }
    };
    inst.pid.store(0, Ordering::Release);
    inst.set_rss(0);
    if let Ok(mut s) = inst.started_at.lock() {
        *s = None;
    }
    if let Some(g) = guard {
        g.unwatch(pgid);
    }
    outcome
}

/// An instance alive but never healthy: most often an app that listens on
/// a port of its own instead of the one shoal gave it.
fn warn_still_starting(inst: &Instance) {
    let settings = inst.settings();
    let tls = inst.endpoint.pool.tls().is_some();
    let probe = match &settings.health.path {
        Some(path) => format!(
            "{} {}://{}{path}",
            settings.health.method,
            if tls { "https" } else { "http" },
            inst.endpoint.addr
        ),
        None if tls => format!("a TLS handshake with {}", inst.endpoint.addr),
        None => format!("a TCP connect to {}", inst.endpoint.addr),
    };
    let last = inst
        .endpoint
        .last_check()
        .map(|c| format!(" (last result: {})", c.detail))
        .unwrap_or_default();
    let waited = inst.uptime().unwrap_or_default().as_secs();
    tracing::warn!(
        instance = %inst.id, port = inst.port,
        "{} has been starting for {waited}s and has not passed a health check: shoal probes it with {probe}{last}. \
         Does the app listen on the port shoal gives it ({}), from `{{port}}` in app.command or the PORT environment variable?",
        inst.id, inst.port
    );
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
