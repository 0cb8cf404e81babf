//! Start, drain and death: graceful shutdown in process, and `run` as a real process
//! (signals, exit codes, stdout lines, memory).
//!
//! The process tests run this very test binary again as the child, with
//! `SHOAL_DEMO_CHILD` set, so that `child_entry` calls `shoal_demo::run` the way
//! `shoal demo-app` does.

mod support;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use http::StatusCode;
use support::{get, Client, Server};

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish() {
    let mut server = Server::start(support::opts("drain")).await;
    let addr = server.addr;

    // An idle keep-alive connection must not hold the drain up.
    let mut idle = Client::connect(addr).await;
    assert_eq!(idle.get("/health").await.status, StatusCode::OK);

    let slow = tokio::spawn(async move {
        let started = Instant::now();
        let reply = get(addr, "/slow?ms=1500").await;
        (reply, started.elapsed())
    });
    support::wait_for_requests(addr, 2).await;

    server.begin_stop();
    // The listener closes at once...
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    assert!(
        !server.is_finished(),
        "serve returned before the slow request"
    );

    // ...while the request in flight completes normally.
    let (reply, took) = slow.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["slept_ms"], 1500);
    assert!(took >= Duration::from_millis(1500));
    server.join(Duration::from_secs(5)).await.unwrap();
}

#[tokio::test]
async fn shutdown_with_nothing_in_flight_is_prompt() {
    let server = Server::start(support::opts("quick")).await;
    let mut idle = Client::connect(server.addr).await;
    assert_eq!(idle.get("/").await.status, StatusCode::OK);
    let started = Instant::now();
    server.stop().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(2));
}

// ---------------------------------------------------------------------------------
// `run` in a child process.

const CHILD_ENV: &str = "SHOAL_DEMO_CHILD";

/// Not a test of its own: the body of the child process the tests below start. In a
/// normal run (no `SHOAL_DEMO_CHILD`) it returns at once.
#[test]
fn child_entry() {
    if std::env::var_os(CHILD_ENV).is_some() {
        std::process::exit(shoal_demo::run(None));
    }
}

/// A running `shoal_demo::run` process and the lines of its stdout.
struct ChildApp {
    child: Child,
    lines: mpsc::Receiver<String>,
    addr: SocketAddr,
}

impl ChildApp {
    /// Starts the child with `PORT=0` and the given environment, and waits for its
    /// "listening on" line.
    fn start(instance: &str, env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(std::env::current_exe().unwrap());
        command
            .args(["child_entry", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, "1")
            .env("PORT", "0")
            .env("INSTANCE_ID", instance)
            .env_remove("DEMO_HEALTH_STATUS")
            .env_remove("DEMO_STARTUP_DELAY_MS")
            .env_remove("DEMO_ACCESS_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut app = Self {
            child,
            lines,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        // The test harness may have begun the line with "test child_entry ... ".
        let marker = format!("{instance} listening on ");
        let line = app.wait_line(|l| l.contains(&marker), Duration::from_secs(20));
        let at = line.find(&marker).unwrap() + marker.len();
        app.addr = line[at..].trim().parse().unwrap();
        app
    }

    /// Waits for a stdout line matching `pred` and returns it.
    fn wait_line(&self, pred: impl Fn(&str) -> bool, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(_) => continue,
                Err(err) => panic!("no matching stdout line ({err})"),
            }
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the child did not exit in time");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChildApp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn run_logs_requests_and_drains_on_sigterm() {
    let mut app = ChildApp::start("child-1", &[]);
    let addr = app.addr;

    let reply = Client::connect(addr)
        .await
        .request(
            http::Method::GET,
            "/",
            &[("x-request-id", "req-42")],
            support::empty(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json()["instance"], "child-1");
    assert_eq!(reply.json()["pid"], app.child.id());
    assert_eq!(reply.json()["port"], addr.port());
    app.wait_line(|l| l == "child-1 GET / 200 req-42", Duration::from_secs(5));

    let slow = tokio::spawn(async move { get(addr, "/slow?ms=1500").await });
    support::wait_for_requests(addr, 2).await;
    app.signal("TERM");

    let reply = slow.await.unwrap();
    assert_eq!(reply.status, StatusCode::OK);
    app.wait_line(|l| l == "child-1 GET /slow 200", Duration::from_secs(5));
    let status = app.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn sigint_stops_an_idle_app_with_code_zero() {
    let mut app = ChildApp::start("child-int", &[("DEMO_ACCESS_LOG", "off")]);
    assert_eq!(get(app.addr, "/health").await.status, StatusCode::OK);
    app.signal("INT");
    assert_eq!(app.wait_exit(Duration::from_secs(10)).code(), Some(0));
}

#[tokio::test]
async fn control_exit_kills_the_process_with_the_code() {
    let mut app = ChildApp::start("child-exit", &[]);
    let mut client = Client::connect(app.addr).await;
    let req = http::Request::post("/control/exit?code=7")
        .body(support::empty())
        .unwrap();
    // No answer: the process is gone.
    assert!(client.send(req).await.is_err());
    assert_eq!(app.wait_exit(Duration::from_secs(10)).code(), Some(7));
}

#[tokio::test]
async fn startup_delay_and_initial_health_come_from_the_environment() {
    let started = Instant::now();
    let app = ChildApp::start(
        "child-slow",
        &[
            ("DEMO_STARTUP_DELAY_MS", "700"),
            ("DEMO_HEALTH_STATUS", "503"),
        ],
    );
    assert!(started.elapsed() >= Duration::from_millis(700));
    let health = get(app.addr, "/health").await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(health.json()["instance"], "child-slow");
}

#[cfg(target_os = "linux")]
#[tokio::test]
async fn allocate_grows_the_resident_set() {
    fn rss_kib(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }
    let app = ChildApp::start("child-mem", &[("DEMO_ACCESS_LOG", "off")]);
    let before = rss_kib(app.child.id());
    let reply = support::post(app.addr, "/control/allocate?mb=64").await;
    assert_eq!(reply.status, StatusCode::OK);
    let grown = rss_kib(app.child.id()).saturating_sub(before);
    assert!(grown >= 60 * 1024, "RSS grew by only {grown} KiB");
}
