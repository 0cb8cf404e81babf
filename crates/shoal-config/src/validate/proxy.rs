//! `upstreams:`, `balance:`, `proxy:` and `limits:` — where requests go and
//! how they get there.

use super::{Checker, MAX_WAIT};
use crate::error::ErrorKind;
use crate::model::{
    Algorithm, BalanceConfig, LimitsConfig, ProxyConfig, UpstreamConfig, Upstreams,
};
use crate::units::format_size;

/// The largest request body kept in memory for a retry.
const MAX_REPLAY_BODY: u64 = 64 << 20;
const MAX_WEIGHT: u32 = 1000;
const MAX_RETRIES: u32 = 10;
/// hyper's HTTP/1 read buffer, which bounds the request head, cannot be
/// smaller than 8KiB.
const MIN_HEADER_SIZE: u64 = 8 << 10;
const MAX_HEADER_SIZE: u64 = 1 << 20;

pub(super) fn upstreams(c: &mut Checker<'_>, upstreams: &Upstreams) {
    match upstreams {
        Upstreams::List(list) => servers(c, "upstreams", list),
        Upstreams::Groups(groups) => {
            for (name, group) in groups {
                let at = format!("upstreams.{name}");
                if !super::routes::plain_name(name) {
                    c.invalid(
                        &at,
                        format!("`{name}` is not a usable name: use letters, digits, `-` and `_`"),
                    );
                }
                // Written as a bare list, or with `servers:`.
                let list = if c.lines.contains(&format!("{at}.servers")) {
                    format!("{at}.servers")
                } else {
                    at.clone()
                };
                if group.servers.is_empty()
                    && group.dns.is_none()
                    && group.file.is_none()
                    && !group.registry
                {
                    c.invalid(
                        &list,
                        "is empty; list at least one `- url: http://HOST:PORT`, or find them \
                         with `dns:`, `file:` or `registry: true`"
                            .into(),
                    );
                }
                if let Some(dns) = &group.dns {
                    discovery_dns(c, &format!("{at}.dns"), dns);
                }
                if let Some(file) = &group.file {
                    if file.interval.is_zero() {
                        c.invalid(
                            &format!("{at}.file.interval"),
                            "must be greater than 0".into(),
                        );
                    }
                }
                servers(c, &list, &group.servers);
                if let Some(b) = &group.balance {
                    balance(c, &format!("{at}.balance"), b);
                }
                if let Some(h) = &group.health {
                    super::health::health(c, &format!("{at}.health"), h);
                }
                if let Some(s) = &group.sticky {
                    super::sticky::sticky(c, &format!("{at}.sticky"), s);
                }
            }
        }
    }
}

/// `dns:`: a port for A/AAAA names, none with SRV (its records carry it);
/// intervals that make sense.
fn discovery_dns(c: &mut Checker<'_>, at: &str, dns: &crate::model::DnsDiscovery) {
    match (dns.srv, dns.port) {
        (false, None) => c.report(
            ErrorKind::Missing,
            &format!("{at}.port"),
            "is required: A/AAAA records carry no port (or set `srv: true` for SRV records, which do)"
                .into(),
        ),
        (true, Some(_)) => c.invalid(
            &format!("{at}.port"),
            "does not go with `srv: true`: SRV records give each backend's port".into(),
        ),
        _ => {}
    }
    if dns.name.trim().is_empty() {
        c.invalid(&format!("{at}.name"), "is empty".into());
    }
    if dns.min_interval.is_zero() {
        c.invalid(
            &format!("{at}.min_interval"),
            "must be greater than 0".into(),
        );
    }
    if dns.interval < dns.min_interval {
        c.invalid(
            &format!("{at}.interval"),
            "is shorter than `min_interval`: it is the longest time between two resolutions".into(),
        );
    }
    if dns.timeout.is_zero() {
        c.invalid(&format!("{at}.timeout"), "must be greater than 0".into());
    }
}

