//! A real DNS server for discovery tests: Debian's dnsmasq, answering only
//! from a hosts file the test rewrites and reloads (SIGHUP), TTL 1 s — on a
//! free loopback port, or on a test network's host
//! ([`netns`](super::netns)). Also the demo app on a given address, the
//! backends such a name points at.

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::{eventually, free_port, get, SHOAL};

/// dnsmasq's path; `None` (the test skips, saying why) if it is missing,
/// unless `SHOAL_DNS_TEST` is set (scripts/test sets it): then it fails.
pub fn dnsmasq() -> Option<PathBuf> {
    let found = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("SHOAL_DNS_TEST").is_none(),
            "no dnsmasq (Debian's dnsmasq-base)"
        );
        eprintln!("SKIPPED: no dnsmasq (Debian's dnsmasq-base)");
    }
    found
}

/// dnsmasq answering only from its hosts file (and `extra` options), TTL 1 s.
pub struct Dns {
    child: Option<Child>,
    pub addr: SocketAddr,
    hosts: PathBuf,
}

fn free_udp_port() -> u16 {
    loop {
        let port = free_port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Does a DNS server answer at `addr` (any answer: NXDOMAIN is one)?
fn answers(addr: SocketAddr) -> bool {
    let Ok(sock) = UdpSocket::bind(match addr.ip() {
        IpAddr::V4(_) => "0.0.0.0:0",
        IpAddr::V6(_) => "[::]:0",
    }) else {
        return false;
    };
    let _ = sock.set_read_timeout(Some(Duration::from_millis(100)));
    // A query for `ready.` (A, IN), recursion desired.
    let query = [
        0x51, 0x17, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 5, b'r', b'e', b'a', b'd', b'y', 0, 0, 1, 0, 1,
    ];
    if sock.send_to(&query, addr).is_err() {
        return false;
    }
    let mut buf = [0u8; 512];
    matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[..2] == query[..2])
}

impl Dns {
    /// On a free port of 127.0.0.1.
    pub fn start(bin: &Path, dir: &Path, hosts: &str, extra: &[String]) -> Dns {
        let addr = SocketAddr::from(([127, 0, 0, 1], free_udp_port()));
        Dns::start_with(Command::new(bin), addr, dir, hosts, extra)
    }

    /// `cmd` runs dnsmasq (`Command::new(bin)`, or a host's
    /// `host.command(bin)`), listening on `addr`; returns once it answers.
    pub fn start_with(
        mut cmd: Command,
        addr: SocketAddr,
        dir: &Path,
        hosts: &str,
        extra: &[String],
    ) -> Dns {
        let path = dir.join("hosts");
        std::fs::write(&path, hosts).unwrap();
        let child = cmd
            .args([
                "--keep-in-foreground",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--user=root",
                "--pid-file=",
                "--local-ttl=1",
            ])
            .arg(format!("--listen-address={}", addr.ip()))
            .arg(format!("--port={}", addr.port()))
            .arg(format!("--addn-hosts={}", path.display()))
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("dnsmasq");
        let mut dns = Dns {
            child: Some(child),
            addr,
            hosts: path,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        while !answers(addr) {
            if let Some(Ok(Some(status))) = dns.child.as_mut().map(|c| c.try_wait()) {
                panic!("dnsmasq exited with {status}");
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq does not answer at {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        dns
    }

    /// Rewrite the hosts file and have dnsmasq read it again.
    pub fn set(&self, hosts: &str) {
        std::fs::write(&self.hosts, hosts).unwrap();
        let pid = self.child.as_ref().unwrap().id();
        kill(Pid::from_raw(pid as i32), Signal::SIGHUP).unwrap();
    }

    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A demo app listening on `addr` (`HOST` and `--port`), killed by PID when
/// dropped.
pub struct AppAt {
    child: Option<Child>,
    pub addr: SocketAddr,
}

impl AppAt {
    /// On this machine (e.g. 127.0.0.2).
    pub async fn start(ip: &str, port: u16, id: &str) -> AppAt {
        let addr = SocketAddr::new(ip.parse().unwrap(), port);
        AppAt::start_with(Command::new(SHOAL), addr, id).await
    }

    /// `cmd` runs shoal (`Command::new(SHOAL)`, or a host's
    /// `host.command(SHOAL)`); returns once `/health` answers.
    pub async fn start_with(mut cmd: Command, addr: SocketAddr, id: &str) -> AppAt {
        let child = cmd
            .args(["demo-app", "--port", &addr.port().to_string()])
            .env("HOST", addr.ip().to_string())
            .env("INSTANCE_ID", id)
            .env("DEMO_ACCESS_LOG", "0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("demo-app");
        let app = AppAt {
            child: Some(child),
            addr,
        };
        eventually(Duration::from_secs(10), "demo-app listening", || async {
            get(addr, "/health").await.ok().map(|_| ())
        })
        .await;
        app
    }

    /// SIGTERM, and wait (up to 10 s, then SIGKILL) for it to exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = kill(Pid::from_raw(c.id() as i32), Signal::SIGTERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(c.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for AppAt {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
