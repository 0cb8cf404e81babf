//! Test support: run the real `shoal` binary on free loopback ports, talk to
//! it with a real HTTP client, and never leave a process behind.
#![allow(dead_code)]

pub mod dns;
pub mod load;
pub mod netns;
pub mod nginx;
pub mod origin;
pub mod raw;
pub mod redis;
pub mod spread;
pub mod tls;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

pub const SHOAL: &str = env!("CARGO_BIN_EXE_shoal");

/// Run `shoal ARGS` with these environment variables (and none of the
/// admin client's own from the test's environment): (exit code, stdout,
/// stderr).
pub async fn shoal_cli(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = tokio::process::Command::new(SHOAL)
        .args(args)
        .env_remove("SHOAL_ADMIN_CA")
        .env_remove("SHOAL_ADMIN_TOKEN")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .expect("run shoal CLI");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Run a `shoal` CLI verb against this admin address; (exit code, stdout, stderr).
pub async fn cli(admin: SocketAddr, args: &[&str]) -> (i32, String, String) {
    let admin = format!("http://{admin}");
    let args: Vec<&str> = args.iter().copied().chain(["--admin", &admin]).collect();
    shoal_cli(&args, &[]).await
}

/// Poll `f` until it returns `Some`, or panic with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub struct Shoal {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub lines: Arc<Mutex<Vec<String>>>,
    pub dir: tempfile::TempDir,
    /// Every instance pid seen, killed on drop if still alive.
    seen_pids: Mutex<Vec<u32>>,
}

/// A config with the demo app as the instance command, on free ports.
/// Its health probes are generous on purpose: CI runs these tests in
/// parallel on 2 cores (a 2 GiB streaming test among them), where a tight
/// probe of a debug build can miss and make instances flap. Tests that time
/// fall and rise use configs of their own.
pub fn demo_config(instances: u32, extra: &str) -> String {
    format!(
        r#"listen: 127.0.0.1:0
admin:
  listen: 127.0.0.1:0
app:
  command: ["{SHOAL}", "demo-app", "--port", "{{port}}"]
  instances: {instances}
  health: {{ path: /health, interval: 500ms, timeout: 500ms, fall: 3, rise: 2 }}
  stop_timeout: 5s
  backoff: {{ initial: 100ms, max: 1s }}
{extra}"#
    )
}

/// A config proxying to static `upstreams` (servers the test started), on
/// free ports. Health checks are TCP connects: the first one puts each
/// upstream in rotation and the next comes only after a minute, so a test's
/// backend sees almost nothing but the requests under test. `extra` is
/// appended (e.g. `"proxy: { ... }\nlimits: { ... }\n"`).
pub fn upstreams_config(urls: &[SocketAddr], extra: &str) -> String {
    let list: String = urls
        .iter()
        .map(|u| format!("  - {{ url: \"http://{u}\" }}\n"))
        .collect();
    format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n{list}health: {{ interval: 1m, timeout: 1s }}\n{extra}"
    )
}

/// Every sample line of a Prometheus exposition: `name{labels}` → value.
pub fn samples(text: &str) -> std::collections::BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (key, value) = l.rsplit_once(' ')?;
            Some((key.to_string(), value.parse().ok()?))
        })
        .collect()
}

