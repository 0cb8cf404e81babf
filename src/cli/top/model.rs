//! What `shoal top` shows, as data: the last status document and fleet
//! sample, the latest events, the selected app, the question being asked
//! and the last operation's outcome; and the numbers the screen prints
//! (fleet totals, each instance's row). No terminal here: `view.rs` draws
//! a [`Model`], `fetch.rs` fills it, and the tests read it directly.

use std::collections::VecDeque;

use crate::admin::status::{self, Status};
use crate::dashboard::history::Sample;
use crate::events::Event;
use crate::supervisor::usage::WINDOW;
use crate::supervisor::ProcState;

/// Events kept for the screen (it shows the newest that fit).
pub const EVENTS_KEPT: usize = 50;

/// What the poller brings each interval.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub status: Status,
    /// The dashboard's one-second samples (`/api/v1/metrics/history`) over
    /// the instances' window, when the running shoal has them: fleet
    /// requests/s and error rate, shoal's own answers (a 503 with nothing
    /// in rotation) included.
    pub fleet: Option<Traffic>,
    /// Events after the ones already brought, oldest first.
    pub events: Vec<Event>,
    /// The events' cursor restarted (another shoal answers now): the
    /// events kept so far are dropped.
    pub events_restarted: bool,
}

/// A change the screen asks to confirm.
#[derive(Debug, Clone, PartialEq)]
pub enum Ask {
    Scale { app: String, from: u32, to: u32 },
    Reload { app: String },
}

impl Ask {
    /// The question on screen.
    pub fn question(&self) -> String {
        match self {
            Ask::Scale { app, from, to } => {
                format!("Scale {app} from {from} to {to} instance(s)? y to confirm, any other key cancels")
            }
            Ask::Reload { app } => format!(
                "Rolling reload of {app} (each instance replaced by a new one)? y to confirm, any other key cancels"
            ),
        }
    }

    /// What it is, in a few words: `scale web to 4`, `reload web`.
    pub fn what(&self) -> String {
        match self {
            Ask::Scale { app, to, .. } => format!("scale {app} to {to}"),
            Ask::Reload { app } => format!("reload {app}"),
        }
    }
}

/// The last operation's outcome, or how far the running one got.
#[derive(Debug, Clone, PartialEq)]
pub enum Notice {
    Running(String),
    Done(String),
    Failed(String),
    Cancelled(String),
}

/// The whole screen's state.
#[derive(Debug, Default)]
pub struct Model {
    /// `127.0.0.1:9090`, for the title and the trouble line.
    pub admin: String,
    pub status: Option<Status>,
    pub fleet: Option<Traffic>,
    pub events: VecDeque<Event>,
    /// Why the last poll failed (unreachable, 401 …); `None` when it worked.
    pub trouble: Option<String>,
    /// Polls that failed in a row.
    pub failed_polls: u32,
    /// Index into [`Model::apps`].
    pub selected: usize,
    pub asking: Option<Ask>,
    pub notice: Option<Notice>,
}

/// One app's block: its line and its instances' rows.
#[derive(Debug, Clone, PartialEq)]
pub struct AppView {
    pub name: String,
    pub instances: usize,
    pub target: u32,
    pub generation: u64,
    pub operation: Option<String>,
    pub rows: Vec<InstanceRow>,
}

/// One instance's line, as printed.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRow {
    pub id: String,
    pub state: String,
    pub health: String,
    pub pid: String,
    pub cpu: String,
    pub rss: String,
    pub rps: String,
    pub p95: String,
    pub restarts: String,
    /// Up and in rotation: drawn plainly; otherwise highlighted.
    pub healthy: bool,
}

/// The fleet's traffic over the last seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Traffic {
    pub requests_per_sec: f64,
    /// 0 to 1.
    pub error_rate: f64,
    /// The per-second p95s weighted by their requests: an estimate (the
    /// p95 of the seconds together lies between the lowest and the
    /// highest of them).
    pub p95_ms: Option<f64>,
}

