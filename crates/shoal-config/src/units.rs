//! Durations (`500ms`, `30s`, `1m30s`) and sizes (`64MiB`, `10KB`, `4096`).
//!
//! A duration always needs a unit: a bare `30` is rejected because half of the
//! configs people copy from mean seconds and the other half milliseconds.
//! A size without a unit is a number of bytes, as everywhere else.

use std::time::Duration;

const DURATION_UNITS: &[(&str, u128)] = &[
    ("h", 3_600_000_000_000),
    ("m", 60_000_000_000),
    ("s", 1_000_000_000),
    ("ms", 1_000_000),
    ("us", 1_000),
    ("ns", 1),
];

const DURATION_HINT: &str = "like `500ms`, `30s`, `5m`, `1h` or `1m30s`";

/// Parses `500ms`, `30s`, `5m`, `1h`, `1m30s`, `1h2m3s4ms`.
///
/// Units are `h`, `m`, `s`, `ms`, `us`, `ns`; each number is a whole number.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let s = text.trim();
    let invalid = |why: &str| format!("invalid duration `{text}`: {why}");
    if s.is_empty() {
        return Err(format!(
            "invalid duration: empty (write one {DURATION_HINT})"
        ));
    }
    if s.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    if s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid(&format!(
            "missing unit (write `{s}s` for seconds or `{s}ms` for milliseconds)"
        )));
    }
    let mut total: u128 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(invalid(&format!(
                "expected a number followed by a unit, {DURATION_HINT}"
            )));
        }
        let (number, after) = rest.split_at(digits);
        if after.starts_with('.') || after.starts_with(',') {
            return Err(invalid(
                "fractions are not supported; use a smaller unit (e.g. `1500ms` for 1.5s)",
            ));
        }
        let unit_len = after.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, tail) = after.split_at(unit_len);
        if unit.is_empty() {
            return Err(invalid(&format!(
                "missing unit after `{number}` (use h, m, s, ms, us or ns)"
            )));
        }
        let Some(&(_, nanos)) = DURATION_UNITS.iter().find(|(name, _)| *name == unit) else {
            return Err(invalid(&format!(
                "unknown unit `{unit}` (use h, m, s, ms, us or ns)"
            )));
        };
        let n: u128 = number.parse().map_err(|_| invalid("number too large"))?;
        total = n
            .checked_mul(nanos)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| invalid("too large"))?;
        rest = tail;
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| invalid("too large"))?;
    // The remainder is below 1e9, so it always fits in a u32.
    let nanos = (total % 1_000_000_000) as u32;
    Ok(Duration::new(secs, nanos))
}

/// The shortest exact spelling: `30s`, `500ms`, `1m30s`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut nanos = d.as_nanos();
    if nanos == 0 {
        return "0s".to_string();
    }
    let mut out = String::new();
    for &(name, size) in DURATION_UNITS {
        let n = nanos / size;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(name);
            nanos %= size;
        }
    }
    out
}

const SIZE_UNITS: &[(&str, u64)] = &[
    ("TiB", 1 << 40),
    ("GiB", 1 << 30),
    ("MiB", 1 << 20),
    ("KiB", 1 << 10),
    ("TB", 1_000_000_000_000),
    ("GB", 1_000_000_000),
    ("MB", 1_000_000),
    ("KB", 1_000),
    ("B", 1),
];

/// Parses `64MiB`, `10KB`, `1GiB`, `512B` or a bare number of bytes.
///
/// `KiB`/`MiB`/`GiB`/`TiB` are powers of 1024, `KB`/`MB`/`GB`/`TB` powers of
/// 1000; unit letters are case-insensitive (`64mib` works) and a space
/// between number and unit is allowed.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let s = text.trim();
    let invalid = |why: &str| format!("invalid size `{text}`: {why}");
    if s.is_empty() {
        return Err("invalid size: empty (write e.g. `64MiB`, `10KB` or a number of bytes)".into());
    }
    if s.starts_with('-') {
        return Err(invalid("must not be negative"));
    }
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 {
        return Err(invalid(
            "expected a number, optionally followed by a unit like `MiB` or `KB`",
        ));
    }
    let (number, after) = s.split_at(digits);
    if after.starts_with('.') || after.starts_with(',') {
        return Err(invalid(
            "fractions are not supported; use a smaller unit (e.g. `1536KiB`)",
        ));
    }
    let unit = after.trim_start();
    let n: u64 = number.parse().map_err(|_| invalid("too large"))?;
    let factor = if unit.is_empty() {
        1
    } else if let Some(&(_, f)) = SIZE_UNITS
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(unit))
    {
        f
    } else if matches!(unit.to_ascii_uppercase().as_str(), "K" | "M" | "G" | "T") {
        let u = unit.to_ascii_uppercase();
        return Err(invalid(&format!(
            "ambiguous unit `{unit}`: write `{number}{u}iB` (powers of 1024) or `{number}{u}B` (powers of 1000)"
        )));
    } else {
        return Err(invalid(&format!(
            "unknown unit `{unit}` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
        )));
    };
    n.checked_mul(factor).ok_or_else(|| invalid("too large"))
}

