//! Who may drive the admin API: with `admin.token` (or `token_file`) set,
//! the mutating endpoints (scale, reload) need `Authorization: Bearer
//! TOKEN`, and with `admin.read: token` every endpoint but `/health` and
//! `/ready` (probes) does too. The comparison takes the same time however
//! much of the token matches (`subtle`).

use std::sync::Arc;

use http::header::{HeaderMap, AUTHORIZATION};
use shoal_config::AdminConfig;
use subtle::ConstantTimeEq;

/// The token `admin` gives: `token`, or the first line of `token_file`.
pub fn read_token(admin: &AdminConfig) -> Result<Option<Arc<str>>, String> {
    if let Some(t) = &admin.token {
        return Ok(Some(t.trim().into()));
    }
    let Some(path) = &admin.token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("admin.token_file: cannot read `{}`: {e}", path.display()))?;
    let token = text.lines().next().unwrap_or("").trim();
    if token.is_empty() {
        return Err(format!("admin.token_file: `{}` is empty", path.display()));
    }
    Ok(Some(token.into()))
}

/// The request carries `token` as its bearer token.
pub fn authorized(headers: &HeaderMap, token: &str) -> bool {
    let Some(given) = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
    else {
        return false;
    };
    // `ct_eq` on slices of different lengths is false without comparing;
    // the length of the token is not a secret worth more than that.
    bool::from(given.trim().as_bytes().ct_eq(token.as_bytes()))
}

/// The config check: `token_file` can be read.
pub fn check(config: &shoal_config::Config) -> Vec<(String, String)> {
    match read_token(&config.admin) {
        Err(e) => {
            let (key, message) = e.split_once(": ").unwrap_or(("admin.token_file", &e));
            vec![(key.to_string(), message.to_string())]
        }
        Ok(_) => Vec::new(),
    }
}

/// A token sent in clear: `admin.token` on a listener other hosts reach,
/// without `admin.tls`. Allowed (a private network, a TLS proxy in front),
/// but `shoal check` and the start say so, as `(key path, warning)`.
pub fn clear_text(config: &shoal_config::Config) -> Option<(String, String)> {
    let a = &config.admin;
    let has_token = a.token.is_some() || a.token_file.is_some();
    if !has_token || a.tls.is_some() || a.listen.ip().is_loopback() {
        return None;
    }
    let key = match a.token_file {
        Some(_) => "admin.token_file",
        None => "admin.token",
    };
    Some((
        key.to_string(),
        format!(
            "is sent over plain HTTP to {}, which other hosts can reach: the token travels \
             in clear, so anyone on the network path can read it and drive shoal. Set \
             `admin.tls` (HTTPS), or listen on 127.0.0.1",
            a.listen
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_bearer_token_passes() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(AUTHORIZATION, v.parse().unwrap());
            h
        };
        let token = "0123456789abcdef0123";
        assert!(authorized(&with("Bearer 0123456789abcdef0123"), token));
        assert!(!authorized(&with("Bearer 0123456789abcdef012"), token));
        assert!(!authorized(&with("Bearer 0123456789abcdef0124"), token));
        assert!(!authorized(&with("Basic 0123456789abcdef0123"), token));
        assert!(!authorized(&HeaderMap::new(), token));
    }
}
