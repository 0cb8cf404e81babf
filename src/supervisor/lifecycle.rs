//! Changing the set of instances while serving: scale, rolling reload,
//! replacement. The rule everywhere: a new instance is in rotation (healthy)
//! before an old one leaves, and an old one leaves by draining — out of
//! rotation at once, in-flight requests finished (up to `app.drain_timeout`),
//! then SIGTERM, then SIGKILL after `app.stop_timeout`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use shoal_config::AppConfig;

use super::instance::{Instance, ProcState};
use super::op_error::{NotReady, OpError};
use super::progress::Progress;
use super::Supervisor;
use crate::balance::Health;

/// Holds the operation lock and names the running operation for status.
/// Owned, so it can move into the task that carries the operation out.
pub struct OpGuard {
    operation: Arc<std::sync::Mutex<Option<String>>>,
    _lock: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for OpGuard {
    fn drop(&mut self) {
        if let Ok(mut op) = self.operation.lock() {
            *op = None;
        }
    }
}

impl Supervisor {
    fn guard(&self, name: &str, lock: tokio::sync::OwnedMutexGuard<()>) -> OpGuard {
        if let Ok(mut op) = self.operation.lock() {
            *op = Some(name.to_string());
        }
        OpGuard {
            operation: self.operation.clone(),
            _lock: lock,
        }
    }

    /// Take the operation lock at once, or say what holds it.
    pub fn try_begin(&self, name: &str) -> Result<OpGuard, OpError> {
        let lock = self.ops.clone().try_lock_owned().map_err(|_| {
            OpError::Busy(self.operation().unwrap_or_else(|| "an operation".into()))
        })?;
        Ok(self.guard(name, lock))
    }

    /// Wait for the operation lock (signals and config reloads queue up).
    pub async fn begin(&self, name: &str) -> OpGuard {
        let lock = self.ops.clone().lock_owned().await;
        self.guard(name, lock)
    }

    /// Check a scale target against `app.min`/`app.max`.
    pub fn check_scale(&self, n: u32) -> Result<(), OpError> {
        let spec = self.spec();
        let min = spec.min.unwrap_or(1);
        let max = spec.max.unwrap_or(1024);
        if n < min || n > max {
            return Err(OpError::OutOfBounds {
                wanted: n,
                min,
                max,
                min_set: spec.min.is_some(),
                max_set: spec.max.is_some(),
            });
        }
        Ok(())
    }

    /// Change the number of instances to `n` (the caller holds the op lock).
    ///
    /// Up: new instances take the lowest free slots and the current
    /// generation; the call returns once they are healthy (or fails after
    /// `ready_timeout`, leaving them trying). Down: failed instances go
    /// first, then the highest-numbered; each is drained.
    pub async fn scale(self: &Arc<Self>, n: u32, progress: &Progress) -> Result<String, OpError> {
        let result = self.scale_to(n, progress).await;
        let message = match &result {
            Ok(m) => format!("{}: {m}", self.name()),
            Err(e) => format!("{}: scale to {n} failed: {e}", self.name()),
        };
        crate::events::emit(
            crate::events::Kind::Scaled,
            Some(self.name()),
            None,
            message,
        );
        result
    }

    async fn scale_to(self: &Arc<Self>, n: u32, progress: &Progress) -> Result<String, OpError> {
        self.check_scale(n)?;
        self.target.store(n, std::sync::atomic::Ordering::Release);
        let spec = self.spec();
        let active = self.active();
        let have = active.len();
        let want = n as usize;
        if want > have {
            let mut used: Vec<u32> = self.instances().iter().map(|i| i.slot).collect();
            let mut started = Vec::new();
            for _ in have..want {
                let slot = (1..).find(|s| !used.contains(s)).unwrap_or(1);
                used.push(slot);
                let inst = self
                    .add_instance(slot, self.generation(), spec.clone())
                    .map_err(|source| OpError::Start { slot, source })?;
                progress.step(0, 0, format!("started {} on port {}", inst.id, inst.port));
                started.push(inst);
            }
            let total = started.len();
            wait_all_healthy(&started, spec.ready_timeout, progress, total).await?;
            Ok(format!("scaled from {have} to {want} instances"))
        } else if want < have {
            let mut victims = active;
            // Failed first, then the highest slots.
            victims.sort_by_key(|i| (i.state() != ProcState::Failed, std::cmp::Reverse(i.slot)));
            victims.truncate(have - want);
            let total = victims.len();
            progress.step(0, total, format!("draining {}", id_list(&victims)));
            join_all(victims.iter().map(|v| self.retire(v))).await;
            progress.step(total, total, "stopped");
            Ok(format!("scaled from {have} to {want} instances"))
        } else {
            Ok(format!("already at {have} instances"))
        }
    }

