//! Wiring: given a validated config and bound listeners, run shoal until the
//! shutdown future resolves, then shut down in order:
//!
//! 1. `/ready` turns 503; after `shutdown.delay` (default 0) every public
//!    listener stops accepting;
//! 2. in-flight requests finish (up to `shutdown.grace`);
//! 3. instances get SIGTERM, then SIGKILL after `app.stop_timeout`;
//! 4. the admin listener closes and `run` returns.

mod listeners;
mod pools;
mod public;
mod reload;
pub mod replica;

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use arc_swap::ArcSwap;
use shoal_config::Config;
use tokio_util::sync::CancellationToken;

use crate::access_log::Logs;
use crate::balance::Endpoint;
use crate::proxy::pool::PoolSettings;
use crate::proxy::{Proxy, Routing};
use crate::ratelimit::Limiter;
use crate::supervisor::{OpError, Progress, Supervisor, SupervisorOptions};
use crate::tls::TlsError;
pub use pools::PoolTables;

pub use listeners::{ListenError, ListenerSlot, Listeners};
pub use public::{ListenerStatus, PublicListeners};
pub use reload::{ReloadError, UpstreamError};

/// Re-reads the config file for a hot reload.
pub type ConfigSource = Box<dyn Fn() -> Result<Config, SourceError> + Send + Sync>;

/// Why a [`ConfigSource`] gave no config (the file cannot be read, or is
/// not valid); the reload only shows it.
pub type SourceError = Box<dyn std::error::Error + Send + Sync>;

/// Why shoal did not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// A static upstream's address cannot be resolved.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The certificates cannot be used.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// `admin.token_file` cannot be read.
    #[error("{0}")]
    AdminToken(String),
    /// No guard process, or no free port for an instance.
    #[error("cannot start instances: {0}")]
    Instances(#[source] std::io::Error),
}

/// Everything the admin API and the reload path act on.
pub struct State {
    /// The pools' endpoint tables: `tables.default` holds `app`'s
    /// instances and a flat `upstreams` list, and each group has its own.
    pub tables: PoolTables,
    /// One per app (`app`, or each of `apps` in name order).
    pub supervisors: Vec<Arc<Supervisor>>,
    /// One per supervisor, in the same order (idle where `autoscale` is unset).
    pub autoscalers: Vec<Arc<crate::autoscale::Autoscaler>>,
    pub proxy: Arc<Proxy>,
    /// The rate limits' store and each rule's live state, kept across
    /// config reloads.
    pub limiter: Arc<Limiter>,
    /// The access log's writer, kept across config reloads.
    pub access_logs: Logs,
    /// The public listeners, each with its TLS (off, or the certificates
    /// in use).
    pub public: PublicListeners,
    pub started: Instant,
    /// The dashboard's samples of the traffic, one a second.
    pub history: crate::dashboard::History,
    config: ArcSwap<Config>,
    /// `admin.token` (or `token_file`'s), as the config in use says.
    admin_token: arc_swap::ArcSwapOption<String>,
    /// `admin.tls`: off, or the certificates the admin listener's
    /// handshakes use (a reload swaps them, as the public listeners').
    pub admin_tls: crate::tls::Terminator,
    upstreams: Mutex<Vec<reload::Upstream>>,
    /// The upstream groups' discovery tasks (`dns:`, `file:`, `registry:`).
    pub discovery: crate::discovery::Discoveries,
    /// This replica, and the others seen through Redis.
    pub replica: replica::Replica,
    pool: PoolSettings,
    shutting_down: AtomicBool,
    admin_listener: ListenerSlot,
    admin_shutdown: CancellationToken,
    background: CancellationToken,
    config_source: Option<ConfigSource>,
    /// One config reload at a time.
    reloading: tokio::sync::Mutex<()>,
}

