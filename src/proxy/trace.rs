//! W3C Trace Context (`traceparent`, `tracestate`), written once for both
//! engines: a valid `traceparent` is passed on as it came and its trace id
//! goes in the access log; with `proxy.trace_context: start`, a request
//! without one (or with one that does not parse, whose `tracestate` then
//! goes too, as the spec asks) is given a new trace, so the backend's logs
//! and shoal's share an id. shoal records no spans: it only carries the
//! context, as a load balancer in front of traced services does.

use shoal_config::TraceContext;

use crate::balance::RequestView;

/// A trace id: 32 lowercase hex digits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceId(pub [u8; 32]);

impl TraceId {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// What the *trace* step made of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trace {
    /// Nothing to carry or log (`off`, or `pass` without a valid one).
    None,
    /// The client's valid `traceparent`, passed on as it came.
    Kept(TraceId),
    /// A new trace: `header` is the `traceparent` the backend gets.
    Started { id: TraceId, header: [u8; 55] },
}

impl Trace {
    pub fn id(&self) -> Option<&TraceId> {
        match self {
            Trace::None => None,
            Trace::Kept(id) | Trace::Started { id, .. } => Some(id),
        }
    }
}

/// The request's trace under `mode`, and whether the client's
/// `traceparent` (and `tracestate`) must be taken out first (it was there
/// but did not parse, and a new one replaces it). `logging`: the access log
/// is on (with `pass` and no log there is nothing to do, so nothing is read).
pub fn of(req: &RequestView<'_>, mode: TraceContext, logging: bool) -> (Trace, bool) {
    if mode == TraceContext::Off || (mode == TraceContext::Pass && !logging) {
        return (Trace::None, false);
    }
    let mut values = req.headers.get_all("traceparent");
    let given = values.next();
    // Two `traceparent` headers are no valid context either.
    let parsed = match (given, values.next()) {
        (Some(v), None) => parse(v),
        _ => None,
    };
    match (parsed, mode) {
        (Some(id), _) => (Trace::Kept(id), false),
        (None, TraceContext::Start) => (start(), given.is_some()),
        (None, _) => (Trace::None, false),
    }
}

fn is_hex(b: &[u8]) -> bool {
    b.iter().all(|c| matches!(c, b'0'..=b'9' | b'a'..=b'f'))
}

/// `VERSION-TRACEID-PARENTID-FLAGS` (`00-` + 32 + `-` + 16 + `-` + 2 hex):
/// lowercase hex, ids not all zeros, version `ff` refused; a later version
/// may add fields after the flags (`-…`), version 00 may not.
fn parse(value: &[u8]) -> Option<TraceId> {
    let v = value.trim_ascii();
    if v.len() < 55 || v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let (version, trace, parent, flags) = (&v[..2], &v[3..35], &v[36..52], &v[53..55]);
    if !is_hex(version) || version == b"ff" || !is_hex(trace) || !is_hex(parent) || !is_hex(flags) {
        return None;
    }
    if (version == b"00" && v.len() != 55) || (v.len() > 55 && v[55] != b'-') {
        return None;
    }
    if trace.iter().all(|c| *c == b'0') || parent.iter().all(|c| *c == b'0') {
        return None;
    }
    let mut id = [0u8; 32];
    id.copy_from_slice(trace);
    Some(TraceId(id))
}

/// A new trace: a random trace id and parent id, sampled (`01`: the
/// backend's tracer, if any, records it, so its spans carry the id shoal
/// logs).
fn start() -> Trace {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let id = super::request_id::generate_hex();
    let mut header = [0u8; 55];
    header[..3].copy_from_slice(b"00-");
    header[3..35].copy_from_slice(&id);
    header[35] = b'-';
    let mut parent = fastrand::u64(1..);
    for b in header[36..52].iter_mut().rev() {
        *b = HEX[(parent & 0xf) as usize];
        parent >>= 4;
    }
    header[52..].copy_from_slice(b"-01");
    Trace::Started {
        id: TraceId(id),
        header,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &[u8] = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specs_example_parses_and_bad_ones_do_not() {
        assert_eq!(
            parse(GOOD).map(|id| id.0.to_vec()),
            Some(b"4bf92f3577b34da6a3ce929d0e0e4736".to_vec())
        );
        for bad in [
            &b"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"[..], // uppercase
            b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",      // zero trace
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",      // zero parent
            b"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",      // version ff
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x",    // 00 with more
            b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",         // short
            b"garbage",
        ] {
            assert_eq!(parse(bad), None, "{}", String::from_utf8_lossy(bad));
        }
        // A later version may carry more after the flags.
        assert!(parse(b"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-abc").is_some());
    }

    #[test]
    fn a_started_trace_parses_as_its_own_id() {
        let Trace::Started { id, header } = start() else {
            panic!("start makes a trace")
        };
        assert_eq!(parse(&header), Some(id));
        assert!(header.ends_with(b"-01"));
    }
}
