//! Checks a parsed config for values that are out of range or that make no
//! sense together. Every problem is reported, not just the first, so one
//! `shoal check` run shows everything to fix.
//!
//! `Checker` and the checks of the top level are here; each section's checks
//! are in the file named after it.

mod admin;
mod app;
mod autoscale;
mod cache;
mod compress;
mod health;
mod listeners;
mod log;
mod proxy;
mod routes;
mod state;
mod sticky;
mod tls;
mod upstream_tls;

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
    /// Where the app being checked is written: `app` (the one-app
    /// shorthand) or `apps.NAME`. The app's checks name their keys
    /// `app.…`; they are reported under this.
    app_at: String,
}

impl Checker<'_> {
    /// `path` as written in the file: `app.…` under the app being checked.
    fn at(&self, path: &str) -> String {
        match path.strip_prefix("app.") {
            Some(rest) if self.app_at != "app" => format!("{}.{rest}", self.app_at),
            _ => path.to_string(),
        }
    }

    /// The file has this key (`app.…` as in [`Checker::at`]).
    fn has(&self, path: &str) -> bool {
        self.lines.contains(&self.at(path))
    }

    fn report(&mut self, kind: ErrorKind, path: &str, message: String) {
        let path = self.at(path);
        self.problems
            .push(Problem::new(kind, self.lines.nearest(&path), path, message));
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
            if self.has(path) {
                ""
            } else {
                ", the default"
            }
        };
        if self.has(small_path) || !self.has(big_path) {
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
        app_at: "app".into(),
    };

    if config.app.is_none() && config.apps.is_empty() && config.upstreams.is_empty() {
        nothing_to_run(&mut c);
    }
    if let Some(workers) = config.workers {
        c.range("workers", workers, 1, MAX_WORKERS);
    }
    listeners::listeners(&mut c, config);
    admin::admin(&mut c, config);
    app::apps(&mut c, config);
    proxy::upstreams(&mut c, &config.upstreams);
    upstream_tls::backend_tls(&mut c, config);
    health::health(&mut c, "health", &config.health);
    proxy::balance(&mut c, "balance", &config.balance);
    routes::routes(&mut c, config);
    compress::compress(&mut c, "compress", &config.compress);
    if let Some(cache) = &config.cache {
        cache::cache(&mut c, cache, config.state.backend);
    }
    state::state(&mut c, &config.state);
    state::rate_limits(&mut c, config);
    proxy::proxy(&mut c, &config.proxy);
    proxy::limits(&mut c, &config.limits);
    c.at_most("shutdown.grace", config.shutdown.grace, MAX_WAIT);
    c.at_most("shutdown.delay", config.shutdown.delay, MAX_WAIT);
    if let Err(why) = log::check_log_filter(&config.log.level) {
        c.invalid("log.level", why);
    }
    log::access_log(&mut c, &config.access_log);

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