impl Traffic {
    /// The last [`WINDOW`] of the samples (one a second, oldest first), as
    /// the instances' figures span: one quiet second does not read as no
    /// traffic.
    pub fn of(samples: &[Sample]) -> Option<Traffic> {
        let n = WINDOW.as_secs() as usize;
        let last = &samples[samples.len().saturating_sub(n)..];
        if last.is_empty() {
            return None;
        }
        let requests: f64 = last.iter().map(|s| s.requests_per_sec).sum();
        let errors: f64 = last.iter().map(|s| s.requests_per_sec * s.error_rate).sum();
        let (timed, weighted) = last
            .iter()
            .filter_map(|s| {
                s.p95_ms
                    .map(|p| (s.requests_per_sec, p * s.requests_per_sec))
            })
            .fold((0.0, 0.0), |(r, w), (ri, wi)| (r + ri, w + wi));
        Some(Traffic {
            requests_per_sec: requests / last.len() as f64,
            error_rate: if requests > 0.0 {
                errors / requests
            } else {
                0.0
            },
            p95_ms: (timed > 0.0).then(|| weighted / timed),
        })
    }
}

/// The fleet's totals line.
#[derive(Debug, Clone, PartialEq)]
pub struct Fleet {
    /// Backends (instances not on their way out, and upstreams) in rotation.
    pub up: usize,
    pub total: usize,
    pub requests_per_sec: f64,
    /// 0 to 1; `None` with no responses.
    pub error_rate: Option<f64>,
    pub p95_ms: Option<f64>,
}

impl Model {
    pub fn new(admin: String) -> Model {
        Model {
            admin,
            ..Model::default()
        }
    }

    /// A poll worked.
    pub fn update(&mut self, snap: Snapshot) {
        if snap.events_restarted {
            self.events.clear();
        }
        self.events.extend(snap.events);
        while self.events.len() > EVENTS_KEPT {
            self.events.pop_front();
        }
        self.status = Some(snap.status);
        self.fleet = snap.fleet;
        self.trouble = None;
        self.failed_polls = 0;
        let apps = self.apps().len();
        if self.selected >= apps {
            self.selected = apps.saturating_sub(1);
        }
    }

    /// A poll failed: say why; what was shown stays (marked stale).
    pub fn failed(&mut self, why: String) {
        self.trouble = Some(why);
        self.failed_polls += 1;
    }

    /// Every app with its instances, in the status' order.
    pub fn apps(&self) -> Vec<AppView> {
        let Some(s) = &self.status else {
            return Vec::new();
        };
        // Documents from before `apps` have only `app`.
        let apps: Vec<&status::App> = if s.apps.is_empty() {
            s.app.iter().collect()
        } else {
            s.apps.iter().collect()
        };
        let several = apps.len() > 1;
        apps.into_iter()
            .map(|a| AppView {
                name: a.name.clone(),
                instances: a.instances,
                target: a.target,
                generation: a.generation,
                operation: a.operation.clone(),
                rows: s
                    .instances
                    .iter()
                    .filter(|i| !several || i.app == a.name)
                    .map(row)
                    .collect(),
            })
            .collect()
    }

    pub fn select_next(&mut self) {
        let n = self.apps().len();
        if n > 0 {
            self.selected = (self.selected + 1).min(n - 1);
        }
    }

    pub fn select_previous(&mut self) {
        self.selected = self.selected.saturating_sub(1);
    }

    /// The selected app's name and target.
    fn chosen(&self) -> Option<(String, u32)> {
        self.apps()
            .get(self.selected)
            .map(|a| (a.name.clone(), a.target))
    }

    /// Why there is nothing to `what`.
    fn no_app(&self, what: &str) -> String {
        if self.status.is_some() {
            format!("no app to {what}: shoal runs no instances")
        } else {
            format!("nothing to {what} yet: the admin API has not answered")
        }
    }

    /// Ask to scale the selected app by `by` (+1, -1); nothing to ask
    /// without an app, or below zero.
    pub fn ask_scale(&mut self, by: i64) {
        let Some((app, from)) = self.chosen() else {
            self.notice = Some(Notice::Failed(self.no_app("scale")));
            return;
        };
        let Ok(to) = u32::try_from(i64::from(from) + by) else {
            self.notice = Some(Notice::Failed(format!("{app} has no instance to remove")));
            return;
        };
        self.asking = Some(Ask::Scale { app, from, to });
    }

