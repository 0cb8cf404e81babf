//! Does the app's command name a program that can run? Checked when the
//! config is loaded (`shoal check`, `shoal up`, a config reload), so a typo
//! (`gunicron`) is a config error naming the program, not an instance that
//! retries forever; and used to word a start that failed anyway (the file
//! was removed after the check).

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use shoal_config::{AppConfig, CommandSpec, Config};

use super::spawn::shell_line;

/// Shell builtins and words that are not a program on the PATH; a shell
/// string starting with one is not checked.
const SHELL_WORDS: &[&str] = &[
    ".", ":", "[", "alias", "bg", "break", "builtin", "cd", "command", "continue", "echo", "eval",
    "exec", "exit", "export", "false", "fg", "getopts", "hash", "jobs", "kill", "local", "printf",
    "pwd", "read", "readonly", "return", "set", "shift", "source", "test", "times", "trap", "true",
    "type", "ulimit", "umask", "unalias", "unset", "wait",
];

/// The program the command runs, with the key path it was written at:
/// `argv[0]`, or the first word of a shell string that is one simple
/// command (its leading `NAME=value` words skipped). `None` when it cannot
/// be known without running a shell (expansions, quotes, compound commands,
/// builtins) or holds a placeholder.
pub fn program(app: &AppConfig) -> Option<(&'static str, String)> {
    let (path, word) = match &app.command {
        CommandSpec::Argv(argv) => ("app.command[0]", argv.first()?.clone()),
        CommandSpec::Shell(line) => {
            // shell_line() puts `exec` in front of a simple command only.
            shell_line(line).strip_prefix("exec ")?;
            let word = line
                .split_whitespace()
                .find(|w| !is_assignment(w))?
                .to_string();
            if word.contains(|c: char| "$'\"`\\*?[]~{}<>".contains(c))
                || SHELL_WORDS.contains(&word.as_str())
            {
                return None;
            }
            ("app.command", word)
        }
    };
    if word.is_empty() || word.contains('{') {
        return None;
    }
    Some((path, word))
}

fn is_assignment(word: &str) -> bool {
    match word.split_once('=') {
        Some((name, _)) => {
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        None => false,
    }
}

/// The directory instances start in: `app.cwd`, else shoal's own.
fn workdir(app: &AppConfig) -> PathBuf {
    app.cwd
        .clone()
        .or_else(|| std::env::current_dir().ok())
        .unwrap_or_else(|| PathBuf::from("."))
}

/// Why `app`'s program cannot run, with its key path; `None` when it can
/// (or cannot be known: see [`program`]).
pub fn unrunnable(app: &AppConfig) -> Option<(&'static str, String)> {
    if let Some(cwd) = &app.cwd {
        if !cwd.is_dir() {
            let what = if cwd.exists() {
                "is not a directory"
            } else {
                "does not exist"
            };
            return Some(("app.cwd", format!("`{}` {what}", cwd.display())));
        }
    }
    let (path, name) = program(app)?;
    let problem = if name.contains('/') {
        let file = workdir(app).join(&name);
        match std::fs::metadata(&file) {
            Err(_) if app.cwd.is_some() && !Path::new(&name).is_absolute() => format!(
                "cannot run `{name}`: no such file in `app.cwd` (`{}`)",
                workdir(app).display()
            ),
            Err(_) => format!("cannot run `{name}`: no such file"),
            Ok(m) if m.is_dir() => format!("cannot run `{name}`: it is a directory"),
            Ok(m) if m.permissions().mode() & 0o111 == 0 => format!(
                "cannot run `{name}`: not executable (`chmod +x {name}`, or run it with its interpreter)"
            ),
            Ok(_) => return None,
        }
    } else {
        if search_path(app, &name).is_some() {
            return None;
        }
        let from = if app.env.contains_key("PATH") {
            "PATH (from `app.env`)"
        } else {
            "PATH"
        };
        format!("cannot run `{name}`: not found in {from}")
    };
    Some((path, problem))
}

/// The executable file `name` (no `/` in it) is found as on the PATH the
/// instances get (`app.env`'s, else shoal's).
fn search_path(app: &AppConfig, name: &str) -> Option<PathBuf> {
    let search = app
        .env
        .get("PATH")
        .map(OsString::from)
        .or_else(|| std::env::var_os("PATH"))
        .unwrap_or_default();
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    std::env::split_paths(&search)
        .map(|d| workdir(app).join(d).join(name))
        .find(|p| executable(p))
}

/// A script whose `#!` line names an interpreter that is not there: the
/// kernel then fails the start with ENOENT although the script exists.
/// Says which interpreter, and whether a `\r` (Windows line ending) is
/// what made its name wrong.
fn missing_interpreter(name: &str, file: &Path) -> Option<String> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let line = head[..n].strip_prefix(b"#!")?;
    let line = &line[..line.iter().position(|b| *b == b'\n').unwrap_or(line.len())];
    let line = String::from_utf8_lossy(line);
    let interpreter = line.split([' ', '\t']).find(|w| !w.is_empty())?;
    if Path::new(interpreter).is_file() {
        return None;
    }
    Some(match interpreter.strip_suffix('\r') {
        Some(stripped) => format!(
            "cannot run `{name}`: its `#!` line ends in a carriage return, so its interpreter \
             `{stripped}\\r` was not found (the file has Windows line endings: `sed -i 's/\\r$//' {name}`)"
        ),
        None => format!(
            "cannot run `{name}`: its interpreter `{interpreter}` (from its `#!` line) was not found"
        ),
    })
}

