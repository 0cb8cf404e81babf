//! A rule's settings as they are now — the config's, or what the admin
//! API set at run time — and its counts, kept by the rule's name across
//! config reloads (a reload keeps counts, and keeps a run-time change).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use shoal_config::{Rate, RateLimitConfig};

use crate::state::Quota;

/// What the admin API may change in a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setting {
    #[serde(with = "rate_text")]
    pub rate: Rate,
    pub burst: u32,
    pub enabled: bool,
}

mod rate_text {
    use serde::{Deserialize, Deserializer, Serializer};
    use shoal_config::Rate;

    pub fn serialize<S: Serializer>(r: &Rate, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(r)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
        let text = String::deserialize(d)?;
        Rate::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl Setting {
    pub fn of(config: &RateLimitConfig) -> Setting {
        Setting {
            rate: config.rate,
            burst: config.burst(),
            enabled: config.enabled,
        }
    }
}

/// One rule's live settings and counts.
#[derive(Debug)]
pub struct Live {
    interval_ns: AtomicU64,
    burst: AtomicU32,
    enabled: AtomicBool,
    /// Allowed responses carry the RateLimit headers.
    pub headers: AtomicBool,
    /// `mode: lease` (with Redis: tokens taken a few at a time).
    pub lease: AtomicBool,
    /// The config's settings, and the run-time one that replaces them
    /// (until shoal restarts, or the override is removed).
    both: Mutex<(Setting, Option<Setting>)>,
    pub allowed: AtomicU64,
    pub limited: AtomicU64,
    /// Decisions the store could not make in time (`state.on_error`
    /// decided).
    pub errors: AtomicU64,
}

impl Live {
    pub fn new(config: &RateLimitConfig) -> Live {
        let setting = Setting::of(config);
        let live = Live {
            interval_ns: AtomicU64::new(0),
            burst: AtomicU32::new(0),
            enabled: AtomicBool::new(false),
            headers: AtomicBool::new(config.headers),
            lease: AtomicBool::new(config.mode == shoal_config::LimitMode::Lease),
            both: Mutex::new((setting, None)),
            allowed: AtomicU64::new(0),
            limited: AtomicU64::new(0),
            errors: AtomicU64::new(0),
        };
        live.store(setting);
        live
    }

    fn store(&self, s: Setting) {
        let q = Quota::new(s.rate.interval(), s.burst);
        self.interval_ns.store(q.interval_ns, Relaxed);
        self.burst.store(q.burst, Relaxed);
        self.enabled.store(s.enabled, Relaxed);
    }

    fn both(&self) -> std::sync::MutexGuard<'_, (Setting, Option<Setting>)> {
        self.both.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Relaxed)
    }

    pub fn quota(&self) -> Quota {
        Quota {
            interval_ns: self.interval_ns.load(Relaxed),
            burst: self.burst.load(Relaxed),
        }
    }

    /// A new config's settings for this rule; a run-time override stays.
    pub fn configure(&self, config: &RateLimitConfig) {
        self.headers.store(config.headers, Relaxed);
        self.lease
            .store(config.mode == shoal_config::LimitMode::Lease, Relaxed);
        let mut both = self.both();
        both.0 = Setting::of(config);
        let now = both.1.unwrap_or(both.0);
        self.store(now);
    }

    /// The admin API's change (`None`: back to the config's).
    pub fn set_override(&self, s: Option<Setting>) {
        let mut both = self.both();
        both.1 = s;
        let now = both.1.unwrap_or(both.0);
        self.store(now);
    }

    /// The config's setting and the override, if any.
    pub fn settings(&self) -> (Setting, Option<Setting>) {
        *self.both()
    }
}