    pub fn ask_reload(&mut self) {
        match self.chosen() {
            Some((app, _)) => self.asking = Some(Ask::Reload { app }),
            None => self.notice = Some(Notice::Failed(self.no_app("reload"))),
        }
    }

    /// The answer to the question: `Some` (what to do) on yes.
    pub fn answer(&mut self, yes: bool) -> Option<Ask> {
        let ask = self.asking.take()?;
        if yes {
            self.notice = Some(Notice::Running(format!("{}…", ask.what())));
            Some(ask)
        } else {
            self.notice = Some(Notice::Cancelled(format!("{}: cancelled", ask.what())));
            None
        }
    }

    /// Totals over every backend; requests/s and the error rate from the
    /// fleet sample when there is one, else the instances' own.
    pub fn fleet(&self) -> Option<Fleet> {
        let s = self.status.as_ref()?;
        let serving = s
            .instances
            .iter()
            .filter(|i| !matches!(i.state, ProcState::Draining | ProcState::Stopping));
        let (mut up, mut total) = (0, 0);
        let (mut rps, mut errors) = (0.0, 0.0);
        for i in serving {
            total += 1;
            up += usize::from(i.health == "up");
        }
        for i in &s.instances {
            rps += i.requests_per_sec.unwrap_or(0.0);
            errors += i.errors_per_sec.unwrap_or(0.0);
        }
        for u in &s.upstreams {
            total += 1;
            up += usize::from(u.health == "up");
        }
        Some(match &self.fleet {
            Some(f) => Fleet {
                up,
                total,
                requests_per_sec: f.requests_per_sec,
                error_rate: (f.requests_per_sec > 0.0).then_some(f.error_rate),
                p95_ms: f.p95_ms,
            },
            None => Fleet {
                up,
                total,
                requests_per_sec: rps,
                error_rate: (rps > 0.0).then(|| errors / rps),
                p95_ms: None,
            },
        })
    }
}

fn row(i: &status::Instance) -> InstanceRow {
    let running = i.pid.is_some();
    InstanceRow {
        id: i.id.clone(),
        state: i.state.as_str().to_string(),
        health: i.health.clone(),
        pid: i.pid.map_or_else(|| "-".into(), |p| p.to_string()),
        cpu: i.cpu_percent.map_or_else(|| "-".into(), percent),
        rss: if running && i.rss_bytes > 0 {
            bytes(i.rss_bytes)
        } else {
            "-".into()
        },
        rps: i.requests_per_sec.map_or_else(|| "-".into(), rate),
        p95: i.p95_ms.map_or_else(|| "-".into(), millis),
        restarts: i.restarts.to_string(),
        healthy: i.health == "up",
    }
}

/// `0.0`, `12.5`, `150`: a CPU share in percent.
pub fn percent(p: f64) -> String {
    if p >= 100.0 {
        format!("{p:.0}")
    } else {
        format!("{p:.1}")
    }
}

/// `812K`, `23.4M`, `1.20G` (binary units, as `top`).
pub fn bytes(n: u64) -> String {
    const K: f64 = 1024.0;
    let n = n as f64;
    if n < K * K {
        format!("{:.0}K", n / K)
    } else if n < K * K * K {
        format!("{:.1}M", n / (K * K))
    } else {
        format!("{:.2}G", n / (K * K * K))
    }
}

/// `0`, `0.4`, `12.5`, `1234`: requests per second.
pub fn rate(r: f64) -> String {
    if r == 0.0 {
        "0".into()
    } else if r < 100.0 {
        format!("{r:.1}")
    } else {
        format!("{r:.0}")
    }
}

/// `0.8ms`, `12ms`, `1.25s`.
pub fn millis(ms: f64) -> String {
    if ms < 10.0 {
        format!("{ms:.1}ms")
    } else if ms < 1000.0 {
        format!("{ms:.0}ms")
    } else {
        format!("{:.2}s", ms / 1000.0)
    }
}

/// `1.5%` of the responses.
pub fn share(r: f64) -> String {
    let p = r * 100.0;
    if p > 0.0 && p < 0.1 {
        "<0.1%".into()
    } else {
        format!("{p:.1}%")
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
