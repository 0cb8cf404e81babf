//! Issue 20: what a new user met first, running a real app under shoal —
//! flags, messages, silent waits, late failures, outages under repeated
//! kills. Each test here failed before its fix.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::{cli, demo_config, shoal_cli, Shoal, SHOAL};

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

    let (code, out, err) = shoal_cli(&["check", "--config", file], &[]).await;
    assert_eq!(code, 0, "check --config: {err}");
    assert!(out.contains("instances: 1"), "{out}");

    let (code, out, err) = shoal_cli(&["status", "--config", file], &[]).await;
    assert_eq!(code, 0, "status --config: {err}");
    assert!(out.contains("app-1"), "{out}");

    // The unmistakable name of a config reload.
    let (code, out, err) = shoal_cli(&["reload", "--apply-config", "-c", file], &[]).await;
    assert_eq!(code, 0, "reload --apply-config: {err}");
    assert!(out.contains("config"), "{out}");
    assert!(!out.contains("rolling reload done"), "{out}");
    assert!(!err.contains("old spelling"), "{err}");

    // On `reload`, `--config` stays the old boolean flag (what a systemd
    // ExecReload may say), with the file given by `-c` or `--file`, and a
    // note pointing at the new name.
    for flag in ["-c", "--file"] {
        let (code, out, err) = shoal_cli(&["reload", "--config", flag, file], &[]).await;
        assert_eq!(code, 0, "reload --config {flag} FILE: {err}");
        assert!(out.contains("config"), "{out}");
        assert!(!out.contains("rolling reload done"), "{out}");
        assert!(err.contains("--apply-config"), "{err}");
    }
    let (code, out, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0, "reload --config (old spelling): {err}");
    assert!(out.contains("config"), "{out}");
    assert!(!out.contains("rolling reload done"), "{out}");
    let generation = shoal.status().await["app"]["generation"].clone();

    // `reload --config FILE` is neither a rolling restart nor a config
    // reload: refused, saying what to write, and nothing happens.
    let (code, out, err) = shoal_cli(&["reload", "--config", file], &[]).await;
    assert_eq!(code, 2, "reload --config FILE: {out}{err}");
    assert!(
        err.contains(&format!("shoal reload --apply-config -c {file}")),
        "{err}"
    );
    assert_eq!(shoal.status().await["app"]["generation"], generation);

    // `-c FILE` alone: the rolling reload.
    let (code, out, err) = shoal_cli(&["reload", "-c", file], &[]).await;
    assert_eq!(code, 0, "reload -c FILE: {err}");
    assert!(out.contains("rolling reload done"), "{out}");
    assert_ne!(shoal.status().await["app"]["generation"], generation);
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

    // Item 10: a scale-up step that moves no count logs none.
    let (code, out, err) = cli(shoal.admin, &["scale", "2"]).await;
    assert_eq!(code, 0, "{out}{err}");
    shoal.wait_log("started app-2 on port").await;
    let line = shoal
        .log()
        .into_iter()
        .find(|l| l.contains("started app-2 on port"))
        .unwrap();
    assert!(!line.contains("done=0"), "{line}");
}

