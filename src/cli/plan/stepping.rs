//! The stepped load: 1 client, then 2, 4, 8… (up to `--max-concurrency`),
//! each for `--step-seconds`, until one of the stop rules says the
//! instance is past its knee: the p95 passed the target, errors appeared,
//! or the throughput stopped growing. The whole run is bounded by
//! `--max-seconds` and each step by a request count. The rules are pure
//! functions of the steps so far ([`stop`], [`knee`]).

use std::time::{Duration, Instant};

use serde::Serialize;

use super::load::{self, StepResult, Target};
use super::measure::{self, Measured, Usage};
use crate::cli::client::Admin;

/// Errors above this share of a step's requests stop the run.
pub const MAX_ERROR_RATIO: f64 = 0.01;
/// A step whose throughput is not this much above the best so far means
/// the instance is saturated: more clients only queue.
pub const MIN_GROWTH: f64 = 1.10;
/// At most this many requests in one step.
pub const MAX_STEP_REQUESTS: u64 = 50_000;

/// The bounds of a run.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub p95: Duration,
    pub max_concurrency: usize,
    pub step: Duration,
    pub max_total: Duration,
}

/// A step and what the admin API said after it.
#[derive(Debug, Clone)]
pub struct Step {
    pub load: StepResult,
    pub usage: Usage,
}

/// Why the stepping stopped.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "reason")]
pub enum Stop {
    /// The p95 of the last step passed the target.
    P95 { p95_ms: f64, target_ms: f64 },
    /// The last step had errors.
    Errors { ratio: f64, first: String },
    /// The last step's throughput was not 10 % above the best before.
    Plateau { rps: f64, best_rps: f64 },
    /// `--max-concurrency` reached.
    MaxConcurrency { concurrency: usize },
    /// `--max-seconds` would have been passed by another step.
    TimeUp { seconds: f64 },
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stop::P95 { p95_ms, target_ms } => write!(
                f,
                "the p95 passed the target ({p95_ms:.1} ms > {target_ms:.0} ms)"
            ),
            Stop::Errors { ratio, first } => write!(
                f,
                "errors appeared ({:.1} % of the requests; first: {first})",
                ratio * 100.0
            ),
            Stop::Plateau { rps, best_rps } => write!(
                f,
                "the throughput stopped growing ({rps:.1} requests/s, the best before {best_rps:.1})"
            ),
            Stop::MaxConcurrency { concurrency } => write!(
                f,
                "--max-concurrency {concurrency} reached (the knee may be further: raise it)"
            ),
            Stop::TimeUp { seconds } => write!(
                f,
                "--max-seconds {seconds:.0} reached (the knee may be further: raise it)"
            ),
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Whether a step stayed within the p95 target, without errors.
pub fn passes(step: &StepResult, limits: &Limits) -> bool {
    step.error_ratio() <= MAX_ERROR_RATIO && step.quantile(0.95).is_some_and(|p| p <= limits.p95)
}

/// Whether the last step is past the knee, and why.
pub fn stop(steps: &[StepResult], limits: &Limits) -> Option<Stop> {
    let (last, before) = steps.split_last()?;
    if last.error_ratio() > MAX_ERROR_RATIO {
        return Some(Stop::Errors {
            ratio: last.error_ratio(),
            first: last.first_error.clone().unwrap_or_default(),
        });
    }
    match last.quantile(0.95) {
        Some(p) if p > limits.p95 => {
            return Some(Stop::P95 {
                p95_ms: ms(p),
                target_ms: ms(limits.p95),
            })
        }
        None => {
            return Some(Stop::Errors {
                ratio: 1.0,
                first: "no request was answered".into(),
            })
        }
        Some(_) => {}
    }
    let best = before.iter().map(StepResult::rps).fold(0.0, f64::max);
    if !before.is_empty() && last.rps() < best * MIN_GROWTH {
        return Some(Stop::Plateau {
            rps: last.rps(),
            best_rps: best,
        });
    }
    if last.concurrency >= limits.max_concurrency {
        return Some(Stop::MaxConcurrency {
            concurrency: last.concurrency,
        });
    }
    None
}

/// The knee: the step with the highest throughput among those within the
/// p95 target and without errors. Its throughput is the capacity.
pub fn knee(steps: &[StepResult], limits: &Limits) -> Option<usize> {
    steps
        .iter()
        .enumerate()
        .filter(|(_, s)| passes(s, limits))
        .max_by(|a, b| a.1.rps().total_cmp(&b.1.rps()))
        .map(|(i, _)| i)
}

/// The next step's clients: twice as many, at most the maximum.
pub fn next_concurrency(c: usize, max: usize) -> usize {
    (c * 2).min(max).max(c + 1)
}

/// Runs the steps; `progress` is told of each as it ends.
pub async fn run(
    target: &Target,
    admin: &Admin,
    measured: &Measured,
    limits: &Limits,
    progress: &mut dyn FnMut(&Step),
) -> (Vec<Step>, Stop) {
    let started = Instant::now();
    let mut steps: Vec<Step> = Vec::new();
    let mut concurrency = 1;
    loop {
        let left = limits.max_total.saturating_sub(started.elapsed());
        if !steps.is_empty() && left < limits.step {
            return (
                steps,
                Stop::TimeUp {
                    seconds: limits.max_total.as_secs_f64(),
                },
            );
        }
        let length = limits.step.min(left).max(Duration::from_millis(500));
        let load = load::step(target, concurrency, length, MAX_STEP_REQUESTS).await;
        // The status API's CPU figure is over its last seconds: read at the
        // end of the step, it is the step's.
        let usage = match measure::status(admin).await {
            Ok(s) => measure::usage(&s, measured),
            Err(_) => Usage::default(),
        };
        let step = Step { load, usage };
        progress(&step);
        steps.push(step);
        let results: Vec<StepResult> = steps.iter().map(|s| s.load.clone()).collect();
        if let Some(why) = stop(&results, limits) {
            return (steps, why);
        }
        concurrency = next_concurrency(concurrency, limits.max_concurrency);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            p95: Duration::from_millis(250),
            max_concurrency: 64,
            step: Duration::from_secs(5),
            max_total: Duration::from_secs(60),
        }
    }