/// The largest unit that divides the size exactly, binary units first:
/// `64MiB`, `10KB`, `1000B`... `0B`.
pub fn format_size(bytes: u64) -> String {
    if bytes == 0 {
        return "0B".to_string();
    }
    for &(name, factor) in SIZE_UNITS {
        if bytes % factor == 0 {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

/// `#[serde(with = "crate::units::duration")]` for `Duration` fields.
pub mod duration {
    use std::fmt;
    use std::time::Duration;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_duration(*d))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        d.deserialize_any(DurationVisitor)
    }

    struct DurationVisitor;

    impl Visitor<'_> for DurationVisitor {
        type Value = Duration;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a duration like `500ms`, `30s` or `1m30s`")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
            super::parse_duration(v).map_err(E::custom)
        }

        // YAML reads `30` as a number; give the same "missing unit" advice as for "30".
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
            super::parse_duration(&v.to_string()).map_err(E::custom)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
            super::parse_duration(&v.to_string()).map_err(E::custom)
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
            super::parse_duration(&v.to_string()).map_err(E::custom)
        }
    }
}

/// `#[serde(with = "crate::units::size")]` for `u64` byte-size fields.
pub mod size {
    use std::fmt;

    use serde::de::{self, Visitor};
    use serde::{Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &u64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_size(*bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        d.deserialize_any(SizeVisitor)
    }

    struct SizeVisitor;

    impl Visitor<'_> for SizeVisitor {
        type Value = u64;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a size like `64MiB`, `10KB` or a number of bytes")
        }

        fn visit_str<E: de::Error>(self, v: &str) -> Result<u64, E> {
            super::parse_size(v).map_err(E::custom)
        }

        fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
            Ok(v)
        }

        fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
            u64::try_from(v)
                .map_err(|_| E::custom(format!("invalid size `{v}`: must not be negative")))
        }

        fn visit_f64<E: de::Error>(self, v: f64) -> Result<u64, E> {
            super::parse_size(&v.to_string()).map_err(E::custom)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::{Deserialize, Serialize};

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn durations_in_every_unit() {
        assert_eq!(parse_duration("500ms"), Ok(ms(500)));
        assert_eq!(parse_duration("30s"), Ok(ms(30_000)));
        assert_eq!(parse_duration("5m"), Ok(ms(300_000)));
        assert_eq!(parse_duration("1h"), Ok(ms(3_600_000)));
        assert_eq!(parse_duration("1m30s"), Ok(ms(90_000)));
        assert_eq!(parse_duration("1h2m3s4ms"), Ok(ms(3_723_004)));
        assert_eq!(parse_duration("250us"), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("7ns"), Ok(Duration::from_nanos(7)));
        assert_eq!(parse_duration(" 0s "), Ok(Duration::ZERO));
    }

    #[test]
    fn bad_durations_say_why() {
        let err = |s| parse_duration(s).unwrap_err();
        assert_eq!(
            err("30"),
            "invalid duration `30`: missing unit (write `30s` for seconds or `30ms` for milliseconds)"
        );
        assert_eq!(
            err("5x"),
            "invalid duration `5x`: unknown unit `x` (use h, m, s, ms, us or ns)"
        );
        assert_eq!(
            err("5S"),
            "invalid duration `5S`: unknown unit `S` (use h, m, s, ms, us or ns)"
        );
        assert!(
            err("1.5s").contains("fractions are not supported"),
            "{}",
            err("1.5s")
        );
        assert!(err("-1s").contains("must not be negative"));
        assert!(err("abc").contains("expected a number followed by a unit"));
        assert!(err("1m30").contains("missing unit after `30`"));
        assert!(err("").contains("empty"));
        assert!(err("99999999999999999999999h").contains("too large"));
        assert!(err("1 s").contains("invalid duration"));
    }

    #[test]
    fn durations_print_shortest_exact_form() {
        assert_eq!(format_duration(ms(500)), "500ms");
        assert_eq!(format_duration(ms(30_000)), "30s");
        assert_eq!(format_duration(ms(90_000)), "1m30s");
        assert_eq!(format_duration(ms(3_600_000)), "1h");
        assert_eq!(format_duration(ms(1_500)), "1s500ms");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::new(1, 1)), "1s1ns");
        for d in [ms(1), ms(61_001), Duration::new(86_400, 999_999_999)] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
    }

    #[test]
    fn sizes_in_every_unit() {
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("10KB"), Ok(10_000));
        assert_eq!(parse_size("1GiB"), Ok(1 << 30));
        assert_eq!(parse_size("2TiB"), Ok(2 << 40));
        assert_eq!(parse_size("3GB"), Ok(3_000_000_000));
        assert_eq!(parse_size("5MB"), Ok(5_000_000));
        assert_eq!(parse_size("1TB"), Ok(1_000_000_000_000));
        assert_eq!(parse_size("1KiB"), Ok(1024));
        assert_eq!(parse_size("512B"), Ok(512));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64 mib"), Ok(64 << 20));
    }

    #[test]
    fn bad_sizes_say_why() {
        let err = |s| parse_size(s).unwrap_err();
        assert_eq!(
            err("64M"),
            "invalid size `64M`: ambiguous unit `M`: write `64MiB` (powers of 1024) or `64MB` (powers of 1000)"
        );
        assert_eq!(
            err("3furlongs"),
            "invalid size `3furlongs`: unknown unit `furlongs` (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)"
        );
        assert!(err("1.5GiB").contains("fractions are not supported"));
        assert!(err("-1").contains("must not be negative"));
        assert!(err("MiB").contains("expected a number"));
        assert!(err("").contains("empty"));
        assert!(err("20000000TiB").contains("too large"));
        assert!(err("99999999999999999999999").contains("too large"));
    }

    #[test]
    fn sizes_print_largest_exact_unit() {
        assert_eq!(format_size(64 << 20), "64MiB");
        assert_eq!(format_size(10_000), "10KB");
        assert_eq!(format_size(1 << 30), "1GiB");
        assert_eq!(format_size(1536), "1536B");
        assert_eq!(format_size(1000), "1KB");
        assert_eq!(format_size(1001), "1001B");
        assert_eq!(format_size(0), "0B");
        for n in [1, 1023, 1024, 1_000_000, u64::MAX] {
            assert_eq!(parse_size(&format_size(n)), Ok(n));
        }
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Limits {
        #[serde(with = "crate::units::size")]
        body: u64,
        #[serde(with = "crate::units::duration")]
        wait: Duration,
    }

    #[test]
    fn serde_modules_round_trip() {
        let l: Limits = serde_yaml_ng::from_str("body: 64MiB\nwait: 1m30s\n").unwrap();
        assert_eq!(
            l,
            Limits {
                body: 64 << 20,
                wait: ms(90_000)
            }
        );
        let text = serde_yaml_ng::to_string(&l).unwrap();
        assert_eq!(text, "body: 64MiB\nwait: 1m30s\n");
        let bytes: Limits = serde_yaml_ng::from_str("body: 4096\nwait: 5s\n").unwrap();
        assert_eq!(bytes.body, 4096);
    }

    #[test]
    fn serde_modules_reject_bad_values() {
        let e = serde_yaml_ng::from_str::<Limits>("body: 1\nwait: 30\n").unwrap_err();
        assert!(e.to_string().contains("missing unit"), "{e}");
        let e = serde_yaml_ng::from_str::<Limits>("body: -5\nwait: 1s\n").unwrap_err();
        assert!(e.to_string().contains("must not be negative"), "{e}");
        let e = serde_yaml_ng::from_str::<Limits>("body: [1]\nwait: 1s\n").unwrap_err();
        assert!(e.to_string().contains("expected a size like"), "{e}");
    }
}

/// serde `with` module for an optional size (`max_memory: 512MiB`, or absent).
pub mod size_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    struct Size(#[serde(with = "super::size")] u64);

    pub fn serialize<S: Serializer>(bytes: &Option<u64>, s: S) -> Result<S::Ok, S::Error> {
        match bytes {
            Some(b) => super::size::serialize(b, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
        Ok(Option::<Size>::deserialize(d)?.map(|Size(b)| b))
    }
}

/// serde `with` module for an optional duration (a route's override).
pub mod duration_opt {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    #[derive(Deserialize)]
    struct Wrapped(#[serde(with = "super::duration")] Duration);

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => super::duration::serialize(d, s),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(d)| d))
    }
}