/// A config file in a fresh directory: (dir, path).
fn config_file(text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shoal.yaml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// An executable script in `dir` that the instances run; rewritten to
/// "deploy" another build.
fn script(dir: &std::path::Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("run.sh");
    // Written beside and renamed into place: a running shell never reads a
    // half-written file.
    let tmp = dir.join("run.sh.new");
    std::fs::write(&tmp, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
    path
}

fn scripted_config(script: &std::path::Path, instances: u32, app_extra: &str) -> String {
    demo_config(instances, "")
        .replace(
            &format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
            &format!(r#"["{}", "{{port}}"]"#, script.display()),
        )
        .replace(
            &format!("  instances: {instances}\n"),
            &format!("  instances: {instances}\n{app_extra}"),
        )
}

const GOOD_BUILD: &str = "exec \"$SHOAL_EXE_FOR_TEST\" demo-app --port \"$1\"";

fn good_build(dir: &std::path::Path) -> std::path::PathBuf {
    script(dir, &GOOD_BUILD.replace("$SHOAL_EXE_FOR_TEST", SHOAL))
}

/// Item 3: a program that does not exist is a config error that names it,
/// for `check` and for `up`, at the key and line where it was written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_program_is_named_by_check_and_up() {
    let (_dir, path) = config_file(
        "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\napp:\n  command: [gunicron, -w, '2', -b, '127.0.0.1:{port}', 'app:app']\n",
    );
    let file = path.to_str().unwrap();
    for verb in ["check", "up"] {
        let (code, _, err) = shoal_cli(&[verb, "-c", file], &[]).await;
        assert_eq!(code, 78, "{verb}: {err}");
        assert!(
            err.contains(&format!(
                "{file}:4: app.command[0]: cannot run `gunicron`: not found in PATH"
            )),
            "{verb}: {err}"
        );
    }
    // A shell string that is one simple command is checked too.
    let (_dir, path) =
        config_file("app:\n  command: PYTHONUNBUFFERED=1 gunicron -b 127.0.0.1:{port} app:app\n");
    let (code, _, err) = shoal_cli(&["check", "-c", path.to_str().unwrap()], &[]).await;
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains(":2: app.command: cannot run `gunicron`: not found in PATH"),
        "{err}"
    );
}

/// Item 3: a program that disappears after the start (a redeploy gone
/// wrong) marks the instance `failed`, with the program named, instead of
/// retrying with backoff forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn program_gone_at_restart_marks_the_instance_failed() {
    let dir = tempfile::tempdir().unwrap();
    let run_sh = good_build(dir.path());
    let shoal = Shoal::start(&scripted_config(&run_sh, 2, ""));
    let status = shoal.wait_healthy(2).await;
    let pid = status["instances"][0]["pid"].as_u64().unwrap() as i32;
    std::fs::remove_file(&run_sh).unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let s = crate::support::eventually(Duration::from_secs(10), "app-1 failed", || async {
        let s = shoal.status().await;
        (s["instances"][0]["state"] == "failed").then_some(s)
    })
    .await;
    let failure = s["instances"][0]["failure"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(
        failure.contains(&format!("cannot run `{}`: no such file", run_sh.display())),
        "{s}"
    );
    shoal
        .wait_log(&format!("cannot run `{}`", run_sh.display()))
        .await;
    let restarts = s["instances"][0]["restarts"].clone();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = shoal.status().await;
    assert_eq!(s["instances"][0]["state"], "failed", "{s}");
    assert_eq!(s["instances"][0]["restarts"], restarts, "no more retries");
}

/// Item 1: `shoal check` warns (exit 0) when the command shows no port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_warns_when_the_command_shows_no_port() {
    let (_dir, path) = config_file("app:\n  command: [sh, -c, 'exec flask --app app run']\n");
    let (code, out, err) = shoal_cli(&["check", "-c", path.to_str().unwrap()], &[]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("command:"), "{out}");
    assert!(
        err.contains("warning: ")
            && err.contains(":2: app.command: mentions neither `{port}` nor `PORT`"),
        "{err}"
    );
    for command in ["[sh, -c, 'exec x --port {port}']", "'exec x --port $PORT'"] {
        let (_dir, path) = config_file(&format!("app:\n  command: {command}\n"));
        let (code, _, err) = shoal_cli(&["check", "-c", path.to_str().unwrap()], &[]).await;
        assert_eq!(code, 0, "{err}");
        assert!(!err.contains("warning"), "{command}: {err}");
    }
}

