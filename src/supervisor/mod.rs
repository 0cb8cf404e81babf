//! The supervisor: runs the app's instances, restarts them per policy,
//! publishes each into the endpoint table, and changes the set live —
//! scale, rolling reload, replacement — always starting new instances before
//! draining old ones, so no request fails.

mod guard;
mod instance;
mod lifecycle;
mod memory;
mod op_error;
pub mod output;
mod ports;
pub mod procfs;
mod program;
mod progress;
mod spawn;
pub mod usage;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use shoal_config::AppConfig;
use tokio_util::sync::CancellationToken;

use crate::balance::{Endpoint, EndpointTable};
use crate::health::HealthCell;
use crate::proxy::pool::PoolSettings;

pub use guard::{run as run_guard, Guard};
pub use instance::{Instance, ProcState};
pub use lifecycle::OpGuard;
pub use op_error::{NotReady, OpError};
pub use program::{check as check_program, key_of, port_warning};
pub use progress::{Event, Progress};

pub struct Supervisor {
    /// What new instances are started from; changed by a config reload.
    /// Running instances read their operational settings from it too.
    spec: Arc<ArcSwap<AppConfig>>,
    /// The app's name (`app`, or its key in `apps`): instances are
    /// `NAME-1`, `NAME-2`, ….
    name: Arc<str>,
    /// How many instances the app should have: `app.instances`, then what
    /// `shoal scale` last asked for.
    target: AtomicU32,
    health: HealthCell,
    instances: Mutex<Vec<Arc<Instance>>>,
    table: Arc<EndpointTable>,
    pool: PoolSettings,
    guard: Option<Arc<Guard>>,
    generation: AtomicU64,
    /// One scale/reload/replacement at a time.
    ops: Arc<tokio::sync::Mutex<()>>,
    operation: Arc<Mutex<Option<String>>>,
    /// The last rolling reload: the generation it was to bring, and how it
    /// ended (`Err` when it stopped).
    last_rollout: Mutex<Option<LastRollout>>,
    stop: CancellationToken,
    /// `app.tls`: the connector the instances are reached with, built once
    /// per `(tls, protocol)` of the spec (the files are read then).
    tls: Mutex<Option<AppTls>>,
}

type AppTls = (
    shoal_config::UpstreamTlsConfig,
    shoal_config::UpstreamProtocol,
    Arc<crate::tls::client::Connector>,
);

/// How the last rolling reload ended, for `shoal status`.
#[derive(Debug, Clone)]
pub struct LastRollout {
    pub generation: u64,
    pub ok: bool,
    /// What it did, or why it stopped.
    pub message: String,
}

pub struct SupervisorOptions {
    /// The app's name: `app`, or its key in `apps`.
    pub name: String,
    /// The shoal executable, to start the guard process; `None` runs without
    /// one (instances are then only covered by the parent-death signal).
    pub guard_exe: Option<PathBuf>,
    pub pool: PoolSettings,
}

