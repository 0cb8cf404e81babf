//! The public listeners (`listeners:`, or the `listen:` + `tls:`
//! shorthand), each with its own socket, TLS terminator and role (name,
//! PROXY protocol, redirect), all serving the same proxy.
//!
//! A listener is known by its configured address. A reload reads every
//! certificate and binds every new address before anything changes (a
//! bad file or a taken port changes nothing), then starts the new
//! listeners, updates the ones that stay (role, TLS for new handshakes)
//! and last stops the ones gone (they stop accepting; their connections
//! finish).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use shoal_config::{ProxyProtocol, PublicListener};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::listeners::{bind, ListenError};
use crate::proxy::listener::{HttpsPort, ListenerRole};
use crate::proxy::{self, Proxy};
use crate::tls::{Prepared, Terminator, TlsError};

/// What every public listener serves with.
pub struct Serving {
    pub proxy: Arc<Proxy>,
    pub grace: proxy::Grace,
    pub limits: proxy::LimitsNow,
}

struct Running {
    config: PublicListener,
    /// The bound address (the configured one, with port 0 resolved).
    addr: SocketAddr,
    role: Arc<ArcSwap<ListenerRole>>,
    tls: Arc<Terminator>,
    stop: CancellationToken,
}

/// One listener in `/api/v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ListenerStatus {
    pub name: String,
    pub address: String,
    pub tls: bool,
    pub proxy_protocol: ProxyProtocol,
    pub redirect_https: bool,
}

#[derive(Default)]
pub struct PublicListeners {
    running: Mutex<Vec<Running>>,
    /// Every listener task started, so shutdown waits for all of them.
    tasks: Mutex<Vec<JoinHandle<()>>>,
    https_port: HttpsPort,
}

fn role(config: &PublicListener) -> ListenerRole {
    ListenerRole {
        name: config.name.as_str().into(),
        proxy_protocol: config.proxy_protocol,
        redirect_https: config.redirect_https,
    }
}

/// Reads the certificates of every listener with `tls`, changing nothing.
pub fn read_certificates(list: &[PublicListener]) -> Result<Vec<Prepared>, TlsError> {
    list.iter()
        .map(|l| Terminator::prepare(l.tls.as_ref(), &l.tls_at))
        .collect()
}

impl PublicListeners {
    fn running(&self) -> std::sync::MutexGuard<'_, Vec<Running>> {
        match self.running.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// The first listener's bound address.
    pub fn first_addr(&self) -> Option<SocketAddr> {
        self.running().first().map(|r| r.addr)
    }

    pub fn status(&self) -> Vec<ListenerStatus> {
        self.running()
            .iter()
            .map(|r| ListenerStatus {
                name: r.config.name.clone(),
                address: r.addr.to_string(),
                tls: r.tls.server_config().is_some(),
                proxy_protocol: r.config.proxy_protocol,
                redirect_https: r.config.redirect_https,
            })
            .collect()
    }

    /// Start the listeners of a starting shoal: `bound[i]` is `list[i]`'s socket.
    pub fn start_all(
        &self,
        list: Vec<PublicListener>,
        bound: Vec<TcpListener>,
        serving: &Serving,
    ) -> Result<(), TlsError> {
        let mut running = Vec::new();
        for (config, socket) in list.into_iter().zip(bound) {
            let tls = Terminator::new(config.tls.as_ref(), &config.tls_at)?;
            running.push(self.spawn(config, socket, Arc::new(tls), serving));
        }
        self.set_https_port(&running);
        *self.running() = running;
        Ok(())
    }

    fn spawn(
        &self,
        config: PublicListener,
        socket: TcpListener,
        tls: Arc<Terminator>,
        serving: &Serving,
    ) -> Running {
        let addr = socket.local_addr().unwrap_or(config.listen);
        let stop = CancellationToken::new();
        let role = Arc::new(ArcSwap::from_pointee(role(&config)));
        let scheme = if tls.server_config().is_some() {
            "https"
        } else {
            "http"
        };
        let task = tokio::spawn(proxy::serve(
            socket,
            proxy::Frontend {
                proxy: serving.proxy.clone(),
                tls: tls.clone(),
                grace: serving.grace.clone(),
                limits: serving.limits.clone(),
                role: role.clone(),
                https_port: self.https_port.clone(),
            },
            stop.clone(),
        ));
        if let Ok(mut t) = self.tasks.lock() {
            t.push(task);
        }
        tracing::info!(
            "proxy listening on {addr} ({scheme}{}; listener {})",
            extras(&config),
            config.name
        );
        Running {
            config,
            addr,
            role,
            tls,
            stop,
        }
    }

    /// `redirect_https` goes to the first listener with TLS.
    fn set_https_port(&self, running: &[Running]) {
        let port = running
            .iter()
            .find(|r| r.config.tls.is_some())
            .map_or(0, |r| r.addr.port());
        self.https_port.store(port, Ordering::Relaxed);
    }