    /// Replace every instance with a fresh one of a new generation (the caller
    /// holds the op lock), `max_surge` at a time (or, with `max_surge: 0`,
    /// `max_unavailable` at a time, old ones stopped first). If a replacement
    /// is not healthy within `ready_timeout`, the rollout stops: the
    /// replacements of that step are stopped and the old instances they were
    /// to replace keep serving.
    pub async fn rolling_reload(self: &Arc<Self>, progress: &Progress) -> Result<String, OpError> {
        let generation = self
            .generation
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            + 1;
        let result = self.roll(generation, progress).await;
        // `shoal status` shows what was attempted beside what runs.
        self.set_last_rollout(generation, &result);
        let message = match &result {
            Ok(m) => format!("{}: {m}", self.name()),
            Err(e) => format!(
                "{}: rolling reload to generation {generation} failed: {e}",
                self.name()
            ),
        };
        crate::events::emit(
            crate::events::Kind::Reloaded,
            Some(self.name()),
            None,
            message,
        );
        result
    }

    async fn roll(
        self: &Arc<Self>,
        generation: u64,
        progress: &Progress,
    ) -> Result<String, OpError> {
        let spec = self.spec();
        let old = self.active();
        let total = old.len();
        let step = if spec.max_surge > 0 {
            spec.max_surge as usize
        } else {
            spec.max_unavailable.max(1) as usize
        };
        progress.step(
            0,
            total,
            format!(
                "rolling reload to generation {generation}: {total} instance(s), {step} at a time"
            ),
        );
        let mut done = 0;
        for batch in old.chunks(step) {
            if spec.max_surge > 0 {
                let fresh = self.start_replacements(batch, generation, &spec)?;
                if let Err(e) =
                    wait_all_healthy(&fresh, spec.ready_timeout, &Progress::log_only(), 0).await
                {
                    join_all(fresh.iter().map(|f| self.retire(f))).await;
                    // Later restarts of the old instances keep their own spec;
                    // the generation counter stays so the next try is newer.
                    return Err(OpError::RolloutStopped {
                        done,
                        total,
                        cause: Box::new(e.into()),
                        after: "the old instances keep serving".into(),
                    });
                }
                join_all(batch.iter().map(|o| self.retire(o))).await;
            } else {
                join_all(batch.iter().map(|o| self.retire(o))).await;
                let failure = match self.start_replacements(batch, generation, &spec) {
                    Err(e) => Some(e),
                    Ok(fresh) => {
                        match wait_all_healthy(&fresh, spec.ready_timeout, &Progress::log_only(), 0)
                            .await
                        {
                            Ok(()) => None,
                            Err(e) => {
                                join_all(fresh.iter().map(|f| self.retire(f))).await;
                                Some(e.into())
                            }
                        }
                    }
                };
                if let Some(e) = failure {
                    // The old instances of this step are gone (max_surge: 0):
                    // put the previous build back in their slots.
                    let restored = self.restore(batch, spec.ready_timeout).await;
                    return Err(OpError::RolloutStopped {
                        done,
                        total,
                        cause: Box::new(e),
                        after: restored,
                    });
                }
            }
            done += batch.len();
            progress.step(done, total, format!("replaced {}", id_list(batch)));
        }
        Ok(format!(
            "rolling reload done: {total} instance(s) at generation {generation}"
        ))
    }

    /// Replace one instance (memory limit): new one healthy first, then drain
    /// the old. Skipped when another operation is running.
    pub async fn replace(
        self: &Arc<Self>,
        old: &Arc<Instance>,
        progress: &Progress,
    ) -> Result<String, OpError> {
        let _op = self.try_begin(&format!("replace {}", old.id))?;
        if old.is_retiring() {
            return Ok(format!("{} is already being replaced", old.id));
        }
        let spec = old.spec.clone();
        let fresh = self.start_replacements(std::slice::from_ref(old), old.generation, &spec)?;
        wait_all_healthy(&fresh, spec.ready_timeout, progress, 1)
            .await
            .inspect_err(|_| {
                let sup = self.clone();
                let fresh = fresh.clone();
                tokio::spawn(async move { join_all(fresh.iter().map(|f| sup.retire(f))).await });
            })?;
        self.retire(old).await;
        Ok(format!("replaced {} (pid {:?})", old.id, fresh[0].pid()))
    }

    /// Start instances like `old` (same slot, build and generation) again
    /// and wait for them; says how that went.
    async fn restore(self: &Arc<Self>, old: &[Arc<Instance>], timeout: Duration) -> String {
        let mut back = Vec::new();
        for o in old {
            match self.add_instance(o.slot, o.generation, o.spec.clone()) {
                Ok(i) => back.push(i),
                Err(e) => return format!("could not restore {}: {e}", o.id),
            }
        }
        match wait_all_healthy(&back, timeout, &Progress::log_only(), 0).await {
            Ok(()) => format!("{} restored with the previous build", id_list(&back)),
            Err(e) => format!(
                "{} restarted with the previous build but {e}",
                id_list(&back)
            ),
        }
    }

