//! What the autoscaler did and why: every decision (a change or not) with
//! its inputs, in a bounded history, and the statistics the hand-written
//! scalers keep. The types are the API (`GET /api/v1/autoscale`) and what
//! `shoal status` reads.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use shoal_config::AutoscaleMode;

use super::policy::Desire;
use super::signals::Signals;

/// Decisions kept per app; the oldest go first.
pub const HISTORY: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The count stays.
    None,
    ScaleUp,
    ScaleDown,
    /// Someone else changed the count (`shoal scale`): the autoscaler pauses.
    Manual,
}

/// One decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    /// Seconds since the Unix epoch.
    pub at: f64,
    /// The count the supervisor kept when deciding.
    pub target: u32,
    pub signals: Signals,
    /// Each signal's ask.
    pub per_signal: Vec<Desire>,
    pub recommended: u32,
    pub stabilized: u32,
    pub desired: u32,
    pub action: Action,
    pub reason: String,
}

/// Something that happened to the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    pub at: f64,
    /// `scale_up`, `scale_down`, `failed` or `manual`.
    pub kind: String,
    pub message: String,
}

impl Event {
    /// `kind` happened now.
    pub fn now(kind: &str, message: String) -> Event {
        Event {
            at: wall(),
            kind: kind.to_string(),
            message,
        }
    }
}

/// Now, in seconds since the Unix epoch.
pub fn wall() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub scale_ups: u64,
    pub scale_downs: u64,
    /// Operations that did not finish: a new instance not healthy within
    /// `app.ready_timeout` (or exiting first).
    pub failed_ops: u64,
    pub manual_scales: u64,
    /// From the start of a scale-up to its last new instance in rotation.
    pub avg_time_to_healthy_secs: Option<f64>,
    pub last_event: Option<Event>,
    #[serde(skip)]
    healthy_secs_sum: f64,
    #[serde(skip)]
    healthy_count: u64,
}

impl Stats {
    pub fn scaled_up(&mut self, secs: f64, event: Event) {
        self.scale_ups += 1;
        self.healthy_secs_sum += secs;
        self.healthy_count += 1;
        self.avg_time_to_healthy_secs = Some(self.healthy_secs_sum / self.healthy_count as f64);
        self.last_event = Some(event);
    }

    pub fn scaled_down(&mut self, event: Event) {
        self.scale_downs += 1;
        self.last_event = Some(event);
    }

    pub fn failed(&mut self, event: Event) {
        self.failed_ops += 1;
        self.last_event = Some(event);
    }

    pub fn manual(&mut self, event: Event) {
        self.manual_scales += 1;
        self.last_event = Some(event);
    }
}

#[derive(Debug, Default)]
pub struct History {
    decisions: VecDeque<Decision>,
}

impl History {
    pub fn push(&mut self, d: Decision) {
        if self.decisions.len() == HISTORY {
            self.decisions.pop_front();
        }
        self.decisions.push_back(d);
    }

    pub fn last(&self) -> Option<&Decision> {
        self.decisions.back()
    }

    /// Oldest first.
    pub fn all(&self) -> Vec<Decision> {
        self.decisions.iter().cloned().collect()
    }
}

/// One app's autoscaler, as `GET /api/v1/autoscale` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub app: String,
    /// `app.autoscale` is set.
    pub enabled: bool,
    pub mode: Option<AutoscaleMode>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    /// The count the supervisor keeps now.
    pub target: u32,
    /// Seconds left of a manual-scale pause.
    pub paused_secs: Option<f64>,
    /// The autoscaler's own operation running now.
    pub operation: Option<String>,
    /// The latest smoothed signals.
    pub signals: Option<Signals>,
    pub stats: Stats,
    /// Oldest first, at most [`HISTORY`].
    pub history: Vec<Decision>,
}

/// What `shoal status` shows of it: the report without the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub mode: Option<AutoscaleMode>,
    pub min: Option<u32>,
    pub max: Option<u32>,
    pub paused_secs: Option<f64>,
    pub operation: Option<String>,
    pub stats: Stats,
    pub last_decision: Option<Decision>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(n: u32) -> Decision {
        Decision {
            at: f64::from(n),
            target: n,
            signals: Signals::default(),
            per_signal: Vec::new(),
            recommended: n,
            stabilized: n,
            desired: n,
            action: Action::None,
            reason: "no change".into(),
        }
    }

    #[test]
    fn the_history_is_bounded_oldest_out() {
        let mut h = History::default();
        for n in 0..(HISTORY as u32 + 10) {
            h.push(decision(n));
        }
        let all = h.all();
        assert_eq!(all.len(), HISTORY);
        assert_eq!(all[0].target, 10);
        assert_eq!(h.last().unwrap().target, HISTORY as u32 + 9);
    }

    #[test]
    fn the_average_time_to_healthy_is_over_scale_ups() {
        let mut s = Stats::default();
        let e = |k: &str| Event {
            at: 0.0,
            kind: k.into(),
            message: String::new(),
        };
        s.scaled_up(2.0, e("scale_up"));
        s.scaled_up(4.0, e("scale_up"));
        s.scaled_down(e("scale_down"));
        assert_eq!(s.avg_time_to_healthy_secs, Some(3.0));
        assert_eq!((s.scale_ups, s.scale_downs), (2, 1));
        let v = serde_json::to_value(&s).unwrap();
        assert_eq!(v["last_event"]["kind"], "scale_down");
        assert!(v.get("healthy_secs_sum").is_none());
    }
}
