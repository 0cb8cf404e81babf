//! Checks a parsed config for values that are out of range or that make no
//! sense together. Every problem is reported, not just the first, so one
//! `shoal check` run shows everything to fix.
//!
//! `Checker` and the checks of the top level are here; each section's checks
//! are in the file named after it.

mod app;
mod compress;
mod health;
mod log;
mod proxy;
mod routes;
mod tls;

use std::net::SocketAddr;
use std::time::Duration;

use crate::error::{ErrorKind, Problem};
use crate::lines::LineMap;
use crate::model::Config;
use crate::units::format_duration;

const MAX_WORKERS: usize = 1024;
const MAX_WAIT: Duration = Duration::from_secs(3600);

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
    if let Some(a) = &config.app {
        app::app(&mut c, a);
    }
    proxy::upstreams(&mut c, &config.upstreams);
    health::health(&mut c, "health", &config.health);
    proxy::balance(&mut c, "balance", &config.balance);
    routes::routes(&mut c, config);
    compress::compress(&mut c, "compress", &config.compress);
    proxy::proxy(&mut c, &config.proxy);
    proxy::limits(&mut c, &config.limits);
    if let Some(t) = &config.tls {
        tls::tls(&mut c, t);
    }
    c.at_most("shutdown.grace", config.shutdown.grace, MAX_WAIT);
    c.at_most("shutdown.delay", config.shutdown.delay, MAX_WAIT);
    if let Err(why) = log::check_log_filter(&config.log.level) {
        c.invalid("log.level", why);
    }

    let mut problems = c.problems;
    // File order reads best; problems without a line (nothing to run) go last.
    problems.sort_by_key(|p| p.line().unwrap_or(usize::MAX));
    problems
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
