//! `sticky` (on an app, an upstream group or a route): a signing key long
//! enough to sign with, a cookie name and path a browser keeps, a
//! lifetime a browser honours.

use std::time::Duration;

use super::Checker;
use crate::model::{SameSite, StickyConfig};

/// The shortest `sticky.key`: 128 bits, as for `admin.token`.
pub const MIN_KEY_BYTES: usize = 16;
/// Browsers cap a cookie's `Max-Age` at 400 days (RFC 6265bis §5.5).
const MAX_TTL: Duration = Duration::from_secs(400 * 24 * 3600);

pub(super) fn sticky(c: &mut Checker<'_>, at: &str, s: &StickyConfig) {
    let key = format!("{at}.key");
    if s.key.is_empty() {
        c.invalid(
            &key,
            format!(
                "is required: the secret the cookie is signed with, at least {MIN_KEY_BYTES} bytes \
                 (usually `${{SHOAL_STICKY_KEY}}`; an unset variable is empty)"
            ),
        );
    } else if s.key.len() < MIN_KEY_BYTES {
        c.invalid(
            &key,
            format!("is {} bytes; use at least {MIN_KEY_BYTES}", s.key.len()),
        );
    }
    if !cookie_name(&s.cookie) {
        c.invalid(
            &format!("{at}.cookie"),
            format!(
                "`{}` is not a cookie name: use letters, digits and `!#$%&'*+-.^_`|~`",
                s.cookie
            ),
        );
    }
    let path_ok = s.path.starts_with('/')
        && s.path
            .bytes()
            .all(|b| (0x21..0x7f).contains(&b) && b != b';');
    if !path_ok {
        c.invalid(
            &format!("{at}.path"),
            format!(
                "`{}` is not a cookie path: it starts with `/`, without spaces or `;`",
                s.path
            ),
        );
    }
    if let Some(ttl) = s.ttl {
        c.positive_at_most(&format!("{at}.ttl"), ttl, MAX_TTL);
    }
    if s.same_site == SameSite::None && !s.secure {
        c.invalid(
            &format!("{at}.same_site"),
            "`none` needs `secure: true`: browsers drop a `SameSite=None` cookie without \
             `Secure`"
                .into(),
        );
    }
}

/// An RFC 6265 cookie-name: an RFC 9110 token.
fn cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}
