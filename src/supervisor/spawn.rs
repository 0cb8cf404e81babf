//! Building and starting one instance's process.
//!
//! Each instance runs in its own process group, so a stop signal reaches
//! everything it started, and asks the kernel to SIGKILL it if shoal dies
//! (`PR_SET_PDEATHSIG`). Grandchildren are covered by the guard process.

use std::io;
use std::net::IpAddr;
use std::process::Stdio;

use shoal_config::{AppConfig, CommandSpec};
use tokio::process::{Child, Command};

/// What differs between instances.
pub struct Slot<'a> {
    pub id: &'a str,
    pub index: u32,
    pub port: u16,
    pub host: IpAddr,
}

fn substitute(arg: &str, slot: &Slot<'_>) -> String {
    arg.replace("{port}", &slot.port.to_string())
        .replace("{host}", &slot.host.to_string())
        .replace("{instance_id}", slot.id)
}

/// Shell words after which `exec` would change the meaning of the command.
const SHELL_KEYWORDS: &[&str] = &[
    "if", "then", "for", "while", "until", "case", "{", "!", "function", "[[", "select", "exec",
];

/// A shell string that is one simple command gets `exec ` in front, so the
/// shell is replaced by the real program: its pid is the one shoal watches and
/// signals, and nothing is left behind when the shell would have exited.
pub fn shell_line(command: &str) -> String {
    let compound = command
        .chars()
        .any(|c| matches!(c, ';' | '&' | '|' | '(' | ')' | '\n'));
    let first = command.split_whitespace().next().unwrap_or("");
    if compound || SHELL_KEYWORDS.contains(&first) {
        command.to_string()
    } else {
        format!("exec {command}")
    }
}

pub fn command(app: &AppConfig, slot: &Slot<'_>) -> io::Result<Command> {
    let mut cmd = match &app.command {
        CommandSpec::Argv(argv) => {
            let (program, args) = argv
                .split_first()
                .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "empty app.command"))?;
            let mut c = Command::new(substitute(program, slot));
            c.args(args.iter().map(|a| substitute(a, slot)));
            c
        }
        CommandSpec::Shell(line) => {
            let mut c = Command::new("/bin/sh");
            c.arg("-c").arg(shell_line(&substitute(line, slot)));
            c
        }
    };
    cmd.envs(&app.env)
        .env("PORT", slot.port.to_string())
        .env("HOST", slot.host.to_string())
        .env("INSTANCE_ID", slot.id)
        .env("SHOAL_INSTANCE_INDEX", slot.index.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in crate::systemd::CHILD_ENV {
        cmd.env_remove(name);
    }
    if let Some(dir) = &app.cwd {
        cmd.current_dir(dir);
    }
    set_parent_death_signal(&mut cmd);
    Ok(cmd)
}

#[allow(unsafe_code)]
fn set_parent_death_signal(cmd: &mut Command) {
    let parent = std::process::id();
    // SAFETY: the closure runs in the forked child before exec and only makes
    // async-signal-safe system calls (prctl, getppid); it allocates nothing.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(io::Error::from)?;
            // shoal may have died between fork and prctl: then nobody would
            // ever signal us, so refuse to start.
            // (A raw OS error: nothing may allocate between fork and exec.)
            if nix::unistd::getppid().as_raw() as u32 != parent {
                return Err(io::Error::from_raw_os_error(
                    nix::errno::Errno::ESRCH as i32,
                ));
            }
            Ok(())
        });
    }
}

pub fn spawn(app: &AppConfig, slot: &Slot<'_>) -> io::Result<Child> {
    command(app, slot)?.spawn()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simple_shell_commands_are_execed() {
        assert_eq!(
            shell_line("python3 app.py --port 80"),
            "exec python3 app.py --port 80"
        );
        assert_eq!(shell_line("A=1 ./run > log"), "exec A=1 ./run > log");
        assert_eq!(shell_line("cd x && ./run"), "cd x && ./run");
        assert_eq!(
            shell_line("while true; do x; done"),
            "while true; do x; done"
        );
        assert_eq!(shell_line("exec ./run"), "exec ./run");
    }

    #[test]
    fn placeholders_are_replaced() {
        let slot = Slot {
            id: "app-2",
            index: 2,
            port: 4242,
            host: [127, 0, 0, 1].into(),
        };
        assert_eq!(substitute("--port={port}", &slot), "--port=4242");
        assert_eq!(
            substitute("{host}:{port}/{instance_id}", &slot),
            "127.0.0.1:4242/app-2"
        );
    }
}
