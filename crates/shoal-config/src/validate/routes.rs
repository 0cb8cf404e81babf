//! `routes:` and the pools they name — every route does one thing, names a
//! pool that exists, and can be reached (no earlier route takes every
//! request it would).

use super::{Checker, MAX_WAIT};
use crate::error::ErrorKind;
use crate::model::{Config, HeaderRules, RouteConfig, RouteMatch, APP_POOL};
use crate::suggest::closest;

const MAX_RETRIES: u32 = 10;

/// Headers a rule may not touch: they frame the message or belong to one
/// connection, and shoal writes them itself.
const NOT_BY_RULE: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "content-length",
    "te",
    "trailer",
    "upgrade",
    "http2-settings",
];

/// Letters, digits, `-`, `_` and `.`: a name for a group or a route that
/// reads well in a metric label and a log line.
pub(super) fn plain_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

pub(super) fn routes(c: &mut Checker<'_>, config: &Config) {
    pools(c, config);
    let names = config.pool_names();
    let mut seen_names: Vec<(String, String)> = Vec::new();
    for (list_at, _, list) in config.route_lists() {
        route_list(c, &list_at, list, &names, &mut seen_names);
    }
}

/// One list of routes (`routes`, or `listeners[N].routes`); route names
/// differ across every list.
fn route_list(
    c: &mut Checker<'_>,
    list_at: &str,
    list: &[RouteConfig],
    pools: &[&str],
    seen_names: &mut Vec<(String, String)>,
) {
    for (i, route) in list.iter().enumerate() {
        let at = format!("{list_at}[{i}]");
        if let Some(name) = &route.name {
            if !plain_name(name) {
                c.invalid(
                    &format!("{at}.name"),
                    format!("`{name}` is not a usable name: use letters, digits, `-`, `_` and `.`"),
                );
            } else if let Some((_, other)) = seen_names.iter().find(|(n, _)| n == name) {
                c.invalid(
                    &format!("{at}.name"),
                    format!("`{name}` is also the name of `{other}`; route names must differ"),
                );
            }
            seen_names.push((name.clone(), at.clone()));
        }
        action(c, &at, route, pools);
        matches(c, &format!("{at}.match"), &route.matches);
        rewrites(c, &at, route);
        header_rules(c, &format!("{at}.request_headers"), &route.request_headers);
        header_rules(
            c,
            &format!("{at}.response_headers"),
            &route.response_headers,
        );
        overrides(c, &at, route);
        if let Some(files) = &route.files {
            super::compress::files(c, &format!("{at}.files"), files);
        }
        if let Some(sticky) = &route.sticky {
            let at = format!("{at}.sticky");
            if route.redirect.is_some() || route.respond.is_some() || route.files.is_some() {
                c.invalid(
                    &at,
                    "only applies to a route that sends requests to a pool (`to`); this one \
                     answers them itself"
                        .into(),
                );
            }
            super::sticky::sticky(c, &at, sticky);
        }
        if let Some(compress) = &route.compress {
            super::compress::route_compress(c, &format!("{at}.compress"), compress);
        }
        super::cache::route_cache(c, &at, route);
        if let Some(j) = (0..i).find(|&j| covers(&list[j].matches, &route.matches)) {
            let line = c
                .lines
                .get(&format!("{list_at}[{j}]"))
                .map_or(String::new(), |l| format!(" (line {l})"));
            c.invalid(
                &at,
                format!(
                    "can never match: `{list_at}[{j}]`{line} comes first and takes every request \
                     this one would; put the narrower route first"
                ),
            );
        }
    }
}

/// A pool for every request to go to, and group names apart from `app`.
fn pools(c: &mut Checker<'_>, config: &Config) {
    if config.app.is_some() && config.upstreams.groups().any(|(n, _)| n == APP_POOL) {
        c.invalid(
            &format!("upstreams.{APP_POOL}"),
            format!(
                "`{APP_POOL}` names the pool of `app`'s instances; give the group another name"
            ),
        );
    }
    let pools = config.pool_names();
    // Every listener has routes: the top-level ones, or its own.
    let routed = !config.routes.is_empty()
        || (!config.listeners.is_empty() && config.listeners.iter().all(|l| !l.routes.is_empty()));
    if config.default_pool().is_none() && pools.len() > 1 && !routed {
        let at = if config.upstreams.groups().next().is_some() {
            "upstreams"
        } else {
            "apps"
        };
        c.report(
            ErrorKind::Missing,
            at,
            format!(
                "has several pools ({}) but there are no `routes`: say which requests go to \
                 which (e.g. `routes: [{{match: {{path_prefix: /}}, to: {}}}]`)",
                pools.join(", "),
                pools[0]
            ),
        );
    }
}

