//! A private network of "hosts" on this machine: one network namespace per
//! host (`ip netns`), each with a veth pair into a bridge in a "switch"
//! namespace of its own, and one more pair from the test's own (root)
//! namespace into that bridge, so the test reaches every host directly.
//! Addresses are 10.77.X.N/24 with a random X (a free one), names start
//! with a random `mhXXXX`, so parallel runs do not clash; nothing is routed
//! off the machine. Dropping the [`Net`] kills every process still in its
//! namespaces (by PID, `ip netns pids`), then deletes the namespaces (and
//! with them every veth pair) and their `/etc/netns/NAME` files — also
//! when the test panics; what a killed test left (its PID recorded in
//! /run/shoal-test-net is gone) the next one deletes.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// A host: its namespace and its address on the test network.
pub struct Host {
    pub ns: String,
    pub ip: Ipv4Addr,
}

impl Host {
    /// `program` run inside this host's namespace (`ip netns exec NS`,
    /// which execs it in place: the child's PID is the program's). Files in
    /// `/etc/netns/NS/` (see [`Net::resolv_conf`]) are seen in `/etc`.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(program);
        c
    }

    /// `ip netns exec NS`, for a helper that runs its program through a
    /// wrapper ([`Shoal::start_wrapped`](super::Shoal::start_wrapped)).
    pub fn wrapper(&self) -> [&str; 4] {
        ["ip", "netns", "exec", &self.ns]
    }
}

pub struct Net {
    prefix: String,
    /// X in 10.77.X.0/24.
    subnet: u8,
    /// Every namespace made, the switch first.
    namespaces: Vec<String>,
}

