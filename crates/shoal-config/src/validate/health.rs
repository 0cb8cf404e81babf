//! `health:` and `app.health:` — the active checks.

use super::Checker;
use crate::model::{HealthConfig, StatusRange};
use crate::units::format_duration;
use std::time::Duration;

const MIN_HEALTH_INTERVAL: Duration = Duration::from_millis(100);

pub(super) fn health(c: &mut Checker<'_>, prefix: &str, h: &HealthConfig) {
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