/// Item 1: an app that listens on a port of its own (flask's 5000) is
/// named in the log after a while in `starting`, with the address probed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instance_listening_elsewhere_is_warned_about() {
    let fixed = crate::support::free_port();
    let config = demo_config(1, "")
        .replace("\"{port}\"]", &format!("\"{fixed}\"]"))
        .replace("  instances: 1\n", "  instances: 1\n  ready_timeout: 2s\n");
    assert!(config.contains(&fixed.to_string()), "{config}");
    let shoal = Shoal::start(&config);
    shoal.wait_log("has not passed a health check").await;
    let port = shoal.status().await["instances"][0]["port"]
        .as_u64()
        .unwrap();
    let line = shoal
        .log()
        .into_iter()
        .find(|l| l.contains("has not passed a health check"))
        .unwrap();
    assert!(
        line.contains(&format!("GET http://127.0.0.1:{port}/health")),
        "{line}"
    );
    assert!(line.contains("{port}") && line.contains("PORT"), "{line}");
    assert!(line.contains("app-1"), "{line}");
}

/// Item 7: with every instance failed, `shoal status` says so on its first
/// line, with the reason, and exits non-zero; healthy, it says `ok` and 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_summarises_and_exits_non_zero_when_none_is_healthy() {
    let dir = tempfile::tempdir().unwrap();
    let run_sh = script(dir.path(), "echo 'cannot import app' >&2; exit 1");
    let shoal = Shoal::start(&scripted_config(
        &run_sh,
        2,
        "  max_restarts: 2\n  restart_window: 1m\n",
    ));
    crate::support::eventually(Duration::from_secs(20), "both failed", || async {
        let s = shoal.status().await;
        s["instances"]
            .as_array()?
            .iter()
            .all(|i| i["state"] == "failed")
            .then_some(())
    })
    .await;
    // 69 (EX_UNAVAILABLE): not clap's usage-error 2, not 1 (unreachable).
    let (code, out, err) = cli(shoal.admin, &["status"]).await;
    assert_eq!(code, 69, "{out}{err}");
    let first = out.lines().next().unwrap_or("");
    assert!(
        first
            .starts_with("down: 0 of 2 instances healthy — app-1 failed: crash loop (exit code 1)"),
        "{out}"
    );
    let (code, _, _) = cli(shoal.admin, &["status", "--json"]).await;
    assert_eq!(code, 69);
    // A usage error is still clap's 2, so scripts can tell them apart.
    let (code, _, _) = cli(shoal.admin, &["status", "--no-such-flag"]).await;
    assert_eq!(code, 2);

    let healthy = Shoal::start(&demo_config(2, ""));
    healthy.wait_healthy(2).await;
    let (code, out, err) = cli(healthy.admin, &["status"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("ok: 2 of 2 instances healthy\n"), "{out}");
}

/// Items 2, 7 and 10: a rollout whose replacement exits at start-up stops
/// at once (not after `ready_timeout`), with the exit code and the last
/// lines the replacement printed; the status then shows what runs and
/// what was attempted; while both run, the two `app-1`s' output is told
/// apart by generation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_stops_at_once_when_the_replacement_crashes() {
    let dir = tempfile::tempdir().unwrap();
    let run_sh = good_build(dir.path());
    let shoal = Shoal::start(&scripted_config(&run_sh, 2, "  ready_timeout: 30s\n"));
    shoal.wait_healthy(2).await;
    script(
        dir.path(),
        "echo 'starting worker' ; echo \"ModuleNotFoundError: No module named 'flask_x'\" >&2; exit 1",
    );
    let t = Instant::now();
    let (code, out, err) = cli(shoal.admin, &["reload"]).await;
    let took = t.elapsed();
    assert_ne!(code, 0, "{out}");
    assert!(
        took < Duration::from_secs(10),
        "the rollout waited {took:?} for a replacement that had exited: {err}"
    );
    assert!(err.contains("rollout stopped after 0 of 2"), "{err}");
    assert!(
        err.contains("app-1 (generation 2) exited during start-up: exit code 1"),
        "{err}"
    );
    assert!(err.contains("the old instances keep serving"), "{err}");
    assert!(
        err.contains("ModuleNotFoundError: No module named 'flask_x'"),
        "its last output: {err}"
    );
    shoal.wait_log("app-1 (gen 2) | ModuleNotFoundError").await;

    let s = shoal.wait_healthy(2).await;
    for i in s["instances"].as_array().unwrap() {
        assert_eq!(i["generation"], 1, "{i}");
    }
    let (code, out, _) = cli(shoal.admin, &["status"]).await;
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("generation 1 (rollout to generation 2 stopped: rollout stopped after 0 of 2"),
        "{out}"
    );
}

