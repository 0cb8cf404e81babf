//! The plan as data ([`Plan`], what `--json` prints) and as text: the
//! steps, why they stopped, then each figure with its formula.

use std::io::IsTerminal;

use serde::Serialize;

use super::formulas::{self, bytes, num, Autoscale, Figure};
use super::stepping::{Step, Stop};

#[derive(Debug, Serialize)]
pub struct StepRow {
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
}

impl From<&Step> for StepRow {
    fn from(s: &Step) -> StepRow {
        let ms = |q| s.load.quantile(q).map(|d| d.as_secs_f64() * 1000.0);
        StepRow {
            concurrency: s.load.concurrency,
            requests: s.load.requests,
            errors: s.load.errors,
            seconds: s.load.elapsed.as_secs_f64(),
            rps: s.load.rps(),
            p50_ms: ms(0.5),
            p95_ms: ms(0.95),
            cpu_percent: s.usage.cpu_percent,
            rss_bytes: s.usage.rss_bytes,
        }
    }
}

/// Where the load went and what was asked.
#[derive(Debug, Serialize)]
pub struct Asked {
    pub url: String,
    pub path: String,
    /// The backend measured (`app-1`).
    pub instance: String,
    /// `instance` (shoal reads its CPU and RSS) or `upstream`.
    pub kind: &'static str,
    pub target_rps: f64,
    pub p95_target_ms: f64,
    pub pool_size: u32,
    pub limit_keys: u64,
}

/// Everything `shoal plan` found and computed.
#[derive(Debug, Serialize)]
pub struct Plan {
    #[serde(flatten)]
    pub asked: Asked,
    pub steps: Vec<StepRow>,
    pub stopped: Stop,
    /// Requests per second at the knee, with how it was found.
    pub capacity_rps: Figure<f64>,
    /// The knee step's clients.
    pub knee_concurrency: usize,
    pub instances: Figure<u32>,
    /// Peak RSS under load; `null` for a remote upstream.
    pub memory_per_instance_bytes: Option<Figure<u64>>,
    pub memory_total_bytes: Option<Figure<u64>>,
    pub autoscale: Figure<Autoscale>,
    pub db_connections: Figure<u64>,
    pub redis_memory_bytes: Figure<u64>,
}

/// The figures, from the steps and the knee.
pub fn plan(asked: Asked, steps: &[Step], stopped: Stop, knee: usize) -> Plan {
    let k = &steps[knee];
    let capacity = k.load.rps();
    let p95 = k.load.quantile(0.95).unwrap_or_default().as_secs_f64() * 1000.0;
    let capacity_rps = Figure {
        value: capacity,
        formula: format!(
            "the most requests/s within the p95 target: {} clients, p95 {} ms ≤ {} ms, {} errors",
            k.load.concurrency,
            num((p95 * 10.0).round() / 10.0),
            num(asked.p95_target_ms),
            k.load.errors
        ),
    };
    let instances = formulas::instances(asked.target_rps, capacity);
    let peak_rss = steps.iter().filter_map(|s| s.usage.rss_bytes).max();
    let memory_per_instance_bytes = peak_rss.map(|r| Figure {
        value: r,
        formula: "the instance's peak RSS under load (its process group)".into(),
    });
    let memory_total_bytes = peak_rss.map(|r| formulas::memory_total(instances.value, r));
    let autoscale = formulas::autoscale(asked.target_rps, capacity, k.usage.cpu_percent);
    Plan {
        steps: steps.iter().map(StepRow::from).collect(),
        stopped,
        capacity_rps,
        knee_concurrency: k.load.concurrency,
        db_connections: formulas::db_connections(instances.value, asked.pool_size),
        redis_memory_bytes: formulas::redis_bytes(asked.limit_keys),
        instances,
        memory_per_instance_bytes,
        memory_total_bytes,
        autoscale,
        asked,
    }
}

fn paint(color: bool, code: &str, text: &str) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_string()
    }
}

/// The steps' table, as they come.
pub fn step_line(s: &Step) -> String {
    let r = StepRow::from(s);
    let opt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
    format!(
        "{:>7} {:>9} {:>7} {:>9.1} {:>8} {:>8} {:>7} {:>10}",
        r.concurrency,
        r.requests,
        r.errors,
        r.rps,
        opt(r.p50_ms),
        opt(r.p95_ms),
        r.cpu_percent.map_or("-".into(), |c| format!("{c:.0}")),
        r.rss_bytes.map_or("-".into(), bytes),
    )
}

pub const STEP_HEADER: &str =
    "clients  requests  errors     req/s  p50 ms   p95 ms   cpu %        rss";

/// The figures, each with its formula.
pub fn print(p: &Plan) {
    let color = std::io::stdout().is_terminal();
    let bold = |t: &str| paint(color, "1", t);
    let dim = |t: &str| paint(color, "2", t);
    let target_label = format!("instances for {} req/s", num(p.asked.target_rps));
    // Padded before painting: the colour codes take no room on screen.
    let width = target_label.chars().count().max(22) + 2;
    let line = |label: &str, value: String, formula: &str| {
        let label = format!("{label:<width$}");
        println!("{}{value:<18}{}", bold(&label), dim(formula));
    };
    println!("stopped: {}", p.stopped);
    println!();
    line(
        "capacity per instance",
        format!("{:.1} req/s", p.capacity_rps.value),
        &p.capacity_rps.formula,
    );
    line(
        &target_label,
        p.instances.value.to_string(),
        &p.instances.formula,
    );
    match (&p.memory_per_instance_bytes, &p.memory_total_bytes) {
        (Some(each), Some(total)) => {
            line("memory per instance", bytes(each.value), &each.formula);
            line("memory in total", bytes(total.value), &total.formula);
        }
        _ => line(
            "memory per instance",
            "unknown".into(),
            "a remote upstream: shoal does not see its process",
        ),
    }
    let a = &p.autoscale.value;
    let mut targets = format!("rps_per_instance: {}", a.rps_per_instance);
    if let Some(cpu) = a.cpu {
        targets.push_str(&format!(", cpu: {cpu}"));
    }
    line(
        "autoscale",
        format!("min {}, max {}", a.min, a.max),
        &p.autoscale.formula,
    );
    println!(
        "{:<width$}{}",
        "",
        paint(
            color,
            "36",
            &format!(
                "autoscale: {{ min: {}, max: {}, targets: {{ {targets} }} }}",
                a.min, a.max
            )
        )
    );
    line(
        "DB connections",
        p.db_connections.value.to_string(),
        &format!(
            "{} (pool {} per instance: --pool-size)",
            p.db_connections.formula, p.asked.pool_size
        ),
    );
    line(
        "Redis memory",
        format!("≈ {}", bytes(p.redis_memory_bytes.value)),
        &format!("{} (--limit-keys)", p.redis_memory_bytes.formula),
    );
}
