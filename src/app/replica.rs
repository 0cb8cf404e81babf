//! This shoal among its replicas: the processes that share one Redis
//! (`state.backend: redis`) behave as one balancer, and each says it is
//! alive in a hash there (`{key_prefix}:peers`), once a second, with what
//! `/api/v1/status` shows of it. An entry not renewed for
//! [`STALE`] is dropped by the next replica that reads the hash (a
//! replica killed without a goodbye); a replica that shuts down removes
//! its own at once. The stamps are each replica's wall clock: clocks more
//! than a few seconds apart make peers come and go.
//!
//! The id is `SHOAL_REPLICA_ID` when set (a Kubernetes pod's name, say),
//! else `HOSTNAME-PID`.

use std::sync::{Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use super::State;

/// How often a replica says it is alive.
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How long an entry not renewed stays listed.
pub const STALE: Duration = Duration::from_secs(5);

/// What a replica says of itself, and what `/api/v1/status` lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peer {
    pub id: String,
    pub hostname: String,
    pub pid: u32,
    pub version: String,
    /// Its first public listener and its admin listener, as bound.
    pub listen: Option<String>,
    pub admin: Option<String>,
    /// When it last said so (ms since the Unix epoch, its clock).
    pub seen_ms: u64,
}

pub struct Replica {
    pub id: String,
    pub hostname: String,
    /// The others, as last read from Redis (none with the memory store).
    peers: Mutex<Vec<Peer>>,
}

fn wall_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl Default for Replica {
    fn default() -> Replica {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into());
        let id = std::env::var("SHOAL_REPLICA_ID")
            .ok()
            .filter(|v| !v.trim().is_empty())
            .unwrap_or_else(|| format!("{hostname}-{}", std::process::id()));
        Replica {
            id,
            hostname,
            peers: Mutex::new(Vec::new()),
        }
    }
}

impl Replica {
    /// The other replicas seen through Redis, by id.
    pub fn peers(&self) -> Vec<Peer> {
        self.peers.lock().map(|p| p.clone()).unwrap_or_default()
    }

    fn me(&self, state: &State) -> Peer {
        Peer {
            id: self.id.clone(),
            hostname: self.hostname.clone(),
            pid: std::process::id(),
            version: env!("CARGO_PKG_VERSION").to_string(),
            listen: state.proxy_addr().map(|a| a.to_string()),
            admin: state.admin_listener.addr().map(|a| a.to_string()),
            seen_ms: wall_ms(),
        }
    }
}

/// Once a second while shoal runs, with `state.backend: redis`: say this
/// replica is alive and read the others. Removes this replica's entry when
/// `stop` fires.
pub fn spawn(state: Weak<State>, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(HEARTBEAT);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            let Some(state) = state.upgrade() else { return };
            let Some(redis) = state.limiter.redis() else {
                continue;
            };
            if redis.connected() == 0 {
                // Not a request's failure: nothing to count or say; the
                // store's connect task says whether Redis is away.
                continue;
            }
            let me = state.replica.me(&state);
            let entry = serde_json::to_string(&me).unwrap_or_default();
            // Failures are the store's to report (once per change).
            if let Ok(all) = redis
                .heartbeat(&me.id, entry, me.seen_ms, STALE.as_millis() as u64)
                .await
            {
                let mut peers: Vec<Peer> = all
                    .values()
                    .filter_map(|v| serde_json::from_str::<Peer>(v).ok())
                    .filter(|p| p.id != me.id)
                    .collect();
                peers.sort_by(|a, b| a.id.cmp(&b.id));
                if let Ok(mut p) = state.replica.peers.lock() {
                    *p = peers;
                }
            }
        }
    });
}

/// At shutdown: leave the list at once rather than after [`STALE`].
pub async fn leave(state: &State) {
    if let Some(redis) = state.limiter.redis().filter(|r| r.connected() > 0) {
        let _ = redis.forget_peers(vec![state.replica.id.clone()]).await;
    }
}
