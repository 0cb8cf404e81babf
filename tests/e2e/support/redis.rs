//! Real Redis servers for the state tests: a standalone `redis-server`, a
//! Sentinel group (master, replica, three sentinels) and a three-master
//! Cluster, each on free loopback ports with its own temp dir, no
//! persistence, every process killed by its PID when dropped.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::free_port;

/// One `redis-server` (or `redis-sentinel`) process.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    args: Vec<String>,
    pub dir: tempfile::TempDir,
}

fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "redis on {port} did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `redis-cli -p port args…`, its output trimmed.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("redis-cli is installed (scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

impl RedisServer {
    /// A standalone server on a free port.
    pub fn start() -> RedisServer {
        RedisServer::start_with(free_port(), &[])
    }

    /// On `port`, with `extra` arguments (`--replicaof …`, cluster mode).
    pub fn start_with(port: u16, extra: &[&str]) -> RedisServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut args: Vec<String> = [
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            &dir.path().display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut server = RedisServer {
            child: None,
            port,
            args,
            dir,
        };
        server.restart();
        server
    }

    /// Start it again (same port, same arguments) after [`stop`].
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "already running");
        let child = Command::new("redis-server")
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        self.child = Some(child);
        wait_listening(self.port);
    }

    /// SIGKILL, as a crash would.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Send `sig` to the server (SIGSTOP: a Redis that stops answering
    /// without closing anything).
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        let pid = self.child.as_ref().expect("running").id();
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig).expect("signal redis");
    }

    pub fn cli(&self, args: &[&str]) -> String {
        cli(self.port, args)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A sentinel process with its own (rewritable) config file.
pub struct Sentinel {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Sentinel {
    fn start(master_port: u16, master: &str) -> Sentinel {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let conf = dir.path().join("sentinel.conf");
        write(
            &conf,
            &format!(
                "port {port}\nbind 127.0.0.1\ndir {}\n\
                 sentinel monitor {master} 127.0.0.1 {master_port} 2\n\
                 sentinel down-after-milliseconds {master} 1000\n\
                 sentinel failover-timeout {master} 5000\n\
                 sentinel parallel-syncs {master} 1\n",
                dir.path().display()
            ),
        );
        let child = Command::new("redis-sentinel")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-sentinel is installed (scripts/test installs it)");
        wait_listening(port);
        Sentinel {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
}

/// A master, its replica and three sentinels watching them as `mymaster`,
/// ready for a failover (the replica in sync, the sentinels aware of it
/// and of each other).
pub struct SentinelGroup {
    pub master: RedisServer,
    pub replica: RedisServer,
    pub sentinels: Vec<Sentinel>,
}

impl SentinelGroup {
    pub const NAME: &'static str = "mymaster";

    pub fn start() -> SentinelGroup {
        let master = RedisServer::start();
        let replica = RedisServer::start_with(
            free_port(),
            &["--replicaof", "127.0.0.1", &master.port.to_string()],
        );
        let sentinels: Vec<Sentinel> = (0..3)
            .map(|_| Sentinel::start(master.port, Self::NAME))
            .collect();
        let group = SentinelGroup {
            master,
            replica,
            sentinels,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let synced = group.replica.cli(&["INFO", "replication"]);
            let in_sync = synced.contains("master_link_status:up");
            let ready = group.sentinels.iter().all(|s| {
                let replicas = cli(s.port, &["SENTINEL", "REPLICAS", Self::NAME]);
                let quorum = cli(s.port, &["SENTINEL", "CKQUORUM", Self::NAME]);
                replicas.contains(&group.replica.port.to_string()) && quorum.contains("3 usable")
            });
            if in_sync && ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the sentinels never got ready: {synced}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
        group
    }

    /// `host:port` of each sentinel, for `state.sentinel.nodes`.
    pub fn nodes(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port))
            .collect()
    }

    /// The port the sentinels name as master now.
    pub fn master_port(&self) -> Option<u16> {
        self.sentinels.iter().find_map(|s| {
            let out = cli(s.port, &["SENTINEL", "GET-MASTER-ADDR-BY-NAME", Self::NAME]);
            out.lines().nth(1)?.trim().parse().ok()
        })
    }
}

/// A free port whose cluster bus port (+10000) is free too.
fn cluster_port() -> u16 {
    loop {
        let p = free_port();
        if p < 55_000 && std::net::TcpListener::bind(("127.0.0.1", p + 10_000)).is_ok() {
            return p;
        }
    }
}

/// Three masters made one Cluster by `redis-cli --cluster create`.
pub struct Cluster {
    pub nodes: Vec<RedisServer>,
}

impl Cluster {
    pub fn start() -> Cluster {
        let nodes: Vec<RedisServer> = (0..3)
            .map(|_| {
                RedisServer::start_with(
                    cluster_port(),
                    &[
                        "--cluster-enabled",
                        "yes",
                        "--cluster-config-file",
                        "nodes.conf",
                        "--cluster-node-timeout",
                        "5000",
                    ],
                )
            })
            .collect();
        let addrs: Vec<String> = nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port))
            .collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("redis-cli");
        assert!(
            out.status.success(),
            "cluster create: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while !nodes
            .iter()
            .all(|n| n.cli(&["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster never got ready");
            std::thread::sleep(Duration::from_millis(100));
        }
        Cluster { nodes }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(|n| n.url()).collect()
    }
}
