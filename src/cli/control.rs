//! `shoal status`, `shoal scale N`, `shoal reload [--apply-config]`.

use std::io::IsTerminal;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::client::{admin_address, admin_token, refusal, Admin, ClientError};
use super::ConfigSource;
use crate::admin::status::{self, Status};
use crate::supervisor::ProcState;

fn runtime() -> Result<tokio::runtime::Runtime, ClientError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(ClientError::Runtime)
}

fn finish(result: Result<(), ClientError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal: {e}");
            1
        }
    }
}

/// `shoal status` exits with this when no instance (or upstream) is
/// healthy: shoal answers, but every request gets 503. sysexits'
/// EX_UNAVAILABLE: not 2, which clap uses for a usage error, nor 1, which
/// means the admin API did not answer.
pub const EXIT_NONE_HEALTHY: i32 = 69;

pub fn status(src: &ConfigSource, admin: Option<&str>, json_out: bool) -> i32 {
    let mut none_healthy = false;
    let code = finish((|| {
        let addr = admin_address(admin, src)?;
        let status: Status = runtime()?.block_on(
            Admin::new(addr)
                .with_token(admin_token(src))
                .get_json("/api/v1/status"),
        )?;
        let (line, healthy) = summary(&status);
        none_healthy = !healthy;
        if json_out {
            // Through a Value, whose keys are sorted, as the server sends them.
            let value = serde_json::to_value(&status).unwrap_or_default();
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        } else {
            println!("{line}");
            print_status(&status);
        }
        Ok(())
    })());
    if code == 0 && none_healthy {
        EXIT_NONE_HEALTHY
    } else {
        code
    }
}

/// What `shoal logs` asks for.
pub struct LogsAsk<'a> {
    pub instance: Option<&'a str>,
    pub follow: bool,
    pub since: Option<&'a str>,
    pub lines: usize,
    pub json: bool,
}

/// `shoal logs`: the instances' recent lines (`app-2 | …`), then, with
/// `-f`, new ones as they come, until Ctrl-C or shoal stops.
pub fn logs(src: &ConfigSource, admin: Option<&str>, ask: LogsAsk<'_>) -> i32 {
    use std::io::Write as _;
    finish((|| {
        let addr = admin_address(admin, src)?;
        let mut path = match ask.instance {
            Some(id) => format!("/api/v1/instances/{id}/logs?lines={}", ask.lines),
            None => format!("/api/v1/logs?lines={}", ask.lines),
        };
        if let Some(since) = ask.since {
            path.push_str(&format!("&since={since}"));
        }
        if ask.follow {
            path.push_str("&follow=1");
        }
        runtime()?.block_on(async {
            let resp = Admin::new(addr)
                .with_token(admin_token(src))
                .send(Method::GET, &path, None)
                .await?;
            let status = resp.status();
            let mut body = resp.into_body();
            if status != StatusCode::OK {
                let bytes = body.collect().await.map_err(ClientError::Read)?.to_bytes();
                return Err(refusal(status, &bytes));
            }
            let mut pending = Vec::new();
            let stdout = std::io::stdout();
            while let Some(frame) = body.frame().await {
                let Ok(data) = frame.map_err(ClientError::Read)?.into_data() else {
                    continue;
                };
                pending.extend_from_slice(&data);
                let mut out = stdout.lock();
                while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    if ask.json {
                        let _ = out.write_all(&line);
                        continue;
                    }
                    if let Ok(v) = serde_json::from_slice::<Value>(&line) {
                        let stream = if v["stream"] == "stderr" {
                            " (err)"
                        } else {
                            ""
                        };
                        let _ = writeln!(
                            out,
                            "{}{stream} | {}",
                            v["instance"].as_str().unwrap_or("?"),
                            v["line"].as_str().unwrap_or("")
                        );
                    }
                }
                let _ = out.flush();
            }
            Ok(())
        })
    })())
}

/// What `trouble` reads of an instance or an upstream.
struct Backend<'a> {
    id: &'a str,
    health: &'a str,
    check: Option<&'a str>,
    /// An instance's; `None` for an upstream.
    process: Option<&'a status::Instance>,
}

