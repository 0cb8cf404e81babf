//! `shoal top` in a real terminal: tmux runs it in a detached 160×45 pane
//! (`new-session -d`), the test reads the screen (`capture-pane -p`) and
//! types (`send-keys`). It sees a row per instance; `+` then `y` scales up
//! (the admin API and the screen both show the new instance); without the
//! token the same keys show the API's 401; `r` then `n` changes nothing;
//! with shoal gone the screen says so and keeps going; `q` exits 0 with
//! the terminal restored (cooked mode again, the shell's next line on the
//! normal screen).
//!
//! `scripts/test` installs tmux and sets `SHOAL_TMUX_TEST=1`, which makes
//! a missing tmux a failure; without it the test says what is missing and
//! passes. Each test has its own tmux server (`-L`), killed when it ends.
//! A second test runs two apps: `j`/`k` select one, `+` scales that one.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{demo_config, eventually, get, Shoal, SHOAL};

const TOKEN: &str = "top-token-0123456789abcdef";
const SCREEN_WAIT: Duration = Duration::from_secs(30);

/// A tmux server of our own, with one session running `command`; killed
/// (its panes' processes get SIGHUP) when dropped, whatever happened.
struct Tmux {
    socket: String,
    /// Where the server's socket is, removed once it is killed (tmux
    /// leaves the file behind).
    path: Option<String>,
}