/// Reads one response (head and a `Content-Length` body), or what came
/// before the connection closed or `timeout` passed.
pub async fn read_response(s: &mut TcpStream, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + len {
                return text;
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return text,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// Reads until the connection closes; `None` if it is still open after `timeout`.
pub async fn read_to_close(s: &mut TcpStream, timeout: Duration) -> Option<String> {
    let mut buf = Vec::new();
    let read = tokio::time::timeout(timeout, async {
        let mut chunk = [0u8; 8192];
        loop {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    read.ok()
        .map(|_| String::from_utf8_lossy(&buf).into_owned())
}

/// VmRSS of `pid`, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .expect("VmRSS in /proc/<pid>/status");
    kib * 1024
}

thread_local! {
    /// The `proxy.engine` of the test running on this thread, set by
    /// [`under_both_engines!`](crate::under_both_engines).
    static ENGINE: std::cell::Cell<Option<&'static str>> = const { std::cell::Cell::new(None) };
}

/// Run the rest of this test (on this thread) under `proxy.engine: engine`:
/// [`Shoal::start`] and [`with_test_engine`] put it into every config.
pub fn set_test_engine(engine: &'static str) {
    ENGINE.with(|e| e.set(Some(engine)));
}

/// `config` with the engine this test runs under (if one was set), merged
/// into its `proxy` section: a flow mapping (`proxy: { … }`), a block one
/// (`proxy:` on its own line), or a new one.
pub fn with_test_engine(config: &str) -> String {
    let Some(engine) = ENGINE.with(|e| e.get()) else {
        return config.to_string();
    };
    if let Some(at) = config.find("proxy: {") {
        let at = at + "proxy: {".len();
        return format!("{} engine: {engine},{}", &config[..at], &config[at..]);
    }
    for block in ["\nproxy:\n", "\nproxy:\r\n"] {
        if let Some(at) = config.find(block) {
            let at = at + block.len();
            return format!("{}  engine: {engine}\n{}", &config[..at], &config[at..]);
        }
    }
    let sep = if config.ends_with('\n') { "" } else { "\n" };
    format!("{config}{sep}proxy: {{ engine: {engine} }}\n")
}

/// Each named test (`async fn name()`, no attribute) twice, under
/// `proxy.engine: native` and `hyper`: `on_native::name`, `on_hyper::name`.
#[macro_export]
macro_rules! under_both_engines {
    ($($name:ident),* $(,)?) => {
        mod on_native {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::set_test_engine("native");
                    super::$name().await
                }
            )*
        }
        mod on_hyper {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::set_test_engine("hyper");
                    super::$name().await
                }
            )*
        }
    };
}

impl Shoal {
    /// Start `shoal up` with this config (and the test's engine, see
    /// [`with_test_engine`]) and wait until it has bound its listeners.
    pub fn start(config: &str) -> Shoal {
        Shoal::start_env(config, &[])
    }

    /// As [`start`](Self::start), with these environment variables too
    /// (e.g. `SSL_CERT_FILE`, the trust store a `rediss://` state uses).
    pub fn start_env(config: &str, env: &[(&str, &str)]) -> Shoal {
        Shoal::start_wrapped(config, env, &[])
    }

    /// As [`start_env`](Self::start_env), run through `wrapper` (e.g.
    /// `["ip", "netns", "exec", NS]`), which must exec shoal in place: the
    /// child's PID is shoal's. The addresses are those shoal logs (a
    /// wildcard bind stays `0.0.0.0`: the caller puts the host's in).
    pub fn start_wrapped(config: &str, env: &[(&str, &str)], wrapper: &[&str]) -> Shoal {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shoal.yaml");
        std::fs::write(&path, with_test_engine(config)).expect("write config");
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(SHOAL);
                c
            }
            None => Command::new(SHOAL),
        };
        let mut child = cmd
            .args(["up", "-c"])
            .arg(&path)
            // shoal's debug lines, but not the per-connection and
            // per-request events (a load test would keep millions of
            // lines); a test may set its own SHOAL_LOG.
            .env(
                "SHOAL_LOG",
                "info,shoal=debug,shoal::conn=info,shoal::request=info",
            )
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn shoal");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let verbose = std::env::var_os("SHOAL_TEST_VERBOSE").is_some();
        for stream in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let lines = lines.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines() {
                    let Ok(line) = line else { break };
                    if verbose {
                        eprintln!("[shoal] {line}");
                    }
                    lines.lock().unwrap().push(line);
                }
            });
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut proxy, mut admin) = (None, None);
        while proxy.is_none() || admin.is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("shoal did not start: {:#?}", lines.lock().unwrap());
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("shoal exited with {status}: {:#?}", lines.lock().unwrap());
            }
            for l in lines.lock().unwrap().iter() {
                if let Some(a) = addr_after(l, "proxy listening on ") {
                    proxy = Some(a);
                }
                if let Some(a) = addr_after(l, "admin listening on ") {
                    admin = Some(a);
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Shoal {
            child,
            proxy: proxy.unwrap(),
            admin: admin.unwrap(),
            lines,
            dir,
            seen_pids: Mutex::new(Vec::new()),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Wait (up to 5 s) for a log line containing `needle`: a line may trail
    /// the response it is about on a loaded machine.
    pub async fn wait_log(&self, needle: &str) {
        eventually(
            Duration::from_secs(5),
            &format!("`{needle}` in the log"),
            || async { self.log_contains(needle).then_some(()) },
        )
        .await;
    }

    pub fn log_contains(&self, needle: &str) -> bool {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains(needle))
    }

    /// `GET /metrics` on the admin listener, as `samples` reads it.
    pub async fn metrics(&self) -> std::collections::BTreeMap<String, f64> {
        let r = get(self.admin, "/metrics").await.expect("metrics");
        samples(std::str::from_utf8(&r.body).expect("metrics text"))
    }

    pub async fn status(&self) -> Value {
        let r = get(self.admin, "/api/v1/status").await.expect("status");
        let v: Value = serde_json::from_slice(&r.body).expect("status json");
        let mut seen = self.seen_pids.lock().unwrap();
        for i in v["instances"].as_array().into_iter().flatten() {
            if let Some(p) = i["pid"].as_u64() {
                if !seen.contains(&(p as u32)) {
                    seen.push(p as u32);
                }
            }
        }
        v
    }

    /// Wait until `n` instances are in rotation.
    pub async fn wait_healthy(&self, n: usize) -> Value {
        self.wait_health("instances", "up", n, Duration::from_secs(30))
            .await
    }

    /// Wait until `n` static upstreams are in rotation.
    pub async fn wait_upstreams(&self, n: usize) {
        self.wait_health("upstreams", "up", n, Duration::from_secs(10))
            .await;
    }

    /// Wait until exactly `n` of the status' `list` (`instances` or
    /// `upstreams`) have this `health`; the status that showed it.
    pub async fn wait_health(&self, list: &str, health: &str, n: usize, within: Duration) -> Value {
        eventually(within, &format!("{n} {list} {health}"), || async {
            let s = self.status().await;
            let count = s[list]
                .as_array()?
                .iter()
                .filter(|e| e["health"] == health)
                .count();
            (count == n).then_some(s)
        })
        .await
    }

    /// Instance pids from the last status.
    pub async fn instance_pids(&self) -> Vec<u32> {
        self.status().await["instances"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|i| i["pid"].as_u64().map(|p| p as u32))
            .collect()
    }

    pub fn signal(&self, sig: Signal) {
        let _ = kill(Pid::from_raw(self.child.id() as i32), sig);
    }

    /// Wait for shoal to exit (up to `timeout`) and return its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<i32> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("shoal.yaml")
    }
}

