//! Checks a parsed config for values that are out of range or that make no
//! sense together. Every problem is reported, not just the first, so one
//! `shoal check` run shows everything to fix.

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{ErrorKind, Problem};
use crate::lines::LineMap;
use crate::model::{
    Algorithm, AppConfig, BalanceConfig, CommandSpec, Config, HealthConfig, LimitsConfig,
    StatusRange, TlsConfig,
};
use crate::suggest::closest;
use crate::units::{format_duration, format_size};

/// The largest request body kept in memory for a retry.
const MAX_REPLAY_BODY: u64 = 64 << 20;
const MAX_INSTANCES: u32 = 1024;
const MAX_WORKERS: usize = 1024;
const MAX_WEIGHT: u32 = 1000;
const MAX_RETRIES: u32 = 10;
const MIN_HEALTH_INTERVAL: Duration = Duration::from_millis(100);
const MAX_WAIT: Duration = Duration::from_secs(3600);
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
/// hyper's HTTP/1 read buffer, which bounds the request head, cannot be
/// smaller than 8KiB.
const MIN_HEADER_SIZE: u64 = 8 << 10;
const MAX_HEADER_SIZE: u64 = 1 << 20;
const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

struct Checker<'a> {
    lines: &'a LineMap,
    problems: Vec<Problem>,
}

impl Checker<'_> {
    fn report(&mut self, kind: ErrorKind, path: &str, message: String) {
        self.problems.push(Problem::new(
            kind,
            self.lines.nearest(path),
            path.to_string(),
            message,
        ));
    }

    fn invalid(&mut self, path: &str, message: String) {
        self.report(ErrorKind::Invalid, path, message);
    }

    fn range<T: PartialOrd + std::fmt::Display>(&mut self, path: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.invalid(
                path,
                format!("must be between {min} and {max} (got {value})"),
            );
        }
    }

    fn at_least_one(&mut self, path: &str, value: u32) {
        if value < 1 {
            self.invalid(path, format!("must be at least 1 (got {value})"));
        }
    }

    fn at_least(&mut self, path: &str, value: Duration, min: Duration) {
        if value < min {
            self.invalid(
                path,
                format!(
                    "must be at least {} (got {})",
                    format_duration(min),
                    format_duration(value)
                ),
            );
        }
    }

    /// More than zero and at most `max`.
    fn positive_at_most(&mut self, path: &str, value: Duration, max: Duration) {
        if value.is_zero() {
            self.invalid(path, "must be greater than 0 (got 0s)".into());
        } else {
            self.at_most(path, value, max);
        }
    }

    fn at_most(&mut self, path: &str, value: Duration, max: Duration) {
        if value > max {
            self.invalid(
                path,
                format!(
                    "must be at most {} (got {})",
                    format_duration(max),
                    format_duration(value)
                ),
            );
        }
    }

    /// `small` must not exceed `big`. The problem is reported at whichever of
    /// the two keys the user wrote, so the line points at something they typed.
    fn not_longer(&mut self, small_path: &str, small: Duration, big_path: &str, big: Duration) {
        if small <= big {
            return;
        }
        let (s, b) = (format_duration(small), format_duration(big));
        // A value the user never wrote is a default: say so, or they look
        // for a key they did not set.
        let default = |path: &str| {
            if self.lines.contains(path) {
                ""
            } else {
                ", the default"
            }
        };
        if self.lines.contains(small_path) || !self.lines.contains(big_path) {
            let note = default(big_path);
            self.invalid(
                small_path,
                format!("must not be longer than `{big_path}` ({b}{note}) (got {s})"),
            );
        } else {
            let note = default(small_path);
            self.invalid(
                big_path,
                format!("must not be shorter than `{small_path}` ({s}{note}) (got {b})"),
            );
        }
    }
}

