//! `shoal status`, `shoal scale N`, `shoal reload [--apply-config]`.

use std::io::IsTerminal;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::client::{admin_address, refusal, Admin, ClientError};
use super::ConfigSource;

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
        let status: Value = runtime()?.block_on(Admin::new(addr).get_json("/api/v1/status"))?;
        let (line, healthy) = summary(&status);
        none_healthy = !healthy;
        if json_out {
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
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

/// Why one backend is not in rotation, in a few words.
fn trouble(b: &Value) -> Option<String> {
    let id = b["id"].as_str().unwrap_or("?");
    let health = b["health"].as_str().unwrap_or("?");
    if health == "up" {
        return None;
    }
    let check = b["last_check"]["detail"].as_str();
    let exit = b["last_exit"].as_str();
    Some(match (b["state"].as_str(), health) {
        (Some("failed"), _) => format!(
            "{id} failed: {}",
            b["failure"].as_str().or(exit).unwrap_or("?")
        ),
        (Some("backoff"), _) => format!(
            "{id} waiting to restart (last exit: {})",
            exit.unwrap_or("?")
        ),
        (Some("exited"), _) => format!(
            "{id} exited and is not restarted (app.restart): {}",
            exit.unwrap_or("?")
        ),
        (Some("starting"), _) => format!(
            "{id} starting for {:.0}s, not yet healthy{}",
            b["uptime_secs"].as_f64().unwrap_or(0.0),
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
fn summary(s: &Value) -> (String, bool) {
    let instances: Vec<&Value> = s["instances"]
        .as_array()
        .into_iter()
        .flatten()
        // Instances on their way out are not the app's any more.
        .filter(|i| !matches!(i["state"].as_str(), Some("draining" | "stopping")))
        .collect();
    let upstreams: Vec<&Value> = s["upstreams"].as_array().into_iter().flatten().collect();
    let all: Vec<&Value> = instances.iter().chain(upstreams.iter()).copied().collect();
    let healthy = all.iter().filter(|b| b["health"] == "up").count();
    let what = match (instances.is_empty(), upstreams.is_empty()) {
        (false, true) => "instances",
        (true, false) => "upstreams",
        _ => "backends",
    };
    let state = if all.is_empty() || healthy == 0 {
        "down"
    } else if healthy == all.len() {
        "ok"
    } else {
        "degraded"
    };
    let mut line = format!("{state}: {healthy} of {} {what} healthy", all.len());
    let troubles: Vec<String> = all.iter().filter_map(|b| trouble(b)).collect();
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
    if s["shutting_down"] == true {
        line.push_str(" (shutting down)");
    }
    (line, healthy > 0)
}

/// `generation 2`; or, when that is not what runs, what runs and what the
/// last rollout attempted: `generation 1 (rollout to generation 2 stopped:
/// …)`.
fn generations(app: &Value) -> String {
    let running: Vec<u64> = app["running_generations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_u64)
        .collect();
    let current = app["generation"].as_u64().unwrap_or(0);
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
    let rollout = &app["last_rollout"];
    if rollout["ok"] == false && running != [current] {
        let first = rollout["message"]
            .as_str()
            .unwrap_or("")
            .lines()
            .next()
            .unwrap_or("");
        text.push_str(&format!(
            " (rollout to generation {} stopped: {first})",
            rollout["generation"]
        ));
    }
    text
}

fn print_status(s: &Value) {
    let app = &s["app"];
    println!(
        "shoal {} on {} — {}, up {:.0}s{}",
        s["version"].as_str().unwrap_or("?"),
        s["listen"].as_str().unwrap_or("?"),
        s["balance"].as_str().unwrap_or("?"),
        s["uptime_secs"].as_f64().unwrap_or(0.0),
        if s["shutting_down"] == true {
            " (shutting down)"
        } else {
            ""
        }
    );
    if !app.is_null() {
        println!(
            "app: {} instance(s), {}{}",
            app["instances"],
            generations(app),
            match app["operation"].as_str() {
                Some(op) => format!(", running: {op}"),
                None => String::new(),
            }
        );
        println!(
            "{:<8} {:>4} {:>8} {:>6} {:<9} {:<8} {:>8} {:>9} {:>9} {:>9}",
            "ID",
            "GEN",
            "PID",
            "PORT",
            "STATE",
            "HEALTH",
            "RESTARTS",
            "IN_FLIGHT",
            "REQUESTS",
            "RSS"
        );
        // serde_json's Display ignores widths: format numbers as text first.
        let n = |v: &Value| match v {
            Value::Null => "-".to_string(),
            other => other.to_string(),
        };
        for i in s["instances"].as_array().into_iter().flatten() {
            println!(
                "{:<8} {:>4} {:>8} {:>6} {:<9} {:<8} {:>8} {:>9} {:>9} {:>9}",
                i["id"].as_str().unwrap_or("?"),
                n(&i["generation"]),
                n(&i["pid"]),
                n(&i["port"]),
                i["state"].as_str().unwrap_or("?"),
                i["health"].as_str().unwrap_or("?"),
                n(&i["restarts"]),
                n(&i["in_flight"]),
                n(&i["requests"]),
                format!(
                    "{}MiB",
                    i["rss_bytes"].as_u64().unwrap_or(0) / (1024 * 1024)
                ),
            );
            if let Some(why) = i["last_exit"].as_str() {
                if i["state"] == "failed" || i["state"] == "backoff" || i["state"] == "exited" {
                    println!("         last exit: {why}");
                }
            }
            if let Some(why) = i["failure"].as_str() {
                if i["state"] == "failed" && i["last_exit"].as_str() != Some(why) {
                    println!("         failed: {why}");
                }
            }
        }
    }
    for u in s["upstreams"].as_array().into_iter().flatten() {
        println!(
            "upstream {} ({}) weight {} {} in_flight {} requests {}",
            u["id"].as_str().unwrap_or("?"),
            u["address"].as_str().unwrap_or("?"),
            u["weight"],
            u["health"].as_str().unwrap_or("?"),
            u["in_flight"],
            u["requests"]
        );
    }
}

pub fn scale(src: &ConfigSource, admin: Option<&str>, n: u32) -> i32 {
    finish((|| {
        let addr = admin_address(admin, src)?;
        runtime()?.block_on(operation(
            Admin::new(addr),
            "/api/v1/scale",
            Some(json!({ "instances": n })),
        ))
    })())
}

pub fn reload(src: &ConfigSource, admin: Option<&str>, config: bool) -> i32 {
    finish((|| {
        let addr = admin_address(admin, src)?;
        let path = if config {
            "/api/v1/reload?config=1"
        } else {
            "/api/v1/reload"
        };
        runtime()?.block_on(operation(Admin::new(addr), path, None))
    })())
}

/// POST, then follow the NDJSON progress to its `done` line: a bar on a
/// terminal, plain lines otherwise. Fails when the operation fails.
async fn operation(admin: Admin, path: &str, body: Option<Value>) -> Result<(), ClientError> {
    let resp = admin.send(Method::POST, path, body).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if status != StatusCode::OK {
        let bytes = body.collect().await.map_err(ClientError::Read)?.to_bytes();
        return Err(refusal(status, &bytes));
    }
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = ProgressBar::new(0);
        b.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        b
    });
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
            let message = event["message"].as_str().unwrap_or("").to_string();
            match event["event"].as_str() {
                Some("progress") => {
                    let (done, total) = (
                        event["done"].as_u64().unwrap_or(0),
                        event["total"].as_u64().unwrap_or(0),
                    );
                    match &bar {
                        Some(b) => {
                            if total > 0 {
                                b.set_length(total);
                                b.set_position(done);
                            }
                            b.set_message(message);
                        }
                        None if total > 0 => println!("[{done}/{total}] {message}"),
                        None => println!("{message}"),
                    }
                }
                Some("done") => {
                    if let Some(b) = &bar {
                        b.finish_and_clear();
                    }
                    return if event["ok"] == true {
                        println!("{message}");
                        Ok(())
                    } else {
                        Err(ClientError::Failed(message))
                    };
                }
                _ => {}
            }
        }
    }
    Err(ClientError::Unfinished)
}
