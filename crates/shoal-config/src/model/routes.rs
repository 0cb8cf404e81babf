//! `routes:` — which requests go where: an ordered list, the first whose
//! `match` fits a request decides what happens to it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One route: a match, one action (`to`, `redirect` or `respond`), and the
/// overrides that apply to the requests it takes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteConfig {
    /// The route's name in metrics and logs; `routes[N]` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// What the route takes; every request when absent.
    #[serde(rename = "match")]
    pub matches: RouteMatch,
    /// The app or upstream group that serves the route's requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to: Option<String>,
    /// Answer with a redirect instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redirect: Option<RedirectConfig>,
    /// Answer with a fixed response instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub respond: Option<RespondConfig>,
    /// Serve static files instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub files: Option<super::FilesConfig>,
    /// Response compression for this route: `true`/`false`, or the
    /// top-level `compress` keys it changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compress: Option<super::RouteCompress>,
    /// The response cache for this route: `true`/`false`, or the
    /// top-level `cache` keys it changes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<super::RouteCache>,
    /// Sticky sessions for this route's requests, in place of its pool's
    /// (`app.sticky`, `upstreams.NAME.sticky`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sticky: Option<super::StickyConfig>,
    /// Taken off the start of the path before it is sent on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// Put in front of the path (after `strip_prefix`) before it is sent on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub add_prefix: Option<String>,
    /// Header rules for the request the backend gets.
    #[serde(skip_serializing_if = "HeaderRules::is_empty")]
    pub request_headers: HeaderRules,
    /// Header rules for the response the client gets.
    #[serde(skip_serializing_if = "HeaderRules::is_empty")]
    pub response_headers: HeaderRules,
    /// `proxy` settings for this route's requests.
    #[serde(skip_serializing_if = "RouteProxy::is_empty")]
    pub proxy: RouteProxy,
    /// `limits` for this route's requests.
    #[serde(skip_serializing_if = "RouteLimits::is_empty")]
    pub limits: RouteLimits,
}

/// `routes[].match`: every condition given must hold.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteMatch {
    /// `Host` (its port aside), exactly, or `*.example.com` for any
    /// name below `example.com`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The path, exactly.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// The path starts with this, at a `/` boundary: `/api` takes `/api`,
    /// `/api/` and `/api/x`, not `/apix`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_prefix: Option<String>,
    /// The request's method is one of these.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// Each header is present with this value (`"*"`: with any value).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

impl RouteMatch {
    /// No condition: every request.
    pub fn is_everything(&self) -> bool {
        *self == RouteMatch::default()
    }
}

/// `routes[].redirect`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedirectConfig {
    /// The `Location`; `{host}`, `{path}`, `{query}` (with its `?`) and
    /// `{uri}` (path and query) are replaced from the request.
    pub to: String,
    /// 301, 302, 303, 307 or 308.
    #[serde(default = "default_redirect_status")]
    pub status: u16,
}

fn default_redirect_status() -> u16 {
    302
}

/// `routes[].respond`: a fixed answer (a maintenance page, a robots.txt).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RespondConfig {
    #[serde(default = "default_respond_status")]
    pub status: u16,
    #[serde(default)]
    pub body: String,
    /// `Content-Type` is `text/plain; charset=utf-8` unless set here.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
}

fn default_respond_status() -> u16 {
    200
}

/// Header rules: `remove` first, then `set` (replaces every line of the
/// name), then `add` (one more line).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeaderRules {
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub add: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

impl HeaderRules {
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.add.is_empty() && self.remove.is_empty()
    }
}

/// `routes[].proxy`: the top-level `proxy` values this route changes.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteProxy {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    #[serde(
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub response_header_timeout: Option<Duration>,
    #[serde(
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub read_timeout: Option<Duration>,
}

impl RouteProxy {
    pub fn is_empty(&self) -> bool {
        *self == RouteProxy::default()
    }
}

/// `routes[].limits`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RouteLimits {
    /// Largest request body on this route (413 past it).
    #[serde(
        with = "crate::units::size_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub max_body_size: Option<u64>,
}

impl RouteLimits {
    pub fn is_empty(&self) -> bool {
        self.max_body_size.is_none()
    }
}
