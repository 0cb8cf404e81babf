//! Finding one cookie in a request's `Cookie` headers (RFC 6265 §4.2:
//! `name=value` pairs separated by `;`), without allocating. A client may
//! send several `Cookie` lines (HTTP/2 splits them); the first pair with
//! the name wins, as most servers read it.

/// The value of cookie `name` among `headers` (each a `Cookie` value), if
/// there is one; quotes around it are taken off.
pub fn find<'a>(headers: impl Iterator<Item = &'a [u8]>, name: &[u8]) -> Option<&'a [u8]> {
    for header in headers {
        for pair in header.split(|&b| b == b';') {
            let pair = trim(pair);
            let Some(eq) = pair.iter().position(|&b| b == b'=') else {
                continue;
            };
            if trim(&pair[..eq]) == name {
                let value = trim(&pair[eq + 1..]);
                let value = match value {
                    [b'"', inner @ .., b'"'] => inner,
                    v => v,
                };
                return Some(value);
            }
        }
    }
    None
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |i| i + 1);
    &s[start..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(header: &str, name: &str) -> Option<String> {
        find(std::iter::once(header.as_bytes()), name.as_bytes())
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }

    #[test]
    fn finds_the_named_pair() {
        assert_eq!(one("s=1", "s").as_deref(), Some("1"));
        assert_eq!(one("a=1; s=2; b=3", "s").as_deref(), Some("2"));
        assert_eq!(one("a=1;s=2", "s").as_deref(), Some("2"));
        assert_eq!(one("  s = \"quoted\" ;x=1", "s").as_deref(), Some("quoted"));
        assert_eq!(one("s=", "s").as_deref(), Some(""));
        assert_eq!(one("s=1; s=2", "s").as_deref(), Some("1"));
        // Names are exact: no prefix, no case folding.
        assert_eq!(one("ss=1; S=2; xs=3", "s"), None);
        assert_eq!(one("s", "s"), None);
        assert_eq!(one("", "s"), None);
        assert_eq!(one(";;=;", "s"), None);
    }

    #[test]
    fn looks_through_every_cookie_header() {
        let lines: [&[u8]; 2] = [b"a=1", b"b=2; s=v"];
        assert_eq!(find(lines.into_iter(), b"s"), Some(&b"v"[..]));
        assert_eq!(find(std::iter::empty(), b"s"), None);
    }
}
