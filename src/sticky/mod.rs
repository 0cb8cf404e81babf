//! Sticky sessions (`sticky:` on an app, an upstream group or a route): a
//! signed cookie names the backend that served a client, and its next
//! requests go back there while that backend is in rotation.
//!
//! The phases, for both engines:
//! - *route* (`proxy::admit::route_of`): the route's [`Sticky`], if it has
//!   one, reads its cookie from the request's view; a value this key
//!   signed gives the pinned backend's sticky id ([`Sticky::pinned`]).
//!   Anything else (no cookie, changed, another key's, not ours) is no pin:
//!   the request is balanced as any other, never refused.
//! - *pick* (`proxy::attempt::Attempts`): the pinned backend first, if it
//!   is in the pool's set and in rotation (not draining, down, stopped or
//!   ejected) and not tried yet; else the balancer. Retries go elsewhere
//!   as always.
//! - *respond*: `Set-Cookie` naming the backend that answered, when the
//!   request had no valid pin or was answered by another backend
//!   ([`Sticky::renew`]).
//!
//! What the cookie names is `balance::Endpoint::sticky_id`: a stable hash
//! of the backend's id and address (`app-2@127.0.0.1:41873`,
//! `http://10.0.0.5:8080@10.0.0.5:8080`). An instance that a rolling
//! reload or a replacement starts anew listens on a new port, so its
//! predecessor's cookies name nothing any more; a removed backend is no
//! longer in the set. Either way the client is balanced and gets a new
//! cookie. Static upstreams have the same id and address in every shoal
//! that lists them, so replicas sharing the key agree.

mod cookie;
pub mod sign;

use std::sync::Arc;

use http::HeaderValue;
use shoal_config::StickyConfig;

use crate::balance::{Endpoint, Headers};
pub use sign::Signer;

/// A `sticky:` block, compiled: the cookie's name, the attributes written
/// after its value, and the signing key.
#[derive(Debug)]
pub struct Sticky {
    name: Box<str>,
    /// `; Path=/; Max-Age=3600; Secure; HttpOnly; SameSite=Lax`.
    attributes: Box<str>,
    signer: Signer,
}

impl Sticky {
    pub fn new(config: &StickyConfig) -> Sticky {
        let mut attributes = format!("; Path={}", config.path);
        if let Some(ttl) = config.ttl {
            attributes.push_str(&format!("; Max-Age={}", ttl.as_secs().max(1)));
        }
        if config.secure {
            attributes.push_str("; Secure");
        }
        if config.http_only {
            attributes.push_str("; HttpOnly");
        }
        attributes.push_str("; SameSite=");
        attributes.push_str(config.same_site.as_str());
        Sticky {
            name: config.cookie.as_str().into(),
            attributes: attributes.into(),
            signer: Signer::new(config.key.as_bytes()),
        }
    }

    /// `new` for an optional block, shared (a pool's block is its routes'
    /// too).
    pub fn from_config(config: Option<&StickyConfig>) -> Option<Arc<Sticky>> {
        config.map(|c| Arc::new(Sticky::new(c)))
    }

    /// The cookie's name.
    pub fn cookie(&self) -> &str {
        &self.name
    }

    /// The sticky id of the backend the request's cookie names, if it
    /// carries one this key signed.
    pub fn pinned(&self, headers: &Headers<'_>) -> Option<u64> {
        let value = cookie::find(headers.get_all("cookie"), self.name.as_bytes())?;
        self.signer.verify(value)
    }

    /// Whether the response from `endpoint` sets the cookie: the request
    /// was pinned to no backend, or to another one.
    #[inline]
    pub fn renew(pin: Option<u64>, endpoint: &Endpoint) -> bool {
        pin != Some(endpoint.sticky_id())
    }

    /// `Set-Cookie: NAME=VALUE; attributes` as a header line for the
    /// native engine (`\r\n` included).
    pub fn write_line(&self, out: &mut Vec<u8>, endpoint: &Endpoint) {
        out.extend_from_slice(b"set-cookie: ");
        self.write_value(out, endpoint);
        out.extend_from_slice(b"\r\n");
    }