    fn start_replacements(
        self: &Arc<Self>,
        batch: &[Arc<Instance>],
        generation: u64,
        spec: &Arc<AppConfig>,
    ) -> Result<Vec<Arc<Instance>>, OpError> {
        batch
            .iter()
            .map(|o| {
                self.add_instance(o.slot, generation, spec.clone())
                    .map_err(|source| OpError::StartReplacement {
                        id: o.id.clone(),
                        source,
                    })
            })
            .collect()
    }

    /// Take an instance out: out of rotation at once, wait for its in-flight
    /// requests (up to `drain_timeout`), stop it, remove it from the table.
    pub async fn retire(&self, inst: &Arc<Instance>) {
        if !inst.mark_retiring() {
            return;
        }
        inst.set_state(ProcState::Draining);
        inst.endpoint.begin_epoch(Health::Stopped);
        inst.endpoint.pool.clear();
        let deadline = Instant::now() + inst.settings().drain_timeout;
        // A request that picked the endpoint just before it left rotation
        // counts itself in a moment later: see zero twice, a beat apart.
        let mut quiet = 0;
        while Instant::now() < deadline {
            if inst.endpoint.in_flight() == 0 {
                quiet += 1;
                if quiet >= 2 {
                    break;
                }
            } else {
                quiet = 0;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        if inst.endpoint.in_flight() > 0 {
            tracing::warn!(instance = %inst.id, in_flight = inst.endpoint.in_flight(), "drain timeout; stopping with requests in flight");
        }
        inst.stop.cancel();
        let task = inst.task.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = task {
            let _ = t.await;
        }
        self.table.remove(inst.endpoint.key());
        if let Ok(mut v) = self.instances.lock() {
            v.retain(|i| !Arc::ptr_eq(i, inst));
        }
        self.mark_generations(inst.slot, None);
        inst.emit(
            crate::events::Kind::Drained,
            format!("{} drained and stopped", inst.id),
        );
    }

    /// A config reload changed the app section. Returns true when the
    /// instances must be replaced (command, environment, directory, host,
    /// protocol or TLS changed); other keys apply to running instances from now on.
    pub fn update_spec(&self, new: &AppConfig) -> bool {
        let old = self.spec();
        let template_changed = old.command != new.command
            || old.env != new.env
            || old.cwd != new.cwd
            || old.host != new.host
            || old.protocol != new.protocol
            || old.tls != new.tls;
        self.health.store(Arc::new(new.health.clone()));
        self.spec.store(Arc::new(new.clone()));
        for i in self.instances() {
            i.endpoint.set_local_max_fails(new.max_fails);
        }
        template_changed
    }
}

/// `app-5, app-4` — at most ten names, then how many more.
fn id_list(instances: &[Arc<Instance>]) -> String {
    let mut s = instances
        .iter()
        .take(10)
        .map(|i| i.id.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if instances.len() > 10 {
        s.push_str(&format!(" and {} more", instances.len() - 10));
    }
    s
}

async fn wait_all_healthy(
    fresh: &[Arc<Instance>],
    timeout: Duration,
    progress: &Progress,
    total: usize,
) -> Result<(), NotReady> {
    let deadline = Instant::now() + timeout;
    let mut ready = 0;
    let mut reported = vec![false; fresh.len()];
    loop {
        for (i, f) in fresh.iter().enumerate() {
            if reported[i] {
                continue;
            }
            // Exited before it was ever healthy: waiting out ready_timeout
            // would only delay the same answer.
            // No wait for its last lines: the exit is recorded only once
            // its output was read to EOF (or for 1 s, see
            // `instance::run_once`).
            if let Some(exit) = f.last_exit() {
                return Err(NotReady::Exited {
                    id: f.id.clone(),
                    generation: f.generation,
                    exit,
                    output: f.output_tail(),
                });
            }
            if f.endpoint.in_rotation() {
                reported[i] = true;
                ready += 1;
                if total > 0 {
                    progress.step(
                        ready,
                        total,
                        format!("{} is healthy (pid {})", f.id, f.pid().unwrap_or(0)),
                    );
                }
            }
        }
        if ready == fresh.len() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            let late: Vec<String> = fresh
                .iter()
                .zip(&reported)
                .filter(|(_, r)| !**r)
                .map(|(f, _)| match f.last_exit() {
                    Some(why) => format!("{} ({}, last exit: {why})", f.id, f.state().as_str()),
                    None => format!("{} ({})", f.id, f.state().as_str()),
                })
                .collect();
            return Err(NotReady::Timeout { timeout, late });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