impl Supervisor {
    /// Start `app.instances` instances and publish them (not yet in
    /// rotation: each enters after its first passing health check).
    pub fn start(
        app: &AppConfig,
        table: &Arc<EndpointTable>,
        options: SupervisorOptions,
    ) -> io::Result<Arc<Supervisor>> {
        let guard = match &options.guard_exe {
            Some(exe) => Some(Arc::new(Guard::start(exe)?)),
            None => None,
        };
        let sup = Arc::new(Supervisor {
            spec: Arc::new(ArcSwap::from_pointee(app.clone())),
            name: options.name.as_str().into(),
            target: AtomicU32::new(app.instances),
            health: Arc::new(ArcSwap::from_pointee(app.health.clone())),
            instances: Mutex::new(Vec::new()),
            table: table.clone(),
            pool: options.pool,
            guard,
            generation: AtomicU64::new(1),
            ops: Arc::new(tokio::sync::Mutex::new(())),
            operation: Arc::new(Mutex::new(None)),
            last_rollout: Mutex::new(None),
            stop: CancellationToken::new(),
            tls: Mutex::new(None),
        });
        let spec = sup.spec.load_full();
        for slot in 1..=app.instances {
            sup.add_instance(slot, 1, spec.clone())?;
        }
        let watcher = tokio::spawn(memory::watch(sup.clone()));
        let keeper = tokio::spawn(keep_one_in_rotation(Arc::downgrade(&sup)));
        let stop = sup.stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            watcher.abort();
            keeper.abort();
        });
        Ok(sup)
    }

    /// Every instance, including ones being drained, in slot order.
    pub fn instances(&self) -> Vec<Arc<Instance>> {
        let mut v = self.instances.lock().map(|v| v.clone()).unwrap_or_default();
        v.sort_by_key(|i| (i.slot, i.generation));
        v
    }

    /// The app's instances proper: not being retired.
    pub fn active(&self) -> Vec<Arc<Instance>> {
        self.instances()
            .into_iter()
            .filter(|i| !i.is_retiring())
            .collect()
    }

    /// `app`, or the app's key in `apps`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn spec(&self) -> Arc<AppConfig> {
        self.spec.load_full()
    }

    /// The instance count the app should have (`app.instances` or the last scale).
    pub fn target(&self) -> u32 {
        self.target.load(Ordering::Acquire)
    }

    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The last rolling reload: its generation and how it ended.
    pub fn last_rollout(&self) -> Option<LastRollout> {
        self.last_rollout.lock().ok()?.clone()
    }

    pub(crate) fn set_last_rollout(&self, generation: u64, result: &Result<String, OpError>) {
        if let Ok(mut r) = self.last_rollout.lock() {
            *r = Some(LastRollout {
                generation,
                ok: result.is_ok(),
                message: match result {
                    Ok(m) => m.clone(),
                    Err(e) => e.to_string(),
                },
            });
        }
    }

    /// The operation running now (`scale to 5`, `rolling reload`), if any.
    pub fn operation(&self) -> Option<String> {
        self.operation.lock().ok()?.clone()
    }

    /// The TLS connector for instances of `spec` (`app.tls`), built the
    /// first time and again only when `app.tls` or `app.protocol` changed.
    fn tls_for(&self, spec: &AppConfig) -> io::Result<Option<Arc<crate::tls::client::Connector>>> {
        let at = match &*self.name {
            shoal_config::APP_POOL => "app".to_string(),
            name => format!("apps.{name}"),
        };
        let Some(tls) = spec.backend_tls(&at) else {
            return Ok(None);
        };
        let mut cached = self.tls.lock().map_err(|_| io::Error::other("poisoned"))?;
        if let Some((settings, protocol, connector)) = cached.as_ref() {
            if settings == tls.settings && *protocol == spec.protocol {
                return Ok(Some(connector.clone()));
            }
        }
        let connector = crate::tls::client::Connector::new(&tls, spec.protocol)
            .map(Arc::new)
            .map_err(|problems| {
                let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
                io::Error::other(text.join("; "))
            })?;
        *cached = Some((tls.settings.clone(), spec.protocol, connector.clone()));
        Ok(Some(connector))
    }

    fn add_instance(
        self: &Arc<Self>,
        slot: u32,
        generation: u64,
        spec: Arc<AppConfig>,
    ) -> io::Result<Arc<Instance>> {
        let tls = self.tls_for(&spec)?;
        let port = ports::free_port(spec.host)?;
        let id = format!("{}-{slot}", self.name);
        let endpoint = Endpoint::new(
            id,
            SocketAddr::new(spec.host, port),
            1,
            &self.pool.for_backend(spec.protocol, tls),
        );
        endpoint.set_local_max_fails(self.spec().max_fails);
        let inst = Arc::new(Instance::new(
            slot,
            generation,
            port,
            spec,
            self.spec.clone(),
            endpoint.clone(),
            self.stop.child_token(),
        ));
        self.table.insert(endpoint.clone());
        self.mark_generations(slot, Some(&inst));
        crate::health::spawn_instance(&self.name, endpoint, self.health.clone(), inst.stop.clone());
        let task = tokio::spawn(instance::supervise(inst.clone(), self.guard.clone()));
        if let Ok(mut t) = inst.task.lock() {
            *t = Some(task);
        }
        if let Ok(mut v) = self.instances.lock() {
            v.push(inst.clone());
        }
        Ok(inst)
    }

    /// Output prefixes of `slot`'s instances: `app-1 | ` for one, and
    /// `app-1 (gen 2) | ` for each while two generations of it run (a
    /// rolling reload or a replacement), so their lines can be told apart.
    fn mark_generations(&self, slot: u32, new: Option<&Arc<Instance>>) {
        let mut same: Vec<Arc<Instance>> = self
            .instances
            .lock()
            .map(|v| v.iter().filter(|i| i.slot == slot).cloned().collect())
            .unwrap_or_default();
        if let Some(n) = new {
            if !same.iter().any(|i| Arc::ptr_eq(i, n)) {
                same.push(n.clone());
            }
        }
        let several = same.len() > 1;
        for i in &same {
            i.output.set_prefix(if several {
                format!("{} (gen {}) | ", i.id, i.generation)
            } else {
                format!("{} | ", i.id)
            });
        }
    }

    /// Stop every instance (SIGTERM, SIGKILL after `app.stop_timeout`) and wait.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        for inst in self.instances() {
            let task = inst.task.lock().ok().and_then(|mut t| t.take());
            if let Some(t) = task {
                let _ = t.await;
            }
        }
        if let Some(g) = &self.guard {
            let g = g.clone();
            let _ = tokio::task::spawn_blocking(move || g.finish()).await;
        }
        // The instances' pipes are closed now; let their last lines out.
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        output::flush().await;
    }
}

/// Never leave the app with no instance in rotation while some only wait
/// out a restart delay: then the one due first starts now, if its last run
/// had passed a health check. Checked every 100 ms; an instance starting (a
/// process up, not yet healthy) is waited for instead.
async fn keep_one_in_rotation(sup: std::sync::Weak<Supervisor>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let Some(sup) = sup.upgrade() else { return };
        let active = sup.active();
        let serving = active.iter().any(|i| {
            i.endpoint.in_rotation() || (i.state() == ProcState::Starting && i.pid().is_some())
        });
        if serving {
            continue;
        }
        let first = active
            .iter()
            // One that crashed before it was ever healthy would most
            // likely crash again: its delay stands.
            .filter(|i| i.state() == ProcState::Backoff && i.passed_last_run())
            .filter_map(|i| Some((i.restart_due()?, i)))
            .min_by_key(|(due, _)| *due);
        if let Some((_, inst)) = first {
            inst.wake.notify_waiters();
        }
    }
}
