//! What one copy of the demo app is told at start: who it is and how it should behave.

use std::time::Duration;

/// Settings for one demo app instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOptions {
    /// Name reported in every response and log line (`INSTANCE_ID`, default `demo`).
    pub instance_id: String,
    /// Initial status of `GET /health` (`DEMO_HEALTH_STATUS`, default 200);
    /// `POST /control/health` changes it at runtime.
    pub health_status: u16,
    /// How long [`run`](crate::run) waits before binding, to imitate a slow-starting app
    /// (`DEMO_STARTUP_DELAY_MS`, default 0).
    pub startup_delay: Duration,
    /// Whether every request is logged to stdout (`DEMO_ACCESS_LOG`, default on;
    /// `0`, `false`, `off` or `no` turn it off, e.g. for benchmarks).
    pub access_log: bool,
    /// Exit at the first SIGTERM/SIGINT without finishing in-flight requests
    /// (`DEMO_ABRUPT_EXIT=1`), as many real apps do: lets shoal's tests show
    /// that shoal's own draining is what keeps requests from failing.
    pub abrupt_exit: bool,
    /// How many `GET /cpu` requests may burn CPU at once (`DEMO_CPU_WORKERS`,
    /// default: no limit); the others wait their turn. With 1, an
    /// instance's capacity is 1000 ÷ ms requests per second.
    pub cpu_workers: Option<usize>,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            instance_id: "demo".to_owned(),
            health_status: 200,
            startup_delay: Duration::ZERO,
            access_log: true,
            abrupt_exit: false,
            cpu_workers: None,
        }
    }
}

impl DemoOptions {
    /// Reads `INSTANCE_ID`, `DEMO_HEALTH_STATUS`, `DEMO_STARTUP_DELAY_MS`,
    /// `DEMO_ACCESS_LOG`, `DEMO_ABRUPT_EXIT` and `DEMO_CPU_WORKERS`. A value that does not parse is reported on stderr and the
    /// default is used: the demo app should start rather than argue.
    pub fn from_env() -> Self {
        let (opts, warnings) = Self::from_lookup(|name| std::env::var(name).ok());
        for warning in warnings {
            eprintln!("shoal-demo: {warning}");
        }
        opts
    }

    /// The parsing behind [`from_env`](Self::from_env), over any variable lookup, so it
    /// can be tested without touching the process environment.
    fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> (Self, Vec<String>) {
        let mut opts = Self::default();
        let mut warnings = Vec::new();

        if let Some(id) = lookup("INSTANCE_ID") {
            let id = id.trim();
            if !id.is_empty() {
                opts.instance_id = id.to_owned();
            }
        }
        if let Some(raw) = lookup("DEMO_HEALTH_STATUS") {
            match parse_status(&raw) {
                Some(status) => opts.health_status = status,
                None => warnings.push(format!(
                    "DEMO_HEALTH_STATUS={raw:?} is not a status in 200-599; using 200"
                )),
            }
        }
        if let Some(raw) = lookup("DEMO_STARTUP_DELAY_MS") {
            match raw.trim().parse::<u64>() {
                Ok(ms) => opts.startup_delay = Duration::from_millis(ms),
                Err(_) => warnings.push(format!(
                    "DEMO_STARTUP_DELAY_MS={raw:?} is not a number of milliseconds; using 0"
                )),
            }
        }
        if let Some(raw) = lookup("DEMO_ACCESS_LOG") {
            match raw.trim().to_ascii_lowercase().as_str() {
                "" | "1" | "true" | "on" | "yes" => opts.access_log = true,
                "0" | "false" | "off" | "no" => opts.access_log = false,
                _ => warnings.push(format!(
                    "DEMO_ACCESS_LOG={raw:?} is not on/off; leaving the access log on"
                )),
            }
        }
        if let Some(raw) = lookup("DEMO_ABRUPT_EXIT") {
            opts.abrupt_exit = matches!(
                raw.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "on" | "yes"
            );
        }
        if let Some(raw) = lookup("DEMO_CPU_WORKERS") {
            match raw.trim().parse::<usize>() {
                Ok(k) if k >= 1 => opts.cpu_workers = Some(k),
                _ => warnings.push(format!(
                    "DEMO_CPU_WORKERS={raw:?} is not a number ≥ 1; no limit"
                )),
            }
        }
        (opts, warnings)
    }
}

/// A final (non-1xx) HTTP status code, as accepted by `/status/N` and the health knob.
pub(crate) fn parse_status(raw: &str) -> Option<u16> {
    raw.trim()
        .parse::<u16>()
        .ok()
        .filter(|s| (200..=599).contains(s))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn from(vars: &[(&str, &str)]) -> (DemoOptions, Vec<String>) {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DemoOptions::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_when_nothing_is_set() {
        let (opts, warnings) = from(&[]);
        assert_eq!(opts, DemoOptions::default());
        assert_eq!(opts.instance_id, "demo");
        assert_eq!(opts.health_status, 200);
        assert_eq!(opts.startup_delay, Duration::ZERO);
        assert!(opts.access_log);
        assert!(warnings.is_empty());
    }

    #[test]
    fn reads_every_variable() {
        let (opts, warnings) = from(&[
            ("INSTANCE_ID", "app-2"),
            ("DEMO_HEALTH_STATUS", "503"),
            ("DEMO_STARTUP_DELAY_MS", "1500"),
            ("DEMO_ACCESS_LOG", "off"),
        ]);
        assert!(warnings.is_empty());
        assert_eq!(opts.instance_id, "app-2");
        assert_eq!(opts.health_status, 503);
        assert_eq!(opts.startup_delay, Duration::from_millis(1500));
        assert!(!opts.access_log);
    }

    #[test]
    fn bad_values_fall_back_with_a_warning() {
        let (opts, warnings) = from(&[
            ("INSTANCE_ID", "  "),
            ("DEMO_HEALTH_STATUS", "101"),
            ("DEMO_STARTUP_DELAY_MS", "-5"),
            ("DEMO_ACCESS_LOG", "maybe"),
        ]);
        assert_eq!(opts, DemoOptions::default());
        assert_eq!(warnings.len(), 3, "{warnings:?}");
    }

    #[test]
    fn status_range() {
        assert_eq!(parse_status("200"), Some(200));
        assert_eq!(parse_status("599"), Some(599));
        assert_eq!(parse_status("199"), None);
        assert_eq!(parse_status("600"), None);
        assert_eq!(parse_status("abc"), None);
        assert_eq!(parse_status(""), None);
    }

    #[test]
    fn cpu_workers() {
        assert_eq!(from(&[]).0.cpu_workers, None);
        assert_eq!(from(&[("DEMO_CPU_WORKERS", "1")]).0.cpu_workers, Some(1));
        let (opts, warnings) = from(&[("DEMO_CPU_WORKERS", "0")]);
        assert_eq!(opts.cpu_workers, None);
        assert_eq!(warnings.len(), 1);
    }

    #[test]
    fn abrupt_exit_is_opt_in() {
        assert!(!from(&[]).0.abrupt_exit);
        assert!(from(&[("DEMO_ABRUPT_EXIT", "1")]).0.abrupt_exit);
        assert!(!from(&[("DEMO_ABRUPT_EXIT", "0")]).0.abrupt_exit);
    }
}
