//! A backend's response head: parsed in place, its body's framing decided
//! (RFC 9112 §6.3), and written out for the client: hop-by-hop and
//! `Connection`-named headers removed, `X-Request-Id` set, `Connection:
//! close` when the client's connection ends after it.

use super::head::{header, tokens, ConnectionNamed};
use super::request::RequestId;
use crate::proxy::headers::{rule, Rule};

/// Header lines a response may have; more is a 502.
const MAX_HEADERS: usize = 128;
/// Header lines most responses fit in (nginx sends 6, a typical app 10–20).
const FEW_HEADERS: usize = 32;

/// How the response body ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// HEAD, 204, 304: nothing follows the head.
    None,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding` ending in `chunked`: passed through as it is,
    /// trailers included, while `chunked::Tracker` finds its end.
    Chunked,
    /// Neither: the body ends when the backend closes. The client's
    /// connection closes after it too.
    Close,
}

pub struct ResponseHead {
    /// Bytes of the backend's buffer the head took.
    pub len: usize,
    pub status: u16,
    pub framing: Framing,
    /// The backend's connection may carry another request afterwards.
    pub reusable: bool,
    /// The client's connection ends after this response.
    pub close_client: bool,
}

pub enum Parsed<T = ResponseHead> {
    Partial,
    /// A `1xx` other than 101, this long: skipped, as hyper's client does.
    Informational(usize),
    Ready(T),
    Invalid(&'static str),
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Name {
    Other,
    Drop,
    ContentLength,
    TransferEncoding,
    Connection,
}

fn classify(name: &[u8]) -> Name {
    match rule(name) {
        Rule::Connection => Name::Connection,
        Rule::ContentLength => Name::ContentLength,
        Rule::TransferEncoding => Name::TransferEncoding,
        // Hop-by-hop; the request's own id is written instead.
        Rule::Te | Rule::Upgrade | Rule::HopByHop | Rule::RequestId => Name::Drop,
        _ => Name::Other,
    }
}

/// Add one `Content-Length` value to `seen`: one number, or a comma list of
/// the same number (RFC 9110 §8.6); false when it is not, or differs from an
/// earlier line.
fn parse_length(value: &[u8], seen: &mut Option<u64>) -> bool {
    for t in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
        if t.is_empty() || t.len() > 19 || !t.iter().all(u8::is_ascii_digit) {
            return false;
        }
        let n = t.iter().fold(0u64, |n, d| n * 10 + u64::from(d - b'0'));
        match seen {
            Some(prev) if *prev != n => return false,
            _ => *seen = Some(n),
        }
    }
    true
}

/// Parse the response head at the start of `buf`; when complete, write the
/// client's head into `out` (cleared first). `head_only`: the request was
/// HEAD. `client_keep_alive`: the client's connection may stay open as far
/// as the request and the listener are concerned.
pub fn prepare(
    buf: &[u8],
    head_only: bool,
    client_keep_alive: bool,
    request_id: &RequestId,
    out: &mut Vec<u8>,
) -> Parsed {
    with_head(buf, head_only, |head| {
        let close_client = !client_keep_alive || head.framing == Framing::Close;
        let reason = head.reason.filter(|r| !r.is_empty()).or_else(|| {
            http::StatusCode::from_u16(head.status)
                .ok()
                .and_then(|s| s.canonical_reason())
        });
        write_head(out, (head.status, reason.unwrap_or("Unknown")), &head);
        header(out, b"x-request-id", request_id.as_bytes());
        if close_client {
            out.extend_from_slice(b"connection: close\r\n");
        }
        out.extend_from_slice(b"\r\n");
        Ok(ResponseHead {
            len: head.len,
            status: head.status,
            framing: head.framing,
            reusable: head.reusable,
            close_client,
        })
    })
}

/// A response head for hyper's path (`upstream.rs`: a request hyper
/// serves, sent on a raw socket): status and headers as `http` types, by
/// the same rules as [`prepare`]'s head. hyper's server frames the body
/// itself, so `Transfer-Encoding` never stays.
pub struct HyperHead {
    /// Bytes of the backend's buffer the head took.
    pub len: usize,
    pub status: http::StatusCode,
    /// The backend's reason phrase, when it is not the status's usual one
    /// (hyper's HTTP/1.1 server writes it back; HTTP/2 has none).
    pub reason: Option<hyper::ext::ReasonPhrase>,
    pub headers: http::HeaderMap,
    pub framing: Framing,
    /// The backend's connection may carry another request afterwards.
    pub reusable: bool,
}

/// Parse the response head at the start of `buf` for hyper's path.
pub fn parse_for_hyper(buf: &[u8], head_only: bool) -> Parsed<HyperHead> {
    with_head(buf, head_only, |head| {
        let status =
            http::StatusCode::from_u16(head.status).map_err(|_| "status code above 999")?;
        let mut headers = http::HeaderMap::with_capacity(head.headers.len());
        for (h, kind) in head.headers.iter().zip(&head.kinds) {
            if !kept(*kind, h.name.as_bytes(), &head, false) {
                continue;
            }
            let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(h.name.as_bytes()),
                http::HeaderValue::from_bytes(h.value),
            ) else {
                return Err("a header name or value that is not valid");
            };
            headers.append(name, value);
        }
        let reason = head
            .reason
            .filter(|r| !r.is_empty() && Some(*r) != status.canonical_reason())
            .and_then(|r| hyper::ext::ReasonPhrase::try_from(r.as_bytes()).ok());
        Ok(HyperHead {
            len: head.len,
            status,
            reason,
            headers,
            framing: head.framing,
            reusable: head.reusable,
        })
    })
}

/// A parsed head, its headers classified and its framing decided: what
/// both kinds of head are made from.
struct Head<'h, 'b> {
    len: usize,
    status: u16,
    reason: Option<&'b str>,
    headers: &'h [httparse::Header<'b>],
    kinds: [Name; MAX_HEADERS],
    named: ConnectionNamed<'b>,
    framing: Framing,
    reusable: bool,
}

/// Parse the head at the start of `buf` and hand it to `make`.
fn with_head<T>(
    buf: &[u8],
    head_only: bool,
    mut make: impl FnMut(Head<'_, '_>) -> Result<T, &'static str>,
) -> Parsed<T> {
    // httparse's responses take initialised header slots (32 bytes each):
    // a short array first, which most heads fit, the full one only when
    // it is too short.
    let mut few = [httparse::EMPTY_HEADER; FEW_HEADERS];
    if let Some(parsed) = head_in(&mut few, buf, head_only, &mut make) {
        return parsed;
    }
    let mut all = [httparse::EMPTY_HEADER; MAX_HEADERS];
    head_in(&mut all, buf, head_only, &mut make).unwrap_or(Parsed::Invalid("too many header lines"))
}

/// [`with_head`] with `headers` for the lines; `None` when they are too few.
fn head_in<'b, T>(
    headers: &mut [httparse::Header<'b>],
    buf: &'b [u8],
    head_only: bool,
    make: &mut impl FnMut(Head<'_, 'b>) -> Result<T, &'static str>,
) -> Option<Parsed<T>> {
    let mut resp = httparse::Response::new(headers);
    let len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Some(Parsed::Partial),
        Err(httparse::Error::TooManyHeaders) => return None,
        Err(_) => return Some(Parsed::Invalid("the response head does not parse")),
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Some(Parsed::Invalid("no status line"));
    };
    match status {
        0..=99 => return Some(Parsed::Invalid("status code below 100")),
        101 => {
            return Some(Parsed::Invalid(
                "101 Switching Protocols to a request without Upgrade",
            ))
        }
        100..=199 => return Some(Parsed::Informational(len)),
        _ => {}
    }

    let mut kinds = [Name::Other; MAX_HEADERS];
    let seen = match survey(resp.headers, &mut kinds, version) {
        Ok(seen) => seen,
        Err(why) => return Some(Parsed::Invalid(why)),
    };
    let (framing, reusable) = framing(&seen, status, head_only, version == 1);
    let head = Head {
        len,
        status,
        reason: resp.reason,
        headers: resp.headers,
        kinds,
        named: seen.named,
        framing,
        reusable,
    };
    Some(match make(head) {
        Ok(made) => Parsed::Ready(made),
        Err(why) => Parsed::Invalid(why),
    })
}

/// What a response's headers say about its framing and connection.
struct Seen<'h> {
    /// `Content-Length`'s one value, if any came.
    length: Option<u64>,
    lengths: bool,
    /// The last `Transfer-Encoding` coding is `chunked` (`None`: none).
    chunked: Option<bool>,
    /// `Connection: close`.
    close: bool,
    named: ConnectionNamed<'h>,
}

/// Classify every header into `kinds` and learn what they say; `Err`: a
/// head whose framing cannot be read one way only.
fn survey<'h>(
    headers: &[httparse::Header<'h>],
    kinds: &mut [Name; MAX_HEADERS],
    version: u8,
) -> Result<Seen<'h>, &'static str> {
    let mut seen = Seen {
        length: None,
        lengths: false,
        chunked: None,
        close: false,
        named: ConnectionNamed::new(),
    };
    for (h, kind) in headers.iter().zip(kinds.iter_mut()) {
        *kind = classify(h.name.as_bytes());
        match *kind {
            Name::ContentLength => {
                seen.lengths = true;
                if !parse_length(h.value, &mut seen.length) {
                    return Err("Content-Length is not one number");
                }
            }
            // HTTP/1.0 has no Transfer-Encoding (RFC 9112 §6.1): its
            // framing cannot be trusted.
            Name::TransferEncoding if version == 0 => {
                return Err("Transfer-Encoding in an HTTP/1.0 response")
            }
            Name::TransferEncoding => {
                // Only the last coding matters for where the body ends.
                if let Some(last) = tokens(h.value).last() {
                    seen.chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
                }
            }
            Name::Connection => {
                for t in tokens(h.value) {
                    if t.eq_ignore_ascii_case(b"close") {
                        seen.close = true;
                    } else if !t.eq_ignore_ascii_case(b"keep-alive") && !seen.named.push(t) {
                        return Err("Connection names too many headers");
                    }
                }
            }
            Name::Drop | Name::Other => {}
        }
    }
    Ok(seen)
}

/// Where the body ends (RFC 9112 §6.3), and whether the backend's
/// connection may carry another request after it (`http11`: the response
/// is HTTP/1.1).
fn framing(seen: &Seen<'_>, status: u16, head_only: bool, http11: bool) -> (Framing, bool) {
    let mut reusable = http11 && !seen.close;
    let framing = if head_only || status == 204 || status == 304 {
        Framing::None
    } else {
        match seen.chunked {
            // Transfer-Encoding wins over Content-Length; a message with
            // both is not to be trusted with the connection afterwards.
            Some(true) => {
                if seen.lengths {
                    reusable = false;
                }
                Framing::Chunked
            }
            Some(false) => Framing::Close,
            None => match seen.length {
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            },
        }
    };
    if framing == Framing::Close {
        reusable = false;
    }
    (framing, reusable)
}

/// Whether a backend's header line stays: by the rule table, the framing
/// header that applies kept and the other dropped (`Transfer-Encoding`
/// only where the body passes through as it came: `passthrough`).
fn kept(kind: Name, name: &[u8], head: &Head<'_, '_>, passthrough: bool) -> bool {
    match kind {
        Name::Other => !head.named.contains(name),
        Name::ContentLength => head.framing != Framing::Chunked,
        Name::TransferEncoding => passthrough && head.framing == Framing::Chunked,
        Name::Drop | Name::Connection => false,
    }
}

/// The client's status line and the backend's headers (those [`kept`]),
/// into `out` (cleared first); the caller ends the head.
fn write_head(out: &mut Vec<u8>, (status, reason): (u16, &str), head: &Head<'_, '_>) {
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    let code = [
        b'0' + (status / 100) as u8,
        b'0' + (status / 10 % 10) as u8,
        b'0' + (status % 10) as u8,
    ];
    out.extend_from_slice(&code);
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (h, kind) in head.headers.iter().zip(&head.kinds) {
        if kept(*kind, h.name.as_bytes(), head, true) {
            header(out, h.name.as_bytes(), h.value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id() -> RequestId {
        let mut out = Vec::new();
        let table = std::sync::Arc::new(crate::balance::EndpointTable::new());
        let routing = crate::proxy::Routing::single(table, &Default::default());
        match super::super::request::prepare(
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Request-Id: rid-1\r\n\r\n",
            ("127.0.0.1:1".parse().unwrap(), "", false),
            "http",
            &routing,
            &mut out,
        ) {
            super::super::request::Head::Ready(p) => p.request_id,
            _ => unreachable!(),
        }
    }

    fn ready(raw: &str, head_only: bool, keep_alive: bool) -> (ResponseHead, String) {
        let mut out = Vec::new();
        match prepare(raw.as_bytes(), head_only, keep_alive, &id(), &mut out) {
            Parsed::Ready(h) => (h, String::from_utf8(out).unwrap()),
            Parsed::Partial => panic!("partial"),
            Parsed::Informational(_) => panic!("1xx"),
            Parsed::Invalid(why) => panic!("invalid: {why}"),
        }
    }

    fn invalid(raw: &str) -> &'static str {
        match prepare(raw.as_bytes(), false, true, &id(), &mut Vec::new()) {
            Parsed::Invalid(why) => why,
            _ => panic!("accepted: {raw:?}"),
        }
    }

    #[test]
    fn a_sized_response_is_rewritten() {
        let raw = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, X-Hop\r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\nX-Request-Id: theirs\r\nServer: t\r\n\r\nhello";
        let (h, out) = ready(raw, false, true);
        assert_eq!(h.len, raw.len() - 5);
        assert_eq!((h.status, h.framing), (200, Framing::Length(5)));
        assert!(h.reusable && !h.close_client);
        assert_eq!(
            out,
            "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nServer: t\r\nx-request-id: rid-1\r\n\r\n"
        );
    }

    #[test]
    fn chunked_passes_through_and_wins_over_a_length() {
        let raw = "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nContent-Length: 9\r\n\r\n";
        let (h, out) = ready(raw, false, true);
        assert_eq!(h.framing, Framing::Chunked);
        assert!(!h.reusable, "CL + TE: not trusted with another request");
        assert!(out.contains("Transfer-Encoding: chunked\r\n"));
        assert!(!out.contains("Content-Length"));
    }

    #[test]
    fn a_body_to_the_close_closes_both_sides() {
        let (h, out) = ready("HTTP/1.1 200 OK\r\nServer: t\r\n\r\n", false, true);
        assert_eq!(h.framing, Framing::Close);
        assert!(!h.reusable && h.close_client);
        assert!(out.ends_with("connection: close\r\n\r\n"));
        let (h, _) = ready(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
            false,
            true,
        );
        assert_eq!(h.framing, Framing::Close);
        let (h, _) = ready("HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n", false, true);
        assert!(!h.reusable, "HTTP/1.0 backends close");
    }

    #[test]
    fn bodiless_answers_keep_their_length_header() {
        for (raw, head_only) in [
            ("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", true),
            (
                "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\n\r\n",
                false,
            ),
            ("HTTP/1.1 204 No Content\r\n\r\n", false),
        ] {
            let (h, out) = ready(raw, head_only, false);
            assert_eq!(h.framing, Framing::None, "{raw}");
            assert!(h.reusable && h.close_client);
            assert_eq!(out.contains("Content-Length: 100"), !raw.contains("204"));
        }
    }

    #[test]
    fn repeated_equal_lengths_are_one_and_different_ones_are_refused() {
        let (h, _) = ready(
            "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\nContent-Length: 3\r\n\r\n",
            false,
            true,
        );
        assert_eq!(h.framing, Framing::Length(3));
        invalid("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n");
        invalid("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n");
        invalid("HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n");
        invalid("HTTP/1.1 101 Switching Protocols\r\n\r\n");
        invalid("HTTP/1.1 2000 OK\r\n\r\n");
        invalid("HTTP/1.1 099 Low\r\n\r\n");
        invalid("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    }

    #[test]
    fn informational_answers_are_skipped() {
        let raw = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n";
        match prepare(raw.as_bytes(), false, true, &id(), &mut Vec::new()) {
            Parsed::Informational(n) => assert_eq!(n, 25),
            _ => panic!("not skipped"),
        }
    }

    #[test]
    fn an_unknown_status_gets_a_reason() {
        let (_, out) = ready("HTTP/1.1 299 \r\nContent-Length: 0\r\n\r\n", false, true);
        assert!(out.starts_with("HTTP/1.1 299 Unknown\r\n"), "{out}");
    }

    #[test]
    fn heads_past_the_short_array_are_parsed_up_to_the_limit() {
        let lines =
            |n: usize| -> String { (0..n).map(|i| format!("X-Line-{i}: {i}\r\n")).collect() };
        // 40 lines: past FEW_HEADERS, within MAX_HEADERS; every one kept.
        let raw = format!("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{}\r\n", lines(40));
        let (h, out) = ready(&raw, false, true);
        assert_eq!((h.status, h.framing), (200, Framing::Length(0)));
        assert!(
            out.contains("X-Line-0: 0\r\n") && out.contains("X-Line-39: 39\r\n"),
            "{out}"
        );
        // Exactly MAX_HEADERS lines pass; one more is refused.
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{}\r\n",
            lines(MAX_HEADERS - 1)
        );
        let (_, out) = ready(&raw, false, true);
        assert!(
            out.contains(&format!("X-Line-{}: ", MAX_HEADERS - 2)),
            "{out}"
        );
        let raw = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n{}\r\n",
            lines(MAX_HEADERS)
        );
        assert_eq!(invalid(&raw), "too many header lines");
    }
}
