//! What request and response heads share: header-value tokens, the
//! headers a `Connection` header names (hop-by-hop, removed on the way),
//! and writing a header line; a route's header rules on a written head.

use crate::routes::HeaderEdits;

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

/// `HTTP/1.1 STATUS REASON` and its line end: shoal's own answers.
pub(crate) fn status_line(out: &mut Vec<u8>, status: http::StatusCode, reason: &str) {
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[inline]
pub(crate) fn header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A route's header rules on a head this engine wrote (`name: value`
/// lines, ending in an empty line): the lines `edits` drops taken out, its
/// own written before the end — as `HeaderEdits::apply` does on hyper's
/// path. Only for a route with rules, so a second pass over the head.
pub(super) fn edit_head(head: &mut Vec<u8>, edits: &HeaderEdits) {
    let mut out = Vec::with_capacity(head.len() + 128);
    let mut lines = head.split_inclusive(|&b| b == b'\n');
    if let Some(first) = lines.next() {
        out.extend_from_slice(first);
    }
    for line in lines {
        if line == b"\r\n" {
            break;
        }
        let name = line.split(|&b| b == b':').next().unwrap_or(line);
        if !edits.drops(name) {
            out.extend_from_slice(line);
        }
    }
    for (name, value) in edits.lines() {
        header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    *head = out;
}

/// More header lines (`write` appends them, each ending in CRLF) at the
/// end of the head that starts `msg` — a head alone, or a whole answer
/// with its body after the head.
pub(super) fn add_lines(msg: &mut Vec<u8>, write: impl FnOnce(&mut Vec<u8>)) {
    let Some(end) = msg.windows(4).position(|w| w == b"\r\n\r\n") else {
        return;
    };
    let rest = msg.split_off(end + 2);
    write(msg);
    msg.extend_from_slice(&rest);
}

#[cfg(test)]
mod edit_tests {
    use super::*;

    #[test]
    fn lines_go_at_the_end_of_the_head_before_a_body() {
        let mut msg = b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\n\r\nbody".to_vec();
        add_lines(&mut msg, |o| o.extend_from_slice(b"x-a: 1\r\n"));
        assert_eq!(
            msg,
            b"HTTP/1.1 200 OK\r\ncontent-length: 4\r\nx-a: 1\r\n\r\nbody"
        );
    }

    #[test]
    fn rules_edit_a_written_head() {
        let rules: shoal_config::HeaderRules =
            serde_yaml_ng::from_str("{set: {x-a: '1'}, add: {x-b: '2'}, remove: [x-c]}").unwrap();
        let mut head =
            b"GET / HTTP/1.1\r\nX-A: old\r\nx-b: old\r\nX-C: gone\r\nhost: h\r\n\r\n".to_vec();
        edit_head(&mut head, &HeaderEdits::new(&rules));
        assert_eq!(
            String::from_utf8(head).unwrap(),
            "GET / HTTP/1.1\r\nx-b: old\r\nhost: h\r\nx-a: 1\r\nx-b: 2\r\n\r\n"
        );
    }
}
