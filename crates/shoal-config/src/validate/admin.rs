//! `admin:` — who may drive the admin API: a token, and no API open to
//! other hosts without one.

use super::{tls, Checker};
use crate::error::ErrorKind;
use crate::model::{AdminRead, Config};

pub(super) fn admin(c: &mut Checker<'_>, config: &Config) {
    let a = &config.admin;
    if let Some(t) = &a.tls {
        tls::tls(c, "admin.tls", t);
    }
    if a.token.is_some() && a.token_file.is_some() {
        c.invalid(
            "admin.token_file",
            "and `admin.token` together: give the token one way".into(),
        );
    }
    if let Some(t) = &a.token {
        if t.trim().is_empty() {
            c.invalid(
                "admin.token",
                "is empty (an unset `${VAR}`?): every request would need an empty token".into(),
            );
        } else if t.trim().len() < 16 {
            c.invalid(
                "admin.token",
                format!(
                    "is {} characters; use at least 16 (e.g. `openssl rand -hex 24`)",
                    t.trim().len()
                ),
            );
        }
    }
    let has_token = a.token.is_some() || a.token_file.is_some();
    if a.read == AdminRead::Token && !has_token {
        c.report(
            ErrorKind::Missing,
            "admin.token",
            "is required with `admin.read: token`".into(),
        );
    }
    if !has_token && !a.listen.ip().is_loopback() {
        c.invalid(
            "admin.listen",
            format!(
                "is {}, which other hosts can reach, and there is no `admin.token`: anyone \
                 there could scale and reload shoal. Set `admin.token` (e.g. \
                 `token: ${{SHOAL_ADMIN_TOKEN}}`) or `admin.token_file`, or listen on 127.0.0.1",
                a.listen
            ),
        );
    }
}