impl Drop for Shoal {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(Signal::SIGTERM);
            if self.wait_exit(Duration::from_secs(10)).is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
        // Belt and braces: a test must never leak a process, even when shoal
        // itself misbehaved.
        for p in self.seen_pids.lock().unwrap().iter() {
            let _ = kill(Pid::from_raw(*p as i32), Signal::SIGKILL);
        }
    }
}

fn addr_after(line: &str, marker: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(marker)? + marker.len()..];
    // In a text line the address ends the line or a word; in a JSON line
    // (`log.format: json`) the message's quote and the object's braces follow.
    rest.split_whitespace()
        .next()?
        .trim_end_matches(['"', '}'])
        .parse()
        .ok()
}

/// Is a process with this pid alive (and not a zombie)?
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            // state is the field after the parenthesised command name
            let state = stat
                .rsplit(')')
                .next()
                .and_then(|s| s.split_whitespace().next());
            state != Some("Z")
        }
        Err(_) => false,
    }
}

/// Pids of live processes whose environment contains `needle`.
pub fn pids_with_environ(needle: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(env) = std::fs::read(format!("/proc/{pid}/environ")) {
            if String::from_utf8_lossy(&env).contains(needle) && alive(pid) {
                out.push(pid);
            }
        }
    }
    out
}

pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
}

/// One request on a fresh connection.
pub async fn request(addr: SocketAddr, req: Request<Full<Bytes>>) -> Result<Reply, String> {
    let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
    Ok(Reply {
        status: parts.status,
        headers: parts.headers,
        body,
    })
}

