//! Binding the public and admin listeners, and moving the admin listener:
//! a changed address is bound before the old socket stops accepting, and
//! connections accepted on the old socket finish normally. The public
//! listeners are run by `public.rs`.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::State;

pub struct Listeners {
    /// One per public listener, in the order of `Config::public_listeners`.
    pub public: Vec<TcpListener>,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &shoal_config::Config) -> Result<Listeners, ListenError> {
        let mut public = Vec::new();
        for l in config.public_listeners() {
            public.push(bind(l.listen, &l.listen_at).await?);
        }
        let admin = bind(config.admin.listen, "admin.listen").await?;
        Ok(Listeners { public, admin })
    }
}

/// A listener that could not be bound: its address, the config key that
/// names it, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} ({key}): {source}{}", ephemeral_hint(.addr.port(), *.ephemeral))]
pub struct ListenError {
    pub addr: SocketAddr,
    pub key: String,
    pub source: std::io::Error,
    /// The kernel's ephemeral port range, when the port is in use and in it.
    pub ephemeral: Option<(u16, u16)>,
}

pub async fn bind(addr: SocketAddr, key: &str) -> Result<TcpListener, ListenError> {
    TcpListener::bind(addr).await.map_err(|source| {
        let ephemeral = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                ephemeral_range().filter(|(low, high)| (*low..=*high).contains(&addr.port()))
            }
            _ => None,
        };
        ListenError {
            addr,
            key: key.to_string(),
            source,
            ephemeral,
        }
    })
}

/// Most often another program listens on a port in use; only when none
/// does is an outgoing connection the cause.
fn ephemeral_hint(port: u16, ephemeral: Option<(u16, u16)>) -> String {
    let Some((low, high)) = ephemeral else {
        return String::new();
    };
    format!(
        "; port {port} is in the kernel's ephemeral range ({low}-{high}), from \
         which outgoing connections (shoal's own to its instances too) take \
         their local ports: if no other program listens on it (`ss -ltnp \
         'sport = :{port}'` shows one that does), an outgoing connection may \
         hold it for a while; a port below {low} avoids that"
    )
}

struct Running {
    addr: SocketAddr,
    stop_accepting: CancellationToken,
}

/// The admin listener: the one accepting now, and the tasks of every one
/// started, so shutdown can wait for all of them.
#[derive(Default)]
pub struct ListenerSlot {
    current: Mutex<Option<Running>>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl ListenerSlot {
    pub fn addr(&self) -> Option<SocketAddr> {
        self.current.lock().ok()?.as_ref().map(|r| r.addr)
    }

    fn install(&self, addr: SocketAddr, stop_accepting: CancellationToken, task: JoinHandle<()>) {
        let previous = self.current.lock().ok().and_then(|mut c| {
            c.replace(Running {
                addr,
                stop_accepting,
            })
        });
        if let Some(p) = previous {
            p.stop_accepting.cancel();
        }
        if let Ok(mut t) = self.tasks.lock() {
            t.push(task);
        }
    }

    pub fn stop_accepting(&self) {
        if let Ok(c) = self.current.lock() {
            if let Some(r) = c.as_ref() {
                r.stop_accepting.cancel();
            }
        }
    }

    pub async fn join(&self) {
        join_tasks(&self.tasks).await;
    }
}

/// Wait for every listener task started so far (the public listeners'
/// and the admin listener's).
pub(super) async fn join_tasks(tasks: &Mutex<Vec<JoinHandle<()>>>) {
    let tasks = tasks
        .lock()
        .map(|mut t| std::mem::take(&mut *t))
        .unwrap_or_default();
    for t in tasks {
        let _ = t.await;
    }
}

pub fn start_admin(
    slot: &ListenerSlot,
    listener: TcpListener,
    state: Arc<State>,
    shutdown: CancellationToken,
) {
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let stop = CancellationToken::new();
    let https = state.admin_tls.server_config().is_some();
    let task = tokio::spawn(crate::admin::serve(listener, state, stop.clone(), shutdown));
    slot.install(addr, stop, task);
    match https {
        true => tracing::info!("admin listening on {addr} (HTTPS)"),
        false => tracing::info!("admin listening on {addr}"),
    }
}

/// The ports the kernel hands out for outgoing connections
/// (`net.ipv4.ip_local_port_range`; it applies to IPv6 too).
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    Some((parts.next()??, parts.next()??))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_taken_address_names_itself_and_its_key() {
        let taken = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = taken.local_addr().unwrap();
        let e = bind(addr, "admin.listen").await.unwrap_err();
        assert_eq!(e.addr, addr);
        assert_eq!(e.key, "admin.listen");
        assert_eq!(e.source.kind(), std::io::ErrorKind::AddrInUse);
        assert!(
            e.to_string()
                .starts_with(&format!("cannot listen on {addr} (admin.listen): ")),
            "{e}"
        );
    }

    #[test]
    fn a_port_in_the_ephemeral_range_says_so() {
        let e = ListenError {
            addr: "127.0.0.1:40000".parse().unwrap(),
            key: "listen".into(),
            source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
            ephemeral: Some((32768, 60999)),
        };
        let text = e.to_string();
        assert!(
            text.starts_with("cannot listen on 127.0.0.1:40000 (listen): "),
            "{text}"
        );
        assert!(
            text.ends_with(
                "; port 40000 is in the kernel's ephemeral range (32768-60999), from which \
                 outgoing connections (shoal's own to its instances too) take their local \
                 ports: if no other program listens on it (`ss -ltnp 'sport = :40000'` shows \
                 one that does), an outgoing connection may hold it for a while; a port below \
                 32768 avoids that"
            ),
            "{text}"
        );
    }
}
