//! An access-log line in each format: JSON (one object a line, for log
//! shippers) and "combined" (Apache's and nginx's default, that log tools
//! read), with shoal's own fields after it as `key=value`. Written with
//! byte pushes and itoa, not core::fmt: a line is written per request.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use super::{Facts, Report};
use crate::utc::{clf, rfc3339};

fn num(out: &mut Vec<u8>, n: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

/// `whole.fff`: a whole part and three decimals.
fn three_decimals(out: &mut Vec<u8>, thousandths: u64) {
    num(out, thousandths / 1000);
    let frac = thousandths % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
    ]);
}

/// A duration as milliseconds with three decimals (`1.234`).
fn millis(out: &mut Vec<u8>, d: Duration) {
    three_decimals(out, d.as_micros() as u64);
}

/// A duration as seconds with three decimals (`0.012`).
fn seconds(out: &mut Vec<u8>, d: Duration) {
    three_decimals(out, d.as_millis() as u64);
}

fn octet(out: &mut Vec<u8>, o: u8) {
    if o >= 100 {
        out.push(b'0' + o / 100);
    }
    if o >= 10 {
        out.push(b'0' + o / 10 % 10);
    }
    out.push(b'0' + o % 10);
}

fn ip(out: &mut Vec<u8>, ip: IpAddr) {
    match ip {
        IpAddr::V4(a) => {
            let [a, b, c, d] = a.octets();
            octet(out, a);
            out.push(b'.');
            octet(out, b);
            out.push(b'.');
            octet(out, c);
            out.push(b'.');
            octet(out, d);
        }
        IpAddr::V6(a) => out.extend_from_slice(a.to_string().as_bytes()),
    }
}

/// `bytes` as a JSON string: valid UTF-8 as it is (escaped), anything else
/// with U+FFFD for what is not.
fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    // Most values are printable ASCII with nothing to escape: one pass
    // without an early exit (so it vectorises) finds out.
    let plain = !bytes.iter().fold(false, |any, &b| {
        any | !(0x20..0x80).contains(&b) | (b == b'"') | (b == b'\\')
    });
    if plain {
        out.extend_from_slice(bytes);
    } else {
        match std::str::from_utf8(bytes) {
            Ok(_) => escape_json(out, bytes),
            Err(_) => escape_json(out, String::from_utf8_lossy(bytes).as_bytes()),
        }
    }
    out.push(b'"');
}

