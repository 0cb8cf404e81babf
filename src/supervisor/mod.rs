//! The supervisor: starts N instances of the app, restarts them when they die,
//! publishes each one into the endpoint table, and stops them on shutdown.

mod guard;
mod instance;
mod output;
mod ports;
mod spawn;

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use shoal_config::AppConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::balance::{Endpoint, EndpointTable};
use crate::proxy::pool::PoolSettings;

pub use guard::{run as run_guard, Guard};
pub use instance::{Instance, ProcState};

pub struct Supervisor {
    instances: Vec<Arc<Instance>>,
    tasks: tokio::sync::Mutex<Vec<JoinHandle<()>>>,
    stop: CancellationToken,
    guard: Option<Arc<Guard>>,
}

pub struct SupervisorOptions {
    /// The shoal executable, to start the guard process; `None` runs without
    /// one (instances are then only covered by the parent-death signal).
    pub guard_exe: Option<PathBuf>,
    pub pool: PoolSettings,
}

impl Supervisor {
    /// Start every instance and publish it (not yet in rotation) to `table`.
    pub fn start(
        app: &AppConfig,
        table: &Arc<EndpointTable>,
        options: SupervisorOptions,
    ) -> io::Result<Supervisor> {
        let guard = match &options.guard_exe {
            Some(exe) => Some(Arc::new(Guard::start(exe)?)),
            None => None,
        };
        let app = Arc::new(app.clone());
        let stop = CancellationToken::new();
        let mut instances = Vec::new();
        let mut tasks = Vec::new();
        for index in 1..=app.instances {
            let id = format!("app-{index}");
            let port = ports::free_port(app.host)?;
            let endpoint = Endpoint::new(
                id.clone(),
                SocketAddr::new(app.host, port),
                1,
                &options.pool,
            );
            table.insert(endpoint.clone());
            let inst = Arc::new(Instance::new(
                id,
                index,
                port,
                endpoint.clone(),
                stop.child_token(),
            ));
            tasks.push(crate::health::spawn(
                endpoint,
                app.health.clone(),
                stop.child_token(),
            ));
            tasks.push(tokio::spawn(instance::supervise(
                inst.clone(),
                app.clone(),
                guard.clone(),
            )));
            instances.push(inst);
        }
        Ok(Supervisor {
            instances,
            tasks: tokio::sync::Mutex::new(tasks),
            stop,
            guard,
        })
    }

    pub fn instances(&self) -> &[Arc<Instance>] {
        &self.instances
    }

    /// Stop every instance (SIGTERM, SIGKILL after `app.stop_timeout`) and wait.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        let tasks = std::mem::take(&mut *self.tasks.lock().await);
        for t in tasks {
            let _ = t.await;
        }
        if let Some(g) = &self.guard {
            let g = g.clone();
            let _ = tokio::task::spawn_blocking(move || g.finish()).await;
        }
    }
}
