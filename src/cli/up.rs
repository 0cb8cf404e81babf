//! `shoal up`: validate, bind, run until SIGTERM or SIGINT, shut down gracefully.

use crate::app::{self, Listeners, RunOptions};

use super::{load, ConfigSource, EXIT_CONFIG};

pub fn run(src: &ConfigSource) -> i32 {
    // Validate everything before binding or starting anything.
    let config = match load(src) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return EXIT_CONFIG;
        }
    };
    super::logging::init(&config.log);
    for w in super::warnings(src, &config) {
        tracing::warn!("{w}");
    }

    // One worker: a current-thread runtime. Everything then runs on this
    // thread, with no work-stealing scheduler to pay for and no second
    // thread for each wake-up to cross (nor, until something needs the
    // blocking pool, glibc's thread-cancellation bookkeeping on every
    // send and recv).
    let mut rt = match config.workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut rt = tokio::runtime::Builder::new_multi_thread();
            rt.worker_threads(n);
            rt
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async move {
        let listeners = match Listeners::bind(&config).await {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("{e}");
                return 1;
            }
        };
        let reload_from = src.clone();
        let options = RunOptions {
            guard_exe: std::env::current_exe().ok(),
            config_source: Some(Box::new(move || Ok(load(&reload_from)?))),
            reload_signals: true,
        };
        match app::run(config, listeners, options, shutdown_signal()).await {
            Ok(()) => 0,
            Err(e) => {
                tracing::error!("{e}");
                1
            }
        }
    })
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop shoal with SIGKILL");
        return std::future::pending().await;
    };
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    };
    tracing::info!("{name} received; shutting down gracefully (send it again to force)");
    // A second signal means "now": exit at once. The instances are not
    // orphaned: the guard process sees shoal gone and stops their groups.
    tokio::spawn(async move {
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting without waiting for in-flight requests");
        std::process::exit(130);
    });
}
