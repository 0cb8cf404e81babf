//! `health:` — active health checks, and `expect_status` ranges.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Active health checks: an HTTP request for `path` when set, TCP connect otherwise.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HealthConfig {
    pub path: Option<String>,
    /// The HTTP method of a check (`GET`, `HEAD`, …).
    pub method: String,
    /// The statuses that pass (HAProxy's `http-check expect status`).
    #[serde(deserialize_with = "crate::fields::status_range")]
    pub expect_status: StatusRange,
    /// When set, the response body must contain this text to pass
    /// (HAProxy's `http-check expect string`).
    pub expect_body: Option<String>,
    #[serde(with = "crate::units::duration")]
    pub interval: Duration,
    #[serde(with = "crate::units::duration")]
    pub timeout: Duration,
    /// Consecutive failures that take a backend out of rotation.
    pub fall: u32,
    /// Consecutive passes that bring it back.
    pub rise: u32,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            path: None,
            method: "GET".into(),
            expect_status: StatusRange::DEFAULT,
            expect_body: None,
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            fall: 3,
            rise: 2,
        }
    }
}

/// `health.expect_status`: an inclusive range of statuses, written `200`,
/// `200-299` or `2xx`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusRange {
    pub min: u16,
    pub max: u16,
}

impl StatusRange {
    /// 2xx and 3xx, as HAProxy's `httpchk`.
    pub const DEFAULT: StatusRange = StatusRange { min: 200, max: 399 };

    pub fn contains(self, status: u16) -> bool {
        (self.min..=self.max).contains(&status)
    }

    pub fn parse(text: &str) -> Result<StatusRange, String> {
        let text = text.trim();
        let status = |t: &str| -> Result<u16, String> {
            match t.trim().parse::<u16>() {
                Ok(n) if (100..=599).contains(&n) => Ok(n),
                _ => Err(format!(
                    "`{t}` is not a status from 100 to 599 (write a status like `200`, \
                     a range like `200-399`, or a class like `2xx`)"
                )),
            }
        };
        let lower = text.to_ascii_lowercase();
        if let Some(class) = lower.strip_suffix("xx") {
            return match class.parse::<u16>() {
                Ok(c @ 1..=5) if class.len() == 1 => Ok(StatusRange {
                    min: c * 100,
                    max: c * 100 + 99,
                }),
                _ => Err(format!(
                    "`{text}` is not a status class (write `2xx`, `3xx`, … `5xx`)"
                )),
            };
        }
        let range = match text.split_once('-') {
            Some((a, b)) => StatusRange {
                min: status(a)?,
                max: status(b)?,
            },
            None => {
                let s = status(text)?;
                StatusRange { min: s, max: s }
            }
        };
        if range.min > range.max {
            return Err(format!(
                "the range `{text}` is empty (write the lower status first, like `200-399`)"
            ));
        }
        Ok(range)
    }
}

impl std::fmt::Display for StatusRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else if self.min % 100 == 0 && self.max == self.min + 99 {
            write!(f, "{}xx", self.min / 100)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

impl Serialize for StatusRange {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
