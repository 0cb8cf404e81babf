//! The primary cache key: `scheme://host/path?query` as the client sent
//! it (host lowercased), then the route's `cache.key` headers and cookies,
//! each on a line of its own. `GET` and `HEAD` share it (a `HEAD` is
//! answered from a stored `GET`). The URL comes first so that a purge by
//! URL or by prefix reads it back (`Key::url`).

use http::header::{self, HeaderMap, HeaderName};

/// The key's extra parts (`cache.key`), compiled.
#[derive(Debug, Clone, Default)]
pub struct KeyParts {
    pub headers: Vec<HeaderName>,
    pub cookies: Vec<String>,
}

/// `scheme://host` + `target`, with the extras of `parts`.
pub fn primary(scheme: &str, headers: &HeaderMap, target: &str, parts: &KeyParts) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut key = url_of(scheme, host, target);
    for name in &parts.headers {
        key.push('\n');
        key.push_str(name.as_str());
        key.push(':');
        join(
            &mut key,
            headers.get_all(name).iter().filter_map(|v| v.to_str().ok()),
        );
    }
    for name in &parts.cookies {
        key.push('\n');
        key.push_str("cookie ");
        key.push_str(name);
        key.push('=');
        if let Some(v) = cookie(headers, name) {
            key.push_str(v);
        }
    }
    key
}

/// `scheme://host` + `target`, the host lowercased: the whole key of a
/// route without `cache.key` extras.
pub fn url_of(scheme: &str, host: &str, target: &str) -> String {
    let mut key = String::with_capacity(scheme.len() + 3 + host.len() + target.len());
    key.push_str(scheme);
    key.push_str("://");
    key.extend(host.chars().map(|c| c.to_ascii_lowercase()));
    key.push_str(target);
    key
}

/// The URL part of a key.
pub fn url(key: &str) -> &str {
    key.split('\n').next().unwrap_or(key)
}

/// Values of several lines as one, `, `-joined, each trimmed.
pub fn join<'a>(out: &mut String, values: impl Iterator<Item = &'a str>) {
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(v.trim());
    }
}

/// The value of cookie `name` in the request's `Cookie` lines.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|line| line.split(';'))
        .find_map(|pair| {
            let (n, v) = pair.trim().split_once('=')?;
            (n.trim() == name).then_some(v.trim())
        })
}

/// The URL of `location` (a `Location` or `Content-Location` value) on
/// the same origin as `scheme://host`, as a key's URL; `None` for another
/// origin (RFC 9111 §4.4: only the same origin is invalidated).
pub fn same_origin(scheme: &str, host: &str, location: &str) -> Option<String> {
    if location.starts_with('/') && !location.starts_with("//") {
        return Some(format!(
            "{scheme}://{}{location}",
            host.to_ascii_lowercase()
        ));
    }
    let rest = location.strip_prefix(scheme)?.strip_prefix("://")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, "/"),
    };
    authority
        .eq_ignore_ascii_case(host)
        .then(|| format!("{scheme}://{}{path}", host.to_ascii_lowercase()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn url_first_then_headers_and_cookies() {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("Example.COM:8080"));
        h.append("accept-language", HeaderValue::from_static("fr"));
        h.append("accept-language", HeaderValue::from_static(" de"));
        h.insert(
            header::COOKIE,
            HeaderValue::from_static("a=1; locale=fr_FR; b=2"),
        );
        let parts = KeyParts {
            headers: vec![HeaderName::from_static("accept-language")],
            cookies: vec!["locale".into(), "none".into()],
        };
        let k = primary("http", &h, "/p?q=1", &parts);
        assert_eq!(
            k,
            "http://example.com:8080/p?q=1\naccept-language:fr, de\ncookie locale=fr_FR\ncookie none="
        );
        assert_eq!(url(&k), "http://example.com:8080/p?q=1");
        assert_eq!(
            primary("https", &h, "/", &KeyParts::default()),
            "https://example.com:8080/"
        );
    }

    #[test]
    fn only_the_same_origin() {
        assert_eq!(
            same_origin("http", "a.test", "/x").as_deref(),
            Some("http://a.test/x")
        );
        assert_eq!(
            same_origin("http", "a.test", "http://A.test/y?z").as_deref(),
            Some("http://a.test/y?z")
        );
        assert_eq!(same_origin("http", "a.test", "http://b.test/y"), None);
        assert_eq!(same_origin("http", "a.test", "https://a.test/y"), None);
        assert_eq!(same_origin("http", "a.test", "//b.test/y"), None);
    }
}
