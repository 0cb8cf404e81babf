//! What the admin API says about the instance under load: which one it is
//! (the backend whose request count grew while the probe requests went
//! through), and its CPU and memory after each step.
//!
//! `shoal plan` measures ONE instance. When the path is served by several
//! (an app with `instances: 3`, a group of upstreams), the load would be
//! spread and the figure would be the fleet's on this machine, not an
//! instance's: plan says so and stops, and the user runs it against one
//! instance (`shoal scale 1`, or a config with `instances: 1`). It never
//! scales a running deployment by itself.

use crate::admin::status::{Instance, Status};
use crate::cli::client::Admin;
use crate::supervisor::ProcState;

/// The backend under measurement.
#[derive(Debug, Clone, PartialEq)]
pub enum Measured {
    /// A local instance: its id (`app-1`), whose CPU and RSS shoal reads.
    Instance(String),
    /// A remote upstream: shoal does not see its process.
    Upstream(String),
}

impl Measured {
    pub fn id(&self) -> &str {
        match self {
            Measured::Instance(id) | Measured::Upstream(id) => id,
        }
    }
}

/// An instance's figures at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    /// Percent of one core, over the status API's last seconds.
    pub cpu_percent: Option<f64>,
    pub rss_bytes: Option<u64>,
}

/// Instances leaving (draining, stopping) serve nothing new.
fn active(i: &Instance) -> bool {
    !matches!(
        i.state,
        ProcState::Draining | ProcState::Stopping | ProcState::Stopped
    )
}

/// The backends whose request counts grew from `before` to `after`.
fn grown(before: &Status, after: &Status) -> Vec<Measured> {
    let was_i = |id: &str| {
        before
            .instances
            .iter()
            .find(|i| i.id == id)
            .map_or(0, |i| i.requests)
    };
    let was_u = |id: &str| {
        before
            .upstreams
            .iter()
            .find(|u| u.id == id)
            .map_or(0, |u| u.requests)
    };
    let mut out: Vec<Measured> = after
        .instances
        .iter()
        .filter(|i| i.requests > was_i(&i.id))
        .map(|i| Measured::Instance(i.id.clone()))
        .collect();
    out.extend(
        after
            .upstreams
            .iter()
            .filter(|u| u.requests > was_u(&u.id))
            .map(|u| Measured::Upstream(u.id.clone())),
    );
    out
}

/// Which one backend served the probe requests sent between `before` and
/// `after`; an error in words when it was none or several, or when its
/// app or group has others that would share the load.
pub fn which(before: &Status, after: &Status) -> Result<Measured, String> {
    let grown = grown(before, after);
    let one = match grown.as_slice() {
        [] => {
            return Err("the probe requests reached no backend shoal counts \
                 (does the URL point at this shoal's proxy, and --admin at its admin API?)"
                .into())
        }
        [one] => one.clone(),
        several => {
            let ids: Vec<&str> = several.iter().map(Measured::id).collect();
            return Err(several_message(&ids));
        }
    };
    let peers: Vec<&str> = match &one {
        Measured::Instance(id) => {
            let app = after
                .instances
                .iter()
                .find(|i| &i.id == id)
                .map(|i| i.app.clone())
                .unwrap_or_default();
            after
                .instances
                .iter()
                .filter(|i| i.app == app && active(i))
                .map(|i| i.id.as_str())
                .collect()
        }
        Measured::Upstream(id) => {
            let group = after
                .upstreams
                .iter()
                .find(|u| &u.id == id)
                .and_then(|u| u.group.clone());
            after
                .upstreams
                .iter()
                .filter(|u| u.group == group)
                .map(|u| u.id.as_str())
                .collect()
        }
    };
    if peers.len() > 1 {
        return Err(several_message(&peers));
    }
    Ok(one)
}

fn several_message(ids: &[&str]) -> String {
    format!(
        "the path is served by {} backends ({}): `shoal plan` measures ONE instance; \
         run the app with one (`shoal scale 1`, or `instances: 1` in the config), \
         or point it at a route or group with a single backend, then scale back",
        ids.len(),
        ids.join(", ")
    )
}

/// The instance's CPU and RSS in a status document.
pub fn usage(status: &Status, measured: &Measured) -> Usage {
    match measured {
        Measured::Upstream(_) => Usage::default(),
        Measured::Instance(id) => status
            .instances
            .iter()
            .find(|i| &i.id == id)
            .map(|i| Usage {
                cpu_percent: i.cpu_percent,
                rss_bytes: Some(i.rss_bytes).filter(|r| *r > 0),
            })
            .unwrap_or_default(),
    }
}

/// `GET /api/v1/status`.
pub async fn status(admin: &Admin) -> Result<Status, String> {
    admin
        .get_json::<Status>("/api/v1/status")
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn instance(id: &str, app: &str, state: &str, requests: u64) -> serde_json::Value {
        json!({
            "id": id, "app": app, "slot": 1, "generation": 1, "pid": 10, "port": 8001,
            "state": state, "health": "up", "last_check": null, "ejections": 0,
            "restarts": 0, "in_flight": 0, "requests": requests, "connections_opened": 1,
            "protocol": "http1", "rss_bytes": 20_000_000, "cpu_percent": 97.5,
            "uptime_secs": 3.0, "last_exit": null, "failure": null
        })
    }

    fn status(instances: Vec<serde_json::Value>) -> Status {
        serde_json::from_value(json!({
            "version": "0", "uptime_secs": 1.0, "shutting_down": false, "listen": null,
            "balance": "round_robin", "retries": 1, "app": null,
            "instances": instances, "upstreams": []
        }))
        .unwrap()
    }

    #[test]
    fn the_one_instance_whose_count_grew() {
        let before = status(vec![
            instance("api-1", "api", "running", 5),
            instance("web-1", "web", "running", 7),
        ]);
        let after = status(vec![
            instance("api-1", "api", "running", 5),
            instance("web-1", "web", "running", 10),
        ]);
        let m = which(&before, &after).unwrap();
        assert_eq!(m, Measured::Instance("web-1".into()));
        let u = usage(&after, &m);
        assert_eq!(u.rss_bytes, Some(20_000_000));
        assert_eq!(u.cpu_percent, Some(97.5));
    }

    #[test]
    fn several_instances_of_the_app_are_refused() {
        // Least-connections may send every probe to one instance: the
        // others of its app would still share the load.
        let before = status(vec![
            instance("app-1", "app", "running", 0),
            instance("app-2", "app", "running", 0),
        ]);
        let after = status(vec![
            instance("app-1", "app", "running", 3),
            instance("app-2", "app", "running", 0),
        ]);
        let e = which(&before, &after).unwrap_err();
        assert!(
            e.starts_with("the path is served by 2 backends (app-1, app-2)"),
            "{e}"
        );
        // One draining away does not count.
        let after = status(vec![
            instance("app-1", "app", "running", 3),
            instance("app-2", "app", "draining", 0),
        ]);
        assert_eq!(
            which(&before, &after),
            Ok(Measured::Instance("app-1".into()))
        );
    }

    #[test]
    fn no_growth_is_named() {
        let s = status(vec![instance("app-1", "app", "running", 3)]);
        let e = which(&s, &s).unwrap_err();
        assert!(e.contains("reached no backend"), "{e}");
    }
}
