//! `sticky:` — sticky sessions: a signed cookie that names the backend a
//! client was sent to, so its next requests go there too. On an app
//! (`app`, `apps.NAME`), an upstream group, or a route (a route's wins).

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// `sticky:` on an app, an upstream group or a route.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StickyConfig {
    /// The cookie's name.
    pub cookie: String,
    /// The cookie's lifetime (`Max-Age`); absent: a session cookie, gone
    /// when the browser closes.
    #[serde(
        default,
        with = "crate::units::duration_opt",
        skip_serializing_if = "Option::is_none"
    )]
    pub ttl: Option<Duration>,
    /// `Secure`: the browser sends it over HTTPS only.
    pub secure: bool,
    /// `HttpOnly`: scripts cannot read it.
    pub http_only: bool,
    /// `SameSite`.
    pub same_site: SameSite,
    /// `Path`.
    pub path: String,
    /// Required. The HMAC-SHA256 secret the cookie is signed with, at
    /// least 16 bytes (usually `${SHOAL_STICKY_KEY}`). Every shoal that
    /// shares it honours the others' cookies.
    pub key: String,
}

/// The cookie's name when `sticky.cookie` is absent.
pub const STICKY_COOKIE: &str = "shoal_sticky";

impl Default for StickyConfig {
    fn default() -> Self {
        StickyConfig {
            cookie: STICKY_COOKIE.to_string(),
            ttl: None,
            secure: false,
            http_only: true,
            same_site: SameSite::Lax,
            path: "/".to_string(),
            key: String::new(),
        }
    }
}

/// `sticky.same_site`: when a browser sends the cookie on requests that
/// come from other sites.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SameSite {
    /// On top-level navigations from other sites, not on their subrequests.
    #[default]
    Lax,
    /// Only on requests from the same site.
    Strict,
    /// Always (browsers want `secure: true` with it).
    None,
}

impl SameSite {
    /// The attribute's value as `Set-Cookie` writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            SameSite::Lax => "Lax",
            SameSite::Strict => "Strict",
            SameSite::None => "None",
        }
    }
}
