//! Once a second, each instance's usage: its resident memory (its whole
//! process group), and the readings `usage.rs` makes CPU %, requests/s
//! and p95 of. `app.max_memory`: an instance that stays above the limit
//! for three samples in a row is replaced (the replacement started and
//! healthy first, then the old one drained), as PM2's max-memory-restart
//! does but without a gap in service.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::procfs;
use super::progress::Progress;
use super::usage::Reading;
use super::Supervisor;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SAMPLES_OVER: u32 = 3;

pub async fn watch(sup: Arc<Supervisor>) {
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let instances = sup.instances();
        // Resident memory and CPU ticks of every process group: an
        // instance is its whole group (a `sh -c` wrapper and its child, a
        // server and its workers).
        let groups = if instances.iter().all(|i| i.pid().is_none()) {
            HashMap::new()
        } else {
            tokio::task::spawn_blocking(procfs::usage_by_group)
                .await
                .unwrap_or_default()
        };
        let now = Instant::now();
        for inst in instances {
            // Each instance leads its own process group: pgid == pid.
            let group = inst
                .pid()
                .and_then(|pid| groups.get(&pid).map(|g| (pid, *g)));
            inst.record_usage(Reading::of(
                &inst.endpoint,
                group.map(|(pid, g)| (pid, g.cpu_ticks)),
                now,
            ));
            let Some((_, usage)) = group else {
                continue;
            };
            let rss = usage.rss_bytes;
            inst.set_rss(rss);
            let Some(limit) = inst.settings().max_memory else {
                continue;
            };
            if rss <= limit || inst.is_retiring() {
                inst.over_memory.store(0, Ordering::Relaxed);
                continue;
            }
            let n = inst.over_memory.fetch_add(1, Ordering::Relaxed) + 1;
            if n < SAMPLES_OVER {
                continue;
            }
            inst.over_memory.store(0, Ordering::Relaxed);
            tracing::warn!(
                instance = %inst.id, rss, max_memory = limit,
                "resident memory above app.max_memory for {SAMPLES_OVER}s; replacing the instance"
            );
            let sup = sup.clone();
            tokio::spawn(async move {
                if let Err(e) = sup.replace(&inst, &Progress::log_only()).await {
                    tracing::warn!(instance = %inst.id, error = %e, "memory replacement did not happen");
                }
            });
        }
    }
}
