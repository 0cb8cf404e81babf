//! UTC dates as log lines write them, without a date crate: RFC 3339
//! (`2026-12-07T06:30:00.123Z`, JSON lines) and nginx's `$time_local`
//! (`07/Dec/2026:06:30:00 +0000`, combined lines).

use std::time::SystemTime;

/// `n` as `width` decimal digits, zero-padded (no core::fmt: these are
/// written once per access-log line).
fn digits(out: &mut Vec<u8>, mut n: u64, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (start..start + width).rev() {
        out[i] = b'0' + (n % 10) as u8;
        n /= 10;
    }
}

/// `2026-12-07T06:30:00.123Z`. The part up to the second is worked out
/// once a second per thread.
pub fn rfc3339(out: &mut Vec<u8>, at: SystemTime) {
    use std::cell::RefCell;
    thread_local! {
        static SECOND: RefCell<(u64, Vec<u8>)> = const { RefCell::new((u64::MAX, Vec::new())) };
    }
    let (secs, millis) = since_epoch(at);
    SECOND.with(|cached| {
        let mut cached = cached.borrow_mut();
        if cached.0 != secs {
            cached.1.clear();
            to_the_second(&mut cached.1, secs);
            cached.0 = secs;
        }
        out.extend_from_slice(&cached.1);
    });
    out.push(b'.');
    digits(out, millis.into(), 3);
    out.push(b'Z');
}

/// `2026-12-07T06:30:00`.
fn to_the_second(out: &mut Vec<u8>, secs: u64) {
    let (y, mo, d, h, mi, s) = civil(secs);
    digits(out, y.max(0) as u64, 4);
    out.push(b'-');
    digits(out, mo.into(), 2);
    out.push(b'-');
    digits(out, d.into(), 2);
    out.push(b'T');
    digits(out, h.into(), 2);
    out.push(b':');
    digits(out, mi.into(), 2);
    out.push(b':');
    digits(out, s.into(), 2);
}

/// `07/Dec/2026:06:30:00 +0000` (nginx's `$time_local`, in UTC).
pub fn clf(out: &mut Vec<u8>, at: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (secs, _) = since_epoch(at);
    let (y, mo, d, h, mi, s) = civil(secs);
    digits(out, d.into(), 2);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(mo - 1) as usize].as_bytes());
    out.push(b'/');
    digits(out, y.max(0) as u64, 4);
    out.push(b':');
    digits(out, h.into(), 2);
    out.push(b':');
    digits(out, mi.into(), 2);
    out.push(b':');
    digits(out, s.into(), 2);
    out.extend_from_slice(b" +0000");
}

fn since_epoch(at: SystemTime) -> (u64, u32) {
    let d = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_millis())
}

/// Year, month, day, hour, minute, second of a Unix time (UTC), by Howard
/// Hinnant's days-to-civil algorithm.
fn civil(secs: u64) -> (i64, u32, u32, u32, u32, u32) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y,
        m,
        d,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
    )
}

/// [`rfc3339`] as a `String`.
pub fn rfc3339_string(at: SystemTime) -> String {
    let mut out = Vec::with_capacity(24);
    rfc3339(&mut out, at);
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn dates_are_civil() {
        // 2026-12-07T06:30:05Z
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_625_005_123);
        let mut out = Vec::new();
        rfc3339(&mut out, t);
        assert_eq!(String::from_utf8(out).unwrap(), "2026-12-07T06:30:05.123Z");
        let mut out = Vec::new();
        clf(&mut out, t);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "07/Dec/2026:06:30:05 +0000"
        );
        let leap = SystemTime::UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        let mut out = Vec::new();
        rfc3339(&mut out, leap);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("2000-02-29T00:00:00"));
    }
}
