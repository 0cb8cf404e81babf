//! Turns serde and YAML parser errors into [`Problem`]s that name the key
//! path and line and use the config's words ("a list", "a whole number")
//! rather than Rust's (`a sequence`, `u32`).
//!
//! serde's messages have had the same fixed shapes for years (`invalid type:
//! X, expected Y`, `unknown field `k`, expected one of ...`), which is what
//! this module reads; anything else passes through unchanged.

use serde_path_to_error::Segment;

use crate::error::{ErrorKind, Problem};
use crate::lines::{join_key, last_segment, parent, LineMap};
use crate::suggest::closest;

/// A type or value error found while mapping the YAML onto the model.
pub(crate) fn from_serde(
    err: &serde_path_to_error::Error<serde_yaml_ng::Error>,
    lines: &LineMap,
) -> Problem {
    let path = path_string(err.path());
    let msg = err.inner().to_string();

    if let Some(rest) = msg.strip_prefix("unknown field ") {
        return unknown_key(rest, &path, lines);
    }
    let (kind, message) = if let Some(rest) = msg.strip_prefix("unknown variant ") {
        (ErrorKind::Invalid, unknown_value(rest, &path))
    } else if let Some(rest) = msg.strip_prefix("invalid type: ") {
        let (got, expected) = split_expected(rest);
        if expected == "field identifier" {
            // A key that is not text, like `1:`; the path ends in `?` then.
            let section = parent(&path).unwrap_or("");
            let Some(key) = backticked(got).first().copied() else {
                // A list or mapping used as a key (`? [a, b]`).
                return Problem::new(
                    ErrorKind::UnknownKey,
                    lines.nearest(&path),
                    path.clone(),
                    format!(
                        "{} used as a key {} (keys are names like `listen`)",
                        friendly_got(got),
                        place(section)
                    ),
                );
            };
            let full = join_key(section, key);
            return Problem::new(
                ErrorKind::UnknownKey,
                lines.nearest(&full),
                full.clone(),
                format!(
                    "unknown key `{key}` {} (keys are names like `listen`)",
                    place(section)
                ),
            );
        }
        if path == "app.restart" && got == "map" {
            // The shape of `app.restart` before the restart policy existed.
            return Problem::new(
                ErrorKind::Type,
                lines.nearest(&path),
                path,
                format!(
                    "expected {RESTART_POLICIES} (got a mapping); the backoff settings moved to \
                     `app.backoff`, as `initial` (was `backoff_initial`), `max` (was \
                     `backoff_max`) and `reset_after`"
                ),
            );
        }
        let got = friendly_got(got);
        if path.is_empty() {
            let message =
                format!("the file must be a mapping of keys like `listen:` and `app:` (got {got})");
            return Problem::new(ErrorKind::Type, Some(1), path, message);
        }
        let hint = backticked(got)
            .first()
            .and_then(|value| alias(&path, value))
            .map(|best| format!(" (did you mean `{best}`?)"))
            .unwrap_or_default();
        (
            ErrorKind::Type,
            format!(
                "expected {} (got {got}){hint}",
                friendly_expected(expected, &path)
            ),
        )
    } else if let Some(rest) = msg.strip_prefix("invalid value: ") {
        (ErrorKind::Invalid, invalid_value(rest, &path))
    } else if let Some(rest) = msg.strip_prefix("missing field ") {
        (ErrorKind::Missing, format!("missing required key {rest}"))
    } else if let Some(rest) = msg.strip_prefix("invalid length ") {
        let (got, expected) = split_expected(rest);
        (
            ErrorKind::Invalid,
            format!("expected {expected} (got {got} items)"),
        )
    } else {
        (ErrorKind::Invalid, msg.clone())
    };
    Problem::new(kind, lines.nearest(&path), path, message)
}

/// A YAML syntax error, or a document serde_yaml_ng would not load.
pub(crate) fn from_yaml(err: &serde_yaml_ng::Error, lines: &LineMap) -> Vec<Problem> {
    let msg = err.to_string();
    if msg.contains("duplicate entry with key") && !lines.duplicates().is_empty() {
        return lines
            .duplicates()
            .iter()
            .map(|d| {
                let key = last_segment(&d.path);
                let section = parent(&d.path).unwrap_or("");
                Problem::new(
                    ErrorKind::UnknownKey,
                    Some(d.line),
                    d.path.clone(),
                    format!("duplicate key `{key}` {}", place(section)),
                )
            })
            .collect();
    }
    let mut line = err.location().map(|l| l.line());
    let mut path = String::new();
    let mut text = msg.as_str();
    // serde_yaml_ng puts the key path in front of some messages ("a.b: ...").
    if let Some((prefix, rest)) = msg.split_once(": ") {
        if lines.contains(prefix) {
            path = prefix.to_string();
            line = lines.get(prefix).or(line);
            text = rest;
        }
    }
    let message = if text.contains("more than one document") {
        "only one YAML document is allowed (remove the second `---`)".to_string()
    } else if text.contains(" as u128") || text.contains(" as i128") {
        "number is too large".to_string()
    } else {
        format!("invalid YAML: {}", strip_positions(text))
    };
    vec![Problem::new(ErrorKind::Syntax, line, path, message)]
}

