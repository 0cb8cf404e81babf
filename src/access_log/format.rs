//! An access-log line in each format: JSON (one object a line, for log
//! shippers) and "combined" (Apache's and nginx's default, that log tools
//! read), with shoal's own fields after it as `key=value`.

use std::io::Write;
use std::time::SystemTime;

use super::{Facts, Report};

/// `2026-12-07T06:30:00.123Z`.
fn rfc3339(out: &mut Vec<u8>, at: SystemTime) {
    let (secs, millis) = since_epoch(at);
    let (y, mo, d, h, mi, s) = civil(secs);
    let _ = write!(
        out,
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{millis:03}Z"
    );
}

/// `07/Dec/2026:06:30:00 +0000` (nginx's `$time_local`, in UTC).
fn clf(out: &mut Vec<u8>, at: SystemTime) {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (secs, _) = since_epoch(at);
    let (y, mo, d, h, mi, s) = civil(secs);
    let month = MONTHS[(mo - 1) as usize];
    let _ = write!(out, "{d:02}/{month}/{y:04}:{h:02}:{mi:02}:{s:02} +0000");
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

fn string(out: &mut Vec<u8>, s: &str) {
    let _ = serde_json::to_writer(&mut *out, s);
}

fn ms(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

pub(super) fn json(out: &mut Vec<u8>, now: SystemTime, f: &Facts, r: &Report) {
    out.extend_from_slice(b"{\"time\":\"");
    rfc3339(out, now);
    out.extend_from_slice(b"\",\"request_id\":");
    string(out, f.request_id());
    let _ = write!(out, ",\"client\":\"{}\",\"method\":", f.client);
    string(out, f.method());
    out.extend_from_slice(b",\"host\":");
    string(out, f.host());
    out.extend_from_slice(b",\"path\":");
    string(out, f.path());
    let _ = write!(
        out,
        ",\"protocol\":\"{}\",\"status\":{},\"bytes_in\":{},\"bytes_out\":{},\"duration_ms\":{}",
        f.protocol,
        r.status,
        r.bytes_in,
        r.bytes_out,
        ms(f.start.elapsed())
    );
    if let Some(up) = r.upstream {
        let _ = write!(out, ",\"upstream_ms\":{}", ms(up));
    }
    if let Some(route) = &f.route {
        out.extend_from_slice(b",\"route\":");
        string(out, route);
    }
    if let Some(pool) = &r.pool {
        out.extend_from_slice(b",\"pool\":");
        string(out, pool);
    }
    if let Some(b) = &r.backend {
        out.extend_from_slice(b",\"backend\":");
        string(out, &b.id);
        let _ = write!(out, ",\"backend_addr\":\"{}\"", b.addr);
    }
    let _ = write!(out, ",\"retries\":{}", r.attempts.saturating_sub(1));
    if let Some(rl) = r.rate_limit {
        let _ = write!(out, ",\"rate_limit\":\"{rl}\"");
    }
    out.extend_from_slice(b",\"user_agent\":");
    string(out, f.user_agent());
    out.extend_from_slice(b",\"referer\":");
    string(out, f.referer());
    out.extend_from_slice(b"}\n");
}

/// A value inside double quotes in a combined line: `"` and `\` escaped,
/// control bytes as `\xHH` (nginx's escaping).
fn quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    for &b in s.as_bytes() {
        match b {
            b'"' | b'\\' => {
                out.push(b'\\');
                out.push(b);
            }
            0..=0x1f | 0x7f => {
                let _ = write!(out, "\\x{b:02X}");
            }
            _ => out.push(b),
        }
    }
    out.push(b'"');
}

pub(super) fn combined(out: &mut Vec<u8>, now: SystemTime, f: &Facts, r: &Report) {
    let _ = write!(out, "{} - - [", f.client);
    clf(out, now);
    out.extend_from_slice(b"] ");
    let request = format!("{} {} {}", f.method(), f.path(), f.protocol);
    quoted(out, &request);
    let _ = write!(out, " {} {} ", r.status, r.bytes_out);
    quoted(out, or_dash(f.referer()));
    out.push(b' ');
    quoted(out, or_dash(f.user_agent()));
    out.extend_from_slice(b" rid=");
    out.extend_from_slice(f.request_id().as_bytes());
    let _ = write!(out, " dur={:.3}", f.start.elapsed().as_secs_f64());
    if let Some(up) = r.upstream {
        let _ = write!(out, " up={:.3}", up.as_secs_f64());
    }
    if let Some(route) = &f.route {
        let _ = write!(out, " route={route}");
    }
    if let Some(b) = &r.backend {
        let _ = write!(out, " backend={}", b.id);
    }
    let _ = write!(out, " retries={}", r.attempts.saturating_sub(1));
    if let Some(rl) = r.rate_limit {
        let _ = write!(out, " rl={rl}");
    }
    out.push(b'\n');
}

fn or_dash(s: &str) -> &str {
    if s.is_empty() {
        "-"
    } else {
        s
    }
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

    #[test]
    fn combined_escapes_quotes_and_controls() {
        let mut out = Vec::new();
        quoted(&mut out, "a\"b\\c\x01");
        assert_eq!(String::from_utf8(out).unwrap(), r#""a\"b\\c\x01""#);
    }
}
