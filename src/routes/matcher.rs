//! A route's `match`, compiled: each condition a request must meet, tested
//! against the engine-neutral view of its head, cheapest first.

use shoal_config::RouteMatch;

use crate::proxy::view::RequestView;

#[derive(Debug)]
enum Host {
    Any,
    /// Lowercase.
    Exact(Box<str>),
    /// `*.example.com`: `.example.com`, lowercase.
    Below(Box<str>),
}

#[derive(Debug)]
enum Path {
    Any,
    Exact(Box<str>),
    /// Without a trailing `/`; taken at a `/` boundary.
    Prefix(Box<str>),
}

/// A header's lowercase name, and the value it must have (`None`: present
/// with any value).
type HeaderCondition = (Box<str>, Option<Box<[u8]>>);

/// Which listeners' requests a route takes.
#[derive(Debug)]
pub enum Listeners {
    Any,
    /// A listener's own route: only that listener's.
    Only(Box<str>),
    /// A top-level route: every listener's but those with routes of
    /// their own.
    Except(Box<[Box<str>]>),
}

impl Listeners {
    fn take(&self, listener: &str) -> bool {
        match self {
            Listeners::Any => true,
            Listeners::Only(l) => **l == *listener,
            Listeners::Except(ls) => !ls.iter().any(|l| **l == *listener),
        }
    }
}

#[derive(Debug)]
pub struct Matcher {
    listeners: Listeners,
    path: Path,
    host: Host,
    methods: Box<[Box<str>]>,
    headers: Box<[HeaderCondition]>,
}

impl Matcher {
    pub fn new(m: &RouteMatch, listeners: Listeners) -> Matcher {
        let host = match &m.host {
            None => Host::Any,
            Some(h) => {
                let h = h.to_ascii_lowercase();
                match h.strip_prefix('*') {
                    Some(suffix) => Host::Below(suffix.into()),
                    None => Host::Exact(h.into()),
                }
            }
        };
        let path = match (&m.path, &m.path_prefix) {
            (Some(p), _) => Path::Exact(p.as_str().into()),
            (None, Some(p)) => Path::Prefix(p.strip_suffix('/').unwrap_or(p).into()),
            (None, None) => Path::Any,
        };
        Matcher {
            listeners,
            path,
            host,
            methods: m.methods.iter().map(|s| s.as_str().into()).collect(),
            headers: m
                .headers
                .iter()
                .map(|(n, v)| {
                    let value = (v != "*").then(|| v.as_bytes().into());
                    (n.to_ascii_lowercase().into(), value)
                })
                .collect(),
        }
    }

    /// The request meets every condition.
    pub fn matches(&self, req: &RequestView<'_>) -> bool {
        self.listeners.take(req.listener)
            && self.path_matches(req.path())
            && self.host_matches(req)
            && (self.methods.is_empty() || self.methods.iter().any(|m| **m == *req.method))
            && self.headers.iter().all(|(name, value)| {
                let mut values = req.headers.get_all(name);
                match value {
                    None => values.next().is_some(),
                    Some(v) => values.any(|got| got == &**v),
                }
            })
    }

    fn path_matches(&self, path: &str) -> bool {
        match &self.path {
            Path::Any => true,
            Path::Exact(p) => path == &**p,
            Path::Prefix(p) => path
                .strip_prefix(&**p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/')),
        }
    }

    fn host_matches(&self, req: &RequestView<'_>) -> bool {
        if matches!(self.host, Host::Any) {
            return true;
        }
        let Some(host) = req.host else {
            return false;
        };
        let host = strip_port(host);
        match &self.host {
            Host::Any => true,
            Host::Exact(h) => host.eq_ignore_ascii_case(h.as_bytes()),
            Host::Below(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
            }
        }
    }
}

/// `Host` without its port (`[v6]:port` keeps its brackets).
pub(super) fn strip_port(host: &[u8]) -> &[u8] {
    let host = host.trim_ascii();
    if host.ends_with(b"]") {
        return host;
    }
    match host.iter().rposition(|&b| b == b':') {
        Some(i) => &host[..i],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::view::Headers;

    fn view<'a>(
        method: &'a str,
        target: &'a str,
        lines: &'a [httparse::Header<'a>],
    ) -> RequestView<'a> {
        RequestView {
            listener: "",
            host: lines
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case("host"))
                .map(|h| h.value),
            client: [127, 0, 0, 1].into(),
            method,
            target,
            headers: Headers::Lines(lines),
        }
    }

    fn m(yaml: &str) -> Matcher {
        Matcher::new(&serde_yaml_ng::from_str(yaml).unwrap(), Listeners::Any)
    }

    #[test]
    fn each_condition_is_tested() {
        let lines = [
            httparse::Header {
                name: "Host",
                value: b"API.example.com:8080",
            },
            httparse::Header {
                name: "X-Env",
                value: b"prod",
            },
        ];
        let get = |target| view("GET", target, &lines);
        assert!(m("{}").matches(&get("/x")));
        assert!(m("path_prefix: /api").matches(&get("/api")));
        assert!(m("path_prefix: /api/").matches(&get("/api/v1?q")));
        assert!(!m("path_prefix: /api").matches(&get("/apix")));
        assert!(m("path_prefix: /").matches(&get("/anything")));
        assert!(m("path: /health").matches(&get("/health?full=1")));
        assert!(!m("path: /health").matches(&get("/health/x")));
        assert!(m("host: api.example.com").matches(&get("/")));
        assert!(m("host: '*.example.com'").matches(&get("/")));
        assert!(!m("host: '*.api.example.com'").matches(&get("/")));
        assert!(!m("host: example.com").matches(&get("/")));
        assert!(m("methods: [GET, HEAD]").matches(&get("/")));
        assert!(!m("methods: [POST]").matches(&get("/")));
        assert!(m("headers: {x-env: prod}").matches(&get("/")));
        assert!(m("headers: {X-ENV: '*'}").matches(&get("/")));
        assert!(!m("headers: {x-env: dev}").matches(&get("/")));
        assert!(!m("headers: {x-other: '*'}").matches(&get("/")));
    }

    #[test]
    fn ports_are_not_part_of_the_host() {
        assert_eq!(strip_port(b"a.test:80"), b"a.test");
        assert_eq!(strip_port(b"a.test"), b"a.test");
        assert_eq!(strip_port(b"[::1]"), b"[::1]");
        assert_eq!(strip_port(b"[::1]:8080"), b"[::1]");
    }
}