/// Why this machine cannot make the network, if it cannot: not root, or
/// no `ip netns`.
pub fn unavailable() -> Option<String> {
    // /proc/self belongs to the process' effective user.
    let euid = std::os::unix::fs::MetadataExt::uid(&std::fs::metadata("/proc/self").unwrap());
    if euid != 0 {
        return Some("not root (network namespaces need CAP_SYS_ADMIN)".into());
    }
    match Command::new("ip")
        .args(["netns", "list"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => None,
        Ok(s) => Some(format!("`ip netns list` failed ({s})")),
        Err(e) => Some(format!("no `ip` (iproute2): {e}")),
    }
}

/// Skip (print why and return `None`) when the network cannot be made —
/// or fail when `SHOAL_NETNS_TEST` is set (scripts/test sets it).
pub fn net_or_skip() -> Option<Net> {
    let made = match unavailable() {
        Some(why) => Err(why),
        None => Net::new(),
    };
    match made {
        Ok(net) => Some(net),
        Err(why) => {
            assert!(
                std::env::var_os("SHOAL_NETNS_TEST").is_none(),
                "SHOAL_NETNS_TEST is set but no test network: {why}"
            );
            eprintln!("SKIPPED: no test network: {why}");
            None
        }
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn random() -> u64 {
    let mut h = RandomState::new().build_hasher();
    h.write_u32(std::process::id());
    h.finish()
}

/// Is 10.77.`x`.0/24 in use in this (root) namespace: an address or a route?
fn subnet_taken(x: u8) -> bool {
    let out = Command::new("ip")
        .args(["-4", "-o", "route", "show", "table", "all"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.contains(&format!("10.77.{x}."))
}

impl Net {
    /// The switch namespace with its bridge, and the test's own port on it
    /// (10.77.X.1).
    pub fn new() -> Result<Net, String> {
        reap_stale();
        for _ in 0..20 {
            let r = random();
            let x = (r % 250) as u8 + 2;
            let prefix = format!("mh{:04x}", (r >> 16) & 0xffff);
            let switch = format!("{prefix}sw");
            if subnet_taken(x)
                || PathBuf::from("/run/netns").join(&switch).exists()
                || PathBuf::from(OWNERS).join(&prefix).exists()
            {
                continue;
            }
            std::fs::create_dir_all(OWNERS).map_err(|e| format!("{OWNERS}: {e}"))?;
            let me = std::process::id();
            let owner = format!("{me} {}", start_time(me).unwrap_or_default());
            std::fs::write(PathBuf::from(OWNERS).join(&prefix), owner)
                .map_err(|e| format!("{OWNERS}: {e}"))?;
            if let Err(e) = ip(&["netns", "add", &switch]) {
                let _ = std::fs::remove_file(PathBuf::from(OWNERS).join(&prefix));
                return Err(e);
            }
            let net = Net {
                prefix,
                subnet: x,
                namespaces: vec![switch.clone()],
            };
            ip(&["-n", &switch, "link", "set", "lo", "up"])?;
            ip(&["-n", &switch, "link", "add", "br0", "type", "bridge"])?;
            ip(&["-n", &switch, "link", "set", "br0", "up"])?;
            // The test's own port: a veth end in the root namespace.
            let here = format!("{}r", net.prefix);
            let there = format!("{}rb", net.prefix);
            ip(&[
                "link", "add", &here, "type", "veth", "peer", "name", &there, "netns", &switch,
            ])?;
            ip(&["-n", &switch, "link", "set", &there, "master", "br0", "up"])?;
            ip(&["addr", "add", &format!("{}/24", net.ip(1)), "dev", &here])?;
            ip(&["link", "set", &here, "up"])?;
            return Ok(net);
        }
        Err("no free 10.77.X.0/24 and name after 20 tries".into())
    }

    /// 10.77.X.`n`.
    pub fn ip(&self, n: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 77, self.subnet, n)
    }

    /// A new host named `name` (≤ 4 characters) at 10.77.X.`n`: its own
    /// namespace, loopback up, one veth pair into the bridge.
    pub fn host(&mut self, name: &str, n: u8) -> Host {
        assert!(name.len() <= 4 && n > 1, "host {name} at .{n}");
        let ns = format!("{}{name}", self.prefix);
        ip(&["netns", "add", &ns]).unwrap();
        self.namespaces.push(ns.clone());
        let switch = self.namespaces[0].clone();
        let port = format!("{ns}b");
        let address = format!("{}/24", self.ip(n));
        for args in [
            vec!["-n", &ns, "link", "set", "lo", "up"],
            vec![
                "link", "add", &ns, "netns", &ns, "type", "veth", "peer", "name", &port, "netns",
                &switch,
            ],
            vec!["-n", &switch, "link", "set", &port, "master", "br0", "up"],
            vec!["-n", &ns, "addr", "add", &address, "dev", &ns],
            vec!["-n", &ns, "link", "set", &ns, "up"],
        ] {
            ip(&args).unwrap();
        }
        Host { ns, ip: self.ip(n) }
    }

    /// The host's `/etc/resolv.conf` (as `ip netns exec` shows it), e.g.
    /// `nameserver 10.77.X.53`: a program there finds its DNS server the
    /// system's way, as a pod does from the one Kubernetes writes.
    pub fn resolv_conf(&self, host: &Host, text: &str) {
        let dir = PathBuf::from("/etc/netns").join(&host.ns);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("resolv.conf"), text).unwrap();
    }
}

/// Where each network records its test process (`PID STARTTIME`), so a
/// later run deletes what a killed one left (tmpfs: gone at boot).
const OWNERS: &str = "/run/shoal-test-net";

/// This process' start time (field 22 of `/proc/PID/stat`), which tells a
/// live owner from a new process that reuses its PID.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = stat.rsplit_once(')')?.1;
    after_name.split_whitespace().nth(19).map(str::to_string)
}

/// Delete the networks whose test process is gone (killed before its
/// `Drop` ran: a timeout, SIGKILL).
fn reap_stale() {
    let Ok(entries) = std::fs::read_dir(OWNERS) else {
        return;
    };
    for entry in entries.flatten() {
        let prefix = entry.file_name().to_string_lossy().into_owned();
        let owner = std::fs::read_to_string(entry.path()).unwrap_or_default();
        let mut words = owner.split_whitespace();
        let alive = match (words.next().and_then(|p| p.parse().ok()), words.next()) {
            (Some(pid), Some(started)) => start_time(pid).as_deref() == Some(started),
            _ => false,
        };
        if alive {
            continue;
        }
        let namespaces: Vec<String> = std::fs::read_dir("/run/netns")
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&prefix))
            .collect();
        eprintln!("deleting a test network left behind: {prefix} {namespaces:?}");
        remove(&prefix, &namespaces);
    }
}

/// Kill what runs in these namespaces, delete them (and so their veth
/// pairs), their `/etc/netns` files, the root namespace's port and the
/// owner record.
fn remove(prefix: &str, namespaces: &[String]) {
    for ns in namespaces.iter().rev() {
        // Whatever still runs there (the test's own processes: the
        // namespace is the test's), by PID.
        if let Ok(out) = Command::new("ip").args(["netns", "pids", ns]).output() {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                if let Ok(pid) = pid.parse::<i32>() {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
        }
        let _ = ip(&["netns", "del", ns]);
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(ns));
    }
    // Gone with its peer in the switch; in case the switch outlived us.
    let _ = Command::new("ip")
        .args(["link", "del", &format!("{prefix}r")])
        .stderr(Stdio::null())
        .status();
    let _ = std::fs::remove_file(PathBuf::from(OWNERS).join(prefix));
}

impl Drop for Net {
    fn drop(&mut self) {
        remove(&self.prefix, &self.namespaces);
    }
}
