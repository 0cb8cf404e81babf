//! `balance:` — the algorithm, and the hash key of `algorithm: hash`.

use serde::{Deserialize, Serialize};

/// `balance.algorithm`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    /// Each backend in turn, smooth weighted by `weight` (nginx's algorithm).
    RoundRobin,
    /// The same smooth weighted round robin, under the name nginx users know.
    Weighted,
    /// Fewest requests in flight relative to weight.
    #[default]
    LeastConn,
    /// Consistent hash of the client's IP address.
    IpHash,
    /// Consistent hash of `balance.hash_key` (a header, cookie, query
    /// parameter or the path).
    Hash,
    /// Weighted random.
    Random,
    /// Power of two choices over peak-EWMA latency × (in flight + 1).
    P2cEwma,
}

impl Algorithm {
    /// Every algorithm, in the order the docs list them.
    pub const ALL: [Algorithm; 7] = [
        Algorithm::RoundRobin,
        Algorithm::Weighted,
        Algorithm::LeastConn,
        Algorithm::IpHash,
        Algorithm::Hash,
        Algorithm::Random,
        Algorithm::P2cEwma,
    ];

    /// The name as written in the config (`round_robin`, `p2c_ewma`).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round_robin",
            Algorithm::Weighted => "weighted",
            Algorithm::LeastConn => "least_conn",
            Algorithm::IpHash => "ip_hash",
            Algorithm::Hash => "hash",
            Algorithm::Random => "random",
            Algorithm::P2cEwma => "p2c_ewma",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct BalanceConfig {
    pub algorithm: Algorithm,
    /// For `algorithm: hash` (required there, refused elsewhere): what part
    /// of the request is hashed.
    #[serde(deserialize_with = "crate::fields::hash_key")]
    pub hash_key: Option<HashKey>,
    /// When no backend is in rotation, send requests to the ones that are
    /// running but failing (down, ejected, not yet checked) instead of
    /// answering 503 (Envoy's panic mode).
    pub panic_mode: bool,
}

/// `balance.hash_key`: where `algorithm: hash` finds a request's key.
/// Written `header:NAME`, `cookie:NAME`, `query:NAME` or `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HashKey {
    /// The first value of a request header (name as written; matched
    /// without regard to case).
    Header(String),
    /// The value of one cookie in the `Cookie` header(s).
    Cookie(String),
    /// The raw (not percent-decoded) value of the first query parameter with
    /// this name.
    Query(String),
    /// The request path, without the query.
    Path,
}

impl HashKey {
    /// Parses `header:X-User-Id`, `cookie:session`, `query:user` or `path`.
    pub fn parse(text: &str) -> Result<HashKey, String> {
        const FORMS: &str = "`header:NAME`, `cookie:NAME`, `query:NAME` or `path`";
        let invalid = |why: String| format!("invalid hash key `{text}`: {why}");
        if text == "path" {
            return Ok(HashKey::Path);
        }
        let Some((source, name)) = text.split_once(':') else {
            let why = match text.to_ascii_lowercase().as_str() {
                "path" | "uri" | "url" => "write `path` to hash the request path".to_string(),
                "ip" | "client" | "source" | "remote_addr" => {
                    "to hash the client address use `algorithm: ip_hash` (without `hash_key`)"
                        .to_string()
                }
                "" => format!("empty; expected {FORMS}"),
                _ => format!("expected {FORMS} (for a header, write `header:{text}`)"),
            };
            return Err(invalid(why));
        };
        let kind = match source {
            "header" => HashKey::Header,
            "cookie" => HashKey::Cookie,
            "query" => HashKey::Query,
            _ => {
                let hint = match source.to_ascii_lowercase().as_str() {
                    "header" | "headers" | "hdr" | "http" => " (did you mean `header`?)",
                    "cookie" | "cookies" => " (did you mean `cookie`?)",
                    "query" | "arg" | "args" | "param" | "url_param" => " (did you mean `query`?)",
                    _ => "",
                };
                return Err(invalid(format!(
                    "unknown source `{source}`{hint}; expected {FORMS}"
                )));
            }
        };
        if name.is_empty() {
            return Err(invalid(format!("a name must follow `{source}:`")));
        }
        let valid = match source {
            // Header and cookie names are HTTP tokens (RFC 9110 5.6.2, RFC 6265 4.1.1).
            "header" | "cookie" => name.bytes().all(is_token_byte),
            // A query parameter name is anything up to `=` or `&`.
            _ => name
                .bytes()
                .all(|b| b.is_ascii_graphic() && !matches!(b, b'&' | b'=' | b'#')),
        };
        if !valid {
            let what = match source {
                "query" => "a query parameter name must not contain spaces, `&`, `=` or `#`",
                _ => "a header or cookie name may only contain letters, digits and !#$%&'*+-.^_`|~",
            };
            return Err(invalid(what.to_string()));
        }
        Ok(kind(name.to_string()))
    }
}

pub(super) fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl std::fmt::Display for HashKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HashKey::Header(name) => write!(f, "header:{name}"),
            HashKey::Cookie(name) => write!(f, "cookie:{name}"),
            HashKey::Query(name) => write!(f, "query:{name}"),
            HashKey::Path => f.write_str("path"),
        }
    }
}

impl Serialize for HashKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}
