//! What a route changes on the way: the path (`strip_prefix`,
//! `add_prefix`) and headers (`request_headers`, `response_headers`), for
//! both engines — on raw header lines (the native engine) and on a
//! `HeaderMap` (hyper's path).

use std::borrow::Cow;

use http::header::{HeaderMap, HeaderName, HeaderValue};
use shoal_config::{HeaderRules, RouteConfig};

/// `strip_prefix`, then `add_prefix`.
#[derive(Debug, Default)]
pub struct PathRewrite {
    /// Without a trailing `/`.
    strip: Option<Box<str>>,
    /// Without a trailing `/`.
    add: Option<Box<str>>,
}

impl PathRewrite {
    pub fn new(route: &RouteConfig) -> PathRewrite {
        let trim = |p: &String| -> Box<str> { p.strip_suffix('/').unwrap_or(p).into() };
        PathRewrite {
            strip: route.strip_prefix.as_ref().map(trim),
            add: route.add_prefix.as_ref().map(trim),
        }
    }

    pub fn is_none(&self) -> bool {
        self.strip.is_none() && self.add.is_none()
    }

    /// The target (path and query) the backend gets. `/api/users?x` with
    /// `strip_prefix: /api` is `/users?x`; `/api` alone becomes `/`.
    pub fn apply<'t>(&self, target: &'t str) -> Cow<'t, str> {
        if self.is_none() {
            return Cow::Borrowed(target);
        }
        let mut rest = target;
        if let Some(strip) = &self.strip {
            if let Some(r) = target.strip_prefix(&**strip) {
                if r.is_empty() || r.starts_with(['/', '?']) {
                    rest = r;
                }
            }
        }
        let mut out = String::with_capacity(target.len() + 16);
        if let Some(add) = &self.add {
            out.push_str(add);
        }
        if !rest.starts_with('/') {
            out.push('/');
        }
        out.push_str(rest);
        Cow::Owned(out)
    }
}

/// Header rules, compiled: names lowercase; `remove` and `set` names
/// drop the client's (or backend's) lines, then `set` and `add` lines are
/// written.
#[derive(Debug, Default)]
pub struct HeaderEdits {
    drop: Box<[Box<str>]>,
    write: Box<[(HeaderName, HeaderValue)]>,
}

impl HeaderEdits {
    /// Names and values were checked when the config was loaded; one that
    /// still does not parse is left out.
    pub fn new(rules: &HeaderRules) -> HeaderEdits {
        let drop = rules
            .remove
            .iter()
            .chain(rules.set.keys())
            .map(|n| n.to_ascii_lowercase().into())
            .collect();
        let write = rules
            .set
            .iter()
            .chain(&rules.add)
            .filter_map(|(n, v)| {
                Some((
                    HeaderName::from_bytes(n.as_bytes()).ok()?,
                    HeaderValue::from_str(v).ok()?,
                ))
            })
            .collect();
        HeaderEdits { drop, write }
    }

    pub fn is_empty(&self) -> bool {
        self.drop.is_empty() && self.write.is_empty()
    }

    /// A line of this name is not passed on.
    pub fn drops(&self, name: &[u8]) -> bool {
        self.drop
            .iter()
            .any(|d| d.as_bytes().eq_ignore_ascii_case(name))
    }

    /// The lines to write, after the passed-on ones.
    pub fn lines(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.write
            .iter()
            .map(|(n, v)| (n.as_str().as_bytes(), v.as_bytes()))
    }

    /// The same edits on a `HeaderMap`.
    pub fn apply(&self, map: &mut HeaderMap) {
        for name in &*self.drop {
            map.remove(&**name);
        }
        for (name, value) in &*self.write {
            map.append(name.clone(), value.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(yaml: &str) -> RouteConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    #[test]
    fn prefixes_are_stripped_and_added_at_segment_boundaries() {
        let r = PathRewrite::new(&route("{to: a, strip_prefix: /api}"));
        assert_eq!(r.apply("/api/users?x=1"), "/users?x=1");
        assert_eq!(r.apply("/api"), "/");
        assert_eq!(r.apply("/api?x"), "/?x");
        assert_eq!(r.apply("/apix"), "/apix");
        let r = PathRewrite::new(&route("{to: a, strip_prefix: /api/, add_prefix: /v1/}"));
        assert_eq!(r.apply("/api/users"), "/v1/users");
        assert_eq!(r.apply("/api"), "/v1/");
        let r = PathRewrite::new(&route("{to: a, add_prefix: /v1}"));
        assert_eq!(r.apply("/x"), "/v1/x");
        assert!(matches!(
            PathRewrite::new(&route("{to: a}")).apply("/x"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn set_replaces_add_appends_remove_drops() {
        let rules: HeaderRules =
            serde_yaml_ng::from_str("{set: {X-A: '1'}, add: {x-b: '2'}, remove: [X-C]}").unwrap();
        let edits = HeaderEdits::new(&rules);
        assert!(edits.drops(b"x-a") && edits.drops(b"X-C") && !edits.drops(b"x-b"));
        let mut map = HeaderMap::new();
        map.append("x-a", "old".parse().unwrap());
        map.append("x-b", "old".parse().unwrap());
        map.append("x-c", "old".parse().unwrap());
        edits.apply(&mut map);
        assert_eq!(map.get_all("x-a").iter().collect::<Vec<_>>(), ["1"]);
        assert_eq!(map.get_all("x-b").iter().collect::<Vec<_>>(), ["old", "2"]);
        assert!(map.get("x-c").is_none());
    }
}
