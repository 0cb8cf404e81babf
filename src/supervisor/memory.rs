//! `app.max_memory`: sample each instance's resident memory once a second;
//! one that stays above the limit for three samples in a row is replaced
//! (the replacement started and healthy first, then the old one drained),
//! as PM2's max-memory-restart does but without a gap in service.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::progress::Progress;
use super::Supervisor;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SAMPLES_OVER: u32 = 3;

/// Resident set size of a process in bytes (`VmRSS` in /proc/PID/status).
pub fn rss_of(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub async fn watch(sup: Arc<Supervisor>) {
    loop {
        tokio::time::sleep(SAMPLE_EVERY).await;
        for inst in sup.instances() {
            let Some(pid) = inst.pid() else { continue };
            let Some(rss) = rss_of(pid) else { continue };
            inst.set_rss(rss);
            let Some(limit) = inst.spec.max_memory else {
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