/// A backend's key path as the file writes it: `upstreams.api[0]` is
/// `upstreams.api.servers[0]` when the group is written in full.
pub(super) fn as_written(c: &Checker<'_>, key: &str) -> String {
    let Some((group, index)) = key
        .strip_prefix("upstreams.")
        .and_then(|rest| rest.split_once('['))
    else {
        return key.to_string();
    };
    if c.lines.contains(&format!("upstreams.{group}.servers")) {
        format!("upstreams.{group}.servers[{index}")
    } else {
        key.to_string()
    }
}

fn servers(c: &mut Checker<'_>, at: &str, list: &[UpstreamConfig]) {
    for (i, upstream) in list.iter().enumerate() {
        if let Err(why) = upstream.host_port() {
            c.invalid(&format!("{at}[{i}].url"), why);
        }
        c.range(&format!("{at}[{i}].weight"), upstream.weight, 1, MAX_WEIGHT);
    }
}

/// `balance.hash_key` belongs to `algorithm: hash` and to nothing else.
pub(super) fn balance(c: &mut Checker<'_>, at: &str, b: &BalanceConfig) {
    let hash_key = format!("{at}.hash_key");
    let hash_key = hash_key.as_str();
    match (b.algorithm, &b.hash_key) {
        (Algorithm::Hash, None) => c.report(
            ErrorKind::Missing,
            hash_key,
            "is required with `algorithm: hash`: what to hash, as `header:NAME`, \
             `cookie:NAME`, `query:NAME` or `path` (e.g. `hash_key: header:X-User-Id`)"
                .into(),
        ),
        (Algorithm::Hash, Some(_)) | (_, None) => {}
        (Algorithm::IpHash, Some(_)) => c.invalid(
            hash_key,
            "only applies to `algorithm: hash`; `ip_hash` always hashes the client's \
             address (remove `hash_key`, or use `algorithm: hash`)"
                .into(),
        ),
        (other, Some(_)) => c.invalid(
            hash_key,
            format!(
                "only applies to `algorithm: hash` (the algorithm is `{}`); remove it, \
                 or set `algorithm: hash`",
                other.as_str()
            ),
        ),
    }
}

/// Timeouts, passive health, retries and the replay buffer.
pub(super) fn proxy(c: &mut Checker<'_>, proxy: &ProxyConfig) {
    if proxy.connect_timeout.is_zero() {
        c.invalid(
            "proxy.connect_timeout",
            "must be greater than 0 (got 0s)".into(),
        );
    }
    for (key, value) in [
        (
            "proxy.response_header_timeout",
            proxy.response_header_timeout,
        ),
        ("proxy.read_timeout", proxy.read_timeout),
        ("proxy.send_timeout", proxy.send_timeout),
        ("proxy.fail_timeout", proxy.fail_timeout),
    ] {
        if value.is_zero() {
            c.invalid(key, "must be greater than 0 (got 0s)".into());
        }
        c.at_most(key, value, MAX_WAIT);
    }
    c.at_most("proxy.max_ejection_time", proxy.max_ejection_time, MAX_WAIT);
    c.not_longer(
        "proxy.fail_timeout",
        proxy.fail_timeout,
        "proxy.max_ejection_time",
        proxy.max_ejection_time,
    );
    c.at_most("proxy.slow_start", proxy.slow_start, MAX_WAIT);
    if proxy.replay_body_size > MAX_REPLAY_BODY {
        c.invalid(
            "proxy.replay_body_size",
            format!(
                "must be at most {} (got {}): the body is held in memory",
                format_size(MAX_REPLAY_BODY),
                format_size(proxy.replay_body_size)
            ),
        );
    }
    for (i, status) in proxy.fail_statuses.iter().enumerate() {
        if !(400..=599).contains(status) {
            c.invalid(
                &format!("proxy.fail_statuses[{i}]"),
                format!("must be an error status from 400 to 599 (got {status})"),
            );
        }
    }
    if proxy.retries > MAX_RETRIES {
        c.invalid(
            "proxy.retries",
            format!("must be at most {MAX_RETRIES} (got {})", proxy.retries),
        );
    }
}

pub(super) fn limits(c: &mut Checker<'_>, l: &LimitsConfig) {
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