/// Eight keep-alive clients send `GET /slow?ms=40` for 4 s, so several
/// are always in flight on every instance; 0.8 s in, the instance at
/// `victim` (its index in `/api/v1/status`) is SIGKILLed. This exercises
/// the replay on another backend, not only the supervisor taking the dead
/// instance out of rotation. Returns the GETs answered 200, the failures,
/// and how many requests were in flight on the victim just before.
pub async fn kill_instance_under_slow_gets(
    shoal: &Shoal,
    victim: usize,
) -> (usize, Vec<String>, u64) {
    let status = shoal.status().await;
    let pid = status["instances"][victim]["pid"].as_u64().unwrap() as i32;
    let proxy = shoal.proxy;
    let mut clients = Vec::new();
    for _ in 0..8 {
        clients.push(tokio::spawn(async move {
            let mut client = Client::new(proxy);
            let (mut ok, mut failed) = (0, Vec::new());
            let deadline = tokio::time::Instant::now() + Duration::from_secs(4);
            while tokio::time::Instant::now() < deadline {
                match client.get("/slow?ms=40").await {
                    Ok(r) if r.status == 200 => ok += 1,
                    Ok(r) => failed.push(format!("status {} {:?}", r.status, r.body)),
                    Err(e) => failed.push(e),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let in_flight = shoal.status().await["instances"][victim]["in_flight"]
        .as_u64()
        .unwrap();
    kill(Pid::from_raw(pid), Signal::SIGKILL).unwrap();
    let (mut ok, mut failed) = (0, Vec::new());
    for c in clients {
        let (o, f) = c.await.unwrap();
        ok += o;
        failed.extend(f);
    }
    (ok, failed, in_flight)
}

/// `POST /control/WHAT` straight to a demo-app instance on `port` (its
/// knobs: `health?status=503`, `fail?status=500`, …); it must succeed.
pub async fn control(port: u16, what: &str) {
    let req = Request::post(format!("/control/{what}"))
        .header("host", "x")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let r = request(([127, 0, 0, 1], port).into(), req).await.unwrap();
    assert!(r.status.is_success(), "control/{what}: {}", r.status);
}

pub async fn get(addr: SocketAddr, path: &str) -> Result<Reply, String> {
    let req = Request::get(path)
        .header("host", addr.to_string())
        .body(Full::new(Bytes::new()))
        .unwrap();
    request(addr, req).await
}

/// A keep-alive client that reconnects when its connection is closed.
pub struct Client {
    addr: SocketAddr,
    sender: Option<hyper::client::conn::http1::SendRequest<Full<Bytes>>>,
}

impl Client {
    pub fn new(addr: SocketAddr) -> Client {
        Client { addr, sender: None }
    }

    pub async fn send(&mut self, req: Request<Full<Bytes>>) -> Result<Reply, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = TcpStream::connect(self.addr)
                .await
                .map_err(|e| e.to_string())?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| e.to_string())?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().unwrap();
        sender.ready().await.map_err(|e| e.to_string())?;
        let resp = match sender.send_request(req).await {
            Ok(r) => r,
            Err(e) => {
                self.sender = None;
                return Err(e.to_string());
            }
        };
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
        Ok(Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        })
    }

    pub async fn get(&mut self, path: &str) -> Result<Reply, String> {
        let req = Request::get(path)
            .header("host", self.addr.to_string())
            .body(Full::new(Bytes::new()))
            .unwrap();
        self.send(req).await
    }
}

/// A demo-app process started by the test itself (a static upstream),
/// killed by PID when dropped.
pub struct Backend {
    pub child: Child,
    pub addr: SocketAddr,
}

/// A loopback port free at the moment of asking.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A loopback port that refuses every connection for as long as the
/// returned socket lives: bound and never listening, so that no other test
/// can take it meanwhile (a released `free_port()` can be taken by a
/// server of a test running in parallel).
pub fn refusing_port() -> (u16, tokio::net::TcpSocket) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(([127, 0, 0, 1], 0).into()).unwrap();
    (socket.local_addr().unwrap().port(), socket)
}

impl Backend {
    pub async fn start(id: &str) -> Backend {
        Backend::start_on(free_port(), id).await
    }

    /// On a given port: a test that restarts a backend in the same place.
    /// It speaks HTTP/1.1 and h2c (the demo app detects the preface).
    pub async fn start_on(port: u16, id: &str) -> Backend {
        let child = Command::new(SHOAL)
            .args(["demo-app", "--port", &port.to_string()])
            .env("INSTANCE_ID", id)
            .env("DEMO_ACCESS_LOG", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start demo-app");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        eventually(Duration::from_secs(10), "demo-app listening", || async {
            get(addr, "/health").await.ok().map(|_| ())
        })
        .await;
        Backend { child, addr }
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_test_engine_is_merged_into_any_proxy_section() {
    assert_eq!(with_test_engine("a: 1\n"), "a: 1\n", "no engine set");
    set_test_engine("hyper");
    assert_eq!(
        with_test_engine("a: 1\nproxy: { retries: 0 }\n"),
        "a: 1\nproxy: { engine: hyper, retries: 0 }\n"
    );
    assert_eq!(
        with_test_engine("a: 1\nproxy:\n  retries: 0\n"),
        "a: 1\nproxy:\n  engine: hyper\n  retries: 0\n"
    );
    assert_eq!(with_test_engine("a: 1"), "a: 1\nproxy: { engine: hyper }\n");
}