impl Tmux {
    fn start(name: &str, cwd: &Path, command: &str) -> Tmux {
        let socket = format!("shoal-top-{}-{name}", std::process::id());
        let mut tmux = Tmux { socket, path: None };
        let out = tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "top",
            "-x",
            "160",
            "-y",
            "45",
            "-c",
            &cwd.to_string_lossy(),
            command,
        ]);
        assert!(
            out.status.success(),
            "tmux new-session: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = tmux
            .run(&["display-message", "-p", "#{socket_path}"])
            .stdout;
        tmux.path =
            Some(String::from_utf8_lossy(&path).trim().to_string()).filter(|p| !p.is_empty());
        tmux
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new("tmux")
            // No user or system config: the test's terminal is tmux's own.
            .args(["-f", "/dev/null", "-L", &self.socket])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run tmux")
    }

    /// The pane's text now.
    fn screen(&self) -> String {
        String::from_utf8_lossy(&self.run(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned()
    }

    /// Type these keys (`-l`: literally, so `+` is a plus).
    fn keys(&self, keys: &str) {
        let out = self.run(&["send-keys", "-t", "top", "-l", keys]);
        assert!(out.status.success(), "tmux send-keys {keys:?}");
    }

    /// Wait for the screen to contain `text`; the screen that did.
    async fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("`{text}`"), |s| s.contains(text))
            .await
    }

    /// Wait for a screen that `ok` accepts, and return it; panic with
    /// the last screen seen after [`SCREEN_WAIT`].
    async fn wait_until(&self, what: &str, ok: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + SCREEN_WAIT;
        loop {
            let s = self.screen();
            if ok(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out after {SCREEN_WAIT:?} waiting for {what} on the screen:\n{s}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The columns of an instance's row (`│app-1  running  up  4242 …`).
fn row(screen: &str, id: &str) -> Option<Vec<String>> {
    screen.lines().find_map(|l| {
        let cols: Vec<String> = l
            .trim_matches(|c: char| c == '│' || c.is_whitespace())
            .split_whitespace()
            .map(str::to_owned)
            .collect();
        (cols.first().map(String::as_str) == Some(id)).then_some(cols)
    })
}

/// `shoal top` in a shell that, once it exits, prints its exit code and
/// whether the terminal is back in cooked mode, then waits to be read.
fn top_command(admin: std::net::SocketAddr, env: &str) -> String {
    format!(
        "env {env} {SHOAL} top --admin http://{admin}; code=$?; \
         echo \"top exited $code in mode $(stty -a | tr ' ;' '\\n\\n' | grep -x -- '-*icanon')\"; \
         sleep 120"
    )
}

fn tmux_missing() -> Option<String> {
    match Command::new("tmux").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        Ok(out) => Some(format!("tmux -V failed: {:?}", out.status)),
        Err(e) => Some(format!("no tmux ({e}); scripts/test installs it")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_shows_the_instances_and_scales_with_a_confirmation() {
    if let Some(missing) = tmux_missing() {
        if std::env::var_os("SHOAL_TMUX_TEST").is_none() {
            eprintln!("SKIPPED top_shows_the_instances_and_scales_with_a_confirmation: {missing}");
            return;
        }
        panic!("{missing}");
    }
    let mut shoal = Shoal::start(&demo_config(2, "").replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!("admin:\n  listen: 127.0.0.1:0\n  token: {TOKEN}"),
    ));
    shoal.wait_healthy(2).await;
    // Its own directory: no shoal.yaml there to take a token from.
    let cwd = tempfile::tempdir().expect("tempdir");

    // Without the token: reads work, the scale is refused, and the screen
    // says why.
    {
        let tmux = Tmux::start(
            "anon",
            cwd.path(),
            &top_command(shoal.admin, "-u SHOAL_ADMIN_TOKEN"),
        );
        tmux.wait_for("app-2").await;
        tmux.keys("+");
        tmux.wait_for("Scale app from 2 to 3 instance(s)?").await;
        tmux.keys("y");
        let screen = tmux.wait_for("failed: scale app to 3: 401").await;
        assert!(screen.contains("SHOAL_ADMIN_TOKEN"), "{screen}");
        tmux.keys("q");
        tmux.wait_for("top exited 0").await;
    }
    assert_eq!(shoal.status().await["app"]["target"], 2);

    let tmux = Tmux::start(
        "token",
        cwd.path(),
        &top_command(shoal.admin, &format!("SHOAL_ADMIN_TOKEN={TOKEN}")),
    );
    // A row per instance, with its state, health and pid; the fleet's line.
    let status = shoal.status().await;
    let screen = eventually(SCREEN_WAIT, "a row per instance", || async {
        let s = tmux.screen();
        let ok = status["instances"].as_array()?.iter().all(|i| {
            let cols = row(&s, i["id"].as_str().unwrap_or("?"));
            cols.is_some_and(|c| {
                c[1] == "running" && c[2] == "up" && c[3].parse::<u64>().ok() == i["pid"].as_u64()
            })
        });
        ok.then_some(s)
    })
    .await;
    assert!(screen.contains("2/2 up"), "{screen}");
    for key in ["quit", "scale up", "scale down", "rolling reload"] {
        assert!(screen.contains(key), "no `{key}` in the footer:\n{screen}");
    }
    // The instances' numbers come: CPU % and RSS once sampled twice;
    // then requests/s and p95 once traffic passes (round robin over the
    // two; a rate counts from the first reading on).
    let sampled = |screen: &str, id: &str| {
        row(screen, id).is_some_and(|c| c[4] != "-" && c[5].ends_with('M'))
    };
    tmux.wait_until("CPU and RSS of both instances", |s| {
        sampled(s, "app-1") && sampled(s, "app-2")
    })
    .await;
    for _ in 0..40 {
        assert_eq!(get(shoal.proxy, "/").await.unwrap().status, 200);
    }
    tmux.wait_until(
        "requests/s and p95 of both instances and the fleet",
        |screen| {
            let fleet = screen.lines().nth(1).unwrap_or("");
            ["app-1", "app-2"].iter().all(|id| {
                row(screen, id)
                    .is_some_and(|c| !["0", "-"].contains(&c[6].as_str()) && c[7].ends_with('s'))
            }) && fleet.contains("req/s · errors 0.0% · p95")
                && !fleet.contains(" 0 req/s")
                && !fleet.trim_end().ends_with("p95 -")
        },
    )
    .await;

    // The same numbers in the status API (traffic again: the screen's
    // may be leaving the 5-second window by now).
    for _ in 0..10 {
        assert_eq!(get(shoal.proxy, "/").await.unwrap().status, 200);
    }
    eventually(SCREEN_WAIT, "the numbers in the status API", || async {
        let s = shoal.status().await;
        s["instances"]
            .as_array()?
            .iter()
            .all(|i| {
                i["cpu_percent"].as_f64().is_some()
                    && i["requests_per_sec"].as_f64() > Some(0.0)
                    && i["p95_ms"].as_f64() > Some(0.0)
                    && i["errors_per_sec"].as_f64() == Some(0.0)
            })
            .then_some(())
    })
    .await;

    // `+`, `y`: one more instance, in the API and on the screen.
    tmux.keys("+");
    tmux.wait_for("Scale app from 2 to 3 instance(s)?").await;
    tmux.keys("y");
    eventually(SCREEN_WAIT, "three instances in the API", || async {
        let s = shoal.status().await;
        (s["app"]["target"] == 3 && s["instances"].as_array()?.len() == 3).then_some(())
    })
    .await;
    tmux.wait_for("done: scale app to 3").await;
    eventually(SCREEN_WAIT, "app-3's row", || async {
        row(&tmux.screen(), "app-3").map(|_| ())
    })
    .await;
    shoal.wait_healthy(3).await;

    // `r`, `n`: asked, cancelled, nothing happens.
    let before = shoal.instance_pids().await;
    tmux.keys("r");
    tmux.wait_for("Rolling reload of app").await;
    tmux.keys("n");
    tmux.wait_for("reload app: cancelled").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = shoal.status().await;
    assert_eq!(after["app"]["generation"], 1, "{after}");
    assert_eq!(after["app"]["operation"], Value::Null, "{after}");
    assert_eq!(shoal.instance_pids().await, before);

    // shoal gone: said on screen, and top keeps trying.
    shoal.signal(nix::sys::signal::Signal::SIGTERM);
    assert!(
        shoal.wait_exit(Duration::from_secs(20)).is_some(),
        "shoal did not stop"
    );
    let screen = tmux.wait_for("admin API unreachable").await;
    assert!(screen.contains("retrying"), "{screen}");

    // `q`: exits 0 and gives the terminal back.
    tmux.keys("q");
    // One line, printed once `top` is gone: cooked mode is `icanon`,
    // raw mode `-icanon`.
    tmux.wait_for("top exited 0 in mode icanon").await;
}

/// Two apps: a block each, ↓/`j` selects the second (marked `▶`), and `+`
/// `y` scales that one only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_selects_one_of_several_apps() {
    if let Some(missing) = tmux_missing() {
        if std::env::var_os("SHOAL_TMUX_TEST").is_none() {
            eprintln!("SKIPPED top_selects_one_of_several_apps: {missing}");
            return;
        }
        panic!("{missing}");
    }
    let app = format!(
        "    command: [\"{SHOAL}\", \"demo-app\", \"--port\", \"{{port}}\"]\n    instances: 1\n    \
         health: {{ path: /health, interval: 500ms, timeout: 500ms, fall: 3, rise: 2 }}\n    \
         stop_timeout: 5s\n"
    );
    let shoal = Shoal::start(&format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\napps:\n  api:\n{app}  web:\n{app}\
         routes:\n  - {{ match: {{ path_prefix: /api }}, to: api }}\n  - {{ to: web }}\n"
    ));
    shoal.wait_healthy(2).await;
    let cwd = tempfile::tempdir().expect("tempdir");
    let tmux = Tmux::start(
        "apps",
        cwd.path(),
        &top_command(shoal.admin, "-u SHOAL_ADMIN_TOKEN"),
    );
    tmux.wait_until("both apps' rows", |s| {
        row(s, "api-1").is_some() && row(s, "web-1").is_some() && s.contains("▶ api")
    })
    .await;
    tmux.keys("j");
    tmux.wait_for("▶ web").await;
    tmux.keys("+");
    tmux.wait_for("Scale web from 1 to 2 instance(s)?").await;
    tmux.keys("y");
    tmux.wait_until("web-2's row", |s| row(s, "web-2").is_some())
        .await;
    tmux.wait_for("done: scale web to 2").await;
    let status = shoal.status().await;
    let targets: Vec<(String, u64)> = status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["target"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(targets, [("api".to_string(), 1), ("web".to_string(), 2)]);
    // ↑ goes back to the first.
    tmux.keys("k");
    tmux.wait_for("▶ api").await;
    tmux.keys("q");
    tmux.wait_for("top exited 0 in mode icanon").await;
}
