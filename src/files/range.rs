//! `Range: bytes=…` on a file of a known length (RFC 9110 §14.2): one
//! range is served (206); several are answered with the whole file (200),
//! as nginx with `max_ranges 1`; one that starts past the end is 416;
//! one that does not parse is ignored.

#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// No usable range: the whole file.
    Full,
    /// From the first byte to the last, inclusive.
    Part(u64, u64),
    Unsatisfiable,
}

pub fn parse(header: &[u8], len: u64) -> Range {
    let Ok(header) = std::str::from_utf8(header) else {
        return Range::Full;
    };
    let header = header.trim();
    let Some(spec) = header
        .get(..6)
        .filter(|u| u.eq_ignore_ascii_case("bytes="))
        .map(|_| &header[6..])
    else {
        return Range::Full;
    };
    if spec.contains(',') {
        return Range::Full;
    }
    let Some((a, b)) = spec.split_once('-') else {
        return Range::Full;
    };
    let num = |s: &str| -> Option<u64> {
        let s = s.trim();
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    match (a.trim().is_empty(), b.trim().is_empty()) {
        (true, true) => Range::Full,
        (true, false) => match num(b) {
            Some(0) => Range::Unsatisfiable,
            Some(_) if len == 0 => Range::Unsatisfiable,
            Some(n) => Range::Part(len.saturating_sub(n), len - 1),
            None => Range::Full,
        },
        (false, true) => match num(a) {
            Some(s) if s >= len => Range::Unsatisfiable,
            Some(s) => Range::Part(s, len - 1),
            None => Range::Full,
        },
        (false, false) => match (num(a), num(b)) {
            (Some(s), Some(e)) if e < s => Range::Full,
            (Some(s), Some(_)) if s >= len => Range::Unsatisfiable,
            (Some(s), Some(e)) => Range::Part(s, e.min(len - 1)),
            _ => Range::Full,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        let p = |h: &str| parse(h.as_bytes(), 100);
        assert_eq!(p("bytes=0-9"), Range::Part(0, 9));
        assert_eq!(p("bytes=90-"), Range::Part(90, 99));
        assert_eq!(p("bytes=-10"), Range::Part(90, 99));
        assert_eq!(p("bytes=-1000"), Range::Part(0, 99));
        assert_eq!(p("bytes=50-1000"), Range::Part(50, 99));
        assert_eq!(p("Bytes=1-1"), Range::Part(1, 1));
        assert_eq!(p("bytes=100-"), Range::Unsatisfiable);
        assert_eq!(p("bytes=200-300"), Range::Unsatisfiable);
        assert_eq!(p("bytes=-0"), Range::Unsatisfiable);
        assert_eq!(p("bytes=0-1,5-6"), Range::Full);
        assert_eq!(p("bytes=5-1"), Range::Full);
        assert_eq!(p("bytes=x-1"), Range::Full);
        assert_eq!(p("items=0-1"), Range::Full);
        assert_eq!(parse(b"bytes=0-", 0), Range::Unsatisfiable);
    }
}
