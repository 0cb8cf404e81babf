//! Wiring: given a validated config and bound listeners, run shoal until the
//! shutdown future resolves, then shut down in order:
//!
//! 1. `/ready` turns 503 and the public listener stops accepting;
//! 2. in-flight requests finish (up to `shutdown.grace`);
//! 3. instances get SIGTERM, then SIGKILL after `app.stop_timeout`;
//! 4. the admin listener closes and `run` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use shoal_config::{Algorithm, Config};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::balance::{self, Endpoint, EndpointTable};
use crate::proxy::pool::PoolSettings;
use crate::proxy::{self, Proxy};
use crate::supervisor::{Supervisor, SupervisorOptions};

/// What the admin API reads.
pub struct State {
    pub table: Arc<EndpointTable>,
    pub supervisor: Option<Supervisor>,
    pub upstreams: Vec<Arc<Endpoint>>,
    pub started: Instant,
    pub proxy_addr: SocketAddr,
    pub algorithm: Algorithm,
    shutting_down: AtomicBool,
}

impl State {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }
}

pub struct Listeners {
    pub proxy: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> Result<Listeners, String> {
        let proxy = TcpListener::bind(config.listen)
            .await
            .map_err(|e| format!("cannot listen on {} (listen): {e}", config.listen))?;
        let admin = TcpListener::bind(config.admin.listen).await.map_err(|e| {
            format!(
                "cannot listen on {} (admin.listen): {e}",
                config.admin.listen
            )
        })?;
        Ok(Listeners { proxy, admin })
    }
}

#[derive(Default)]
pub struct RunOptions {
    /// The shoal executable, used to start the guard process (see supervisor).
    pub guard_exe: Option<PathBuf>,
}

pub async fn run(
    config: Config,
    listeners: Listeners,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), String> {
    let proxy_addr = listeners.proxy.local_addr().map_err(|e| e.to_string())?;
    let admin_addr = listeners.admin.local_addr().map_err(|e| e.to_string())?;
    let pool = PoolSettings::from(&config.proxy);
    let table = Arc::new(EndpointTable::new());
    let background = CancellationToken::new();

    let mut upstreams = Vec::new();
    for (i, u) in config.upstreams.iter().enumerate() {
        let (host, port) = u
            .host_port()
            .map_err(|e| format!("upstreams[{i}].url: {e}"))?;
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("upstreams[{i}].url: cannot resolve {host}"))?;
        let endpoint = Endpoint::new(u.url.clone(), addr, u.weight, &pool);
        table.insert(endpoint.clone());
        crate::health::spawn(
            endpoint.clone(),
            config.health.clone(),
            background.child_token(),
        );
        upstreams.push(endpoint);
    }

    let supervisor = match &config.app {
        Some(app) => Some(
            Supervisor::start(
                app,
                &table,
                SupervisorOptions {
                    guard_exe: options.guard_exe.clone(),
                    pool: pool.clone(),
                },
            )
            .map_err(|e| format!("cannot start instances: {e}"))?,
        ),
        None => None,
    };

    let state = Arc::new(State {
        table: table.clone(),
        supervisor,
        upstreams,
        started: Instant::now(),
        proxy_addr,
        algorithm: config.balance.algorithm,
        shutting_down: AtomicBool::new(false),
    });

    let proxy = Arc::new(Proxy::new(
        table.clone(),
        balance::for_algorithm(config.balance.algorithm),
        config.proxy.retries,
    ));
    let proxy_stop = CancellationToken::new();
    let proxy_task = tokio::spawn(proxy::serve(
        listeners.proxy,
        proxy,
        proxy_stop.clone(),
        config.shutdown.grace,
    ));
    let admin_stop = CancellationToken::new();
    let admin_task = tokio::spawn(crate::admin::serve(
        listeners.admin,
        state.clone(),
        admin_stop.clone(),
    ));
    tracing::info!("proxy listening on {proxy_addr}");
    tracing::info!("admin listening on {admin_addr}");

    shutdown.await;

    tracing::info!(grace = ?config.shutdown.grace, "shutting down: not ready, no new connections, finishing in-flight requests");
    state.shutting_down.store(true, Ordering::Release);
    proxy_stop.cancel();
    let _ = proxy_task.await;
    if let Some(s) = &state.supervisor {
        tracing::info!("stopping instances");
        s.shutdown().await;
    }
    background.cancel();
    admin_stop.cancel();
    let _ = admin_task.await;
    tracing::info!("shutdown complete");
    Ok(())
}
