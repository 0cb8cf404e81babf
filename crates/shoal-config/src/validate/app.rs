//! `app:` — the command, its environment and directory, scaling bounds,
//! rolling reloads, restarts and the memory limit.

use super::health::health;
use super::{Checker, MAX_WAIT};
use crate::error::ErrorKind;
use crate::model::{AppConfig, CommandSpec, Config};
use crate::units::format_size;
use std::time::Duration;

const MAX_INSTANCES: u32 = 1024;
/// A crash loop with no delay would spin a core and flood the log.
const MIN_BACKOFF: Duration = Duration::from_millis(10);
/// Shorter windows would count restarts over less than one backoff delay.
const MIN_RESTART_WINDOW: Duration = Duration::from_secs(1);
/// Below this no real service starts; a smaller value is a unit mistake
/// (`512` bytes for `512MiB`).
const MIN_MAX_MEMORY: u64 = 1 << 20;
/// shoal sets these for each instance; a value from `app.env` would be
/// silently overwritten, so it is refused instead.
const RESERVED_ENV: &[&str] = &["PORT", "HOST", "INSTANCE_ID", "SHOAL_INSTANCE_INDEX"];

/// `app`, or each of `apps` (not both).
pub(super) fn apps(c: &mut Checker<'_>, config: &Config) {
    if let Some(a) = &config.app {
        app(c, a);
        if !config.apps.is_empty() {
            c.invalid(
                "apps",
                "and `app` together: `app` is the one-app shorthand; move it into `apps` \
                 under a name"
                    .into(),
            );
        }
    }
    for (name, a) in &config.apps {
        c.app_at = format!("apps.{name}");
        if !super::routes::plain_name(name) {
            let at = c.app_at.clone();
            c.invalid(
                &at,
                format!("`{name}` is not a usable name: use letters, digits, `-` and `_`"),
            );
        }
        if name == crate::model::UPSTREAMS_POOL && !config.upstreams.list().is_empty() {
            let at = c.app_at.clone();
            c.invalid(
                &at,
                "`upstreams` names the pool of the flat `upstreams` list; give the app another name"
                    .into(),
            );
        }
        if config.upstreams.groups().any(|(g, _)| g == name) {
            let at = c.app_at.clone();
            c.invalid(
                &at,
                format!("`{name}` is also the name of an upstream group; pool names must differ"),
            );
        }
        app(c, a);
    }
    c.app_at = "app".into();
}

fn app(c: &mut Checker<'_>, app: &AppConfig) {
    command(c, &app.command);
    if let Some(s) = &app.sticky {
        super::sticky::sticky(c, "app.sticky", s);
    }
    c.range("app.instances", app.instances, 1, MAX_INSTANCES);
    env(c, app);
    if app.cwd.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
        c.invalid(
            "app.cwd",
            "must not be empty (leave it out to use shoal's own directory)".into(),
        );
    }
    health(c, "app.health", &app.health);
    c.at_most("app.stop_timeout", app.stop_timeout, MAX_WAIT);
    lifecycle(c, app);
}

/// `app.env`: names shoal can pass, none that shoal sets itself.
fn env(c: &mut Checker<'_>, app: &AppConfig) {
    for (name, value) in &app.env {
        let path = format!("app.env.{name}");
        if name.is_empty() {
            c.invalid("app.env", "variable names must not be empty".into());
        } else if name.contains(['=', '\0']) {
            c.invalid(&path, "invalid variable name (must not contain `=`)".into());
        } else if RESERVED_ENV.contains(&name.as_str()) {
            c.invalid(
                &path,
                "is set by shoal for each instance and cannot be set here".into(),
            );
        }
        if value.contains('\0') {
            c.invalid(&path, "must not contain a NUL character".into());
        }
    }
}

fn command(c: &mut Checker<'_>, command: &CommandSpec) {
    match command {
        CommandSpec::Argv(argv) if argv.is_empty() => {
            if c.has("app.command") {
                c.invalid("app.command", "must not be empty".into());
            } else {
                c.report(
                    ErrorKind::Missing,
                    "app.command",
                    "is required: the command that starts one instance, as a list \
                     (`[\"./server\", \"--port\", \"{port}\"]`) or one shell string"
                        .into(),
                );
            }
        }
        CommandSpec::Argv(argv) => {
            if argv[0].trim().is_empty() {
                c.invalid(
                    "app.command[0]",
                    "the program name must not be empty".into(),
                );
            }
            for (i, arg) in argv.iter().enumerate() {
                if arg.contains('\0') {
                    c.invalid(
                        &format!("app.command[{i}]"),
                        "must not contain a NUL character".into(),
                    );
                }
            }
        }
        CommandSpec::Shell(line) => {
            if line.trim().is_empty() {
                c.invalid("app.command", "must not be empty".into());
            } else if line.contains('\0') {
                c.invalid("app.command", "must not contain a NUL character".into());
            }
        }
    }
}

