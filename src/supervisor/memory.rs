//! `app.max_memory`: sample each instance's resident memory (its whole
//! process group) once a second;
//! one that stays above the limit for three samples in a row is replaced
//! (the replacement started and healthy first, then the old one drained),
//! as PM2's max-memory-restart does but without a gap in service.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use super::progress::Progress;
use super::Supervisor;

const SAMPLE_EVERY: Duration = Duration::from_secs(1);
const SAMPLES_OVER: u32 = 3;

/// Resident memory of every process group, in bytes: an instance is its
/// whole group (a `sh -c` wrapper and its child, a server and its workers).
fn rss_by_group() -> HashMap<u32, u64> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let mut groups = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return groups;
    };
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command name (which may hold spaces):
        // state ppid pgrp ... with rss the 22nd of them.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let (Some(pgrp), Some(rss)) = (
            fields.get(2).and_then(|f| f.parse::<u32>().ok()),
            fields.get(21).and_then(|f| f.parse::<u64>().ok()),
        ) else {
            continue;
        };
        *groups.entry(pgrp).or_default() += rss * page;
    }
    groups
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