    /// The `Set-Cookie` value for hyper's path. (Always `Some` for a
    /// checked config: the name is a token, the path printable, the value
    /// hex.)
    pub fn header_value(&self, endpoint: &Endpoint) -> Option<HeaderValue> {
        let mut v =
            Vec::with_capacity(self.name.len() + 1 + sign::VALUE_LEN + self.attributes.len());
        self.write_value(&mut v, endpoint);
        HeaderValue::from_bytes(&v).ok()
    }

    fn write_value(&self, out: &mut Vec<u8>, endpoint: &Endpoint) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(&self.signer.sign(endpoint.sticky_id()));
        out.extend_from_slice(self.attributes.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::pool::PoolSettings;

    fn config(yaml: &str) -> StickyConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn endpoint(port: u16) -> Arc<Endpoint> {
        Endpoint::new(
            "app-1".into(),
            ([127, 0, 0, 1], port).into(),
            1,
            &PoolSettings::default(),
        )
    }

    #[test]
    fn the_cookie_it_sets_pins_the_next_request() {
        let s = Sticky::new(&config("{key: 0123456789abcdef}"));
        let e = endpoint(4000);
        let line = String::from_utf8(s.header_value(&e).unwrap().as_bytes().to_vec()).unwrap();
        assert!(line.starts_with("shoal_sticky="), "{line}");
        assert!(line.ends_with("; Path=/; HttpOnly; SameSite=Lax"), "{line}");
        let value = line.split(';').next().unwrap();
        let mut map = http::HeaderMap::new();
        map.append("cookie", format!("other=1; {value}").parse().unwrap());
        assert_eq!(s.pinned(&Headers::Map(&map)), Some(e.sticky_id()));
        assert!(!Sticky::renew(Some(e.sticky_id()), &e));
        assert!(Sticky::renew(None, &e));
        // The same instance slot on another port (a rolling reload's
        // replacement) is another backend.
        assert!(Sticky::renew(Some(e.sticky_id()), &endpoint(4001)));
        // The native engine writes the same value.
        let mut out = Vec::new();
        s.write_line(&mut out, &e);
        assert_eq!(out, format!("set-cookie: {line}\r\n").into_bytes());
    }

    #[test]
    fn attributes_follow_the_config() {
        let s = Sticky::new(&config(
            "{key: 0123456789abcdef, cookie: srv, ttl: 1h, secure: true, http_only: false, same_site: none, path: /app}",
        ));
        let v = s.header_value(&endpoint(1)).unwrap();
        let v = v.to_str().unwrap();
        assert!(v.starts_with("srv="), "{v}");
        assert!(
            v.ends_with("; Path=/app; Max-Age=3600; Secure; SameSite=None"),
            "{v}"
        );
    }

    #[test]
    fn a_tampered_or_foreign_cookie_pins_nothing() {
        let s = Sticky::new(&config("{key: 0123456789abcdef}"));
        let other = Sticky::new(&config("{key: fedcba9876543210}"));
        let e = endpoint(4000);
        let good = String::from_utf8(s.signer.sign(e.sticky_id()).to_vec()).unwrap();
        let foreign = String::from_utf8(other.signer.sign(e.sticky_id()).to_vec()).unwrap();
        let mut tampered = good.clone().into_bytes();
        tampered[0] = if tampered[0] == b'0' { b'1' } else { b'0' };
        let tampered = String::from_utf8(tampered).unwrap();
        for (cookie, want) in [
            (format!("shoal_sticky={good}"), Some(e.sticky_id())),
            (format!("shoal_sticky={foreign}"), None),
            (format!("shoal_sticky={tampered}"), None),
            ("shoal_sticky=app-1".to_string(), None),
            (format!("other={good}"), None),
        ] {
            let lines = [httparse::Header {
                name: "Cookie",
                value: cookie.as_bytes(),
            }];
            assert_eq!(s.pinned(&Headers::Lines(&lines)), want, "{cookie}");
        }
    }
}
