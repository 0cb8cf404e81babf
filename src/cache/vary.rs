//! Secondary keys (RFC 9111 §4.1): a response with `Vary` is stored per
//! the values of the request headers it names. The store remembers, per
//! primary key, the names the last response gave; a lookup appends those
//! headers' values (lines joined, whitespace around commas trimmed, names
//! lowercased and sorted) to the primary key. `Vary: *` never matches:
//! such responses are not stored (`policy::storable`).

use http::header::{self, HeaderMap, HeaderName};

/// The header names a response varies on, lowercased, sorted, without
/// duplicates; empty without `Vary`.
pub fn names(resp: &HeaderMap) -> Vec<HeaderName> {
    let mut names: Vec<HeaderName> = resp
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    names.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    names.dedup();
    names
}

/// The secondary key: `primary`, then each named header's value in the
/// request (absent and empty differ).
pub fn secondary(primary: &str, names: &[HeaderName], req: &HeaderMap) -> String {
    let mut key = String::from(primary);
    for name in names {
        key.push_str("\nvary ");
        key.push_str(name.as_str());
        let mut values = req.get_all(name).iter().peekable();
        if values.peek().is_none() {
            key.push('!');
            continue;
        }
        key.push(':');
        let mut first = true;
        for v in values {
            let Ok(v) = v.to_str() else { continue };
            for part in v.split(',') {
                if !first {
                    key.push(',');
                }
                first = false;
                key.push_str(part.trim());
            }
        }
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn h(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in lines {
            m.append(*n, HeaderValue::from_static(v));
        }
        m
    }

    #[test]
    fn names_are_sorted_lowercase_and_unique() {
        let got = names(&h(&[
            ("vary", "Accept-Encoding, accept"),
            ("vary", "ACCEPT"),
        ]));
        assert_eq!(got, ["accept", "accept-encoding"]);
        assert!(names(&HeaderMap::new()).is_empty());
    }

    #[test]
    fn values_decide_the_variant() {
        let n = names(&h(&[("vary", "accept-encoding")]));
        let gzip = secondary("k", &n, &h(&[("accept-encoding", "gzip, br")]));
        assert_eq!(
            gzip,
            secondary("k", &n, &h(&[("accept-encoding", "gzip,br")]))
        );
        assert_eq!(
            gzip,
            secondary(
                "k",
                &n,
                &h(&[("accept-encoding", "gzip"), ("accept-encoding", "br")])
            )
        );
        assert_ne!(gzip, secondary("k", &n, &h(&[("accept-encoding", "br")])));
        // Absent is not empty.
        assert_ne!(
            secondary("k", &n, &HeaderMap::new()),
            secondary("k", &n, &h(&[("accept-encoding", "")]))
        );
        assert_eq!(secondary("k", &[], &HeaderMap::new()), "k");
    }
}
