//! The sizing rules, as pure functions: each gives its value and the
//! formula with the numbers put in, as the report prints it.

use serde::Serialize;

/// A figure and how it was reached.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure<T> {
    pub value: T,
    pub formula: String,
}

/// The autoscaler settings suggested for the app.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Autoscale {
    pub min: u32,
    pub max: u32,
    /// `targets.rps_per_instance`.
    pub rps_per_instance: u32,
    /// `targets.cpu`, when the instance's CPU was read.
    pub cpu: Option<u32>,
}

/// Scale out before the knee: the targets are this share of what one
/// instance does at its capacity (Kubernetes' HPA examples use 70 %).
pub const TARGET_SHARE: f64 = 0.7;
/// Room above the target rate that `autoscale.max` leaves (peaks of twice it).
pub const PEAK_FACTOR: f64 = 2.0;
/// The most instances an app may have (`app.max`).
const MAX_INSTANCES: u32 = 1024;

/// A number as the formulas print it: whole numbers without decimals,
/// others with one.
pub fn num(x: f64) -> String {
    if (x - x.round()).abs() < 1e-9 {
        format!("{}", x.round() as i64)
    } else {
        format!("{x:.1}")
    }
}

/// instances = ceil(target_rps ÷ capacity) + 1: enough for the target,
/// and one more so that losing one (a crash, a rolling reload, a host
/// down) does not lose the target.
pub fn instances(target_rps: f64, capacity: f64) -> Figure<u32> {
    let needed = (target_rps / capacity).ceil().max(1.0);
    let value = (needed as u32).saturating_add(1).min(MAX_INSTANCES);
    Figure {
        value,
        formula: format!(
            "ceil({} ÷ {}) + 1 = {} + 1 (one spare: redundancy)",
            num(target_rps),
            num(capacity),
            needed as u32
        ),
    }
}

/// Memory in total: instances × RSS per instance.
pub fn memory_total(instances: u32, rss_bytes: u64) -> Figure<u64> {
    Figure {
        value: u64::from(instances).saturating_mul(rss_bytes),
        formula: format!("{instances} × {}", bytes(rss_bytes)),
    }
}

/// DB connections = instances × pool × 1.5 + 50: each instance's pool,
/// half as much again for the instances a rolling reload starts on top
/// (`max_surge`) and for reconnects, and 50 for admin tools, migrations and
/// cron jobs.
pub fn db_connections(instances: u32, pool: u32) -> Figure<u64> {
    let value = (f64::from(instances) * f64::from(pool) * 1.5 + 50.0).ceil() as u64;
    Figure {
        value,
        formula: format!("{instances} × {pool} × 1.5 + 50"),
    }
}

/// Redis memory ≈ 100 bytes × active limit keys (a counter's key, its
/// value and Redis' own bookkeeping).
pub fn redis_bytes(limit_keys: u64) -> Figure<u64> {
    Figure {
        value: limit_keys.saturating_mul(100),
        formula: format!("100 B × {limit_keys} active limit keys"),
    }
}

/// `autoscale:` settings: min 2 (redundancy), max for peaks of twice the
/// target (plus the spare), and targets at [`TARGET_SHARE`] of what one
/// instance does at its capacity.
pub fn autoscale(target_rps: f64, capacity: f64, cpu_at_knee: Option<f64>) -> Figure<Autoscale> {
    let min = 2;
    let max = (((PEAK_FACTOR * target_rps / capacity).ceil() as u32).saturating_add(1))
        .clamp(min, MAX_INSTANCES);
    let rps_per_instance = ((TARGET_SHARE * capacity).floor() as u32).max(1);
    let cpu = cpu_at_knee
        .filter(|c| *c > 0.0)
        .map(|c| ((TARGET_SHARE * c).round() as u32).max(1));
    let mut formula = format!(
        "min = 2 (redundancy); max = ceil({} × {} ÷ {}) + 1 (peaks of twice the target); \
         rps_per_instance = {} × {}",
        num(PEAK_FACTOR),
        num(target_rps),
        num(capacity),
        TARGET_SHARE,
        num(capacity)
    );
    if let (Some(c), Some(_)) = (cpu_at_knee, cpu) {
        formula.push_str(&format!(
            "; cpu = {TARGET_SHARE} × {}% (at the knee)",
            num(c)
        ));
    }
    Figure {
        value: Autoscale {
            min,
            max,
            rps_per_instance,
            cpu,
        },
        formula,
    }
}

/// A size in bytes, in the largest unit that keeps it ≥ 1.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut x = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if x < 1024.0 {
            break;
        }
        x /= 1024.0;
        unit = u;
    }
    format!("{x:.1} {unit}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_add_one_spare() {
        let f = instances(180.0, 40.0);
        assert_eq!(f.value, 6);
        assert_eq!(
            f.formula,
            "ceil(180 ÷ 40) + 1 = 5 + 1 (one spare: redundancy)"
        );
        assert_eq!(instances(200.0, 40.0).value, 6);
        assert_eq!(instances(201.0, 40.0).value, 7);
        // A target below one instance's capacity still gets the spare.
        assert_eq!(instances(1.0, 40.0).value, 2);
    }

    #[test]
    fn the_issues_formulas() {
        assert_eq!(db_connections(4, 10).value, 110);
        assert_eq!(db_connections(4, 10).formula, "4 × 10 × 1.5 + 50");
        assert_eq!(db_connections(3, 5).value, 73); // 72.5, rounded up
        assert_eq!(redis_bytes(10_000).value, 1_000_000);
        assert_eq!(memory_total(4, 10 << 20).value, 40 << 20);
        assert_eq!(memory_total(4, 10 << 20).formula, "4 × 10.0 MiB");
    }

    #[test]
    fn autoscale_leaves_room() {
        let f = autoscale(180.0, 40.0, Some(99.0));
        assert_eq!(
            f.value,
            Autoscale {
                min: 2,
                max: 10,
                rps_per_instance: 28,
                cpu: Some(69)
            }
        );
        let f = autoscale(10.0, 400.0, None);
        assert_eq!((f.value.min, f.value.max, f.value.cpu), (2, 2, None));
    }

    #[test]
    fn sizes_and_numbers() {
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(3 << 30), "3.0 GiB");
        assert_eq!(num(40.0), "40");
        assert_eq!(num(39.84), "39.8");
    }
}