pub(crate) fn validate(config: &Config, lines: &LineMap) -> Vec<Problem> {
    let mut c = Checker {
        lines,
        problems: Vec::new(),
    };

    if config.app.is_none() && config.upstreams.is_empty() {
        nothing_to_run(&mut c);
    }
    if let Some(workers) = config.workers {
        c.range("workers", workers, 1, MAX_WORKERS);
    }
    listeners(&mut c, config.listen, config.admin.listen);

    if let Some(app) = &config.app {
        command(&mut c, &app.command);
        c.range("app.instances", app.instances, 1, MAX_INSTANCES);
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
        if app.cwd.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            c.invalid(
                "app.cwd",
                "must not be empty (leave it out to use shoal's own directory)".into(),
            );
        }
        health(&mut c, "app.health", &app.health);
        c.at_most("app.stop_timeout", app.stop_timeout, MAX_WAIT);
        lifecycle(&mut c, app);
    }

    for (i, upstream) in config.upstreams.iter().enumerate() {
        if let Err(why) = upstream.host_port() {
            c.invalid(&format!("upstreams[{i}].url"), why);
        }
        c.range(
            &format!("upstreams[{i}].weight"),
            upstream.weight,
            1,
            MAX_WEIGHT,
        );
    }
    health(&mut c, "health", &config.health);
    balance(&mut c, &config.balance);

    if config.proxy.connect_timeout.is_zero() {
        c.invalid(
            "proxy.connect_timeout",
            "must be greater than 0 (got 0s)".into(),
        );
    }
    for (key, value) in [
        (
            "proxy.response_header_timeout",
            config.proxy.response_header_timeout,
        ),
        ("proxy.read_timeout", config.proxy.read_timeout),
        ("proxy.send_timeout", config.proxy.send_timeout),
        ("proxy.fail_timeout", config.proxy.fail_timeout),
    ] {
        if value.is_zero() {
            c.invalid(key, "must be greater than 0 (got 0s)".into());
        }
        c.at_most(key, value, MAX_WAIT);
    }
    c.at_most(
        "proxy.max_ejection_time",
        config.proxy.max_ejection_time,
        MAX_WAIT,
    );
    c.not_longer(
        "proxy.fail_timeout",
        config.proxy.fail_timeout,
        "proxy.max_ejection_time",
        config.proxy.max_ejection_time,
    );
    c.at_most("proxy.slow_start", config.proxy.slow_start, MAX_WAIT);
    if config.proxy.replay_body_size > MAX_REPLAY_BODY {
        c.invalid(
            "proxy.replay_body_size",
            format!(
                "must be at most {} (got {}): the body is held in memory",
                format_size(MAX_REPLAY_BODY),
                format_size(config.proxy.replay_body_size)
            ),
        );
    }
    for (i, status) in config.proxy.fail_statuses.iter().enumerate() {
        if !(400..=599).contains(status) {
            c.invalid(
                &format!("proxy.fail_statuses[{i}]"),
                format!("must be an error status from 400 to 599 (got {status})"),
            );
        }
    }
    if config.proxy.retries > MAX_RETRIES {
        c.invalid(
            "proxy.retries",
            format!(
                "must be at most {MAX_RETRIES} (got {})",
                config.proxy.retries
            ),
        );
    }
    limits(&mut c, &config.limits);
    if let Some(t) = &config.tls {
        tls(&mut c, t);
    }
    c.at_most("shutdown.grace", config.shutdown.grace, MAX_WAIT);
    c.at_most("shutdown.delay", config.shutdown.delay, MAX_WAIT);
    if let Err(why) = check_log_filter(&config.log.level) {
        c.invalid("log.level", why);
    }

    let mut problems = c.problems;
    // File order reads best; problems without a line (nothing to run) go last.
    problems.sort_by_key(|p| p.line().unwrap_or(usize::MAX));
    problems
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
        let (path, other) =
            if c.lines.contains("app.max_surge") || !c.lines.contains("app.max_unavailable") {
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

fn limits(c: &mut Checker<'_>, l: &LimitsConfig) {
    if l.max_body_size == Some(0) {
        c.invalid(
            "limits.max_body_size",
            "must be greater than 0 (got 0B); leave it out for no limit".into(),
        );
    }
    if !(MIN_HEADER_SIZE..=MAX_HEADER_SIZE).contains(&l.max_header_size) {
        c.invalid(
            "limits.max_header_size",
            format!(
                "must be between {} and {} (got {})",
                format_size(MIN_HEADER_SIZE),
                format_size(MAX_HEADER_SIZE),
                format_size(l.max_header_size)
            ),
        );
    }
    c.positive_at_most(
        "limits.header_read_timeout",
        l.header_read_timeout,
        MAX_WAIT,
    );
    c.positive_at_most("limits.body_read_timeout", l.body_read_timeout, MAX_WAIT);
    c.positive_at_most("limits.send_timeout", l.send_timeout, MAX_WAIT);
    c.positive_at_most("limits.idle_timeout", l.idle_timeout, MAX_WAIT);
    if let Some(n) = l.max_connections {
        c.at_least_one("limits.max_connections", n);
    }
}

/// The shape of `tls:`: one pair (`cert` + `key`) or a `certificates`
/// list, not both; no empty path; a sensible ALPN list. Whether the files
/// can be read and hold a matching certificate and key is checked by the
/// caller of `load_str_checked` (shoal's TLS module), which reads them.
fn tls(c: &mut Checker<'_>, t: &TlsConfig) {
    const FORMS: &str = "set `cert` and `key` (PEM files) for one certificate, or \
                         `certificates: [{cert: ..., key: ...}, ...]` for several chosen by SNI";
    let pair = t.cert.is_some() || t.key.is_some();
    let list = !t.certificates.is_empty() || c.lines.contains("tls.certificates");
    if pair && list {
        c.invalid(
            "tls.certificates",
            "cannot be used together with `tls.cert`/`tls.key`: list every certificate \
             under `certificates` (the first is the default), or use `cert` and `key` alone"
                .into(),
        );
    } else if !pair && !list {
        c.report(
            ErrorKind::Missing,
            "tls",
            format!("has no certificate: {FORMS}"),
        );
    } else if list && t.certificates.is_empty() {
        c.invalid(
            "tls.certificates",
            "is empty; list at least one `{cert: FILE, key: FILE}`".into(),
        );
    }
    match (&t.cert, &t.key) {
        (Some(_), None) => c.report(
            ErrorKind::Missing,
            "tls.key",
            "is required with `tls.cert`: the PEM file of the certificate's private key".into(),
        ),
        (None, Some(_)) => c.report(
            ErrorKind::Missing,
            "tls.cert",
            "is required with `tls.key`: the PEM file of the certificate (chain)".into(),
        ),
        _ => {}
    }
    for f in t.files() {
        for (at, path) in [(&f.cert_at, f.cert), (&f.key_at, f.key)] {
            if path.as_os_str().is_empty() {
                c.invalid(at, "must not be empty: the path of a PEM file".into());
            }
        }
    }
    if t.alpn.is_empty() {
        c.invalid(
            "tls.alpn",
            "must not be empty: list `h2`, `http/1.1` or both (in order of preference)".into(),
        );
    }
    for (i, a) in t.alpn.iter().enumerate() {
        if t.alpn[..i].contains(a) {
            c.invalid(
                &format!("tls.alpn[{i}]"),
                format!("`{}` is listed twice", a.as_str()),
            );
        }
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
    if c.lines.contains("app.instances") {
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

fn nothing_to_run(c: &mut Checker<'_>) {
    let advice = "set `app` (a command shoal runs as several instances) or `upstreams` (servers shoal proxies to)";
    if c.lines.contains("app") {
        c.invalid(
            "app",
            "is empty; set at least `app.command` (or remove `app` and list `upstreams`)".into(),
        );
    } else if c.lines.contains("upstreams") {
        c.invalid(
            "upstreams",
            "is empty; list at least one `- url: http://HOST:PORT`, or set `app`".into(),
        );
    } else {
        c.invalid("", format!("nothing to run: {advice}"));
    }
}

fn listeners(c: &mut Checker<'_>, public: SocketAddr, admin: SocketAddr) {
    // Port 0 asks the OS for a free port, so two of them never collide.
    if public.port() == 0 || public.port() != admin.port() {
        return;
    }
    let overlap =
        public.ip() == admin.ip() || public.ip().is_unspecified() || admin.ip().is_unspecified();
    if !overlap {
        return;
    }
    // Point at `admin.listen` when it was written, else at `listen`.
    let (path, other, mine, theirs) = if c.lines.contains("admin.listen") {
        ("admin.listen", "listen", admin, public)
    } else {
        ("listen", "admin.listen", public, admin)
    };
    let message = if public == admin {
        format!("must differ from `{other}` (both are {public})")
    } else {
        format!(
            "overlaps `{other}`: {mine} and {theirs} both take port {}",
            public.port()
        )
    };
    c.invalid(path, message);
}

fn command(c: &mut Checker<'_>, command: &CommandSpec) {
    match command {
        CommandSpec::Argv(argv) if argv.is_empty() => {
            if c.lines.contains("app.command") {
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

/// `balance.hash_key` belongs to `algorithm: hash` and to nothing else.
fn balance(c: &mut Checker<'_>, b: &BalanceConfig) {
    match (b.algorithm, &b.hash_key) {
        (Algorithm::Hash, None) => c.report(
            ErrorKind::Missing,
            "balance.hash_key",
            "is required with `algorithm: hash`: what to hash, as `header:NAME`, \
             `cookie:NAME`, `query:NAME` or `path` (e.g. `hash_key: header:X-User-Id`)"
                .into(),
        ),
        (Algorithm::Hash, Some(_)) | (_, None) => {}
        (Algorithm::IpHash, Some(_)) => c.invalid(
            "balance.hash_key",
            "only applies to `algorithm: hash`; `ip_hash` always hashes the client's \
             address (remove `hash_key`, or use `algorithm: hash`)"
                .into(),
        ),
        (other, Some(_)) => c.invalid(
            "balance.hash_key",
            format!(
                "only applies to `algorithm: hash` (the algorithm is `{}`); remove it, \
                 or set `algorithm: hash`",
                other.as_str()
            ),
        ),
    }
}

fn health(c: &mut Checker<'_>, prefix: &str, h: &HealthConfig) {
    if let Some(path) = &h.path {
        if !path.starts_with('/') {
            c.invalid(
                &format!("{prefix}.path"),
                format!("must start with `/` (got `{path}`)"),
            );
        } else if path.contains(char::is_whitespace) {
            c.invalid(
                &format!("{prefix}.path"),
                format!("must not contain spaces (got `{path}`)"),
            );
        }
    }
    let interval = format!("{prefix}.interval");
    let timeout = format!("{prefix}.timeout");
    if h.interval < MIN_HEALTH_INTERVAL {
        c.invalid(
            &interval,
            format!(
                "must be at least {} (got {})",
                format_duration(MIN_HEALTH_INTERVAL),
                format_duration(h.interval)
            ),
        );
    }
    if h.timeout.is_zero() {
        c.invalid(&timeout, "must be greater than 0 (got 0s)".into());
    } else {
        c.not_longer(&timeout, h.timeout, &interval, h.interval);
    }
    c.at_least_one(&format!("{prefix}.fall"), h.fall);
    c.at_least_one(&format!("{prefix}.rise"), h.rise);

    let method = format!("{prefix}.method");
    if h.method.is_empty() || !h.method.bytes().all(|b| b.is_ascii_uppercase()) {
        c.invalid(
            &method,
            format!(
                "must be an HTTP method in capitals, like `GET` or `HEAD` (got `{}`)",
                h.method
            ),
        );
    }
    if let Some(body) = &h.expect_body {
        if body.is_empty() {
            c.invalid(
                &format!("{prefix}.expect_body"),
                "must not be empty (leave it out to accept any body)".into(),
            );
        }
        if h.method == "HEAD" {
            c.invalid(
                &format!("{prefix}.expect_body"),
                "cannot be checked with `method: HEAD` (a HEAD response has no body)".into(),
            );
        }
    }
    if h.path.is_none() {
        // The HTTP-only keys mean nothing for a TCP check: say so rather
        // than silently running a TCP connect.
        let http_only = [
            ("method", h.method != "GET"),
            ("expect_status", h.expect_status != StatusRange::DEFAULT),
            ("expect_body", h.expect_body.is_some()),
        ];
        for (key, written) in http_only {
            if written {
                c.invalid(
                    &format!("{prefix}.{key}"),
                    format!(
                        "only applies to HTTP checks; set `{prefix}.path` too \
                         (without it a check is a TCP connect)"
                    ),
                );
            }
        }
    }
}

/// A light check that `level` is a tracing filter such as `info` or
/// `shoal=debug,hyper=warn`: it catches typos of level names, which the
/// filter would otherwise take as a target name and silently log nothing.
pub(crate) fn check_log_filter(filter: &str) -> Result<(), String> {
    const HELP: &str =
        "use trace, debug, info, warn, error or off, or directives like `shoal=debug,info`";
    let is_level = |s: &str| {
        LEVELS.iter().any(|l| l.eq_ignore_ascii_case(s))
            || matches!(s, "0" | "1" | "2" | "3" | "4" | "5")
    };
    let is_target = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '_' | ':' | '-' | '.'))
    };
    if filter.trim().is_empty() {
        return Err(format!("must not be empty; {HELP}"));
    }
    for directive in filter.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        // Span and field filters (`target[span{field=1}]=debug`) are left to tracing.
        if directive.contains(['[', '{']) {
            continue;
        }
        match directive.rsplit_once('=') {
            Some((target, level)) => {
                if !is_target(target) {
                    return Err(format!(
                        "invalid target `{target}` in `{directive}`; {HELP}"
                    ));
                }
                if !is_level(level) {
                    let hint = closest(level, LEVELS.iter().copied())
                        .map(|l| format!(" (did you mean `{l}`?)"))
                        .unwrap_or_default();
                    return Err(format!(
                        "`{level}` in `{directive}` is not a log level{hint}; {HELP}"
                    ));
                }
            }
            None if is_level(directive) => {}
            None => {
                if let Some(level) = closest(directive, LEVELS.iter().copied()) {
                    return Err(format!(
                        "`{directive}` is not a log level (did you mean `{level}`?); {HELP}"
                    ));
                }
                if !is_target(directive) {
                    return Err(format!("invalid directive `{directive}`; {HELP}"));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::check_log_filter;

    #[test]
    fn log_filters() {
        for ok in [
            "info",
            "INFO",
            "shoal=debug,info",
            "warn,hyper=off",
            "shoal::proxy=trace",
            "my_crate",
            "3",
            "a[span{x=1}]=debug",
        ] {
            assert_eq!(check_log_filter(ok), Ok(()), "{ok}");
        }
        assert!(check_log_filter("")
            .unwrap_err()
            .starts_with("must not be empty"));
        assert!(check_log_filter("infoo")
            .unwrap_err()
            .contains("did you mean `info`?"));
        assert!(check_log_filter("warning")
            .unwrap_err()
            .contains("did you mean `warn`?"));
        assert!(check_log_filter("shoal=verbose")
            .unwrap_err()
            .contains("`verbose` in `shoal=verbose` is not a log level"));
        assert!(check_log_filter("a b")
            .unwrap_err()
            .contains("invalid directive `a b`"));
        assert!(check_log_filter("a b=info")
            .unwrap_err()
            .contains("invalid target"));
    }
}