/// The config-load check: `(key path, message)` for each app's program.
pub fn check(config: &Config) -> Vec<(String, String)> {
    config
        .all_apps()
        .into_iter()
        .filter_map(|(name, app)| {
            let (path, message) = unrunnable(app)?;
            Some((key_of(config, name, path), message))
        })
        .collect()
}

/// `app.…` as written for the app `name`: `app.…` for the one-app
/// shorthand, `apps.NAME.…` in `apps`.
pub fn key_of(config: &Config, name: &str, path: &str) -> String {
    match path.strip_prefix("app.") {
        Some(rest) if config.app.is_none() => format!("apps.{name}.{rest}"),
        _ => path.to_string(),
    }
}

/// Whether the command shows how the app learns its port: `{port}`, or
/// `PORT` (`$PORT`, `${PORT}`, `os.environ["PORT"]` in a shell string).
/// When it shows neither, the app may still read `$PORT` itself, so this is
/// a warning, not an error: `(key path, message)`.
pub fn port_warning(app: &AppConfig) -> Option<(&'static str, String)> {
    let text = match &app.command {
        CommandSpec::Argv(argv) => argv.join(" "),
        CommandSpec::Shell(line) => line.clone(),
    };
    if text.contains("{port}") || text.contains("PORT") {
        return None;
    }
    Some((
        "app.command",
        "mentions neither `{port}` nor `PORT`: each instance must listen on the port shoal \
         gives it, and shoal health-checks only that port. Put `{port}` where the app takes \
         its port (e.g. `gunicorn -b 127.0.0.1:{port} app:app`), unless the app reads the \
         PORT environment variable itself"
            .to_string(),
    ))
}

/// Words a failed start (`spawn` returned `err`) for the log and status:
/// what could not be run and why, rather than a bare `os error 2`.
pub fn start_error(app: &AppConfig, err: &std::io::Error) -> String {
    if let Some((_, why)) = unrunnable(app) {
        return why;
    }
    // The program is there, yet "not found": the interpreter on its `#!`
    // line is what is missing. (A shell string's ENOENT is the shell's.)
    if let (CommandSpec::Argv(_), std::io::ErrorKind::NotFound) = (&app.command, err.kind()) {
        if let Some((_, name)) = program(app) {
            let file = if name.contains('/') {
                Some(workdir(app).join(&name))
            } else {
                search_path(app, &name)
            };
            if let Some(why) = file.and_then(|f| missing_interpreter(&name, &f)) {
                return why;
            }
        }
    }
    match program(app) {
        Some((_, name)) => format!("cannot run `{name}`: {err}"),
        None => format!("could not start: {err}"),
    }
}

