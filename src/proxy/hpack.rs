//! What HTTP/2's header compression should not remember.
//!
//! HPACK (RFC 7541) keeps, per connection, a table of the header fields
//! sent so far, so that a field sent again costs a byte or two. A value
//! that is new on every response (the request id, a rate limit's
//! remaining count and reset) never repeats: put in the table, it only
//! pushes out the entries that do repeat, and hyper's encoder compares it
//! with every earlier value of the same name first (about 5 % of the
//! instructions of an h2c request, by callgrind). These values go
//! out as literals that are never indexed (§6.2.3), which is what the
//! encoder does with a value marked sensitive; HTTP/1.1 ignores the mark.

use http::HeaderMap;

use super::request_id::X_REQUEST_ID;
use crate::ratelimit::note::{REMAINING, RESET};

/// Mark the per-response values of `headers` as not to be indexed. One
/// pass over the few fields of a response costs less than a hashed lookup
/// of each name.
pub fn never_index_per_response_values(headers: &mut HeaderMap) {
    for (name, value) in headers.iter_mut() {
        if name == X_REQUEST_ID || name == REMAINING || name == RESET {
            value.set_sensitive(true);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn only_the_per_response_values_are_marked() {
        let mut h = HeaderMap::new();
        h.insert(&X_REQUEST_ID, HeaderValue::from_static("abc"));
        h.insert(&REMAINING, HeaderValue::from_static("9"));
        h.insert(&RESET, HeaderValue::from_static("1"));
        h.insert("ratelimit-limit", HeaderValue::from_static("10"));
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        never_index_per_response_values(&mut h);
        let marked: Vec<&str> = h
            .iter()
            .filter(|(_, v)| v.is_sensitive())
            .map(|(n, _)| n.as_str())
            .collect();
        assert_eq!(
            marked,
            ["x-request-id", "ratelimit-remaining", "ratelimit-reset"]
        );
        assert_eq!(h[&X_REQUEST_ID], "abc");
    }
}
