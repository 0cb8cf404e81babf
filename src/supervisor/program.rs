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
        let search = app
            .env
            .get("PATH")
            .map(OsString::from)
            .or_else(|| std::env::var_os("PATH"))
            .unwrap_or_default();
        let dirs: Vec<PathBuf> = std::env::split_paths(&search).collect();
        let executable = |p: &Path| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        };
        if dirs
            .iter()
            .any(|d| executable(&workdir(app).join(d).join(&name)))
        {
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

/// The config-load check: `(key path, message)` for the app's program.
pub fn check(config: &Config) -> Vec<(String, String)> {
    config
        .app
        .as_ref()
        .and_then(unrunnable)
        .map(|(path, message)| vec![(path.to_string(), message)])
        .unwrap_or_default()
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