/// A start failure that trying again will not fix: the program or the
/// directory is missing, or not allowed to run.
pub fn is_permanent(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(command: CommandSpec) -> AppConfig {
        AppConfig {
            command,
            ..AppConfig::default()
        }
    }

    #[test]
    fn names_the_missing_program() {
        let a = app(CommandSpec::Argv(vec!["gunicron".into(), "-w".into()]));
        assert_eq!(
            unrunnable(&a),
            Some((
                "app.command[0]",
                "cannot run `gunicron`: not found in PATH".into()
            ))
        );
        let a = app(CommandSpec::Shell("A=1 gunicron -w 2 app:app".into()));
        assert_eq!(
            unrunnable(&a),
            Some((
                "app.command",
                "cannot run `gunicron`: not found in PATH".into()
            ))
        );
        assert_eq!(unrunnable(&app(CommandSpec::Argv(vec!["sh".into()]))), None);
        // Not knowable without a shell: not checked.
        for line in [
            "cd x && gunicron",
            "$APP --port 1",
            "exec gunicron",
            "'gunicron' x",
        ] {
            assert_eq!(
                unrunnable(&app(CommandSpec::Shell(line.into()))),
                None,
                "{line}"
            );
        }
    }

    /// Spawns `app`'s command for real (as `spawn` would) and words the
    /// error as an instance's start does.
    fn start(app: &AppConfig) -> String {
        let CommandSpec::Argv(argv) = &app.command else {
            unreachable!()
        };
        let mut cmd = std::process::Command::new(&argv[0]);
        if let Some(cwd) = &app.cwd {
            cmd.current_dir(cwd);
        }
        let err = spawn_err(&mut cmd);
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
        start_error(app, &err)
    }

    /// The spawn's error; tried again on ETXTBSY, which another test's
    /// fork can cause while a script was just written.
    fn spawn_err(cmd: &mut std::process::Command) -> std::io::Error {
        for _ in 0..20 {
            let err = cmd.spawn().expect_err("must not start");
            if err.raw_os_error() != Some(nix::libc::ETXTBSY) {
                return err;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("script busy")
    }

    #[test]
    fn a_script_whose_interpreter_is_missing_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write("app.py", "#!/usr/bin/python9.99 -u\nprint(1)\n");
        write("crlf.sh", "#!/bin/sh\r\necho hi\r\n");
        let mut a = app(CommandSpec::Argv(vec!["./app.py".into(), "{port}".into()]));
        a.cwd = Some(dir.path().to_path_buf());
        // The file exists and is executable: the config check passes it.
        assert_eq!(unrunnable(&a), None);
        assert_eq!(
            start(&a),
            "cannot run `./app.py`: its interpreter `/usr/bin/python9.99` (from its `#!` line) was not found"
        );
        a.command = CommandSpec::Argv(vec!["./crlf.sh".into()]);
        let why = start(&a);
        assert!(
            why.starts_with("cannot run `./crlf.sh`: its `#!` line ends in a carriage return")
                && why.contains("Windows line endings"),
            "{why}"
        );
        // Found on the PATH too.
        let mut a = app(CommandSpec::Argv(vec!["app.py".into()]));
        a.env
            .insert("PATH".into(), dir.path().display().to_string());
        a.cwd = Some(dir.path().to_path_buf());
        let err = spawn_err(&mut std::process::Command::new(dir.path().join("app.py")));
        assert!(
            start_error(&a, &err).contains("its interpreter `/usr/bin/python9.99`"),
            "{}",
            start_error(&a, &err)
        );
    }

    #[test]
    fn paths_are_taken_from_app_cwd() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("run.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let mut a = app(CommandSpec::Argv(vec!["./run.sh".into()]));
        a.cwd = Some(dir.path().to_path_buf());
        assert!(unrunnable(&a).unwrap().1.contains("not executable"));
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(unrunnable(&a), None);
        a.command = CommandSpec::Argv(vec!["./nope".into()]);
        assert!(unrunnable(&a)
            .unwrap()
            .1
            .contains("no such file in `app.cwd`"));
        a.cwd = Some(dir.path().join("missing"));
        assert_eq!(unrunnable(&a).unwrap().0, "app.cwd");
    }
}
