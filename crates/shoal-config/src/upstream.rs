//! `upstreams[].url`: `http://host:port` or `https://host:port`.

use std::net::Ipv6Addr;

use crate::model::UpstreamConfig;

impl UpstreamConfig {
    /// Host and port of `url`. The host is an IPv4 address, a host name, or
    /// an IPv6 address returned *without* its brackets (`http://[::1]:8080`
    /// gives `("::1", 8080)`), ready for `(host.as_str(), port)` lookups.
    ///
    /// The error says what is wrong with the URL, e.g.
    /// ``missing port: write `http://backend:PORT` ``.
    pub fn host_port(&self) -> Result<(String, u16), String> {
        parse_http_url(&self.url)
    }
}

pub(crate) fn parse_http_url(url: &str) -> Result<(String, u16), String> {
    if url.trim().is_empty() {
        return Err("must not be empty; expected `http://HOST:PORT` or `https://HOST:PORT`".into());
    }
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => ("http", rest),
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("https") => ("https", rest),
        Some((scheme, _)) => {
            return Err(format!(
                "unsupported scheme `{scheme}` in `{url}`; use `http://HOST:PORT` or `https://HOST:PORT`"
            ))
        }
        None => return Err(format!("missing `http://`: write `http://{url}` (or `https://{url}`)")),
    };
    // A single trailing slash is harmless; any other path is not proxied to.
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    if !tail.is_empty() && tail != "/" {
        return Err(format!(
            "must not have a path, query or fragment (got `{tail}`); write only `{scheme}://HOST:PORT`"
        ));
    }
    if authority.contains('@') {
        return Err(format!(
            "must not contain user info (`user@`); write only `{scheme}://HOST:PORT`"
        ));
    }
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let Some((ip, after)) = bracketed.split_once(']') else {
            return Err(format!("unclosed `[` in `{authority}`"));
        };
        if ip.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address `{ip}`"));
        }
        let Some(port) = after.strip_prefix(':') else {
            return Err(format!("missing port: write `{scheme}://[{ip}]:PORT`"));
        };
        (ip, port)
    } else {
        match authority.matches(':').count() {
            0 => return Err(format!("missing port: write `{scheme}://{authority}:PORT`")),
            1 => authority.split_once(':').unwrap_or((authority, "")),
            _ => {
                return Err(format!(
                "IPv6 addresses must be in brackets, like `{scheme}://[::1]:8080` (got `{authority}`)"
            ))
            }
        }
    };
    if host.is_empty() {
        return Err(format!("missing host: expected `{scheme}://HOST:PORT`"));
    }
    if !host.contains(':') && !is_valid_hostname(host) {
        return Err(format!("invalid host `{host}`"));
    }
    let port = match port.parse::<u16>() {
        Ok(0) | Err(_) => {
            return Err(format!(
                "invalid port `{port}`: expected a number from 1 to 65535"
            ))
        }
        Ok(p) => p,
    };
    Ok((host.to_string(), port))
}

/// Letters, digits, `-` and `_` in dot-separated labels; IPv4 addresses pass too.
fn is_valid_hostname(host: &str) -> bool {
    host.len() <= 253
        && host.trim_end_matches('.').split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                && !label.starts_with('-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(url: &str) -> Result<(String, u16), String> {
        UpstreamConfig {
            url: url.into(),
            weight: 1,
            protocol: Default::default(),
            tls: None,
        }
        .host_port()
    }

    #[test]
    fn accepts_ipv4_ipv6_and_names() {
        assert_eq!(hp("http://127.0.0.1:8080"), Ok(("127.0.0.1".into(), 8080)));
        assert_eq!(hp("http://[::1]:9000"), Ok(("::1".into(), 9000)));
        assert_eq!(
            hp("http://api.internal:80/"),
            Ok(("api.internal".into(), 80))
        );
        assert_eq!(hp("HTTP://my_svc:1"), Ok(("my_svc".into(), 1)));
    }

    #[test]
    fn says_what_is_wrong() {
        let err = |u| hp(u).unwrap_err();
        assert_eq!(hp("https://a:443"), Ok(("a".into(), 443)));
        assert_eq!(err("https://a"), "missing port: write `https://a:PORT`");
        assert_eq!(
            err("a:80"),
            "missing `http://`: write `http://a:80` (or `https://a:80`)"
        );
        assert_eq!(err("http://a"), "missing port: write `http://a:PORT`");
        assert_eq!(
            err("http://[::1]"),
            "missing port: write `http://[::1]:PORT`"
        );
        assert!(err("http://a:0").starts_with("invalid port `0`"));
        assert!(err("http://a:http").starts_with("invalid port `http`"));
        assert!(err("http://a:70000").starts_with("invalid port `70000`"));
        assert!(err("http://a:80/api").starts_with("must not have a path"));
        assert!(err("http://u:p@a:80").starts_with("must not contain user info"));
        assert!(err("http://::1:80").starts_with("IPv6 addresses must be in brackets"));
        assert!(err("http://[::g]:80").starts_with("invalid IPv6 address"));
        assert!(err("http://[::1:80").starts_with("unclosed `[`"));
        assert!(err("http://:80").starts_with("missing host"));
        assert!(err("http://a b:80").starts_with("invalid host"));
        assert!(err("ftp://a:21").starts_with("unsupported scheme `ftp`"));
        assert!(err("").starts_with("must not be empty"));
    }
}
