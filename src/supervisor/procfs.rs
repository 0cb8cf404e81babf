//! CPU time and resident memory of every process group, from /proc: an
//! instance leads its own group, so a forking server counts with its
//! workers (and a `sh -c` wrapper with its child).

use std::collections::HashMap;

/// One process group's totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GroupUsage {
    /// utime + stime of the members, plus the children they have reaped
    /// (cutime + cstime), so a worker that exits does not take its time
    /// with it. In clock ticks.
    pub cpu_ticks: u64,
    pub rss_bytes: u64,
}

/// Clock ticks per second (`CLK_TCK`), 100 on Linux unless configured.
pub fn ticks_per_sec() -> f64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64
}

/// Every process group's usage. A blocking read of /proc: call it from
/// `spawn_blocking`.
pub fn usage_by_group() -> HashMap<u32, GroupUsage> {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as u64;
    let mut groups: HashMap<u32, GroupUsage> = HashMap::new();
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
        if let Some((pgrp, usage)) = parse_stat(&stat, page) {
            let g = groups.entry(pgrp).or_default();
            g.cpu_ticks += usage.cpu_ticks;
            g.rss_bytes += usage.rss_bytes;
        }
    }
    groups
}

/// `/proc/PID/stat` → (process group, usage). The fields after the
/// parenthesised command name (which may hold spaces and parentheses) are
/// `state ppid pgrp …`; utime, stime, cutime, cstime are the 12th to 15th
/// of them and rss the 22nd (proc(5), fields 14–17 and 24).
fn parse_stat(stat: &str, page: u64) -> Option<(u32, GroupUsage)> {
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok());
    let pgrp = f.get(2)?.parse::<u32>().ok()?;
    let cpu_ticks = num(11)? + num(12)? + num(13)? + num(14)?;
    let rss_bytes = num(21)? * page;
    Some((
        pgrp,
        GroupUsage {
            cpu_ticks,
            rss_bytes,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_name() {
        let line = "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 100 0 0 0 \
                    150 50 7 3 20 0 1 0 100 1000000 256 18446744073709551615";
        let (pgrp, u) = parse_stat(line, 4096).unwrap();
        assert_eq!(pgrp, 4240);
        assert_eq!(u.cpu_ticks, 150 + 50 + 7 + 3);
        assert_eq!(u.rss_bytes, 256 * 4096);
    }

    #[test]
    fn reads_this_process_group() {
        let me = nix::unistd::getpgrp().as_raw() as u32;
        let all = usage_by_group();
        assert!(
            all.get(&me).is_some_and(|u| u.rss_bytes > 0),
            "{:?}",
            all.get(&me)
        );
    }
}
