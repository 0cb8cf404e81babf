//! `shoal status`, `shoal scale N`, `shoal reload [--apply-config]`.

use std::io::IsTerminal;

use http::{Method, StatusCode};
use http_body_util::BodyExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::client::{admin_address, error_text, Admin};
use super::ConfigSource;

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn finish(result: Result<(), String>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal: {e}");
            1
        }
    }
}

pub fn status(src: &ConfigSource, admin: Option<&str>, json_out: bool) -> i32 {
    finish((|| {
        let addr = admin_address(admin, src)?;
        let status = runtime()?.block_on(Admin::new(addr).get_json("/api/v1/status"))?;
        if json_out {
            println!(
                "{}",
                serde_json::to_string_pretty(&status).unwrap_or_default()
            );
        } else {
            print_status(&status);
        }
        Ok(())
    })())
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
            "app: {} instance(s), generation {}{}",
            app["instances"],
            app["generation"],
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
async fn operation(admin: Admin, path: &str, body: Option<Value>) -> Result<(), String> {
    let resp = admin.send(Method::POST, path, body).await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if status != StatusCode::OK {
        let bytes = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        return Err(error_text(status, &bytes));
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
        let frame = frame.map_err(|e| format!("lost the connection to shoal: {e}"))?;
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
                        Err(message)
                    };
                }
                _ => {}
            }
        }
    }
    Err("the admin API closed the stream before the operation finished".into())
}
