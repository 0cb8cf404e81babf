//! The endpoint tables of the pools requests are balanced over, by name:
//! the default table (`app`'s instances and a flat `upstreams` list), one
//! per app of `apps`, and one per upstream group with its health-check
//! settings. Kept across config reloads, so a pool that stays keeps its
//! endpoints and their health; a group gone from the config is dropped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use shoal_config::Config;

use crate::balance::EndpointTable;
use crate::health::HealthCell;

pub struct PoolTables {
    /// `app`'s instances, and a flat `upstreams` list.
    pub default: Arc<EndpointTable>,
    /// Health checks of the flat list (`health`).
    pub default_health: HealthCell,
    /// Each app of `apps`, each upstream group.
    groups: Mutex<BTreeMap<String, Group>>,
}

struct Group {
    table: Arc<EndpointTable>,
    /// A group's health checks (an app's are its supervisor's).
    health: HealthCell,
}

impl PoolTables {
    pub fn new(config: &Config) -> PoolTables {
        let tables = PoolTables {
            default: Arc::new(EndpointTable::new()),
            default_health: crate::health::cell(&config.health),
            groups: Mutex::new(BTreeMap::new()),
        };
        tables.update(config);
        tables
    }

    fn groups(&self) -> MutexGuard<'_, BTreeMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the groups match `config`'s: new ones get a table, gone ones
    /// are dropped, every one's health settings are the config's (its own
    /// `health`, or the top-level one).
    pub fn update(&self, config: &Config) {
        self.default_health.store(Arc::new(config.health.clone()));
        let mut groups = self.groups();
        let apps = config.apps.iter().map(|(n, a)| (n.as_str(), &a.health));
        let wanted: Vec<(&str, &shoal_config::HealthConfig)> = config
            .upstreams
            .groups()
            .map(|(n, g)| (n, g.health.as_ref().unwrap_or(&config.health)))
            .chain(apps)
            .collect();
        groups.retain(|name, _| wanted.iter().any(|(n, _)| n == name));
        for (name, health) in wanted {
            match groups.get(name) {
                Some(g) => g.health.store(Arc::new(health.clone())),
                None => {
                    groups.insert(
                        name.to_string(),
                        Group {
                            table: Arc::new(EndpointTable::new()),
                            health: crate::health::cell(health),
                        },
                    );
                }
            }
        }
    }

    /// The table of the pool `name` (the default pool's for any name that
    /// is not a group).
    pub fn table(&self, name: &str) -> Arc<EndpointTable> {
        self.groups()
            .get(name)
            .map_or_else(|| self.default.clone(), |g| g.table.clone())
    }

    /// Where a static upstream of `group` (`None`: the flat list) goes,
    /// and its health-check settings.
    pub fn for_upstream(&self, group: Option<&str>) -> (Arc<EndpointTable>, HealthCell) {
        match group.and_then(|g| {
            self.groups()
                .get(g)
                .map(|g| (g.table.clone(), g.health.clone()))
        }) {
            Some(found) => found,
            None => (self.default.clone(), self.default_health.clone()),
        }
    }

    /// Every pool's table, the default pool's first.
    pub fn all(&self) -> Vec<Arc<EndpointTable>> {
        let mut all = vec![self.default.clone()];
        all.extend(self.groups().values().map(|g| g.table.clone()));
        all
    }
}
