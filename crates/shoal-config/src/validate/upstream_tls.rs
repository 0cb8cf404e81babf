//! `upstreams[].tls`, `app.tls` — the shape of TLS to backends; the files
//! are read by shoal's TLS module (`tls::client::check`).

use super::Checker;
use crate::error::ErrorKind;
use crate::model::{Config, UpstreamTlsConfig};

pub(super) fn backend_tls(c: &mut Checker<'_>, config: &Config) {
    for (key, u) in config.upstreams.keyed() {
        let at = format!("{}.tls", super::proxy::as_written(c, &key));
        if let Some(t) = &u.tls {
            if !u.is_https() && u.host_port().is_ok() {
                c.invalid(
                    &at,
                    format!(
                        "only applies to an `https://` upstream (the URL is `{}`); \
                         write `https://` in `url`, or remove `tls`",
                        u.url
                    ),
                );
            }
            block(c, &at, t);
        }
    }
    for (name, app) in config.all_apps() {
        if let Some(t) = &app.tls {
            let at = match config.app {
                Some(_) => "app.tls".to_string(),
                None => format!("apps.{name}.tls"),
            };
            block(c, &at, t);
        }
    }
}

/// One block: `cert` and `key` together, no empty path or name.
fn block(c: &mut Checker<'_>, at: &str, t: &UpstreamTlsConfig) {
    match (&t.cert, &t.key) {
        (Some(_), None) => c.report(
            ErrorKind::Missing,
            &format!("{at}.key"),
            format!(
                "is required with `{at}.cert`: the PEM file of the client certificate's private key"
            ),
        ),
        (None, Some(_)) => c.report(
            ErrorKind::Missing,
            &format!("{at}.cert"),
            format!("is required with `{at}.key`: the PEM file of the client certificate (chain)"),
        ),
        _ => {}
    }
    for (key, path) in [("ca", &t.ca), ("cert", &t.cert), ("key", &t.key)] {
        if path.as_ref().is_some_and(|p| p.as_os_str().is_empty()) {
            c.invalid(
                &format!("{at}.{key}"),
                "must not be empty: the path of a PEM file".into(),
            );
        }
    }
    if t.server_name
        .as_deref()
        .is_some_and(|n| n.trim().is_empty())
    {
        c.invalid(
            &format!("{at}.server_name"),
            "must not be empty: the name the backend's certificate carries (leave it out for \
             the URL's host)"
                .into(),
        );
    }
}
