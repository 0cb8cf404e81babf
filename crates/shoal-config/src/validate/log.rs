//! `log.level`: a tracing filter; `access_log`: a share, a place, a bound.

use super::Checker;
use crate::model::AccessLogConfig;
use crate::suggest::closest;

pub(super) fn access_log(c: &mut Checker<'_>, config: &AccessLogConfig) {
    if !(0.0..=1.0).contains(&config.sample) {
        c.invalid(
            "access_log.sample",
            format!(
                "must be between 0 and 1 (the share of requests logged; got {})",
                config.sample
            ),
        );
    }
    if config.path.trim().is_empty() {
        c.invalid(
            "access_log.path",
            "must be `stderr`, `stdout` or a file".into(),
        );
    }
    c.range("access_log.buffer", config.buffer, 16, 1 << 20);
}

const LEVELS: &[&str] = &["trace", "debug", "info", "warn", "error", "off"];

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
