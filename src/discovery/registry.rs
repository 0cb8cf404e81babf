//! `registry: true`: remote instances register themselves at
//! `POST /api/v1/backends` (`admin/backends.rs`) and send the same request
//! again as a heartbeat before their TTL lapses; one that stops is out of
//! rotation within its TTL (and the registry task's tick), its in-flight
//! requests finishing. `DELETE` takes one out at once (a graceful stop).
//! The registry is in this process: with several shoal replicas, an
//! instance registers with each (its agent loops over them).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{Found, Look};

/// A registration's TTL when it names none, and the bounds of one it names.
pub const DEFAULT_TTL: Duration = Duration::from_secs(10);
pub const MIN_TTL: Duration = Duration::from_secs(1);
pub const MAX_TTL: Duration = Duration::from_secs(300);

/// How often a registry group's task looks for lapsed registrations.
pub const TICK: Duration = Duration::from_millis(200);

struct Entry {
    weight: u32,
    ttl: Duration,
    expires: Instant,
}

/// One registered backend, as `GET /api/v1/backends` lists it.
#[derive(serde::Serialize)]
pub struct Registered {
    pub group: String,
    pub address: SocketAddr,
    pub weight: u32,
    pub ttl_secs: f64,
    pub expires_in_secs: f64,
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RegisterError {
    #[error("no upstream group `{0}` takes registrations (set `registry: true` on it)")]
    NotARegistryGroup(String),
}

/// The registrations of every group with `registry: true`.
#[derive(Default)]
pub struct Registry {
    groups: Mutex<BTreeMap<String, BTreeMap<SocketAddr, Entry>>>,
}

impl Registry {
    fn groups(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, BTreeMap<SocketAddr, Entry>>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Take registrations for exactly these groups (a group gone from the
    /// config forgets its registrations).
    pub fn enable(&self, names: &[String]) {
        let mut groups = self.groups();
        groups.retain(|g, _| names.contains(g));
        for n in names {
            groups.entry(n.clone()).or_default();
        }
    }

    /// Register `address` in `group`, or renew it (a heartbeat); returns
    /// whether it is new.
    pub fn register(
        &self,
        group: &str,
        address: SocketAddr,
        weight: u32,
        ttl: Duration,
    ) -> Result<bool, RegisterError> {
        let mut groups = self.groups();
        let entries = groups
            .get_mut(group)
            .ok_or_else(|| RegisterError::NotARegistryGroup(group.to_string()))?;
        let now = Instant::now();
        let entry = Entry {
            weight,
            ttl,
            expires: now + ttl,
        };
        let new = entries
            .insert(address, entry)
            .is_none_or(|old| old.expires <= now);
        Ok(new)
    }

    /// Take `address` out of `group` now; whether it was there.
    pub fn deregister(&self, group: &str, address: SocketAddr) -> Result<bool, RegisterError> {
        let mut groups = self.groups();
        let entries = groups
            .get_mut(group)
            .ok_or_else(|| RegisterError::NotARegistryGroup(group.to_string()))?;
        Ok(entries.remove(&address).is_some())
    }

    /// Every registration still alive.
    pub fn list(&self) -> Vec<Registered> {
        let now = Instant::now();
        let groups = self.groups();
        let mut out = Vec::new();
        for (group, entries) in groups.iter() {
            for (addr, e) in entries.iter().filter(|(_, e)| e.expires > now) {
                out.push(Registered {
                    group: group.clone(),
                    address: *addr,
                    weight: e.weight,
                    ttl_secs: e.ttl.as_secs_f64(),
                    expires_in_secs: (e.expires - now).as_secs_f64(),
                });
            }
        }
        out
    }

    /// The group's live registrations; lapsed ones are forgotten.
    pub fn look(&self, group: &str) -> Look {
        let now = Instant::now();
        let mut groups = self.groups();
        let Some(entries) = groups.get_mut(group) else {
            return Ok((Found::new(), Some(TICK)));
        };
        entries.retain(|_, e| e.expires > now);
        let found = entries.iter().map(|(a, e)| (*a, e.weight)).collect();
        Ok((found, Some(TICK)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_lapse_and_renew() {
        let r = Registry::default();
        r.enable(&["api".to_string()]);
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        assert_eq!(
            r.register("web", a, 1, DEFAULT_TTL),
            Err(RegisterError::NotARegistryGroup("web".into()))
        );
        assert_eq!(r.register("api", a, 2, Duration::from_millis(50)), Ok(true));
        assert_eq!(
            r.register("api", a, 2, Duration::from_millis(50)),
            Ok(false)
        );
        assert_eq!(r.look("api").unwrap().0, vec![(a, 2)]);
        std::thread::sleep(Duration::from_millis(80));
        assert!(r.look("api").unwrap().0.is_empty(), "lapsed");
        assert_eq!(r.register("api", a, 1, DEFAULT_TTL), Ok(true));
        assert_eq!(r.deregister("api", a), Ok(true));
        assert!(r.list().is_empty());
        r.enable(&[]);
        assert!(r.register("api", a, 1, DEFAULT_TTL).is_err(), "group gone");
    }
}