/// The last lines of a replacement that crashed are read to the end of its
/// output before the rollout says why it stopped, not caught by a fixed
/// wait: here they come 400 ms after the exit (from a child that left the
/// process group, as a loaded machine can delay the reading), and are still
/// in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_failure_waits_for_the_last_output() {
    let dir = tempfile::tempdir().unwrap();
    let run_sh = good_build(dir.path());
    let shoal = Shoal::start(&scripted_config(&run_sh, 1, "  ready_timeout: 30s\n"));
    shoal.wait_healthy(1).await;
    // The script exits only once the late writer has left its process
    // group (which shoal SIGKILLs at the exit), so the line does come.
    let left = dir.path().join("left");
    script(
        dir.path(),
        &format!(
            "echo 'starting worker'\n\
             setsid sh -c 'touch {left}; sleep 0.4; echo \"ImportError: late last words\" >&2' &\n\
             while [ ! -e {left} ]; do sleep 0.01; done\n\
             exit 1",
            left = left.display()
        ),
    );
    let (code, out, err) = cli(shoal.admin, &["reload"]).await;
    assert_ne!(code, 0, "{out}");
    assert!(
        err.contains("app-1 (generation 2) exited during start-up: exit code 1"),
        "{err}"
    );
    assert!(
        err.contains("ImportError: late last words"),
        "its last output: {err}"
    );
}

/// Item 10: a taken port in the ephemeral range says so (a port the
/// kernel picked for the test's own listener is in it by definition) —
/// without blaming an outgoing connection, since here (as most often) a
/// listener holds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn taken_ephemeral_port_says_so() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let (_dir, path) = config_file(&format!(
        "listen: 127.0.0.1:{port}\nadmin: {{listen: 127.0.0.1:0}}\napp:\n  command: [sh, -c, 'exit 0']\n"
    ));
    let (code, _, err) = shoal_cli(&["up", "-c", path.to_str().unwrap()], &[]).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port} (listen)"))
            && err.contains("ephemeral range"),
        "{err}"
    );
    assert!(
        err.contains("if no other program listens on it")
            && err.contains(&format!("ss -ltnp 'sport = :{port}'")),
        "{err}"
    );
    assert!(!err.contains("so one may hold it"), "{err}");
}

/// A pre-fork server in the manner of gunicorn: the master binds `$PORT`
/// and keeps 2 workers accepting on it; `GET /die` makes the worker that
/// took it exit without answering (one worker killed mid-request), and the
/// master starts another.
const PREFORK: &str = r#"
import os, socket
port = int(os.environ["PORT"])
me = os.environ["INSTANCE_ID"].encode()
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(64)
def work():
    while True:
        c, _ = s.accept()
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = c.recv(4096)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"GET /die"):
            os._exit(1)
        c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(me), me))
        c.close()
def spawn():
    if os.fork() == 0:
        try:
            work()
        finally:
            os._exit(0)
for _ in range(2):
    spawn()
while True:
    os.wait()
    spawn()
"#;