impl State {
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Acquire)
    }

    /// Backends in rotation and backends known, over every pool: shoal is
    /// ready (`/ready`, systemd's `READY=1`) when any pool can serve, so one
    /// failing upstream group does not take the whole listener out of a
    /// load balancer in front.
    pub fn readiness(&self) -> (usize, usize) {
        let (mut healthy, mut backends) = (0, 0);
        for table in self.tables.all() {
            let set = table.snapshot();
            backends += set.endpoints.len();
            healthy += set.endpoints.iter().filter(|e| e.in_rotation()).count();
        }
        (healthy, backends)
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.load_full()
    }

    /// Every app's instances stopped (drained, SIGTERM, SIGKILL after
    /// `stop_timeout`), the apps side by side.
    async fn stop_instances(&self) {
        futures_util::future::join_all(self.supervisors.iter().map(|s| s.shutdown())).await;
    }

    /// The admin API's token, if the config sets one.
    pub fn admin_token(&self) -> Option<Arc<String>> {
        self.admin_token.load_full()
    }

    /// A reload's token: the new one, or, if its file cannot be read now,
    /// the one in use (with a warning).
    pub(crate) fn set_admin_token(&self, admin: &shoal_config::AdminConfig) {
        match crate::admin::auth::read_token(admin) {
            Ok(t) => self.admin_token.store(t.map(|t| Arc::new(t.to_string()))),
            Err(e) => tracing::warn!(error = %e, "admin token not changed"),
        }
    }

    pub fn upstreams(&self) -> Vec<Arc<Endpoint>> {
        self.upstream_entries()
            .iter()
            .map(|u| u.endpoint.clone())
            .collect()
    }

    /// Every upstream, listed or discovered, with its group (`None`: the
    /// flat list).
    pub fn upstream_groups(&self) -> Vec<(Option<String>, Arc<Endpoint>)> {
        let mut all: Vec<_> = self
            .upstream_entries()
            .iter()
            .map(|u| (u.group.clone(), u.endpoint.clone()))
            .collect();
        for d in self.discovery.all() {
            all.extend(
                d.endpoints()
                    .into_iter()
                    .map(|e| (Some(d.group.clone()), e)),
            );
        }
        all
    }

    /// Start, keep or stop the groups' discovery tasks as `config` says.
    pub(crate) fn sync_discovery(&self, config: &Config) -> Vec<String> {
        let target = |group: &str, protocol| {
            let (table, health) = self.tables.for_upstream(Some(group));
            crate::discovery::Target {
                table,
                health,
                pool: self.pool.for_backend(protocol, None),
            }
        };
        self.discovery.sync(config, &target, &self.background)
    }

    /// The first public listener's address.
    pub fn proxy_addr(&self) -> Option<std::net::SocketAddr> {
        self.public.first_addr()
    }

    pub fn can_reload_config(&self) -> bool {
        self.config_source.is_some()
    }
}

#[derive(Default)]
pub struct RunOptions {
    /// The shoal executable, used to start the guard process (see supervisor).
    pub guard_exe: Option<PathBuf>,
    /// Where a hot reload (SIGHUP, `shoal reload --apply-config`) reads the config.
    pub config_source: Option<ConfigSource>,
    /// Handle SIGHUP (config reload), SIGUSR1 (reopen the access log) and
    /// SIGUSR2 (rolling reload of the app).
    pub reload_signals: bool,
}

