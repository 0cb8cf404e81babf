//! `shoal plan`: how many instances a target load needs, from one
//! instance's measured capacity. A bounded, stepped load goes through
//! shoal to ONE instance (see `measure.rs` for how it is found, and why
//! several are refused); the knee is where the p95 passes the target,
//! errors appear or the throughput stops growing (`stepping.rs`); the
//! figures follow from the capacity at the knee and the instance's CPU and
//! RSS, each with its formula (`formulas.rs`, `report.rs`).
//!
//! Exit codes: 0 with a plan; 1 when nothing answers, the path is served
//! by several backends, or no step stayed within the target; 2 on usage.

mod formulas;
mod load;
mod measure;
mod report;
mod stepping;

use std::time::Duration;

use super::client::{admin_address, admin_token, reachable, Admin};
use super::ConfigSource;

#[derive(clap::Args)]
pub struct PlanArgs {
    /// The proxy's URL (http://HOST:PORT); default: the config's `listen`
    #[arg(value_name = "URL")]
    url: Option<String>,
    /// The admin API (default: the config's `admin.listen`)
    #[arg(long, value_name = "URL")]
    admin: Option<String>,
    /// The path and query requested: one the app serves with its usual cost
    #[arg(long, default_value = "/")]
    path: String,
    /// Requests per second the deployment must serve
    #[arg(long, default_value_t = 100.0, value_name = "N", value_parser = positive)]
    target_rps: f64,
    /// The response time 95 % of requests must stay within
    #[arg(long, default_value = "250ms", value_name = "DURATION", value_parser = duration)]
    p95: Duration,
    /// The most clients at once (the steps double: 1, 2, 4, …)
    #[arg(long, default_value_t = 64, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    max_concurrency: u32,
    /// How long each step lasts (5 s or more: the CPU figure read after a
    /// step is over the status API's last 5 s)
    #[arg(long, default_value_t = 5.0, value_name = "SECONDS", value_parser = positive)]
    step_seconds: f64,
    /// The whole measurement lasts at most this long
    #[arg(long, default_value_t = 60.0, value_name = "SECONDS", value_parser = positive)]
    max_seconds: f64,
    /// Database connections in each instance's pool
    #[arg(long, default_value_t = 10, value_name = "N")]
    pool_size: u32,
    /// Rate-limit keys active at once (clients, tokens…) kept in Redis
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    limit_keys: u64,
    /// The plan as one JSON object
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    src: ConfigSource,
}

fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(x) if x > 0.0 && x.is_finite() => Ok(x),
        _ => Err("a number above 0".into()),
    }
}

fn duration(text: &str) -> Result<Duration, String> {
    let d = shoal_config::units::parse_duration(text)?;
    if d.is_zero() {
        return Err("above 0".into());
    }
    Ok(d)
}

/// `http://HOST:PORT` (or `HOST:PORT`): the address and the `Host` header.
fn parse_url(url: &str) -> Result<(std::net::SocketAddr, String), String> {
    use std::net::ToSocketAddrs;
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    if url.starts_with("https://") || rest.contains('/') {
        return Err(format!(
            "`{url}`: expected http://HOST:PORT (the path goes in --path)"
        ));
    }
    let addr = rest
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("`{url}`: expected http://HOST:PORT"))?;
    Ok((addr, rest.to_string()))
}

pub fn run(args: &PlanArgs) -> i32 {
    if !args.path.starts_with('/') {
        eprintln!("error: --path {}: must start with /", args.path);
        return 2;
    }
    let (addr, host) = match &args.url {
        Some(url) => match parse_url(url) {
            Ok(a) => a,
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        },
        None => {
            let listen = super::load_settings(&args.src)
                .map(|c| c.public_listeners().first().map(|l| reachable(l.listen)));
            match listen {
                Ok(Some(a)) => (a, a.to_string()),
                Ok(None) => {
                    eprintln!("error: the config has no listener: give the proxy's URL");
                    return 2;
                }
                Err(e) => {
                    eprintln!("error: {e} (or give the proxy's URL and --admin)");
                    return 1;
                }
            }
        }
    };
    let admin = match admin_address(args.admin.as_deref(), &args.src) {
        Ok(t) => Admin::new(t).with_token(admin_token(&args.src)),
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let target = load::Target {
        addr,
        host,
        path: args.path.clone(),
    };
    let Some(rt) = super::client::load_runtime() else {
        return 1;
    };
    match rt.block_on(plan(args, &target, &admin)) {
        Ok(p) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&p).unwrap_or_default());
            } else {
                report::print(&p);
            }
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// Requests sent before the load to find the backend that serves the path.
const PROBES: usize = 3;

async fn plan(
    args: &PlanArgs,
    target: &load::Target,
    admin: &Admin,
) -> Result<report::Plan, String> {
    let url = format!("http://{}", target.host);
    let probe = || async {
        match load::probe(target).await {
            Ok(s) if s.is_success() || s.is_redirection() => Ok(()),
            Ok(s) => Err(format!(
                "GET {url}{} answered {s}: give a --path the app serves",
                target.path
            )),
            Err(e) => Err(format!(
                "nothing answers at {url} ({e}): is shoal running there? \
                 (give its proxy address as URL; default: the config's listen)"
            )),
        }
    };
    probe().await?;
    let before = measure::status(admin)
        .await
        .map_err(|e| format!("the admin API: {e}"))?;
    for _ in 0..PROBES {
        probe().await?;
    }
    let after = measure::status(admin)
        .await
        .map_err(|e| format!("the admin API: {e}"))?;
    let measured = measure::which(&before, &after)?;
    let limits = stepping::Limits {
        p95: args.p95,
        max_concurrency: args.max_concurrency as usize,
        step: Duration::from_secs_f64(args.step_seconds),
        max_total: Duration::from_secs_f64(args.max_seconds),
    };
    if !args.json {
        println!(
            "shoal plan: GET {url}{} to {} (one instance), steps of {}s up to {} clients, p95 target {} ms",
            target.path,
            measured.id(),
            formulas::num(args.step_seconds),
            args.max_concurrency,
            limits.p95.as_millis()
        );
        println!("{}", report::STEP_HEADER);
    }
    let json = args.json;
    let mut progress = |s: &stepping::Step| {
        if !json {
            println!("{}", report::step_line(s));
        }
    };
    let (steps, stopped) = stepping::run(target, admin, &measured, &limits, &mut progress).await;
    let results: Vec<_> = steps.iter().map(|s| s.load.clone()).collect();
    let Some(knee) = stepping::knee(&results, &limits) else {
        return Err(format!(
            "no step stayed within the p95 target without errors ({stopped}): \
             even one client at a time is too slow for --p95 {} ms",
            limits.p95.as_millis()
        ));
    };
    let asked = report::Asked {
        url,
        path: target.path.clone(),
        instance: measured.id().to_string(),
        kind: match measured {
            measure::Measured::Instance(_) => "instance",
            measure::Measured::Upstream(_) => "upstream",
        },
        target_rps: args.target_rps,
        p95_target_ms: limits.p95.as_secs_f64() * 1000.0,
        pool_size: args.pool_size,
        limit_keys: args.limit_keys,
    };
    Ok(report::plan(asked, &steps, stopped, knee))
}
