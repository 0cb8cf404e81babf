//! `shoal verify`: checks a running deployment the way the hand-written
//! verification scripts do, with an exit code for CI (0: every check
//! passed or did not apply; 1: one failed; 2: usage).
//!
//! Checks, each named in the report: the balancer's `/health` and `/ready`
//! on every replica; every instance and upstream healthy; N requests
//! through the replicas, taken by every backend in rotation (and how
//! evenly); session persistence with the sticky cookie, across the
//! replicas; Redis reachable from every replica that keeps state there;
//! and, with `--chaos`, one instance killed under a bounded load, with the
//! requests that failed. The counts of who took what come from the admin
//! API (`requests` per backend in `/api/v1/status`), so any app works.

mod checks;
mod probe;

use std::io::IsTerminal;
use std::net::SocketAddr;

use serde::Serialize;

use super::client::{admin_address, admin_token, reachable, Admin};
use super::ConfigSource;

#[derive(clap::Args)]
pub struct VerifyArgs {
    /// Proxy URLs of the replicas (http://HOST:PORT); default: the config's `listen`
    #[arg(value_name = "URL")]
    urls: Vec<String>,
    /// Admin API of each replica, in the same order (default: the config's `admin.listen`)
    #[arg(long = "admin", value_name = "URL")]
    admins: Vec<String>,
    /// Requests sent to see every backend take traffic
    #[arg(long, default_value_t = 30, value_name = "N")]
    requests: usize,
    /// The path requested
    #[arg(long, default_value = "/")]
    path: String,
    /// Kill one instance under a bounded load (5 s) and count the failed requests
    #[arg(long)]
    chaos: bool,
    /// The report as JSON
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    src: ConfigSource,
}

/// How a check ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Pass,
    Fail,
    /// It does not apply here (no sticky sessions, state in memory).
    Skip,
}

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: String,
    pub result: Outcome,
    pub detail: String,
}

impl Check {
    fn new(name: impl Into<String>, result: Outcome, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            result,
            detail: detail.into(),
        }
    }
}

/// One shoal: where its proxy and its admin API answer.
pub struct Replica {
    pub name: String,
    pub proxy: SocketAddr,
    pub admin: Admin,
}

fn parse_url(url: &str) -> Result<SocketAddr, String> {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or(url)
        .trim_end_matches('/');
    rest.parse()
        .map_err(|_| format!("`{url}`: expected http://IP:PORT"))
}

pub fn run(args: &VerifyArgs) -> i32 {
    let replicas = match replicas(args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let cookies = sticky_cookies(&args.src);
    let Some(rt) = super::client::load_runtime() else {
        return 1;
    };
    let report = rt.block_on(checks::all(
        &replicas,
        &checks::Ask {
            requests: args.requests.max(1),
            path: &args.path,
            chaos: args.chaos,
            sticky_cookies: &cookies,
        },
    ));
    let ok = report.iter().all(|c| c.result != Outcome::Fail);
    if args.json {
        let doc = serde_json::json!({ "ok": ok, "checks": report });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
    } else {
        print(&report, ok);
    }
    if ok {
        0
    } else {
        1
    }
}

fn replicas(args: &VerifyArgs) -> Result<Vec<Replica>, String> {
    let token = admin_token(&args.src);
    if args.urls.is_empty() {
        let admin = admin_address(args.admins.first().map(String::as_str), &args.src)
            .map_err(|e| e.to_string())?;
        let config = super::load_settings(&args.src).map_err(|e| e.to_string())?;
        let listen = config
            .public_listeners()
            .first()
            .map(|l| l.listen)
            .ok_or("the config has no listener")?;
        let proxy = reachable(listen);
        return Ok(vec![Replica {
            name: format!("{proxy}"),
            proxy,
            admin: Admin::new(admin).with_token(token),
        }]);
    }
    if args.admins.len() != args.urls.len() && !(args.urls.len() == 1 && args.admins.len() <= 1) {
        return Err(format!(
            "{} URLs and {} --admin: give one --admin per URL, in the same order",
            args.urls.len(),
            args.admins.len()
        ));
    }
    args.urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            let proxy = parse_url(url)?;
            let admin = admin_address(args.admins.get(i).map(String::as_str), &args.src)
                .map_err(|e| e.to_string())?;
            Ok(Replica {
                name: format!("{proxy}"),
                proxy,
                admin: Admin::new(admin).with_token(token.clone()),
            })
        })
        .collect()
}

/// The sticky cookies' names the config sets (on apps, groups, routes).
fn sticky_cookies(src: &ConfigSource) -> Vec<String> {
    let Ok(config) = super::load_settings(src) else {
        return Vec::new();
    };
    let mut names: Vec<String> = config
        .all_apps()
        .iter()
        .filter_map(|(_, a)| a.sticky.as_ref())
        .chain(
            config
                .upstreams
                .groups()
                .filter_map(|(_, g)| g.sticky.as_ref()),
        )
        .chain(config.routes.iter().filter_map(|r| r.sticky.as_ref()))
        .map(|s| s.cookie.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

fn print(report: &[Check], ok: bool) {
    let color = std::io::stdout().is_terminal();
    let paint = |code: &str, text: &str| {
        if color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_string()
        }
    };
    for c in report {
        let mark = match c.result {
            Outcome::Pass => paint("32", "PASS"),
            Outcome::Fail => paint("31", "FAIL"),
            Outcome::Skip => paint("2", "skip"),
        };
        println!("{mark}  {}: {}", c.name, c.detail);
    }
    let failed = report.iter().filter(|c| c.result == Outcome::Fail).count();
    if ok {
        println!("{}", paint("32", "verified: every check passed"));
    } else {
        println!("{}", paint("31", &format!("{failed} check(s) failed")));
    }
}