fn escape_json(out: &mut Vec<u8>, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        if short.is_empty() {
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        } else {
            out.extend_from_slice(short);
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

fn field(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    string(out, value);
}

fn number(out: &mut Vec<u8>, name: &[u8], value: u64) {
    out.extend_from_slice(name);
    num(out, value);
}

pub(super) fn json(out: &mut Vec<u8>, now: SystemTime, f: &Facts, r: &Report) {
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339(out, now);
    out.push(b'"');
    field(out, b",\"request_id\":", f.request_id());
    if !f.trace_id().is_empty() {
        field(out, b",\"trace_id\":", f.trace_id());
    }
    out.extend_from_slice(b",\"client\":\"");
    ip(out, f.client);
    out.push(b'"');
    field(out, b",\"method\":", f.method());
    field(out, b",\"host\":", f.host());
    field(out, b",\"path\":", f.path());
    field(out, b",\"protocol\":", f.protocol.as_bytes());
    number(out, b",\"status\":", r.status.into());
    number(out, b",\"bytes_in\":", r.bytes_in);
    number(out, b",\"bytes_out\":", r.bytes_out);
    out.extend_from_slice(b",\"duration_ms\":");
    millis(out, f.start.elapsed());
    if let Some(up) = r.upstream {
        out.extend_from_slice(b",\"upstream_ms\":");
        millis(out, up);
    }
    if let Some(route) = &f.route {
        field(out, b",\"route\":", route.as_bytes());
    }
    if let Some(pool) = &r.pool {
        field(out, b",\"pool\":", pool.as_bytes());
    }
    if let Some(b) = &r.backend {
        field(out, b",\"backend\":", b.id.as_bytes());
        out.extend_from_slice(b",\"backend_addr\":\"");
        ip(out, b.addr.ip());
        out.push(b':');
        num(out, b.addr.port().into());
        out.push(b'"');
    }
    number(out, b",\"retries\":", r.attempts.saturating_sub(1).into());
    if let Some(rl) = r.rate_limit {
        field(out, b",\"rate_limit\":", rl.as_bytes());
    }
    if let Some(c) = r.cache {
        field(out, b",\"cache\":", c.as_bytes());
    }
    field(out, b",\"user_agent\":", f.user_agent());
    field(out, b",\"referer\":", f.referer());
    out.extend_from_slice(b"}\n");
}

/// A value inside double quotes in a combined line: `"` and `\` escaped,
/// control bytes and bytes past ASCII as `\xHH` (nginx's escaping).
fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push(b'"');
    for &b in s {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0..=0x1f | 0x7f.. => {
                out.extend_from_slice(b"\\x");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 15)]);
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

fn or_dash(s: &[u8]) -> &[u8] {
    if s.is_empty() {
        b"-"
    } else {
        s
    }
}

pub(super) fn combined(out: &mut Vec<u8>, now: SystemTime, f: &Facts, r: &Report) {
    ip(out, f.client);
    out.extend_from_slice(b" - - [");
    clf(out, now);
    out.extend_from_slice(b"] ");
    let mut request = Vec::with_capacity(f.method().len() + f.path().len() + 10);
    request.extend_from_slice(f.method());
    request.push(b' ');
    request.extend_from_slice(f.path());
    request.push(b' ');
    request.extend_from_slice(f.protocol.as_bytes());
    quoted(out, &request);
    out.push(b' ');
    num(out, r.status.into());
    out.push(b' ');
    num(out, r.bytes_out);
    out.push(b' ');
    quoted(out, or_dash(f.referer()));
    out.push(b' ');
    quoted(out, or_dash(f.user_agent()));
    out.extend_from_slice(b" rid=");
    out.extend_from_slice(f.request_id());
    if !f.trace_id().is_empty() {
        out.extend_from_slice(b" trace=");
        out.extend_from_slice(f.trace_id());
    }
    out.extend_from_slice(b" dur=");
    seconds(out, f.start.elapsed());
    if let Some(up) = r.upstream {
        out.extend_from_slice(b" up=");
        seconds(out, up);
    }
    if let Some(route) = &f.route {
        out.extend_from_slice(b" route=");
        out.extend_from_slice(route.as_bytes());
    }
    if let Some(b) = &r.backend {
        out.extend_from_slice(b" backend=");
        out.extend_from_slice(b.id.as_bytes());
    }
    number(out, b" retries=", r.attempts.saturating_sub(1).into());
    if let Some(rl) = r.rate_limit {
        out.extend_from_slice(b" rl=");
        out.extend_from_slice(rl.as_bytes());
    }
    if let Some(c) = r.cache {
        out.extend_from_slice(b" cache=");
        out.extend_from_slice(c.as_bytes());
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_escapes_quotes_and_controls() {
        let mut out = Vec::new();
        quoted(&mut out, b"a\"b\\c\x01\xc3\xa9");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\x01\xC3\xA9""#);
    }

    #[test]
    fn json_strings_are_escaped_and_made_valid() {
        let mut out = Vec::new();
        string(&mut out, b"a\"\\\n\x01\xc3\xa9\xff");
        let s = String::from_utf8(out).unwrap();
        assert_eq!(s, "\"a\\\"\\\\\\n\\u0001\u{e9}\u{fffd}\"");
        let back: String = serde_json::from_str(&s).unwrap();
        assert_eq!(back, "a\"\\\n\u{1}\u{e9}\u{fffd}");
    }

    #[test]
    fn durations_have_three_decimals() {
        let mut out = Vec::new();
        millis(&mut out, Duration::from_micros(12_034));
        out.push(b' ');
        seconds(&mut out, Duration::from_millis(1_005));
        assert_eq!(String::from_utf8(out).unwrap(), "12.034 1.005");
    }
}