fn path_string(path: &serde_path_to_error::Path) -> String {
    let mut out = String::new();
    for segment in path.iter() {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => out = join_key(&out, key),
            Segment::Unknown => out = join_key(&out, "?"),
        }
    }
    out
}

/// "in `app`", "in `upstreams[0]`" or "at the top level".
fn place(section: &str) -> String {
    if section.is_empty() {
        "at the top level".to_string()
    } else {
        format!("in `{section}`")
    }
}

/// `rest` is "`key`, expected one of `a`, `b`" (or "..., there are no fields").
fn unknown_key(rest: &str, path: &str, lines: &LineMap) -> Problem {
    let mut names = backticked(rest).into_iter();
    let key = names.next().unwrap_or_default();
    let candidates: Vec<&str> = names.collect();
    // serde_path_to_error includes the unknown key in the path; be robust if not.
    let full = if last_segment(path) == key {
        path.to_string()
    } else {
        join_key(path, key)
    };
    let section = parent(&full).unwrap_or("");
    let hint = match closest(key, candidates.iter().copied()) {
        Some(best) => format!(" (did you mean `{best}`?)"),
        None if candidates.is_empty() => String::new(),
        None => format!(
            " (known keys: {})",
            candidates
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    Problem::new(
        ErrorKind::UnknownKey,
        lines.nearest(&full),
        full.clone(),
        format!("unknown key `{key}` {}{hint}", place(section)),
    )
}

/// The values of `balance.algorithm`, as messages list them.
const ALGORITHMS: &str =
    "`round_robin`, `weighted`, `least_conn`, `ip_hash`, `hash`, `random` or `p2c_ewma`";

/// The values of `app.restart`, as messages list them.
const RESTART_POLICIES: &str = "`always`, `on-failure` or `never`";

/// The values of `app.protocol` and `upstreams[].protocol`.
const PROTOCOLS: &str = "`http1` or `h2`";

fn is_protocol(path: &str) -> bool {
    path == "app.protocol" || (path.starts_with("upstreams[") && path.ends_with("].protocol"))
}

/// `rest` is "`rr`, expected `round_robin` or `least_conn`" (two choices) or
/// "`x`, expected one of `a`, `b`, `c`" (more).
fn unknown_value(rest: &str, path: &str) -> String {
    let mut names = backticked(rest).into_iter();
    let value = names.next().unwrap_or_default();
    let candidates: Vec<&str> = names.collect();
    let expected = match candidates.as_slice() {
        [] => split_expected(rest).1.to_string(),
        [only] => format!("`{only}`"),
        [init @ .., last] => format!(
            "{} or `{last}`",
            init.iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    // A known alias first: `http2` is closer to `http1` than to `h2` by spelling.
    let best = alias(path, value).or_else(|| closest(value, candidates.iter().copied()));
    let hint = best
        .map(|best| format!(" (did you mean `{best}`?)"))
        .unwrap_or_default();
    format!("unknown value `{value}`: expected {expected}{hint}")
}

/// Names other tools use for one of shoal's values, too far apart to be
/// found as a misspelling: Docker's `restart: no` / `unless-stopped`.
fn alias(path: &str, value: &str) -> Option<&'static str> {
    if is_protocol(path) {
        // What nginx, Envoy and HAProxy call them (`proto h2`, `http2_protocol_options`).
        return match value.to_ascii_lowercase().as_str() {
            "http2" | "http/2" | "h2c" | "2" | "grpc" | "http2c" => Some("h2"),
            "http" | "http1.1" | "http/1.1" | "http/1" | "h1" | "1" | "1.1" | "http11" => {
                Some("http1")
            }
            _ => None,
        };
    }
    match (path, value.to_ascii_lowercase().as_str()) {
        ("app.restart", "no" | "off" | "false" | "none") => Some("never"),
        ("app.restart", "unless-stopped" | "unless_stopped" | "yes" | "on" | "true") => {
            Some("always")
        }
        // nginx, HAProxy, Envoy and linkerd names for the same algorithms.
        ("balance.algorithm", "wrr" | "weighted_round_robin" | "static-rr") => Some("weighted"),
        ("balance.algorithm", "leastconn" | "least_request" | "least-request") => {
            Some("least_conn")
        }
        ("balance.algorithm", "source" | "ip" | "iphash" | "client_ip") => Some("ip_hash"),
        ("balance.algorithm", "ring_hash" | "maglev" | "consistent" | "uri" | "hdr") => {
            Some("hash")
        }
        ("balance.algorithm", "p2c" | "ewma" | "peak_ewma" | "peak-ewma") => Some("p2c_ewma"),
        _ => None,
    }
}

fn invalid_value(rest: &str, path: &str) -> String {
    let (got, expected) = split_expected(rest);
    if let (Some(number), Some(max)) = (
        got.strip_prefix("integer `")
            .and_then(|g| g.strip_suffix('`')),
        integer_max(expected),
    ) {
        return if number.starts_with('-') {
            format!("must not be negative (got {number})")
        } else {
            format!("is too large (got {number}; the most is {max})")
        };
    }
    format!(
        "invalid value {}: expected {}",
        friendly_got(got),
        friendly_expected(expected, path)
    )
}

/// Splits "X, expected Y" into ("X", "Y").
fn split_expected(rest: &str) -> (&str, &str) {
    match rest.rsplit_once(", expected ") {
        Some((got, expected)) => (got, expected),
        None => (rest, "something else"),
    }
}

fn integer_max(rust_type: &str) -> Option<&'static str> {
    Some(match rust_type {
        "u8" => "255",
        "u16" => "65535",
        "u32" => "4294967295",
        "u64" | "usize" => "18446744073709551615",
        _ => return None,
    })
}

fn friendly_expected<'a>(expected: &'a str, path: &str) -> &'a str {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "an integer",
        "a sequence" => "a list",
        "a map" => "a mapping",
        "path string" => "a path",
        e if e.starts_with("struct ") => "a mapping",
        e if e.starts_with("enum ") || e.contains("Tagged enum") || e.contains("YAML tag") => {
            match path {
                "balance.algorithm" => ALGORITHMS,
                "log.format" => "`text` or `json`",
                "app.restart" => RESTART_POLICIES,
                p if is_protocol(p) => PROTOCOLS,
                _ => "a name",
            }
        }
        e => e,
    }
}