/// Exactly one of `to`, `redirect` and `respond`, and `to` names a pool.
fn action(c: &mut Checker<'_>, at: &str, route: &RouteConfig, pools: &[&str]) {
    let given: Vec<&str> = [
        route.to.as_ref().map(|_| "to"),
        route.redirect.as_ref().map(|_| "redirect"),
        route.respond.as_ref().map(|_| "respond"),
        route.files.as_ref().map(|_| "files"),
    ]
    .into_iter()
    .flatten()
    .collect();
    match given.len() {
        0 => c.report(
            ErrorKind::Missing,
            at,
            "needs an action: `to: POOL` (an app or upstream group), `redirect: {to: URL}`, \
             `respond: {status: 200, body: ...}` or `files: {root: DIR}`"
                .into(),
        ),
        1 => {}
        _ => c.invalid(
            at,
            format!(
                "has {}: a route does one thing; split it into routes",
                given
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(" and ")
            ),
        ),
    }
    if let Some(to) = &route.to {
        if !pools.contains(&to.as_str()) {
            let known = if pools.is_empty() {
                "there is no app or upstream group".to_string()
            } else {
                format!(
                    "the pools are {}",
                    pools
                        .iter()
                        .map(|p| format!("`{p}`"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            let hint = closest(to, pools.iter().copied())
                .map_or(String::new(), |p| format!(" (did you mean `{p}`?)"));
            c.invalid(
                &format!("{at}.to"),
                format!("`{to}` is not an app or upstream group{hint}; {known}"),
            );
        }
    }
    if let Some(r) = &route.redirect {
        if ![301, 302, 303, 307, 308].contains(&r.status) {
            c.invalid(
                &format!("{at}.redirect.status"),
                format!("must be 301, 302, 303, 307 or 308 (got {})", r.status),
            );
        }
        if r.to.trim().is_empty() || r.to.contains(char::is_whitespace) {
            c.invalid(
                &format!("{at}.redirect.to"),
                "must be a URL or a path without spaces".into(),
            );
        }
    }
    if let Some(r) = &route.respond {
        c.range(&format!("{at}.respond.status"), r.status, 200, 599);
        if matches!(r.status, 204 | 304) && !r.body.is_empty() {
            c.invalid(
                &format!("{at}.respond.body"),
                format!(
                    "a {} answer has no body (RFC 9110 §15.3.5, §15.4.5); remove `body`",
                    r.status
                ),
            );
        }
        for (name, value) in &r.headers {
            if NOT_BY_RULE.contains(&name.to_ascii_lowercase().as_str()) {
                c.invalid(
                    &format!("{at}.respond.headers.{name}"),
                    format!("`{name}` frames the message or belongs to one connection; shoal writes it itself"),
                );
            }
            header(
                c,
                &format!("{at}.respond.headers.{name}"),
                name,
                Some(value),
            );
        }
    }
}

pub(super) fn matches(c: &mut Checker<'_>, at: &str, m: &RouteMatch) {
    if let Some(host) = &m.host {
        let name = host.strip_prefix("*.").unwrap_or(host);
        let ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
        if !ok {
            c.invalid(
                &format!("{at}.host"),
                format!(
                    "`{host}` is not a host name: write `api.example.com` or `*.example.com`, \
                     without a port or a scheme"
                ),
            );
        }
    }
    if m.path.is_some() && m.path_prefix.is_some() {
        c.invalid(
            &format!("{at}.path"),
            "and `path_prefix` together: `path` is an exact path, `path_prefix` a prefix; \
             keep one"
                .into(),
        );
    }
    for (key, value) in [("path", &m.path), ("path_prefix", &m.path_prefix)] {
        if let Some(p) = value {
            path(c, &format!("{at}.{key}"), p);
        }
    }
    for (i, method) in m.methods.iter().enumerate() {
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
            c.invalid(
                &format!("{at}.methods[{i}]"),
                format!("`{method}` is not a method: write it in capitals, as `GET`"),
            );
        }
    }
    for (name, value) in &m.headers {
        header(c, &format!("{at}.headers.{name}"), name, Some(value));
    }
}

fn path(c: &mut Checker<'_>, at: &str, p: &str) {
    if !p.starts_with('/') {
        c.invalid(at, format!("must start with `/` (got `{p}`)"));
    } else if p
        .bytes()
        .any(|b| b <= b' ' || b >= 0x7f || b == b'?' || b == b'#')
    {
        c.invalid(
            at,
            format!("must be a plain path, without spaces, `?` or `#` (got `{p}`)"),
        );
    }
}

fn rewrites(c: &mut Checker<'_>, at: &str, route: &RouteConfig) {
    for (key, value) in [
        ("strip_prefix", &route.strip_prefix),
        ("add_prefix", &route.add_prefix),
    ] {
        let Some(p) = value else { continue };
        let key = format!("{at}.{key}");
        path(c, &key, p);
        if route.to.is_none() && route.files.is_none() {
            c.invalid(&key, "only applies to a route with `to` or `files`".into());
        }
    }
}

/// A header name (and value) a rule or a match may use.
fn header(c: &mut Checker<'_>, at: &str, name: &str, value: Option<&str>) {
    let token = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
    if !token {
        c.invalid(at, format!("`{name}` is not a header name"));
        return;
    }
    if let Some(v) = value {
        if v.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            c.invalid(at, "the value must not hold control characters".into());
        }
    }
}

fn header_rules(c: &mut Checker<'_>, at: &str, rules: &HeaderRules) {
    let named = rules
        .set
        .iter()
        .map(|(n, v)| ("set", n, Some(v)))
        .chain(rules.add.iter().map(|(n, v)| ("add", n, Some(v))))
        .chain(rules.remove.iter().map(|n| ("remove", n, None)));
    for (kind, name, value) in named {
        let key = match kind {
            "remove" => format!("{at}.remove"),
            _ => format!("{at}.{kind}.{name}"),
        };
        header(c, &key, name, value.map(String::as_str));
        if NOT_BY_RULE.contains(&name.to_ascii_lowercase().as_str()) {
            c.invalid(
                &key,
                format!("`{name}` frames the message or belongs to one connection; shoal writes it itself and a rule may not change it"),
            );
        }
    }
}

fn overrides(c: &mut Checker<'_>, at: &str, route: &RouteConfig) {
    if let Some(r) = route.proxy.retries {
        if r > MAX_RETRIES {
            c.invalid(
                &format!("{at}.proxy.retries"),
                format!("must be at most {MAX_RETRIES} (got {r})"),
            );
        }
    }
    for (key, value) in [
        (
            "response_header_timeout",
            route.proxy.response_header_timeout,
        ),
        ("read_timeout", route.proxy.read_timeout),
    ] {
        if let Some(v) = value {
            c.positive_at_most(&format!("{at}.proxy.{key}"), v, MAX_WAIT);
        }
    }
    if route.limits.max_body_size == Some(0) {
        c.invalid(
            &format!("{at}.limits.max_body_size"),
            "must be greater than 0 (got 0B); leave it out for the top-level limit".into(),
        );
    }
    let proxied = route.proxy.retries.is_some()
        || route.proxy.response_header_timeout.is_some()
        || route.proxy.read_timeout.is_some()
        || !route.request_headers.is_empty();
    if proxied && route.to.is_none() {
        let key = if route.request_headers.is_empty() {
            "proxy"
        } else {
            "request_headers"
        };
        c.invalid(
            &format!("{at}.{key}"),
            "only applies to a route with `to`".into(),
        );
    }
}

/// Every request `b` matches, `a` matches too.
pub(crate) fn covers(a: &RouteMatch, b: &RouteMatch) -> bool {
    let host = match (&a.host, &b.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(ha), Some(hb)) => {
            let (ha, hb) = (ha.to_ascii_lowercase(), hb.to_ascii_lowercase());
            ha == hb
                || ha
                    .strip_prefix('*')
                    .is_some_and(|suffix| hb.ends_with(suffix))
        }
    };
    let path = match (&a.path, &a.path_prefix) {
        (None, None) => true,
        (Some(pa), _) => b.path.as_deref() == Some(pa.as_str()),
        (None, Some(prefix)) => match (&b.path, &b.path_prefix) {
            (Some(p), _) | (None, Some(p)) => prefix_takes(prefix, p),
            (None, None) => false,
        },
    };
    let methods = a.methods.is_empty()
        || (!b.methods.is_empty() && b.methods.iter().all(|m| a.methods.contains(m)));
    let headers = a.headers.iter().all(|(name, value)| {
        b.headers
            .iter()
            .any(|(n, v)| n.eq_ignore_ascii_case(name) && (value == "*" || v == value))
    });
    host && path && methods && headers
}

/// `path_prefix: prefix` takes `path`: at a `/` boundary.
pub fn prefix_takes(prefix: &str, path: &str) -> bool {
    let prefix = prefix.strip_suffix('/').unwrap_or(prefix);
    match path.strip_prefix(prefix) {
        Some(rest) => rest.is_empty() || rest.starts_with('/') || prefix.is_empty(),
        None => false,
    }
}
