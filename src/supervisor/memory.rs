//! `app.max_memory`: sample each instance's resident memory (its whole
//! process group) once a second;
//! one that stays above the limit for three samples in a row is replaced
//! (the replacement started and healthy first, then the old one drained),
//! as PM2's max-memory-restart does but without a gap in service.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::procfs;
use super::progress::Progress;
use super::Supervisor;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SAMPLES_OVER: u32 = 3;

/// Resident memory of every process group, in bytes: an instance is its
/// whole group (a `sh -c` wrapper and its child, a server and its workers).
fn rss_by_group() -> HashMap<u32, u64> {
    procfs::usage_by_group()
        .into_iter()
        .map(|(group, usage)| (group, usage.rss_bytes))
        .collect()
}

pub async fn watch(sup: Arc<Supervisor>) {
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        let instances = sup.instances();
        if instances.iter().all(|i| i.pid().is_none()) {
            continue;
        }
        let groups = tokio::task::spawn_blocking(rss_by_group)
            .await
            .unwrap_or_default();
        for inst in instances {
            // Each instance leads its own process group: pgid == pid.
            let Some(pid) = inst.pid() else { continue };
            let Some(&rss) = groups.get(&pid) else {
                continue;
            };
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
