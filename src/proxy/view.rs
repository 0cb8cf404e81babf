//! The engine-neutral view of a request head that the phases read: the
//! client's address, the method, the target and the headers (`Host`
//! among them),
//! borrowed from whatever the engine parsed — hyper's `HeaderMap` and `Uri`,
//! or the native engine's httparse lines — so a phase (the balancer's key,
//! later routes, rate limits, cache keys) is written once for both.

use std::net::IpAddr;

use http::header::HeaderMap;

/// A request's header lines, as the engine holds them.
#[derive(Debug, Clone, Copy)]
pub enum Headers<'a> {
    /// hyper's path.
    Map(&'a HeaderMap),
    /// The native engine's parsed lines.
    Lines(&'a [httparse::Header<'a>]),
}

impl<'a> Headers<'a> {
    /// The first value of header `name` (lowercase).
    pub fn get(&self, name: &str) -> Option<&'a [u8]> {
        self.get_all(name).next()
    }

    /// Every value of header `name` (lowercase), in the order they came.
    pub fn get_all<'n>(&self, name: &'n str) -> impl Iterator<Item = &'a [u8]> + 'n
    where
        'a: 'n,
    {
        let (map, lines) = match *self {
            Headers::Map(map) => (Some(map.get_all(name).into_iter()), None),
            Headers::Lines(lines) => (None, Some(lines.iter())),
        };
        map.into_iter().flatten().map(|v| v.as_bytes()).chain(
            lines
                .into_iter()
                .flatten()
                .filter_map(move |h| h.name.eq_ignore_ascii_case(name).then_some(h.value)),
        )
    }
}

/// What the phases may look at in a request, as the client sent it.
#[derive(Debug, Clone, Copy)]
pub struct RequestView<'a> {
    /// The client's address as `trusted_proxies` let it be known.
    pub client: IpAddr,
    pub method: &'a str,
    /// The target's path and query (`/p?q=1`; `*` for the asterisk form).
    pub target: &'a str,
    pub headers: Headers<'a>,
    /// The name of the public listener it came on (for a listener's own
    /// routes); empty where no route asks.
    pub listener: &'a str,
    /// `Host` (HTTP/2's `:authority`), as the engine already found it.
    pub host: Option<&'a [u8]>,
}

impl<'a> RequestView<'a> {
    /// The target's path. (A byte loop: targets are short, and a
    /// generic string search costs more to set up than to run here.)
    pub fn path(&self) -> &'a str {
        match self.target.bytes().position(|b| b == b'?') {
            Some(i) => &self.target[..i],
            None => self.target,
        }
    }

    /// The value of cookie `name` in the request's `Cookie` header(s).
    pub fn cookie(&self, name: &str) -> Option<&'a [u8]> {
        self.headers.get_all("cookie").find_map(|value| {
            value.split(|&b| b == b';').find_map(|pair| {
                let pair = pair.trim_ascii();
                let eq = pair.iter().position(|&b| b == b'=')?;
                (pair[..eq] == *name.as_bytes()).then(|| &pair[eq + 1..])
            })
        })
    }

    /// The target's query, without the `?`.
    pub fn query(&self) -> Option<&'a str> {
        self.target.split_once('?').map(|(_, q)| q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_kinds_of_headers_read_alike() {
        let mut map = HeaderMap::new();
        map.append("x-a", "1".parse().unwrap());
        map.append("x-a", "2".parse().unwrap());
        map.append("cookie", "c=3".parse().unwrap());
        let lines = [
            httparse::Header {
                name: "X-A",
                value: b"1",
            },
            httparse::Header {
                name: "Cookie",
                value: b"c=3",
            },
            httparse::Header {
                name: "x-a",
                value: b"2",
            },
        ];
        for h in [Headers::Map(&map), Headers::Lines(&lines)] {
            assert_eq!(h.get("x-a"), Some(&b"1"[..]));
            assert_eq!(h.get_all("x-a").collect::<Vec<_>>(), [&b"1"[..], b"2"]);
            assert_eq!(h.get("cookie"), Some(&b"c=3"[..]));
            assert_eq!(h.get("x-none"), None);
        }
        let v = RequestView {
            listener: "",
            host: None,
            client: [127, 0, 0, 1].into(),
            method: "GET",
            target: "/a/b?x=1",
            headers: Headers::Lines(&lines),
        };
        assert_eq!((v.path(), v.query()), ("/a/b", Some("x=1")));
    }
}
