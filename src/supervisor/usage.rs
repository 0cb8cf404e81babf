//! One instance's recent figures — CPU %, responses per second, p95
//! response time — for the status API (`shoal top`). The memory watcher
//! (`memory.rs`) takes one [`Reading`] a second from what is already
//! counted (its process group's CPU ticks from /proc, its endpoint's
//! response counters and time histogram); a figure is the difference
//! between the newest reading and the oldest one within [`WINDOW`].
//! Nothing is added to the request path.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::balance::Endpoint;
use crate::dashboard::history::quantile;

/// How far back the figures look: long enough that one quiet second does
/// not make requests/s jump to zero, short enough to follow a change.
pub const WINDOW: Duration = Duration::from_secs(5);

/// The counters at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub at: Instant,
    /// The process group leader and its group's CPU ticks (utime + stime
    /// of its members and their reaped children); `None` while no process
    /// runs or /proc did not have it.
    pub cpu: Option<(u32, u64)>,
    /// Responses, all status classes.
    pub responses: u64,
    /// Of them, 5xx.
    pub errors: u64,
    /// The response-time histogram, per bucket (the last is `+Inf`).
    pub buckets: Vec<u64>,
}

impl Reading {
    /// Read the endpoint's counters now, with the group's CPU ticks.
    pub fn of(endpoint: &Endpoint, cpu: Option<(u32, u64)>, at: Instant) -> Reading {
        let counts = endpoint.responses();
        Reading {
            at,
            cpu,
            responses: counts.iter().sum(),
            errors: counts[4],
            buckets: endpoint
                .response_times()
                .buckets
                .iter()
                .map(|b| b.1)
                .collect(),
        }
    }
}

/// What the status API shows of an instance's last seconds.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rates {
    /// CPU time over wall time, in percent of one core (a process busy on
    /// two cores shows 200, as `top` and PM2 show it).
    pub cpu_percent: Option<f64>,
    pub requests_per_sec: Option<f64>,
    pub errors_per_sec: Option<f64>,
    /// Estimated within the histogram's buckets; `None` without responses
    /// in the window.
    pub p95_ms: Option<f64>,
}

/// The readings within the window, oldest first.
#[derive(Debug, Default)]
pub struct Window {
    readings: VecDeque<Reading>,
}

impl Window {
    pub fn push(&mut self, r: Reading) {
        // Keep one reading at or past the window's start, so the figures
        // span the whole window.
        while self.readings.len() > 1 && r.at.duration_since(self.readings[1].at) >= WINDOW {
            self.readings.pop_front();
        }
        self.readings.push_back(r);
    }

    pub fn rates(&self, ticks_per_sec: f64) -> Rates {
        let (Some(first), Some(last)) = (self.readings.front(), self.readings.back()) else {
            return Rates::default();
        };
        let secs = last.at.duration_since(first.at).as_secs_f64();
        if secs <= 0.0 {
            return Rates::default();
        }
        let per_sec = |now: u64, was: u64| now.saturating_sub(was) as f64 / secs;
        let buckets: Vec<u64> = last
            .buckets
            .iter()
            .zip(first.buckets.iter().chain(std::iter::repeat(&0)))
            .map(|(now, was)| now.saturating_sub(*was))
            .collect();
        Rates {
            cpu_percent: self.cpu_percent(ticks_per_sec),
            requests_per_sec: Some(per_sec(last.responses, first.responses)),
            errors_per_sec: Some(per_sec(last.errors, first.errors)),
            p95_ms: quantile(&buckets, 0.95),
        }
    }

    /// Over the readings of the newest process only: a restarted instance's
    /// ticks start again from zero.
    fn cpu_percent(&self, ticks_per_sec: f64) -> Option<f64> {
        let last = self.readings.back()?;
        let (pid, now) = last.cpu?;
        let first = self
            .readings
            .iter()
            .find(|r| r.cpu.is_some_and(|(p, _)| p == pid))?;
        let (_, was) = first.cpu?;
        let secs = last.at.duration_since(first.at).as_secs_f64();
        (secs > 0.0).then(|| now.saturating_sub(was) as f64 / ticks_per_sec / secs * 100.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t0: Instant, secs: u64, cpu: Option<(u32, u64)>, responses: u64) -> Reading {
        let mut buckets = vec![0u64; 14];
        // Every response between 5 and 10 ms.
        buckets[3] = responses;
        Reading {
            at: t0 + Duration::from_secs(secs),
            cpu,
            responses,
            errors: responses / 10,
            buckets,
        }
    }

    #[test]
    fn figures_are_differences_over_the_window() {
        let t0 = Instant::now();
        let mut w = Window::default();
        assert_eq!(w.rates(100.0), Rates::default());
        w.push(reading(t0, 0, Some((7, 1_000)), 0));
        assert_eq!(w.rates(100.0).requests_per_sec, None);
        w.push(reading(t0, 1, Some((7, 1_050)), 100));
        let r = w.rates(100.0);
        assert_eq!(r.requests_per_sec, Some(100.0));
        assert_eq!(r.errors_per_sec, Some(10.0));
        // 50 ticks of 10 ms in one second: half a core.
        assert_eq!(r.cpu_percent, Some(50.0));
        let p95 = r.p95_ms.unwrap();
        assert!(p95 > 5.0 && p95 <= 10.0, "{p95}");
        for s in 2..=10 {
            w.push(reading(t0, s, Some((7, 1_000 + 50 * s)), 100 * s));
        }
        // Only the last five seconds are kept.
        assert_eq!(w.readings.len(), 6);
        assert_eq!(w.rates(100.0).requests_per_sec, Some(100.0));
        // No responses in the window: a rate of zero and no p95.
        for s in 11..=16 {
            w.push(reading(t0, s, Some((7, 1_500)), 1_000));
        }
        let quiet = w.rates(100.0);
        assert_eq!(quiet.requests_per_sec, Some(0.0));
        assert_eq!(quiet.p95_ms, None);
        assert_eq!(quiet.cpu_percent, Some(0.0));
    }

    #[test]
    fn a_restarted_process_counts_from_its_own_first_reading() {
        let t0 = Instant::now();
        let mut w = Window::default();
        w.push(reading(t0, 0, Some((7, 9_000)), 0));
        w.push(reading(t0, 1, None, 0));
        w.push(reading(t0, 2, Some((8, 10)), 0));
        // One reading of the new process: nothing to compare with yet.
        assert_eq!(w.rates(100.0).cpu_percent, None);
        w.push(reading(t0, 4, Some((8, 210)), 0));
        assert_eq!(w.rates(100.0).cpu_percent, Some(100.0));
        w.push(reading(t0, 5, None, 0));
        assert_eq!(w.rates(100.0).cpu_percent, None);
    }
}
