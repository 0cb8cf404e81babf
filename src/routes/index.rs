//! Which routes can take a request, found without trying them all: every
//! route with an exact `host` is filed under it, every other route with a
//! path (exact, or a prefix other than `/`) under the path's first segment
//! (a `path_prefix` matches at a `/` boundary, so `/api/v1` can only take
//! paths whose first segment is `api`), and the rest — wildcards, no host
//! and no path — are tried for every request. The candidates are tried in
//! config order, so the first route that matches is still the one taken.
//! At 100 routes a request tries the few filed under its host or segment.

use std::collections::HashMap;

use shoal_config::RouteMatch;

type Map = HashMap<Box<[u8]>, Box<[u32]>, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub struct RouteIndex {
    by_host: Map,
    by_segment: Map,
    /// Routes tried for every request, in order.
    always: Box<[u32]>,
}

/// The first segment of `path`: `api` for `/api/v1?x` and `/api`.
fn first_segment(path: &str) -> &[u8] {
    let rest = path.strip_prefix('/').unwrap_or(path).as_bytes();
    let end = rest
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(rest.len());
    &rest[..end]
}

impl RouteIndex {
    pub fn new<'m>(matches: impl Iterator<Item = &'m RouteMatch>) -> RouteIndex {
        let mut by_host: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        let mut by_segment: HashMap<Box<[u8]>, Vec<u32>> = HashMap::new();
        let mut always = Vec::new();
        for (i, m) in matches.enumerate() {
            let i = i as u32;
            let exact_host = m.host.as_ref().filter(|h| !h.starts_with('*'));
            let path = m.path.as_deref().or(m
                .path_prefix
                .as_deref()
                .filter(|p| !p.trim_end_matches('/').is_empty()));
            if let Some(h) = exact_host {
                by_host
                    .entry(h.to_ascii_lowercase().into_bytes().into())
                    .or_default()
                    .push(i);
            } else if let Some(p) = path {
                by_segment
                    .entry(first_segment(p).into())
                    .or_default()
                    .push(i);
            } else {
                always.push(i);
            }
        }
        let freeze = |m: HashMap<Box<[u8]>, Vec<u32>>| -> Map {
            m.into_iter().map(|(k, v)| (k, v.into())).collect()
        };
        RouteIndex {
            by_host: freeze(by_host),
            by_segment: freeze(by_segment),
            always: always.into(),
        }
    }

    /// Call `try_route` on each route that may take a request to `host`
    /// (lowercase, without its port) and `path`, in config order, until it
    /// says yes; that route's index.
    pub fn first(
        &self,
        host: Option<&[u8]>,
        path: &str,
        mut try_route: impl FnMut(usize) -> bool,
    ) -> Option<usize> {
        let empty: &[u32] = &[];
        let a = host
            .and_then(|h| self.by_host.get(h))
            .map_or(empty, |v| &**v);
        let b = if self.by_segment.is_empty() {
            empty
        } else {
            self.by_segment
                .get(first_segment(path))
                .map_or(empty, |v| &**v)
        };
        let c = &*self.always;
        // A three-way merge of sorted lists, in increasing route order.
        let (mut i, mut j, mut k) = (0, 0, 0);
        loop {
            let next = [a.get(i), b.get(j), c.get(k)]
                .into_iter()
                .flatten()
                .min()
                .copied()?;
            if a.get(i) == Some(&next) {
                i += 1;
            } else if b.get(j) == Some(&next) {
                j += 1;
            } else {
                k += 1;
            }
            if try_route(next as usize) {
                return Some(next as usize);
            }
        }
    }
}