    /// Bind every address of `list` not listened on now; `None` for those
    /// that are. The first that cannot be bound is the error (and the
    /// sockets bound so far are closed again).
    pub async fn bind_new(
        &self,
        list: &[PublicListener],
    ) -> Result<Vec<Option<TcpListener>>, ListenError> {
        let current: Vec<SocketAddr> = self.running().iter().map(|r| r.config.listen).collect();
        let mut out = Vec::new();
        for l in list {
            out.push(match current.contains(&l.listen) {
                true => None,
                false => Some(bind(l.listen, &l.listen_at).await?),
            });
        }
        Ok(out)
    }

    /// Put `list` in place: new listeners start (on the sockets of
    /// [`bind_new`](Self::bind_new)), the ones that stay take their new
    /// role and TLS, the ones gone stop accepting. Returns what changed.
    pub fn apply(
        &self,
        list: Vec<PublicListener>,
        certs: Vec<Prepared>,
        bound: Vec<Option<TcpListener>>,
        serving: &Serving,
    ) -> Result<Vec<String>, TlsError> {
        let mut changes = Vec::new();
        let mut old = std::mem::take(&mut *self.running());
        let mut next = Vec::new();
        let mut result = Ok(());
        for ((config, prepared), socket) in list.into_iter().zip(certs).zip(bound) {
            let kept = old.iter().position(|r| r.config.listen == config.listen);
            match (kept, socket) {
                (Some(i), _) => {
                    let mut r = old.remove(i);
                    if result.is_ok() {
                        match r.tls.apply(config.tls.as_ref(), prepared) {
                            Ok(tls) if !tls.is_empty() => {
                                changes.push(format!("listener {}: {tls}", config.name))
                            }
                            Ok(_) => {}
                            Err(e) => result = Err(e),
                        }
                    }
                    if role(&r.config) != role(&config) {
                        r.role.store(Arc::new(role(&config)));
                        changes.push(format!(
                            "listener {} on {}: now{}",
                            config.name,
                            r.addr,
                            match extras(&config).as_str() {
                                "" => " plain".to_string(),
                                e => e.trim_start_matches(',').to_string(),
                            }
                        ));
                    }
                    r.config = config;
                    next.push(r);
                }
                (None, Some(socket)) => {
                    let tls = Terminator::default();
                    if result.is_ok() {
                        if let Err(e) = tls.apply(config.tls.as_ref(), prepared) {
                            result = Err(e);
                        }
                    }
                    let name = config.name.clone();
                    let r = self.spawn(config, socket, Arc::new(tls), serving);
                    changes.push(format!("listener {name} added on {}", r.addr));
                    next.push(r);
                }
                // `bind_new` bound every address not running.
                (None, None) => {}
            }
        }
        // The shorthand's one listener on a new address: a move.
        let shorthand = |r: &Running| r.config.listen_at == "listen";
        if let ([gone], [moved]) = (old.as_slice(), next.as_slice()) {
            if shorthand(gone) && shorthand(moved) {
                changes.retain(|c| !c.ends_with(&format!("added on {}", moved.addr)));
                changes.push(format!("public listener moved to {}", moved.config.listen));
                gone.stop.cancel();
                old.clear();
            }
        }
        for gone in old {
            gone.stop.cancel();
            changes.push(format!(
                "listener {} on {} removed (stops accepting; its connections finish)",
                gone.config.name, gone.addr
            ));
        }
        self.set_https_port(&next);
        *self.running() = next;
        result.map(|_| changes)
    }

    /// The same listeners, certificates read again (a reload of an
    /// unchanged config rotates them).
    pub fn reread_certificates(
        &self,
        list: &[PublicListener],
        certs: Vec<Prepared>,
    ) -> Result<Vec<String>, TlsError> {
        let running = self.running();
        let mut changes = Vec::new();
        for (config, prepared) in list.iter().zip(certs) {
            let Some(r) = running.iter().find(|r| r.config.listen == config.listen) else {
                continue;
            };
            if config.tls.is_some() {
                let tls = r.tls.apply(config.tls.as_ref(), prepared)?;
                changes.push(format!("listener {}: {tls}", config.name));
            }
        }
        Ok(changes)
    }

    pub fn stop_accepting(&self) {
        for r in self.running().iter() {
            r.stop.cancel();
        }
    }

    pub async fn join(&self) {
        super::listeners::join_tasks(&self.tasks).await;
    }
}

/// `, PROXY protocol v1, redirect to https` as they apply.
fn extras(config: &PublicListener) -> String {
    let mut out = String::new();
    if config.proxy_protocol != ProxyProtocol::Off {
        out.push_str(&format!(
            ", PROXY protocol {}",
            config.proxy_protocol.as_str()
        ));
    }
    if config.redirect_https {
        out.push_str(", redirects to https");
    }
    out
}
