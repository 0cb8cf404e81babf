//! "Did you mean": the closest known name to a misspelt one.

/// Below this Jaro-Winkler similarity a suggestion is more noise than help
/// (`lisen`→`listen` scores 0.94, `foo`→`log` 0.55).
const THRESHOLD: f64 = 0.8;

pub(crate) fn closest<'a>(
    input: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let input = input.to_ascii_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&input, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= THRESHOLD)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::closest;

    #[test]
    fn close_names_are_suggested() {
        let keys = [
            "command",
            "instances",
            "env",
            "cwd",
            "host",
            "health",
            "stop_timeout",
            "drain_timeout",
            "ready_timeout",
            "min",
            "max",
            "max_surge",
            "max_unavailable",
            "restart",
            "max_restarts",
            "restart_window",
            "backoff",
            "max_memory",
        ];
        assert_eq!(closest("instanses", keys), Some("instances"));
        assert_eq!(closest("max_surg", keys), Some("max_surge"));
        assert_eq!(closest("drain_timout", keys), Some("drain_timeout"));
        assert_eq!(closest("max-restarts", keys), Some("max_restarts"));
        assert_eq!(closest("restarts", keys), Some("restart"));
        assert_eq!(closest("max_mem", keys), Some("max_memory"));
        assert_eq!(closest("backoff_initial", keys), Some("backoff"));
        assert_eq!(
            closest("on_failure", ["always", "on-failure", "never"]),
            Some("on-failure")
        );
        assert_eq!(closest("comand", keys), Some("command"));
        assert_eq!(closest("stop-timeout", keys), Some("stop_timeout"));
        assert_eq!(closest("helth", keys), Some("health"));
        assert_eq!(
            closest("lisen", ["listen", "workers", "log"]),
            Some("listen")
        );
        assert_eq!(
            closest("round-robin", ["round_robin", "least_conn"]),
            Some("round_robin")
        );
    }

    #[test]
    fn unrelated_names_are_not() {
        assert_eq!(closest("foo", ["listen", "workers", "log", "admin"]), None);
        assert_eq!(closest("zzz", ["command", "instances"]), None);
        assert_eq!(closest("x", Vec::<&str>::new()), None);
    }
}