impl<'a> Backend<'a> {
    fn instance(i: &'a status::Instance) -> Backend<'a> {
        Backend {
            id: &i.id,
            health: &i.health,
            check: i.last_check.as_ref().map(|c| c.detail.as_str()),
            process: Some(i),
        }
    }

    fn upstream(u: &'a status::Upstream) -> Backend<'a> {
        Backend {
            id: &u.id,
            health: &u.health,
            check: u.last_check.as_ref().map(|c| c.detail.as_str()),
            process: None,
        }
    }
}

/// Why one backend is not in rotation, in a few words.
fn trouble(b: &Backend<'_>) -> Option<String> {
    let (id, health, check) = (b.id, b.health, b.check);
    if health == "up" {
        return None;
    }
    let exit = b.process.and_then(|i| i.last_exit.as_deref());
    Some(match (b.process.map(|i| i.state), health) {
        (Some(ProcState::Failed), _) => format!(
            "{id} failed: {}",
            b.process
                .and_then(|i| i.failure.as_deref())
                .or(exit)
                .unwrap_or("?")
        ),
        (Some(ProcState::Backoff), _) => format!(
            "{id} waiting to restart (last exit: {})",
            exit.unwrap_or("?")
        ),
        (Some(ProcState::Exited), _) => format!(
            "{id} exited and is not restarted (app.restart): {}",
            exit.unwrap_or("?")
        ),
        (Some(ProcState::Starting), _) => format!(
            "{id} starting for {:.0}s, not yet healthy{}",
            b.process.and_then(|i| i.uptime_secs).unwrap_or(0.0),
            check
                .map(|c| format!(" (last check: {c})"))
                .unwrap_or_default()
        ),
        (_, "ejected") => format!("{id} ejected after failed requests (passive health)"),
        (_, "down") => format!(
            "{id} failing its health checks{}",
            check.map(|c| format!(" ({c})")).unwrap_or_default()
        ),
        (_, other) => format!("{id} {other}"),
    })
}

/// The one-line state: `ok: 3 of 3 instances healthy`, `degraded: 1 of 3
/// instances healthy — app-1 failed: crash loop (exit code 1); …`, or
/// `down: 0 of 3 …`; and whether any backend is healthy.
fn summary(s: &Status) -> (String, bool) {
    let instances: Vec<Backend<'_>> = s
        .instances
        .iter()
        // Instances on their way out are not the app's any more.
        .filter(|i| !matches!(i.state, ProcState::Draining | ProcState::Stopping))
        .map(Backend::instance)
        .collect();
    let upstreams: Vec<Backend<'_>> = s.upstreams.iter().map(Backend::upstream).collect();
    let what = match (instances.is_empty(), upstreams.is_empty()) {
        (false, true) => "instances",
        (true, false) => "upstreams",
        _ => "backends",
    };
    let all: Vec<Backend<'_>> = instances.into_iter().chain(upstreams).collect();
    let healthy = all.iter().filter(|b| b.health == "up").count();
    let state = if all.is_empty() || healthy == 0 {
        "down"
    } else if healthy == all.len() {
        "ok"
    } else {
        "degraded"
    };
    let mut line = format!("{state}: {healthy} of {} {what} healthy", all.len());
    let troubles: Vec<String> = all.iter().filter_map(trouble).collect();
    if !troubles.is_empty() {
        line.push_str(" — ");
        line.push_str(
            &troubles
                .iter()
                .take(3)
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
        );
        if troubles.len() > 3 {
            line.push_str(&format!("; and {} more", troubles.len() - 3));
        }
    }
    if s.shutting_down {
        line.push_str(" (shutting down)");
    }
    (line, healthy > 0)
}

/// `generation 2`; or, when that is not what runs, what runs and what the
/// last rollout attempted: `generation 1 (rollout to generation 2 stopped:
/// …)`.
fn generations(app: &status::App) -> String {
    let running = &app.running_generations;
    let current = app.generation;
    let mut text = match running.as_slice() {
        [] => format!("generation {current}"),
        [one] => format!("generation {one}"),
        many => format!(
            "generations {} running",
            many.iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    if let Some(rollout) = &app.last_rollout {
        if !rollout.ok && running.as_slice() != [current] {
            let first = rollout.message.lines().next().unwrap_or("");
            text.push_str(&format!(
                " (rollout to generation {} stopped: {first})",
                rollout.generation
            ));
        }
    }
    text
}

/// Where shoal listens: the one address, or each listener with what it does.
fn listening(s: &Status) -> String {
    if s.listeners.len() < 2 {
        return s.listen.clone().unwrap_or_else(|| "?".into());
    }
    s.listeners
        .iter()
        .map(|l| {
            let mut what = vec![l.name.clone()];
            if l.tls {
                what.push("https".into());
            }
            if l.redirect_https {
                what.push("redirects to https".into());
            }
            if l.proxy_protocol != shoal_config::ProxyProtocol::Off {
                what.push(format!("PROXY {}", l.proxy_protocol.as_str()));
            }
            format!("{} ({})", l.address, what.join(", "))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn print_status(s: &Status) {
    println!(
        "shoal {} on {} — {}, up {:.0}s{}",
        s.version,
        listening(s),
        s.balance.as_str(),
        s.uptime_secs,
        if s.shutting_down {
            " (shutting down)"
        } else {
            ""
        }
    );
    if !s.peers.is_empty() {
        let peers: Vec<String> = s
            .peers
            .iter()
            .map(|p| format!("{} ({})", p.id, p.listen.as_deref().unwrap_or("-")))
            .collect();
        println!(
            "replica {}; peers through Redis: {}",
            s.replica.id,
            peers.join(", ")
        );
    }
    // Documents from before `apps` have only `app`.
    let apps: Vec<&status::App> = if s.apps.is_empty() {
        s.app.iter().collect()
    } else {
        s.apps.iter().collect()
    };
    let several = apps.len() > 1;
    for app in apps {
        let mine: Vec<status::Instance> = s
            .instances
            .iter()
            .filter(|i| !several || i.app == app.name)
            .cloned()
            .collect();
        print_app(app, &mine, several);
    }
    for u in &s.upstreams {
        let group = u
            .group
            .as_deref()
            .map(|g| format!(" [{g}]"))
            .unwrap_or_default();
        println!(
            "upstream{group} {} ({}) weight {} {} in_flight {} requests {}",
            u.id, u.address, u.weight, u.health, u.in_flight, u.requests
        );
    }
}

/// The app's line and its instances' table; `named`: there are several
/// apps, so the line says which.
fn print_app(app: &status::App, instances: &[status::Instance], named: bool) {
    let title = if named {
        format!("app {}", app.name)
    } else {
        "app".to_string()
    };
    println!(
        "{title}: {} instance(s), {}{}",
        app.instances,
        generations(app),
        match &app.operation {
            Some(op) => format!(", running: {op}"),
            None => String::new(),
        }
    );
    if let Some(a) = &app.autoscale {
        print_autoscale(a);
    }
    println!(
        "{:<10} {:>4} {:>8} {:>6} {:<9} {:<8} {:>8} {:>9} {:>9} {:>9}",
        "ID", "GEN", "PID", "PORT", "STATE", "HEALTH", "RESTARTS", "IN_FLIGHT", "REQUESTS", "RSS"
    );
    for i in instances {
        println!(
            "{:<10} {:>4} {:>8} {:>6} {:<9} {:<8} {:>8} {:>9} {:>9} {:>9}",
            i.id,
            i.generation,
            i.pid.map_or_else(|| "-".to_string(), |p| p.to_string()),
            i.port,
            i.state.as_str(),
            i.health,
            i.restarts,
            i.in_flight,
            i.requests,
            format!("{}MiB", i.rss_bytes / (1024 * 1024)),
        );
        let ended = matches!(
            i.state,
            ProcState::Failed | ProcState::Backoff | ProcState::Exited
        );
        if let Some(why) = i.last_exit.as_deref().filter(|_| ended) {
            println!("         last exit: {why}");
        }
        if let Some(why) = i.failure.as_deref() {
            if i.state == ProcState::Failed && i.last_exit.as_deref() != Some(why) {
                println!("         failed: {why}");
            }
        }
    }
}

/// `autoscale: proportional 1–4: 2 up, 1 down, 0 failed …` and the last
/// decision and event, each on a line.
fn print_autoscale(a: &crate::autoscale::Summary) {
    let mode = match a.mode {
        Some(shoal_config::AutoscaleMode::Threshold) => "threshold",
        _ => "proportional",
    };
    let s = &a.stats;
    let mut line = format!(
        "autoscale: {mode} {}–{}: {} up, {} down, {} failed, {} manual",
        a.min.unwrap_or(0),
        a.max.unwrap_or(0),
        s.scale_ups,
        s.scale_downs,
        s.failed_ops,
        s.manual_scales
    );
    if let Some(t) = s.avg_time_to_healthy_secs {
        line.push_str(&format!(", {t:.1}s to healthy on average"));
    }
    if let Some(p) = a.paused_secs {
        line.push_str(&format!(", paused {p:.0}s more (manual scale)"));
    }
    if let Some(op) = &a.operation {
        line.push_str(&format!(", running: {op}"));
    }
    println!("{line}");
    if let Some(d) = &a.last_decision {
        println!("  last decision: {}", d.reason);
    }
    if let Some(e) = &s.last_event {
        println!("  last event: {} {}", e.kind, e.message);
    }
}

pub fn scale(src: &ConfigSource, admin: Option<&str>, app: Option<&str>, n: u32) -> i32 {
    finish((|| {
        let addr = admin_address(admin, src)?;
        let body = match app {
            Some(app) => json!({ "instances": n, "app": app }),
            None => json!({ "instances": n }),
        };
        runtime()?.block_on(operation(
            Admin::new(addr).with_token(admin_token(src)),
            "/api/v1/scale",
            Some(body),
        ))
    })())
}

pub fn reload(src: &ConfigSource, admin: Option<&str>, config: bool, app: Option<&str>) -> i32 {
    finish((|| {
        let addr = admin_address(admin, src)?;
        let path = match (config, app) {
            (true, _) => "/api/v1/reload?config=1".to_string(),
            (false, Some(app)) => format!("/api/v1/reload?app={app}"),
            (false, None) => "/api/v1/reload".to_string(),
        };
        runtime()?.block_on(operation(
            Admin::new(addr).with_token(admin_token(src)),
            &path,
            None,
        ))
    })())
}

/// POST, then follow the NDJSON progress to its `done` line: a bar on a
/// terminal, plain lines otherwise. Fails when the operation fails.
async fn operation(admin: Admin, path: &str, body: Option<Value>) -> Result<(), ClientError> {
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
    let done = follow_operation(&admin, path, body, |step| match &bar {
        Some(b) => {
            if step.total > 0 {
                b.set_length(step.total);
                b.set_position(step.done);
            }
            b.set_message(step.message.to_string());
        }
        None if step.total > 0 => println!("[{}/{}] {}", step.done, step.total, step.message),
        None => println!("{}", step.message),
    })
    .await;
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    println!("{}", done?);
    Ok(())
}

/// One `progress` line of an operation's stream.
pub struct Step<'a> {
    pub done: u64,
    /// 0 when the step has no count.
    pub total: u64,
    pub message: &'a str,
}

/// POST an operation (`/api/v1/scale`, `/api/v1/reload`) and follow its
/// NDJSON progress, each step to `on_step`, to its `done` line: the
/// message it ends with when it succeeded; its refusal (401, 409, …) or
/// failure otherwise. `shoal scale`/`reload` and `shoal top` share it.
pub async fn follow_operation(
    admin: &Admin,
    path: &str,
    body: Option<Value>,
    mut on_step: impl FnMut(Step<'_>),
) -> Result<String, ClientError> {
    let resp = admin.send(Method::POST, path, body).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if status != StatusCode::OK {
        let bytes = body.collect().await.map_err(ClientError::Read)?.to_bytes();
        return Err(refusal(status, &bytes));
    }
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ClientError::Lost)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=end).collect();
            let Ok(event) = serde_json::from_slice::<Value>(&line) else {
                continue;
            };
            let message = event["message"].as_str().unwrap_or("");
            match event["event"].as_str() {
                Some("progress") => on_step(Step {
                    done: event["done"].as_u64().unwrap_or(0),
                    total: event["total"].as_u64().unwrap_or(0),
                    message,
                }),
                Some("done") => {
                    return if event["ok"] == true {
                        Ok(message.to_string())
                    } else {
                        Err(ClientError::Failed(message.to_string()))
                    };
                }
                _ => {}
            }
        }
    }
    Err(ClientError::Unfinished)
}