/// Item 8: one worker of a pre-fork instance dying mid-request (one failed
/// request) does not take the instance out of rotation, with the default
/// settings (`proxy.max_fails: 1`, as nginx's); `app.max_fails` failures
/// in a row do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_dead_worker_does_not_eject_a_supervised_instance() {
    let dir = tempfile::tempdir().unwrap();
    let app = dir.path().join("prefork.py");
    std::fs::write(&app, PREFORK).unwrap();
    let config = demo_config(
        2,
        "balance: { algorithm: round_robin }\nproxy: { retries: 0 }\n",
    )
    .replace(
        &format!(r#"["{SHOAL}", "demo-app", "--port", "{{port}}"]"#),
        &format!(r#"["python3", "{}"]"#, app.display()),
    );
    let shoal = Shoal::start(&config);
    shoal.wait_healthy(2).await;
    let r = crate::support::get(shoal.proxy, "/die").await.unwrap();
    assert_eq!(r.status, 502, "the request its worker died on fails");
    // The failure was counted (passive health runs before the answer);
    // nothing may have been ejected for it.
    for _ in 0..10 {
        let s = shoal.status().await;
        for i in s["instances"].as_array().unwrap() {
            assert_eq!(i["health"], "up", "{s}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut served = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = crate::support::get(shoal.proxy, "/").await.unwrap();
        assert_eq!(r.status, 200);
        served.insert(String::from_utf8_lossy(&r.body).into_owned());
    }
    assert_eq!(served.len(), 2, "both instances serve: {served:?}");
    assert!(!shoal.log_contains("out of rotation after failed requests"));
}

/// Item 9: under load, with the default restart settings, SIGKILL of a
/// serving instance every second (each of 3 is killed about every 3 s) for
/// 14 s. Instances that served before they were killed restart at once, so
/// the app never has none in rotation: almost no request gets 503. (Before,
/// each kill doubled the restart delay, 0.5 s up to 30 s, and all three
/// ended up waiting at once.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_kills_do_not_become_an_outage() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    let config = demo_config(3, "balance: { algorithm: round_robin }\n")
        .replace("  backoff: { initial: 100ms, max: 1s }\n", "");
    assert!(!config.contains("backoff"), "default restart settings");
    let shoal = Shoal::start(&config);
    shoal.wait_healthy(3).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ok, unavailable, other) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicUsize::new(0)),
        Arc::new(Mutex::new(Vec::new())),
    );
    let mut clients = Vec::new();
    for _ in 0..4 {
        let (stop, ok, unavailable, other) =
            (stop.clone(), ok.clone(), unavailable.clone(), other.clone());
        let proxy = shoal.proxy;
        clients.push(tokio::spawn(async move {
            let mut client = crate::support::Client::new(proxy);
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                match client.get("/").await {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    Ok(r) if r.status == 503 => unavailable.fetch_add(1, Ordering::Relaxed),
                    Ok(r) => {
                        other.lock().unwrap().push(format!("status {}", r.status));
                        0
                    }
                    Err(e) => {
                        other.lock().unwrap().push(e);
                        0
                    }
                };
            }
        }));
    }

    let mut kills = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(14) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let s = shoal.status().await;
        let up: Vec<i32> = s["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|i| i["health"] == "up")
            .filter_map(|i| i["pid"].as_u64().map(|p| p as i32))
            .collect();
        if let Some(pid) = up.get(kills % up.len().max(1)) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
            kills += 1;
        }
    }
    // Back to full strength soon after the kills stop.
    let back = Instant::now();
    shoal.wait_healthy(3).await;
    let back = back.elapsed();
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }
    let (ok, unavailable) = (
        ok.load(Ordering::Relaxed),
        unavailable.load(Ordering::Relaxed),
    );
    let other = other.lock().unwrap().clone();
    let total = ok + unavailable + other.len();
    eprintln!(
        "{kills} kills: {ok} ok, {unavailable} 503, {} other failures; all back {back:?} after",
        other.len()
    );
    assert!(kills >= 12, "only {kills} kills: proves nothing");
    let restarts: u64 = shoal.status().await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["restarts"].as_u64())
        .sum();
    assert!(restarts >= 12, "{restarts} restarts for {kills} kills");
    assert!(total > 1500, "only {total} requests");
    assert!(
        unavailable * 200 <= total,
        "{unavailable} of {total} requests got 503 (no healthy backend) with {kills} kills"
    );
    assert!(
        other.len() * 200 <= total,
        "{} failed: {:?}",
        other.len(),
        &other[..other.len().min(5)]
    );
    assert!(
        back < Duration::from_secs(5),
        "all 3 back {back:?} after the kills"
    );
}

