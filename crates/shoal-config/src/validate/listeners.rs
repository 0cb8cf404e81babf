//! The public listeners (`listen` + `tls`, or `listeners:`) and the admin
//! listener: addresses that do not collide, and what each listener may
//! combine (`tls`, `redirect_https`, `proxy_protocol`).

use std::net::SocketAddr;

use super::{tls, Checker};
use crate::model::{default_listen, Config, ProxyProtocol};

pub(super) fn listeners(c: &mut Checker<'_>, config: &Config) {
    let list = &config.listeners;
    if list.is_empty() {
        if c.lines.contains("listeners") {
            c.invalid(
                "listeners",
                "is empty; list at least one `- listen: IP:PORT`, or remove it and use `listen`"
                    .into(),
            );
        }
        if let Some(t) = &config.tls {
            tls::tls(c, "tls", t);
        }
        collide(
            c,
            ("listen", config.listen),
            ("admin.listen", config.admin.listen),
        );
        return;
    }
    if config.listen != default_listen() {
        c.invalid(
            "listen",
            "cannot be used together with `listeners`: `listen` is the shorthand for one \
             listener; move it into `listeners` as `- listen: ...`"
                .into(),
        );
    }
    if config.tls.is_some() {
        c.invalid(
            "tls",
            "cannot be used together with `listeners`: give the listener that serves TLS \
             its own `tls` (`listeners[N].tls`)"
                .into(),
        );
    }
    let first_tls = list.iter().position(|l| l.tls.is_some());
    for (i, l) in list.iter().enumerate() {
        let at = format!("listeners[{i}]");
        if let Some(t) = &l.tls {
            tls::tls(c, &format!("{at}.tls"), t);
        }
        if l.redirect_https {
            if l.tls.is_some() {
                c.invalid(
                    &format!("{at}.redirect_https"),
                    format!(
                        "cannot be used together with `{at}.tls`: a listener that redirects \
                         to HTTPS serves plain HTTP; remove one of them"
                    ),
                );
            } else if first_tls.is_none() {
                c.invalid(
                    &format!("{at}.redirect_https"),
                    "needs a listener with `tls` to redirect to, and none has one; add \
                     `tls` to another listener, or remove `redirect_https`"
                        .into(),
                );
            }
        }
        if l.proxy_protocol != ProxyProtocol::Off && config.trusted_proxies.is_empty() {
            c.invalid(
                &format!("{at}.proxy_protocol"),
                "needs `trusted_proxies`: only a peer listed there may send a PROXY \
                 header, so with none every connection would be refused; list the \
                 balancer in front (`trusted_proxies: [10.0.0.5]`), or set \
                 `proxy_protocol: off`"
                    .into(),
            );
        }
        match &l.name {
            Some(name) if name.trim().is_empty() => {
                c.invalid(&format!("{at}.name"), "must not be empty".into());
            }
            Some(name) => {
                if let Some(j) = list[..i].iter().position(|o| o.name.as_ref() == Some(name)) {
                    c.invalid(
                        &format!("{at}.name"),
                        format!("`{name}` is already the name of `listeners[{j}]`"),
                    );
                }
            }
            None => {}
        }
        for (j, other) in list[..i].iter().enumerate() {
            collide(
                c,
                (&format!("listeners[{j}].listen"), other.listen),
                (&format!("{at}.listen"), l.listen),
            );
        }
        collide(
            c,
            (&format!("{at}.listen"), l.listen),
            ("admin.listen", config.admin.listen),
        );
    }
}

/// Two listen addresses that would take the same port on a shared
/// address (port 0 excepted: the OS picks a free port for each).
fn collide(c: &mut Checker<'_>, one: (&str, SocketAddr), two: (&str, SocketAddr)) {
    let ((one_at, one), (two_at, two)) = (one, two);
    if one.port() == 0 || one.port() != two.port() {
        return;
    }
    let overlap = one.ip() == two.ip() || one.ip().is_unspecified() || two.ip().is_unspecified();
    if !overlap {
        return;
    }
    // Point at the second key when it was written, else at the first.
    let (path, other, mine, theirs) = if c.lines.contains(two_at) {
        (two_at, one_at, two, one)
    } else {
        (one_at, two_at, one, two)
    };
    let message = if one == two {
        format!("must differ from `{other}` (both are {one})")
    } else {
        format!(
            "overlaps `{other}`: {mine} and {theirs} both take port {}",
            one.port()
        )
    };
    c.invalid(path, message);
}