pub async fn run(
    config: Config,
    listeners: Listeners,
    options: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let pool = PoolSettings::from(&config.proxy);
    let tables = PoolTables::new(&config);
    let admin_token =
        crate::admin::auth::read_token(&config.admin).map_err(RunError::AdminToken)?;
    let background = CancellationToken::new();

    // Resolve the static upstreams and read the certificates before
    // starting any instance, so a bad name or file fails the start cleanly.
    reload::resolve_upstreams(&config.upstreams).await?;
    let public = config.public_listeners();
    public::read_certificates(&public)?;
    let admin_tls = crate::tls::Terminator::default();
    let admin_certs = crate::tls::Terminator::prepare(config.admin.tls.as_ref(), "admin.tls")?;
    let summary = admin_tls.apply(config.admin.tls.as_ref(), admin_certs)?;
    if !summary.is_empty() {
        tracing::info!("admin listener: {summary}");
    }
    let mut supervisors = Vec::new();
    for (name, app) in config.all_apps() {
        let sup = Supervisor::start(
            app,
            &tables.table(name),
            SupervisorOptions {
                name: name.to_string(),
                guard_exe: options.guard_exe.clone(),
                pool: pool.clone(),
            },
        );
        match sup {
            Ok(sup) => supervisors.push(sup),
            Err(e) => {
                // The apps already started are stopped, not orphaned.
                for started in &supervisors {
                    started.shutdown().await;
                }
                return Err(RunError::Instances(e));
            }
        }
    }
    // Stopped as shutdown begins, before the instances are: no scaling then.
    let autoscale_stop = background.child_token();
    let autoscalers = supervisors
        .iter()
        .map(|s| crate::autoscale::Autoscaler::spawn(s.clone(), autoscale_stop.clone()))
        .collect();
    let limiter = Arc::new(Limiter::new(&config.state));
    Limiter::start(&limiter);
    let access_logs = Logs::default();
    let mut routing = Routing::for_config(&config, &|name| tables.table(name), &limiter);
    routing.access_log = access_logs.for_config(&config.access_log);
    let proxy = Proxy::shared(routing);

    let state = Arc::new(State {
        tables,
        supervisors,
        autoscalers,
        proxy: proxy.clone(),
        limiter,
        access_logs,
        public: PublicListeners::default(),
        started: Instant::now(),
        history: crate::dashboard::History::default(),
        config: ArcSwap::from_pointee(config.clone()),
        upstreams: Mutex::new(Vec::new()),
        discovery: Default::default(),
        replica: Default::default(),
        pool,
        shutting_down: AtomicBool::new(false),
        admin_listener: ListenerSlot::default(),
        admin_shutdown: CancellationToken::new(),
        background: background.clone(),
        config_source: options.config_source,
        reloading: tokio::sync::Mutex::new(()),
        admin_token: arc_swap::ArcSwapOption::new(admin_token.map(|t| Arc::new(t.to_string()))),
        admin_tls,
    });
    let started: Result<(), RunError> = async {
        reload::sync_upstreams(&state, &config).await?;
        state.sync_discovery(&config);
        state
            .public
            .start_all(public, listeners.public, &serving(&state, proxy))?;
        Ok(())
    }
    .await;
    if let Err(e) = started {
        // The instances already started are stopped, not left to the guard.
        state.public.stop_accepting();
        state.stop_instances().await;
        background.cancel();
        return Err(e);
    }
    crate::dashboard::spawn(Arc::downgrade(&state), background.clone());
    crate::systemd::spawn(Arc::downgrade(&state), background.clone());
    replica::spawn(Arc::downgrade(&state), background.clone());
    listeners::start_admin(
        &state.admin_listener,
        listeners.admin,
        state.clone(),
        state.admin_shutdown.clone(),
    );
    if options.reload_signals {
        reload_on_signals(state.clone());
    }

    shutdown.await;

    let shutdown = state.config().shutdown.clone();
    state.shutting_down.store(true, Ordering::Release);
    crate::systemd::stopping();
    autoscale_stop.cancel();
    if !shutdown.delay.is_zero() {
        tracing::info!(delay = ?shutdown.delay, "shutting down: /ready is 503; still serving while balancers in front notice");
        tokio::time::sleep(shutdown.delay).await;
    }
    tracing::info!(grace = ?shutdown.grace, "shutting down: no new connections, finishing in-flight requests");
    state.public.stop_accepting();
    state.public.join().await;
    state.access_logs.flush().await;
    replica::leave(&state).await;
    if !state.supervisors.is_empty() {
        tracing::info!("stopping instances");
        state.stop_instances().await;
    }
    background.cancel();
    state.admin_listener.stop_accepting();
    state.admin_shutdown.cancel();
    state.admin_listener.join().await;
    tracing::info!("shutdown complete");
    Ok(())
}

