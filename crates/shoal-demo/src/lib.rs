//! The small HTTP service bundled with shoal.
//!
//! shoal's quick start and its integration tests run N copies of this app
//! (`shoal demo-app --port P`) behind shoal's load balancer. Each copy says who it is
//! (`INSTANCE_ID`, pid, port), can be made slow, unhealthy, fat or dead on request,
//! streams bodies both ways in bounded memory and speaks HTTP/1.1 and h2c (HTTP/2 with
//! prior knowledge, detected per connection), so every proxy feature has something real
//! to push against. See `routes.rs` for the list of routes.
#![forbid(unsafe_code)]

mod access_log;
mod body;
mod control;
mod cpu;
mod grpc;
mod options;
mod query;
mod routes;
mod server;
mod session;
mod websocket;

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

pub use options::DemoOptions;

/// Port used by [`run`] when neither the argument nor `PORT` gives one.
pub const DEFAULT_PORT: u16 = 8000;

/// Exit code when the app could not start (runtime or bind failure).
const EXIT_START_FAILED: i32 = 1;
/// Exit code when `PORT` is not a valid port number.
const EXIT_BAD_PORT: i32 = 2;
/// Exit code when a second signal cut the drain short.
const EXIT_FORCED: i32 = 130;

/// Serve on an already-bound listener until `shutdown` resolves, then stop accepting,
/// let in-flight requests finish, return.
///
/// Idle keep-alive connections are closed at once; WebSocket sessions are sent a
/// "going away" close frame and given a few seconds to finish the close handshake.
/// Accept errors (e.g. too many open files) are survived by pausing briefly, so the
/// result is only an error if the listener itself is unusable.
pub async fn serve(
    listener: tokio::net::TcpListener,
    opts: DemoOptions,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    server::serve(listener, opts, shutdown).await
}

/// Entry point for `shoal demo-app --port P`: builds a tokio runtime, waits
/// `startup_delay`, binds `127.0.0.1:P` (P from the argument, else env `PORT`, else
/// 8000), serves until SIGTERM or SIGINT (graceful: in-flight requests finish, then
/// exit), and returns the process exit code.
///
/// Exit codes: 0 after a clean drain, 1 if the app could not start, 2 if `PORT` is
/// not a port number, 130 if a second signal arrived while draining.
pub fn run(port: Option<u16>) -> i32 {
    let port = match port {
        Some(p) => p,
        None => match port_from_env(std::env::var("PORT").ok().as_deref()) {
            Ok(p) => p,
            Err(msg) => {
                eprintln!("shoal-demo: {msg}");
                return EXIT_BAD_PORT;
            }
        },
    };
    let opts = DemoOptions::from_env();
    // Two workers: many copies of this app share one machine, and none needs more.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("shoal-demo: cannot start the runtime: {err}");
            return EXIT_START_FAILED;
        }
    };
    runtime.block_on(run_async(port, opts))
}

async fn run_async(port: u16, opts: DemoOptions) -> i32 {
    let signals = match signals::Signals::install() {
        Ok(s) => s,
        Err(err) => {
            eprintln!("shoal-demo: cannot install signal handlers: {err}");
            return EXIT_START_FAILED;
        }
    };

    if !opts.startup_delay.is_zero() {
        tokio::select! {
            () = tokio::time::sleep(opts.startup_delay) => {}
            () = signals.received(1) => return 0,
        }
    }

    // `HOST`, which shoal's supervisor sets (`app.host`); loopback without it.
    let host = std::env::var("HOST")
        .ok()
        .and_then(|h| h.parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let addr = SocketAddr::new(host, port);
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(err) => {
            eprintln!("shoal-demo: cannot bind {addr}: {err}");
            return EXIT_START_FAILED;
        }
    };
    let local = listener.local_addr().unwrap_or(addr);
    access_log::line(&format!("{} listening on {local}", opts.instance_id));

    if opts.abrupt_exit {
        tokio::select! {
            res = serve(listener, opts, std::future::pending()) => {
                if let Err(err) = res {
                    eprintln!("shoal-demo: server failed: {err}");
                }
                return EXIT_START_FAILED;
            }
            () = signals.received(1) => {
                eprintln!("shoal-demo: signal received; exiting at once (DEMO_ABRUPT_EXIT)");
                return 0;
            }
        }
    }
    let serving = serve(listener, opts, signals.received(1));
    tokio::select! {
        res = serving => match res {
            Ok(()) => 0,
            Err(err) => {
                eprintln!("shoal-demo: server failed: {err}");
                EXIT_START_FAILED
            }
        },
        () = signals.received(2) => {
            eprintln!("shoal-demo: second signal, exiting without finishing the drain");
            EXIT_FORCED
        }
    }
}

/// Reads the port from the value of `PORT`, defaulting to [`DEFAULT_PORT`].
fn port_from_env(value: Option<&str>) -> Result<u16, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(DEFAULT_PORT),
        Some(v) => v
            .parse()
            .map_err(|_| format!("PORT={v:?} is not a port number (0-65535)")),
    }
}

mod signals {
    //! SIGTERM and SIGINT, counted, so the first can start a drain and the second can
    //! cut it short.
    use tokio::sync::watch;

    pub(crate) struct Signals {
        count: watch::Receiver<u32>,
    }

    impl Signals {
        pub(crate) fn install() -> std::io::Result<Self> {
            let (tx, rx) = watch::channel(0u32);
            #[cfg(unix)]
            {
                use tokio::signal::unix::{signal, SignalKind};
                let mut term = signal(SignalKind::terminate())?;
                let mut int = signal(SignalKind::interrupt())?;
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = term.recv() => {}
                            _ = int.recv() => {}
                        }
                        tx.send_modify(|n| *n += 1);
                    }
                });
            }
            #[cfg(not(unix))]
            tokio::spawn(async move {
                while tokio::signal::ctrl_c().await.is_ok() {
                    tx.send_modify(|n| *n += 1);
                }
            });
            Ok(Self { count: rx })
        }

        /// Resolves once at least `n` signals have arrived.
        pub(crate) fn received(&self, n: u32) -> impl std::future::Future<Output = ()> {
            let mut rx = self.count.clone();
            async move {
                // An error means the watcher task is gone, which only happens when the
                // runtime shuts down; never resolve in that case.
                if rx.wait_for(|count| *count >= n).await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_defaults_to_8000() {
        assert_eq!(port_from_env(None), Ok(8000));
        assert_eq!(port_from_env(Some("")), Ok(8000));
    }

    #[test]
    fn port_from_env_parses_and_rejects() {
        assert_eq!(port_from_env(Some("8003")), Ok(8003));
        assert_eq!(port_from_env(Some(" 0 ")), Ok(0));
        assert!(port_from_env(Some("70000")).is_err());
        assert!(port_from_env(Some("http")).is_err());
    }
}
