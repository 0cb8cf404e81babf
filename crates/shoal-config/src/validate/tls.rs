//! `tls:` — its shape; the files are read by shoal's TLS module.

use super::Checker;
use crate::error::ErrorKind;
use crate::model::TlsConfig;

/// The shape of `tls:`: one pair (`cert` + `key`) or a `certificates`
/// list, not both; no empty path; a sensible ALPN list. Whether the files
/// can be read and hold a matching certificate and key is checked by the
/// caller of `load_str_checked` (shoal's TLS module), which reads them.
pub(super) fn tls(c: &mut Checker<'_>, at: &str, t: &TlsConfig) {
    const FORMS: &str = "set `cert` and `key` (PEM files) for one certificate, or \
                         `certificates: [{cert: ..., key: ...}, ...]` for several chosen by SNI";
    let pair = t.cert.is_some() || t.key.is_some();
    let list = !t.certificates.is_empty() || c.lines.contains(&format!("{at}.certificates"));
    if pair && list {
        c.invalid(
            &format!("{at}.certificates"),
            format!(
                "cannot be used together with `{at}.cert`/`{at}.key`: list every certificate \
                 under `certificates` (the first is the default), or use `cert` and `key` alone"
            ),
        );
    } else if !pair && !list {
        c.report(
            ErrorKind::Missing,
            at,
            format!("has no certificate: {FORMS}"),
        );
    } else if list && t.certificates.is_empty() {
        c.invalid(
            &format!("{at}.certificates"),
            "is empty; list at least one `{cert: FILE, key: FILE}`".into(),
        );
    }
    match (&t.cert, &t.key) {
        (Some(_), None) => c.report(
            ErrorKind::Missing,
            &format!("{at}.key"),
            format!("is required with `{at}.cert`: the PEM file of the certificate's private key"),
        ),
        (None, Some(_)) => c.report(
            ErrorKind::Missing,
            &format!("{at}.cert"),
            format!("is required with `{at}.key`: the PEM file of the certificate (chain)"),
        ),
        _ => {}
    }
    for f in t.files_at(at) {
        for (at, path) in [(&f.cert_at, f.cert), (&f.key_at, f.key)] {
            if path.as_os_str().is_empty() {
                c.invalid(at, "must not be empty: the path of a PEM file".into());
            }
        }
    }
    if t.alpn.is_empty() {
        c.invalid(
            &format!("{at}.alpn"),
            "must not be empty: list `h2`, `http/1.1` or both (in order of preference)".into(),
        );
    }
    for (i, a) in t.alpn.iter().enumerate() {
        if t.alpn[..i].contains(a) {
            c.invalid(
                &format!("{at}.alpn[{i}]"),
                format!("`{}` is listed twice", a.as_str()),
            );
        }
    }
}