/// Item 9: the app is never left with every instance waiting out a restart
/// delay. One instance, default restart settings, SIGKILLed each time just
/// after it enters rotation (so it never counts as having served, and its
/// delay doubles: 0.5 s, 1 s, 2 s, 4 s, 8 s): since no other instance is in
/// rotation, it is started at once each time instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_instance_is_not_left_waiting_in_backoff() {
    let config = demo_config(1, "").replace("  backoff: { initial: 100ms, max: 1s }\n", "");
    let shoal = Shoal::start(&config);
    let mut recoveries = Vec::new();
    for round in 0..5 {
        let pid =
            crate::support::eventually(Duration::from_secs(20), "app-1 in rotation", || async {
                let s = shoal.status().await;
                let i = &s["instances"][0];
                (i["health"] == "up").then(|| i["pid"].as_u64()).flatten()
            })
            .await;
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        )
        .unwrap();
        let killed = Instant::now();
        crate::support::eventually(Duration::from_secs(20), "app-1 back", || async {
            let s = shoal.status().await;
            let i = &s["instances"][0];
            (i["health"] == "up" && i["pid"].as_u64() != Some(pid)).then_some(())
        })
        .await;
        recoveries.push(killed.elapsed());
        assert_eq!(shoal.status().await["instances"][0]["restarts"], round + 1);
    }
    assert!(
        recoveries.iter().all(|r| *r < Duration::from_secs(2)),
        "back after {recoveries:?}"
    );
    shoal
        .wait_log("no instance in rotation: restarting this one")
        .await;
}

/// The fast restart after serving is bounded: an app that passes its
/// health check and then dies every time (say on its first real request)
/// restarts at once only `app.max_restarts` times within
/// `app.restart_window`; then it waits the doubling delay and counts
/// toward a crash loop, so it ends `failed` with its exit code instead of
/// restarting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_dies_after_serving_ends_in_a_crash_loop() {
    let dir = tempfile::tempdir().unwrap();
    // Healthy about 1 s after start (rise 2 at 500 ms), gone ~2.5 s later.
    let run_sh = script(
        dir.path(),
        &format!("\"{SHOAL}\" demo-app --port \"$1\" & pid=$!\nsleep 3.5\nkill $pid\nexit 3"),
    );
    let shoal = Shoal::start(&scripted_config(
        &run_sh,
        1,
        "  max_restarts: 2\n  restart_window: 1m\n",
    ));
    let started = Instant::now();
    crate::support::eventually(Duration::from_secs(60), "app-1 failed", || async {
        let s = shoal.status().await;
        (s["instances"][0]["state"] == "failed").then_some(())
    })
    .await;
    let took = started.elapsed();
    // 2 restarts at once after serving, 2 counted ones, then failed: 5 runs.
    assert!(took < Duration::from_secs(40), "failed only after {took:?}");
    assert!(shoal.log_contains("instance exited after serving; restarting it now"));
    assert!(shoal.log_contains("keeps exiting after serving"));
    let s = shoal.status().await;
    assert_eq!(s["instances"][0]["restarts"], 4, "{s}");
    let (code, out, err) = cli(shoal.admin, &["status"]).await;
    assert_eq!(code, 69, "{out}{err}");
    assert!(
        out.starts_with("down: 0 of 1 instances healthy — app-1 failed: crash loop (exit code 3)"),
        "{out}"
    );
}