fn friendly_got(got: &str) -> &str {
    match got {
        "unit value" => "an empty value",
        "sequence" => "a list",
        "map" => "a mapping",
        g => g,
    }
}

/// Every `word` between backticks, in order.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// Drops libyaml's " at line 3 column 5" / " at position 12": the line is
/// printed at the front of the message already.
fn strip_positions(msg: &str) -> String {
    let mut out = String::new();
    let mut rest = msg;
    while let Some(i) = rest.find(" at ") {
        let after = &rest[i + 4..];
        let skip = position_len(after);
        if skip > 0 {
            out.push_str(&rest[..i]);
            rest = &after[skip..];
        } else {
            out.push_str(&rest[..i + 4]);
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

/// Length of a leading "line N column M" or "position N", else 0.
fn position_len(s: &str) -> usize {
    fn digits(s: &str) -> usize {
        s.bytes().take_while(u8::is_ascii_digit).count()
    }
    if let Some(r) = s.strip_prefix("line ") {
        let n = digits(r);
        if n > 0 {
            if let Some(c) = r[n..].strip_prefix(" column ") {
                let m = digits(c);
                if m > 0 {
                    return "line ".len() + n + " column ".len() + m;
                }
            }
        }
    } else if let Some(r) = s.strip_prefix("position ") {
        let n = digits(r);
        if n > 0 {
            return "position ".len() + n;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_stripped() {
        assert_eq!(
            strip_positions(
                "did not find expected node content at line 2 column 1, while parsing a flow node"
            ),
            "did not find expected node content, while parsing a flow node"
        );
        assert_eq!(strip_positions("bad at position 12"), "bad");
        assert_eq!(strip_positions("look at this"), "look at this");
    }

    #[test]
    fn backticks() {
        assert_eq!(backticked("`a`, expected `b` or `c`"), vec!["a", "b", "c"]);
        assert!(backticked("none").is_empty());
    }
}