    /// `n` answers of `ms` each over one second, `errors` of them failed.
    fn step(concurrency: usize, n: u64, ms: u64, errors: u64) -> StepResult {
        StepResult {
            concurrency,
            requests: n,
            errors,
            first_error: (errors > 0).then(|| "answered 502 Bad Gateway".into()),
            elapsed: Duration::from_secs(1),
            latencies: vec![Duration::from_millis(ms); n as usize],
        }
    }

    #[test]
    fn growing_throughput_goes_on() {
        let steps = [step(1, 40, 25, 0), step(2, 78, 25, 0)];
        assert_eq!(stop(&steps, &limits()), None);
    }

    #[test]
    fn a_plateau_stops_and_the_best_step_is_the_knee() {
        let steps = [step(1, 38, 26, 0), step(2, 40, 50, 0)];
        assert!(matches!(
            stop(&steps, &limits()),
            Some(Stop::Plateau { .. })
        ));
        assert_eq!(knee(&steps, &limits()), Some(1));
    }

    #[test]
    fn the_p95_target_and_errors_stop() {
        let steps = [step(1, 40, 25, 0), step(2, 80, 25, 0), step(4, 120, 300, 0)];
        assert!(matches!(stop(&steps, &limits()), Some(Stop::P95 { .. })));
        // The step past the target is not the knee, though it did more.
        assert_eq!(knee(&steps, &limits()), Some(1));
        let steps = [step(1, 40, 25, 0), step(2, 100, 25, 5)];
        let why = stop(&steps, &limits()).unwrap();
        assert!(
            why.to_string().starts_with("errors appeared (5.0 %"),
            "{why}"
        );
        assert_eq!(knee(&steps, &limits()), Some(0));
    }

    #[test]
    fn no_knee_when_one_client_is_too_slow() {
        let steps = [step(1, 3, 400, 0)];
        assert!(matches!(stop(&steps, &limits()), Some(Stop::P95 { .. })));
        assert_eq!(knee(&steps, &limits()), None);
    }

    #[test]
    fn concurrency_doubles_up_to_the_maximum() {
        assert_eq!(next_concurrency(1, 64), 2);
        assert_eq!(next_concurrency(32, 48), 48);
        let l = Limits {
            max_concurrency: 2,
            ..limits()
        };
        let steps = [step(1, 40, 25, 0), step(2, 80, 25, 0)];
        assert!(matches!(
            stop(&steps, &l),
            Some(Stop::MaxConcurrency { .. })
        ));
    }
}
