//! The guard: a small helper process (`shoal __guard`) that outlives shoal by
//! a moment to stop the instances' process groups if shoal itself is killed.
//!
//! `PR_SET_PDEATHSIG` only reaches an instance's first process; a shell
//! pipeline or a server that forks workers would survive a SIGKILL of shoal.
//! shoal tells the guard each group it starts (`+PGID`) and stops (`-PGID`)
//! over a pipe. When the pipe closes — shoal exited, however it exited — the
//! guard sends SIGTERM to the groups still listed, then SIGKILL, and exits.

use std::collections::BTreeSet;
use std::io::{self, BufRead, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;

pub struct Guard {
    stdin: Mutex<Option<ChildStdin>>,
    child: Mutex<Child>,
}

impl Guard {
    pub fn start(shoal_exe: &Path) -> io::Result<Guard> {
        let mut command = Command::new(shoal_exe);
        for name in crate::systemd::CHILD_ENV {
            command.env_remove(name);
        }
        let mut child = command
            .arg("__guard")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            // Its own group: a Ctrl-C at the terminal must not stop the guard
            // before shoal has stopped the instances itself.
            .process_group(0)
            .spawn()?;
        let stdin = child.stdin.take();
        Ok(Guard {
            stdin: Mutex::new(stdin),
            child: Mutex::new(child),
        })
    }

    fn send(&self, line: String) {
        if let Ok(mut stdin) = self.stdin.lock() {
            if let Some(s) = stdin.as_mut() {
                if let Err(e) = s.write_all(line.as_bytes()) {
                    tracing::warn!(error = %e, "guard process is gone; instances may outlive a crash of shoal");
                    *stdin = None;
                }
            }
        }
    }

    pub fn watch(&self, pgid: u32) {
        self.send(format!("+{pgid}\n"));
    }

    pub fn unwatch(&self, pgid: u32) {
        self.send(format!("-{pgid}\n"));
    }

    /// Normal shutdown: every instance is already stopped; let the guard exit.
    pub fn finish(&self) {
        if let Ok(mut stdin) = self.stdin.lock() {
            stdin.take();
        }
        if let Ok(mut child) = self.child.lock() {
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn group_alive(pgid: i32) -> bool {
    killpg(Pid::from_raw(pgid), None).is_ok()
}

/// Entry point of `shoal __guard`.
pub fn run() -> i32 {
    let mut groups = BTreeSet::new();
    for line in io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let (op, num) = line.split_at(line.len().min(1));
        let Ok(pgid) = num.trim().parse::<i32>() else {
            continue;
        };
        if pgid <= 1 {
            continue;
        }
        match op {
            "+" => {
                groups.insert(pgid);
            }
            "-" => {
                groups.remove(&pgid);
            }
            _ => {}
        }
    }
    let live: Vec<i32> = groups.into_iter().filter(|g| group_alive(*g)).collect();
    if live.is_empty() {
        return 0;
    }
    eprintln!(
        "shoal guard: shoal exited; stopping {} orphaned instance group(s)",
        live.len()
    );
    for g in &live {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGTERM);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && live.iter().any(|g| group_alive(*g)) {
        std::thread::sleep(Duration::from_millis(20));
    }
    for g in &live {
        let _ = killpg(Pid::from_raw(*g), Signal::SIGKILL);
    }
    0
}
