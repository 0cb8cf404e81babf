//! What request and response heads share: header-value tokens, the
//! headers a `Connection` header names (hop-by-hop, removed on the way),
//! and writing a header line.

/// `Connection` may name this many headers; more is the caller's to
/// refuse (a request goes to hyper, a response is a 502).
const MAX_NAMED: usize = 8;

/// The comma-separated tokens of a header value, trimmed, empty ones skipped.
pub(super) fn tokens(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|t| !t.is_empty())
}

/// The header names a `Connection` header lists (its options `close`,
/// `keep-alive` and, on requests, `upgrade` are the caller's to read first).
pub(super) struct ConnectionNamed<'a> {
    names: [&'a [u8]; MAX_NAMED],
    len: usize,
}

impl<'a> ConnectionNamed<'a> {
    pub(super) fn new() -> Self {
        ConnectionNamed {
            names: [&[]; MAX_NAMED],
            len: 0,
        }
    }

    /// Add a named header; false when there are too many.
    pub(super) fn push(&mut self, name: &'a [u8]) -> bool {
        if self.len == MAX_NAMED {
            return false;
        }
        self.names[self.len] = name;
        self.len += 1;
        true
    }

    /// Whether `name` is one of them (so not passed on).
    pub(super) fn contains(&self, name: &[u8]) -> bool {
        self.names[..self.len]
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
    }
}

#[inline]
pub(crate) fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}
