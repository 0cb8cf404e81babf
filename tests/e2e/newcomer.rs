//! Issue 20: what a new user met first, running a real app under shoal —
//! flags, messages, silent waits, late failures, outages under repeated
//! kills. Each test here failed before its fix.

use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::{cli, demo_config, Shoal, SHOAL};

/// Runs `shoal ARGS` (no `--admin` added): (exit code, stdout, stderr).
async fn run(args: &[&str]) -> (i32, String, String) {
    let out = tokio::process::Command::new(SHOAL)
        .args(args)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run shoal");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The running shoal's config, with its admin port written in, so a CLI
/// verb can find it through `--config FILE`.
fn named_config(shoal: &Shoal, config: &str) -> std::path::PathBuf {
    let path = shoal.dir.path().join("named.yaml");
    let text = config.replacen(
        "admin:\n  listen: 127.0.0.1:0",
        &format!("admin:\n  listen: {}", shoal.admin),
        1,
    );
    assert!(text.contains(&shoal.admin.to_string()), "{text}");
    std::fs::write(&path, text).unwrap();
    path
}

/// Item 4: `--config FILE` is the long form of `-c` for every verb, and
/// `reload --config` (re-read shoal's config) has a name of its own,
/// `--apply-config`, with the old spelling kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_is_the_long_form_of_c_for_every_verb() {
    let config = demo_config(1, "");
    let shoal = Shoal::start(&config);
    shoal.wait_healthy(1).await;
    let path = named_config(&shoal, &config);
    let file = path.to_str().unwrap();

    let (code, out, err) = run(&["check", "--config", file]).await;
    assert_eq!(code, 0, "check --config: {err}");
    assert!(out.contains("instances: 1"), "{out}");

    let (code, out, err) = run(&["status", "--config", file]).await;
    assert_eq!(code, 0, "status --config: {err}");
    assert!(out.contains("app-1"), "{out}");

    // `--config FILE` after `reload` names the file: a rolling reload.
    let (code, out, err) = run(&["reload", "--config", file]).await;
    assert_eq!(code, 0, "reload --config FILE: {err}");
    assert!(out.contains("rolling reload done"), "{out}");

    // The unmistakable name of a config reload.
    let (code, out, err) = run(&["reload", "--apply-config", "-c", file]).await;
    assert_eq!(code, 0, "reload --apply-config: {err}");
    assert!(out.contains("config"), "{out}");
    assert!(!out.contains("rolling reload done"), "{out}");

    // The old spelling still means the same.
    let (code, out, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0, "reload --config (old spelling): {err}");
    assert!(out.contains("config"), "{out}");
    assert!(!out.contains("rolling reload done"), "{out}");
}

/// Item 6: bounds nobody set are said in words, not in Rust's range syntax.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_out_of_bounds_says_between() {
    let shoal = Shoal::start(&demo_config(1, ""));
    shoal.wait_healthy(1).await;
    let t = Instant::now();
    let (code, _, err) = cli(shoal.admin, &["scale", "0"]).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("cannot scale to 0: the number of instances must be between 1 and 1024"),
        "{err}"
    );
    assert!(!err.contains("..="), "{err}");
    assert!(!err.contains("app.min"), "no bound was set: {err}");
    assert!(t.elapsed() < Duration::from_secs(10));
}
