//! Hot reload of shoal's own config (SIGHUP, `shoal reload --apply-config`).
//!
//! The file is read and validated in full first; an invalid file changes
//! nothing. The TLS certificate files (of every listener) are re-read on
//! every reload (also when the text is unchanged) before anything is
//! applied; a file that cannot be used changes nothing. New listen
//! addresses are bound before anything is applied, so a port conflict also
//! changes nothing. Then, in order: static upstreams, balancer and retries,
//! health-check settings, the public listeners (new ones start, the ones
//! that stay take their new TLS and role, the ones gone stop accepting and
//! their connections finish), the admin listener, and the app: a changed
//! command, environment, directory or host rolls the instances; a changed
//! count scales them. Keys that cannot change in a running process
//! (`workers`, `log`) are reported as taking effect at the next start.

use std::sync::Arc;

use shoal_config::{Config, UpstreamConfig, Upstreams};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::listeners::{self, bind, ListenError};
use super::{public, SourceError, State};
use crate::balance::Endpoint;
use crate::proxy::Routing;
use crate::supervisor::{OpError, Progress};
use crate::tls::TlsError;

/// Why a config reload changed nothing, or not everything.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("config not applied: shoal is shutting down")]
    ShuttingDown,
    #[error("config reload is not available: shoal was not started from a config file")]
    NoSource,
    /// The file cannot be read or is not a valid config.
    #[error("config not applied (the running config is kept):\n{0}")]
    Invalid(#[source] SourceError),
    /// A certificate or key file cannot be used.
    #[error("config not applied (the running config and certificates are kept): {0}")]
    Certificates(#[source] TlsError),
    /// The TLS settings could not be put in use.
    #[error(transparent)]
    Tls(TlsError),
    #[error("config not applied: adding, removing or renaming an app (`app`, `apps`) needs a restart of shoal")]
    AppSectionAddedOrRemoved,
    /// A new listen address cannot be bound.
    #[error("config not applied: {0}")]
    Bind(#[from] ListenError),
    /// A new upstream's URL cannot be resolved.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// Everything else is in place; the app's rolling reload or scale failed.
    #[error("config applied except the `app` section, which was not (the running instances keep the old one): {0}")]
    App(#[source] OpError),
}

/// A static upstream whose address is not known; `key` is its URL's key
/// path (`upstreams[0].url`, `upstreams.api[1].url`).
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    /// Not an `http://HOST:PORT` URL (the config's message).
    #[error("{key}: {reason}")]
    Url { key: String, reason: String },
    #[error("{key}: cannot resolve {host}")]
    Unresolved { key: String, host: String },
    /// Its TLS files cannot be used (they were read at load; this is a
    /// file changed or removed since).
    #[error("{0}")]
    Tls(String),
}

/// The TLS connector of the upstream at key path `at`, if it is
/// `https://`.
fn upstream_tls(
    at: &str,
    u: &UpstreamConfig,
) -> Result<Option<Arc<crate::tls::client::Connector>>, UpstreamError> {
    let Some(tls) = u.backend_tls(at) else {
        return Ok(None);
    };
    crate::tls::client::Connector::new(&tls, u.protocol)
        .map(|c| Some(Arc::new(c)))
        .map_err(|problems| {
            UpstreamError::Tls(
                problems
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
            )
        })
}

/// A static upstream and the token that stops its health checks.
pub(super) struct Upstream {
    pub endpoint: Arc<Endpoint>,
    pub stop: CancellationToken,
    /// Its upstream group; `None` in the flat list.
    pub group: Option<String>,
    /// Its pool's table.
    pub table: Arc<crate::balance::EndpointTable>,
    pub config: UpstreamConfig,
}

/// Every static upstream: its group and config.
type Wanted = Vec<(Option<String>, UpstreamConfig)>;

fn wanted(upstreams: &Upstreams) -> Wanted {
    upstreams
        .all()
        .into_iter()
        .map(|(g, u)| (g.map(str::to_string), u.clone()))
        .collect()
}

/// Resolve every upstream's address; the first that fails is the error.
pub(super) async fn resolve_upstreams(
    upstreams: &Upstreams,
) -> Result<Vec<std::net::SocketAddr>, UpstreamError> {
    let mut out = Vec::new();
    // In the order of `Upstreams::all`, as `sync_upstreams` pairs them.
    for (at, u) in upstreams.keyed() {
        let key = format!("{at}.url");
        let (host, port) = match u.host_port() {
            Ok(hp) => hp,
            Err(reason) => return Err(UpstreamError::Url { key, reason }),
        };
        let addr = tokio::net::lookup_host((host.as_str(), port))
            .await
            .ok()
            .and_then(|mut a| a.next());
        match addr {
            Some(addr) => out.push(addr),
            None => return Err(UpstreamError::Unresolved { key, host }),
        }
    }
    Ok(out)
}

/// Make the pools' static upstreams match `upstreams`: add the new ones,
/// remove the ones gone or changed (in-flight requests to them finish).
pub(super) async fn sync_upstreams(
    state: &State,
    config: &Config,
) -> Result<Vec<String>, UpstreamError> {
    let upstreams = &config.upstreams;
    let mut added = Vec::new();
    let wanted = wanted(upstreams);
    // Resolve everything first: a bad name changes nothing.
    let mut fresh = Vec::new();
    let current: Wanted = state
        .upstream_entries()
        .iter()
        .map(|u| (u.group.clone(), u.config.clone()))
        .collect();
    let addrs = resolve_upstreams(upstreams).await?;
    let keys = upstreams.keyed();
    for ((u, addr), (at, _)) in wanted.iter().zip(addrs).zip(&keys) {
        if !current.contains(u) {
            // The TLS files are read here too: a bad one changes nothing.
            fresh.push((u.clone(), addr, upstream_tls(at, &u.1)?));
        }
    }
    // Nothing can fail from here: new groups get their tables (and health
    // settings) before anything is put in them, gone ones are dropped.
    state.tables.update(config);
    let mut changes = Vec::new();
    let mut entries = state.upstream_entries_mut();
    entries.retain(|e| {
        let keep = wanted.contains(&(e.group.clone(), e.config.clone()));
        if !keep {
            e.stop.cancel();
            e.table.remove(e.endpoint.key());
            changes.push(format!("upstream {} removed", named(&e.group, &e.config)));
        }
        keep
    });
    for ((group, config), addr, tls) in fresh {
        let endpoint = Endpoint::new(
            config.url.clone(),
            addr,
            config.weight,
            &state.pool.for_backend(config.protocol, tls),
        );
        let stop = state.background.child_token();
        let (table, health) = state.tables.for_upstream(group.as_deref());
        table.insert(endpoint.clone());
        crate::health::spawn(endpoint.clone(), health, stop.clone());
        added.push(format!(
            "upstream {} added (weight {}, {}{})",
            named(&group, &config),
            config.weight,
            config.protocol.as_str(),
            if config.is_https() { ", TLS" } else { "" }
        ));
        entries.push(Upstream {
            endpoint,
            stop,
            group,
            table,
            config,
        });
    }
    changes.extend(added);
    Ok(changes)
}

/// `URL`, or `URL (group NAME)`.
fn named(group: &Option<String>, config: &UpstreamConfig) -> String {
    match group {
        Some(g) => format!("{} (group {g})", config.url),
        None => config.url.clone(),
    }
}

/// Re-read the config file and apply it. Returns a summary of what changed.
pub async fn reload_config(state: &Arc<State>, progress: &Progress) -> Result<String, ReloadError> {
    use crate::events::{emit, Kind};
    if !state.is_shutting_down() {
        crate::systemd::reloading();
    }
    let result = apply_config(state, progress).await;
    if !state.is_shutting_down() {
        crate::systemd::reloaded(state);
    }
    match &result {
        Ok(summary) => emit(
            Kind::ConfigReloaded,
            None,
            None,
            format!("config reloaded: {summary}"),
        ),
        Err(e) => emit(
            Kind::ConfigReloadFailed,
            None,
            None,
            format!("config reload failed: {e}"),
        ),
    }
    result
}

async fn apply_config(state: &Arc<State>, progress: &Progress) -> Result<String, ReloadError> {
    let _one_at_a_time = state.reloading.lock().await;
    if state.is_shutting_down() {
        return Err(ReloadError::ShuttingDown);
    }
    let source = state.config_source.as_ref().ok_or(ReloadError::NoSource)?;
    let new = source().map_err(ReloadError::Invalid)?;
    // The certificate files are read again on every reload, even when the
    // config text is unchanged: that is how certificates are rotated. A
    // file that cannot be used changes nothing, certificates included.
    let wanted = new.public_listeners();
    let certs = public::read_certificates(&wanted).map_err(ReloadError::Certificates)?;
    let old = state.config();
    if *old == new {
        if wanted.iter().all(|l| l.tls.is_none()) {
            return Ok("config unchanged".into());
        }
        let changes = state
            .public
            .reread_certificates(&wanted, certs)
            .map_err(ReloadError::Tls)?;
        for c in changes {
            progress.step(0, 0, c);
        }
        return Ok("config unchanged; TLS certificates re-read".into());
    }
    let names =
        |c: &Config| -> Vec<String> { c.all_apps().iter().map(|(n, _)| n.to_string()).collect() };
    if names(&old) != names(&new) {
        return Err(ReloadError::AppSectionAddedOrRemoved);
    }
    // Bind first: if a new address is taken, nothing is applied.
    let bound = state.public.bind_new(&wanted).await?;
    let moved = bind_moved(&old, &new).await?;
    if new.upstreams != old.upstreams {
        // Resolution happens inside; a failure there also applies nothing.
        let changes = sync_upstreams(state, &new).await?;
        for c in changes {
            progress.step(0, 0, c);
        }
    } else if new.health != old.health || new.apps != old.apps {
        state.tables.update(&new);
    }
    for c in state.sync_discovery(&new) {
        progress.step(0, 0, c);
    }
    apply_live(state, &old, &new, progress);
    let serving = super::serving(state, state.proxy.clone());
    let changes = state.public.apply(wanted, certs, bound, &serving);
    move_listeners(state, moved, &new, progress);
    for c in changes.as_ref().map(|c| c.as_slice()).unwrap_or_default() {
        progress.step(0, 0, c.clone());
    }
    changes.map_err(ReloadError::Tls)?;
    let later = at_next_start(&old, &new);
    // Everything but the app is in place. Until the app's part has worked,
    // the stored config keeps the old app section, so a retry retries it.
    let mut effective = new.clone();
    effective.app = old.app.clone();
    effective.apps = old.apps.clone();
    state.config.store(Arc::new(effective.clone()));
    let mut result = Ok(());
    for (sup, (name, app)) in state.supervisors.iter().zip(new.all_apps()) {
        let Some((_, old_app)) = old.all_apps().into_iter().find(|(n, _)| *n == name) else {
            continue;
        };
        result = apply_app(sup, app, old_app, progress).await;
        if result.is_err() {
            break;
        }
        // This app's part worked: it is in the stored config from now on.
        match &mut effective.app {
            Some(a) => *a = app.clone(),
            None => {
                effective.apps.insert(name.to_string(), app.clone());
            }
        }
        state.config.store(Arc::new(effective.clone()));
    }
    let mut summary = String::from("config reloaded");
    if !later.is_empty() {
        summary.push_str(&format!(
            "; changes to {} take effect at the next start of shoal",
            later.join(", ")
        ));
    }
    result.map(|_| summary).map_err(ReloadError::App)
}

/// The admin listener a changed address needs, bound before anything is
/// applied (the public ones: `PublicListeners::bind_new`).
struct Moved {
    admin: Option<TcpListener>,
}

async fn bind_moved(old: &Config, new: &Config) -> Result<Moved, ListenError> {
    let admin = match new.admin.listen != old.admin.listen {
        true => Some(bind(new.admin.listen, "admin.listen").await?),
        false => None,
    };
    Ok(Moved { admin })
}

/// What applies at once: routing (balance, proxy, trusted_proxies), limits
/// for new connections, upstream health checks.
fn apply_live(state: &Arc<State>, old: &Config, new: &Config, progress: &Progress) {
    if new.admin != old.admin {
        state.set_admin_token(&new.admin);
    }
    if new.state != old.state {
        // The store holds the counts a reload keeps; another one (another
        // backend, another Redis) is connected at start only.
        tracing::warn!("`state` changed: it takes effect when shoal restarts; the rate limits keep their current store");
    }
    // Rebuilt on every change: it is cheap, and what it holds depends on
    // many sections (listeners' own routes and names, apps, …).
    state.proxy.set_routing(Routing::for_config(
        new,
        &|name| state.tables.table(name),
        &state.limiter,
    ));
    if new.balance != old.balance
        || new.proxy != old.proxy
        || new.trusted_proxies != old.trusted_proxies
        || new.routes != old.routes
        || new.rate_limits != old.rate_limits
        || new.compress != old.compress
        || new.upstreams != old.upstreams
        || new.listeners != old.listeners
    {
        progress.step(
            0,
            0,
            format!(
                "balancer: {:?}, retries: {}, routes ({}), timeouts, passive health and trusted proxies updated",
                new.balance.algorithm,
                new.proxy.retries,
                new.routes.len()
            ),
        );
    }
    if new.limits != old.limits {
        progress.step(
            0,
            0,
            "client limits updated (for connections accepted from now on)",
        );
    }
    if new.health != old.health {
        progress.step(0, 0, "upstream health checks updated");
    }
}

/// A new admin listener takes over from the old (which stops accepting).
fn move_listeners(state: &Arc<State>, moved: Moved, new: &Config, progress: &Progress) {
    if let Some(l) = moved.admin {
        listeners::start_admin(
            &state.admin_listener,
            l,
            state.clone(),
            state.admin_shutdown.clone(),
        );
        progress.step(
            0,
            0,
            format!("admin listener moved to {}", new.admin.listen),
        );
    }
}

/// Changed settings that apply only at the next start of shoal.
fn at_next_start(old: &Config, new: &Config) -> Vec<&'static str> {
    let mut later = Vec::new();
    if new.workers != old.workers {
        later.push("workers");
    }
    if new.log != old.log {
        later.push("log");
    }
    if new.proxy.connect_timeout != old.proxy.connect_timeout
        || new.proxy.max_idle_per_backend != old.proxy.max_idle_per_backend
        || new.proxy.idle_timeout != old.proxy.idle_timeout
        || new.proxy.send_timeout != old.proxy.send_timeout
    {
        later.push("proxy connection pool settings");
    }
    later
}

/// An app's part, last: a rolling reload when what an instance runs
/// changed, a scale when the count in the file changed. On failure the
/// instances keep being started from the old app section.
async fn apply_app(
    sup: &Arc<crate::supervisor::Supervisor>,
    app: &shoal_config::AppConfig,
    old_app: &shoal_config::AppConfig,
    progress: &Progress,
) -> Result<(), OpError> {
    if app == old_app {
        return Ok(());
    }
    let _op = sup.begin("config reload").await;
    let mut result = Ok(());
    if sup.update_spec(app) {
        progress.step(
            0,
            0,
            format!(
                "{}: command/env/cwd/host/protocol/tls changed: rolling reload",
                sup.name()
            ),
        );
        result = sup.rolling_reload(progress).await.map(|_| ());
    }
    // A count changed in the file wins over an earlier `shoal scale`;
    // other app changes leave the running count alone.
    if result.is_ok() && app.instances != old_app.instances {
        result = sup.scale(app.instances, progress).await.map(|_| ());
    }
    if result.is_err() {
        sup.update_spec(old_app);
    }
    result
}

impl State {
    pub(super) fn upstream_entries(&self) -> std::sync::MutexGuard<'_, Vec<Upstream>> {
        self.upstream_entries_mut()
    }

    pub(super) fn upstream_entries_mut(&self) -> std::sync::MutexGuard<'_, Vec<Upstream>> {
        match self.upstreams.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}