/// What every public listener serves with.
fn serving(state: &Arc<State>, proxy: Arc<Proxy>) -> public::Serving {
    public::Serving {
        proxy,
        grace: grace_of(state),
        limits: limits_of(state),
    }
}

/// The current `shutdown.grace`, for listeners started now or later.
fn grace_of(state: &Arc<State>) -> crate::proxy::Grace {
    let weak = Arc::downgrade(state);
    Arc::new(move || {
        weak.upgrade()
            .map(|s| s.config().shutdown.grace)
            .unwrap_or(std::time::Duration::from_secs(30))
    })
}

/// The current `limits:`, for each connection accepted.
fn limits_of(state: &Arc<State>) -> crate::proxy::LimitsNow {
    let weak = Arc::downgrade(state);
    Arc::new(move || {
        weak.upgrade()
            .map(|s| s.config().limits.clone())
            .unwrap_or_default()
    })
}

/// Rolling reload of every app, one after the other; what SIGUSR2 starts
/// (`POST /api/v1/reload?app=NAME` reloads one).
pub async fn rolling_reload(state: &State, progress: &Progress) -> Result<String, OpError> {
    if state.supervisors.is_empty() {
        return Err(OpError::NoInstances);
    }
    let mut done = Vec::new();
    for sup in &state.supervisors {
        if state.is_shutting_down() {
            return Err(OpError::ShuttingDown);
        }
        let _op = sup.begin("rolling reload").await;
        done.push(sup.rolling_reload(progress).await?);
    }
    Ok(done.join("; "))
}

/// Which app an operation names.
#[derive(Debug, thiserror::Error)]
pub enum AppChoice {
    #[error("no app: shoal runs no instances (set `app` or `apps`)")]
    NoApps,
    #[error("there are several apps ({0}): name one")]
    Several(String),
    #[error("no app named `{name}` (the apps are {known})")]
    Unknown { name: String, known: String },
}

impl State {
    /// The app `name` names, or the only one when `name` is `None`.
    pub fn app(&self, name: Option<&str>) -> Result<Arc<Supervisor>, AppChoice> {
        let known = || {
            self.supervisors
                .iter()
                .map(|s| s.name().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        match (name, self.supervisors.as_slice()) {
            (_, []) => Err(AppChoice::NoApps),
            (None, [only]) => Ok(only.clone()),
            (None, _) => Err(AppChoice::Several(known())),
            (Some(n), all) => {
                all.iter()
                    .find(|s| s.name() == n)
                    .cloned()
                    .ok_or_else(|| AppChoice::Unknown {
                        name: n.to_string(),
                        known: known(),
                    })
            }
        }
    }
}

pub use reload::reload_config;

fn reload_on_signals(state: Arc<State>) {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut hup), Ok(mut usr2), Ok(mut usr1)) = (
        signal(SignalKind::hangup()),
        signal(SignalKind::user_defined2()),
        signal(SignalKind::user_defined1()),
    ) else {
        tracing::warn!(
            "cannot install SIGHUP/SIGUSR1/SIGUSR2 handlers; use the admin API to reload"
        );
        return;
    };
    let stop = state.background.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = hup.recv() => {
                    tracing::info!("SIGHUP: reloading the config");
                    let state = state.clone();
                    tokio::spawn(async move {
                        let progress = Progress::log_only();
                        let r = reload_config(&state, &progress).await;
                        progress.finish(&r);
                    });
                }
                _ = usr1.recv() => {
                    // logrotate's convention: the file was moved; write a new one.
                    tracing::info!("SIGUSR1: reopening the access log");
                    state.access_logs.reopen();
                }
                _ = usr2.recv() => {
                    tracing::info!("SIGUSR2: rolling reload of the app");
                    let state = state.clone();
                    tokio::spawn(async move {
                        let progress = Progress::log_only();
                        let r = rolling_reload(&state, &progress).await;
                        progress.finish(&r);
                    });
                }
            }
        }
    });
}
