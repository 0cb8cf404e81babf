//! Active health checks: one task per endpoint, moving it between
//! starting → up ⇄ down according to `fall` and `rise`.
//!
//! A new or restarted endpoint is probed quickly (every 200 ms at most) until
//! its first pass, so a restarted instance rejoins within moments; after that
//! probes run every `interval`.

mod probe;

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use shoal_config::HealthConfig;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::balance::{CheckReport, Endpoint, Health};
use crate::events::{self, Kind};

pub use probe::probe;

const STARTING_INTERVAL: Duration = Duration::from_millis(200);

/// The check settings a set of endpoints follows; a config reload swaps them
/// and the next probe uses the new ones.
pub type HealthCell = Arc<ArcSwap<HealthConfig>>;

pub fn cell(config: &HealthConfig) -> HealthCell {
    Arc::new(ArcSwap::from_pointee(config.clone()))
}

pub fn spawn(
    endpoint: Arc<Endpoint>,
    config: HealthCell,
    stop: CancellationToken,
) -> JoinHandle<()> {
    spawn_in(None, endpoint, config, stop)
}

/// As [`spawn`], for an instance of `app` (its events name the app).
pub fn spawn_instance(
    app: &str,
    endpoint: Arc<Endpoint>,
    config: HealthCell,
    stop: CancellationToken,
) -> JoinHandle<()> {
    spawn_in(Some(app.into()), endpoint, config, stop)
}

fn spawn_in(
    app: Option<Arc<str>>,
    endpoint: Arc<Endpoint>,
    config: HealthCell,
    stop: CancellationToken,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        tokio::select! {
            _ = stop.cancelled() => {}
            _ = run(endpoint, config, app) => {}
        }
    })
}

async fn run(endpoint: Arc<Endpoint>, cell: HealthCell, app: Option<Arc<str>>) {
    let app = app.as_deref();
    let mut streak_epoch = u64::MAX;
    let mut fails = 0u32;
    let mut passes = 0u32;
    loop {
        let seen = endpoint.health_word();
        if seen.epoch() != streak_epoch {
            streak_epoch = seen.epoch();
            fails = 0;
            passes = 0;
        }
        let config = cell.load_full();
        let health = seen.health();
        if health == Health::Stopped {
            tokio::time::sleep(STARTING_INTERVAL).await;
            continue;
        }
        let began = std::time::Instant::now();
        let result = probe(&endpoint, &config).await;
        endpoint.set_last_check(CheckReport {
            passed: result.is_ok(),
            detail: match &result {
                Ok(()) => "ok".to_string(),
                Err(why) => why.to_string(),
            },
            duration: began.elapsed(),
            at: std::time::SystemTime::now(),
        });
        match (health, &result) {
            (Health::Starting, Ok(())) => {
                if endpoint.transition(seen, Health::Up) {
                    tracing::info!(backend = %endpoint.id, "health check passed; in rotation");
                    events::emit(
                        Kind::Healthy,
                        app,
                        Some(&endpoint.id),
                        format!("{} passed its health check: in rotation", endpoint.id),
                    );
                }
            }
            (Health::Up, Ok(())) => fails = 0,
            (Health::Up, Err(why)) => {
                fails += 1;
                tracing::debug!(backend = %endpoint.id, fails, error = %why, "health check failed");
                if fails >= config.fall && endpoint.transition(seen, Health::Down) {
                    tracing::warn!(backend = %endpoint.id, fails, error = %why, "out of rotation after failed health checks");
                    events::emit(
                        Kind::Unhealthy,
                        app,
                        Some(&endpoint.id),
                        format!(
                            "{} out of rotation after {fails} failed health checks ({why})",
                            endpoint.id
                        ),
                    );
                    endpoint.pool.clear();
                    passes = 0;
                }
            }
            (Health::Down, Ok(())) => {
                passes += 1;
                if passes >= config.rise && endpoint.transition(seen, Health::Up) {
                    tracing::info!(backend = %endpoint.id, passes, "back in rotation after passing health checks");
                    events::emit(
                        Kind::Healthy,
                        app,
                        Some(&endpoint.id),
                        format!(
                            "{} back in rotation after {passes} passed health checks",
                            endpoint.id
                        ),
                    );
                    fails = 0;
                }
            }
            (Health::Down, Err(_)) => passes = 0,
            // A passive ejection ends at its stored deadline, when the
            // endpoint is next looked at (Endpoint::health_word).
            (Health::Starting, Err(_)) | (Health::Stopped, _) | (Health::Ejected, _) => {}
        }
        let wait = if endpoint.health_word().health() == Health::Starting {
            STARTING_INTERVAL.min(config.interval)
        } else {
            config.interval
        };
        tokio::time::sleep(wait).await;
    }
}

/// How long until `fall` failures take a backend out: useful in docs and tests.
pub fn detection_time(config: &HealthConfig) -> Duration {
    config.interval * config.fall
}
