//! `rate_limits:` — named rules, each a rate and a burst per key (the
//! client address, a header, a cookie, the route, or several of them).

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use super::RouteMatch;

/// One rule of `rate_limits:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RateLimitConfig {
    /// The rule's name: in metrics, the admin API and the keys it counts.
    pub name: String,
    /// What is counted apart: `client_ip` (the default), `header:NAME`,
    /// `cookie:NAME`, `route`, or a list of them (counted together).
    #[serde(deserialize_with = "limit_keys", serialize_with = "limit_keys_out")]
    pub key: Vec<LimitKey>,
    /// Requests per period: `200/min`, `10/s`, `1000/hour`, `50/10s`.
    #[serde(deserialize_with = "rate", serialize_with = "rate_out")]
    pub rate: Rate,
    /// Requests that may come at once, above the steady rate's spacing;
    /// the rate's count when absent (`200/min` lets 200 through at once).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// Only requests these routes take (by name); every route when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<String>,
    /// Only requests that match (as `routes[].match`).
    #[serde(rename = "match", skip_serializing_if = "RouteMatch::is_everything")]
    pub matches: RouteMatch,
    /// `false`: the rule is kept (and may be turned on at run time) but
    /// counts nothing.
    pub enabled: bool,
    /// Allowed responses carry `RateLimit-Limit`, `RateLimit-Remaining`
    /// and `RateLimit-Reset` too (refusals always do).
    pub headers: bool,
    /// With `state.backend: redis`: `exact` (one Redis call per decision)
    /// or `lease` (each replica takes a few tokens at a time).
    #[serde(skip_serializing_if = "LimitMode::is_exact")]
    pub mode: LimitMode,
}

/// `rate_limits[].mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitMode {
    /// Every decision is one atomic call to the store.
    #[default]
    Exact,
    /// A replica takes a lease of tokens (5 % of the burst) in one call
    /// and spends it locally; refusals are remembered until they would
    /// pass. With the memory store the same as `exact`.
    Lease,
}

impl LimitMode {
    pub fn is_exact(&self) -> bool {
        *self == LimitMode::Exact
    }
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            name: String::new(),
            key: vec![LimitKey::ClientIp],
            rate: Rate::default(),
            burst: None,
            routes: Vec::new(),
            matches: RouteMatch::default(),
            enabled: true,
            headers: true,
            mode: LimitMode::Exact,
        }
    }
}

impl RateLimitConfig {
    /// `burst`, or the rate's count.
    pub fn burst(&self) -> u32 {
        self.burst.unwrap_or(self.rate.count)
    }
}

/// What one rule counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address (after `trusted_proxies`).
    ClientIp,
    /// A request header's first value (name as written).
    Header(String),
    /// One cookie's value.
    Cookie(String),
    /// The name of the route the request took.
    Route,
}

impl LimitKey {
    pub fn parse(text: &str) -> Result<LimitKey, String> {
        const FORMS: &str = "`client_ip`, `header:NAME`, `cookie:NAME` or `route`";
        match text {
            "client_ip" => return Ok(LimitKey::ClientIp),
            "route" => return Ok(LimitKey::Route),
            _ => {}
        }
        let Some((source, name)) = text.split_once(':') else {
            let hint = match text.to_ascii_lowercase().as_str() {
                "ip" | "client" | "remote_addr" | "source" | "src" => {
                    " (did you mean `client_ip`?)"
                }
                _ => "",
            };
            return Err(format!("invalid key `{text}`{hint}; expected {FORMS}"));
        };
        let token = !name.is_empty() && name.bytes().all(super::balance::is_token_byte);
        match source {
            "header" | "cookie" if !token => Err(format!(
                "invalid key `{text}`: a {source} name may only contain letters, digits and \
                 !#$%&'*+-.^_`|~"
            )),
            "header" => Ok(LimitKey::Header(name.to_string())),
            "cookie" => Ok(LimitKey::Cookie(name.to_string())),
            _ => Err(format!(
                "invalid key `{text}`: unknown source `{source}`; expected {FORMS}"
            )),
        }
    }
}

impl fmt::Display for LimitKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LimitKey::ClientIp => f.write_str("client_ip"),
            LimitKey::Header(n) => write!(f, "header:{n}"),
            LimitKey::Cookie(n) => write!(f, "cookie:{n}"),
            LimitKey::Route => f.write_str("route"),
        }
    }
}

/// `count` requests per `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Default for Rate {
    fn default() -> Self {
        Rate {
            count: 0,
            per: Duration::from_secs(1),
        }
    }
}

impl Rate {
    /// `200/min`, `10/s`, `10/second`, `1000/hour`, `5/day`, `50/10s`.
    pub fn parse(text: &str) -> Result<Rate, String> {
        let invalid = |why: &str| {
            format!("invalid rate `{text}`: {why} (write it like `200/min`, `10/s` or `50/10s`)")
        };
        let (count, per) = text.split_once('/').ok_or_else(|| invalid("no `/`"))?;
        let count: u32 = count
            .trim()
            .parse()
            .map_err(|_| invalid("the count is not a whole number"))?;
        if count == 0 {
            return Err(invalid("the count must be at least 1"));
        }
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            "d" | "day" => Duration::from_secs(86_400),
            other => crate::units::parse_duration(other).map_err(|e| invalid(&e))?,
        };
        if per.is_zero() {
            return Err(invalid("the period must be longer than 0"));
        }
        Ok(Rate { count, per })
    }

    /// The steady spacing between two requests (GCRA's emission interval).
    pub fn interval(&self) -> Duration {
        self.per / self.count.max(1)
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.per.as_secs() {
            1 if self.per.subsec_nanos() == 0 => write!(f, "{}/s", self.count),
            60 if self.per.subsec_nanos() == 0 => write!(f, "{}/min", self.count),
            3600 if self.per.subsec_nanos() == 0 => write!(f, "{}/hour", self.count),
            86_400 if self.per.subsec_nanos() == 0 => write!(f, "{}/day", self.count),
            _ => write!(
                f,
                "{}/{}",
                self.count,
                crate::units::format_duration(self.per)
            ),
        }
    }
}

fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<Rate, D::Error> {
    struct V;
    impl Visitor<'_> for V {
        type Value = Rate;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a rate like `200/min`, `10/s` or `50/10s`")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Rate, E> {
            Rate::parse(v).map_err(E::custom)
        }
    }
    d.deserialize_any(V)
}

fn rate_out<S: Serializer>(r: &Rate, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(r)
}

fn limit_keys<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LimitKey>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = Vec<LimitKey>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str(
                "a key like `client_ip`, `header:X-Api-Key`, `cookie:session` or `route`, \
                 or a list of them",
            )
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            LimitKey::parse(v).map(|k| vec![k]).map_err(E::custom)
        }
        fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut keys = Vec::new();
            while let Some(text) = seq.next_element::<String>()? {
                keys.push(LimitKey::parse(&text).map_err(de::Error::custom)?);
            }
            Ok(keys)
        }
    }
    d.deserialize_any(V)
}

fn limit_keys_out<S: Serializer>(keys: &[LimitKey], s: S) -> Result<S::Ok, S::Error> {
    match keys {
        [one] => s.collect_str(one),
        _ => s.collect_seq(keys.iter().map(|k| k.to_string())),
    }
}