/// Scaling bounds, rolling reloads, restarts and memory limit of `app`.
fn lifecycle(c: &mut Checker<'_>, app: &AppConfig) {
    c.positive_at_most("app.drain_timeout", app.drain_timeout, MAX_WAIT);
    c.positive_at_most("app.ready_timeout", app.ready_timeout, MAX_WAIT);

    // Each value out of range is one problem; it is then left out of the
    // comparisons below rather than reported again there.
    let in_range = |n: &u32| (1..=MAX_INSTANCES).contains(n);
    if let Some(min) = app.min {
        c.range("app.min", min, 1, MAX_INSTANCES);
    }
    if let Some(max) = app.max {
        c.range("app.max", max, 1, MAX_INSTANCES);
    }
    let (min, max) = (app.min.filter(in_range), app.max.filter(in_range));
    let instances_ok = in_range(&app.instances);
    match (min, max) {
        (Some(min), Some(max)) if min > max => {
            c.invalid(
                "app.min",
                format!("must not be greater than `app.max` ({max}) (got {min})"),
            );
        }
        // With `min` > `max` no `instances` fits; that one problem is enough.
        _ if instances_ok => {
            if let Some(min) = min.filter(|&min| min > app.instances) {
                bound(c, "app.min", min, "at least", "greater", app.instances);
            }
            if let Some(max) = max.filter(|&max| max < app.instances) {
                bound(c, "app.max", max, "at most", "less", app.instances);
            }
        }
        _ => {}
    }

    for (path, value) in [
        ("app.max_surge", app.max_surge),
        ("app.max_unavailable", app.max_unavailable),
    ] {
        if value > MAX_INSTANCES {
            c.invalid(
                path,
                format!("must be at most {MAX_INSTANCES} (got {value})"),
            );
        }
    }
    if app.max_surge == 0 && app.max_unavailable == 0 {
        // `max_unavailable` is 0 by default, so `max_surge: 0` was written;
        // point at it unless only `max_unavailable` is in the file.
        let (path, other) = if c.has("app.max_surge") || !c.has("app.max_unavailable") {
            ("app.max_surge", "app.max_unavailable")
        } else {
            ("app.max_unavailable", "app.max_surge")
        };
        c.invalid(
            path,
            format!(
                "must not be 0 while `{other}` is 0 too: a rolling reload could then \
                 make no progress (set one of them to at least 1)"
            ),
        );
    }

    c.at_least_one("app.max_restarts", app.max_restarts);
    c.at_least("app.restart_window", app.restart_window, MIN_RESTART_WINDOW);
    c.at_least("app.backoff.initial", app.backoff.initial, MIN_BACKOFF);
    c.not_longer(
        "app.backoff.initial",
        app.backoff.initial,
        "app.backoff.max",
        app.backoff.max,
    );

    if let Some(bytes) = app.max_memory.filter(|&b| b < MIN_MAX_MEMORY) {
        c.invalid(
            "app.max_memory",
            format!(
                "must be at least {} (got {})",
                format_size(MIN_MAX_MEMORY),
                format_size(bytes)
            ),
        );
    }
}

/// `app.instances` outside the scaling bound `bound_path` (`app.min` or
/// `app.max`). Reported at `app.instances` when it was written; when it is
/// the default, at the bound, which is then what the user typed.
fn bound(
    c: &mut Checker<'_>,
    bound_path: &str,
    bound: u32,
    within: &str,
    beyond: &str,
    instances: u32,
) {
    if c.has("app.instances") {
        c.invalid(
            "app.instances",
            format!("must be {within} `{bound_path}` ({bound}) (got {instances})"),
        );
    } else {
        c.invalid(
            bound_path,
            format!(
                "must not be {beyond} than `app.instances` ({instances}, the default) \
                 (got {bound}); set `app.instances` within the bounds"
            ),
        );
    }
}
