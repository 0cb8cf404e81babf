//! Why an operation on the instances (scale, rolling reload, replacement)
//! did not start or did not finish. `Display` is the message the CLI, the
//! admin API's progress stream and the log show.

use std::io;
use std::time::Duration;

/// An operation that could not start, or stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpError {
    /// The operation lock is held by the operation named.
    #[error("another operation is running: {0}")]
    Busy(String),
    /// A scale target outside `app.min`..`app.max` (`min_set`/`max_set`:
    /// whether the user wrote the bound, else it is the default).
    #[error(
        "cannot scale to {wanted}: the number of instances must be between {min} and {max}{}",
        bounds_named(*.min_set, *.max_set)
    )]
    OutOfBounds {
        wanted: u32,
        min: u32,
        max: u32,
        min_set: bool,
        max_set: bool,
    },
    /// `SIGUSR2` or a rolling reload without an `app` section.
    #[error("no app section: there are no instances to reload")]
    NoInstances,
    #[error("not reloading: shoal is shutting down")]
    ShuttingDown,
    /// No free port (or no process) for a new instance in `slot`.
    #[error("cannot start instance app-{slot}: {source}")]
    Start { slot: u32, source: io::Error },
    /// No free port (or no process) for the replacement of instance `id`.
    #[error("cannot start a replacement for {id}: {source}")]
    StartReplacement { id: String, source: io::Error },
    /// New instances did not become healthy.
    #[error(transparent)]
    NotReady(#[from] NotReady),
    /// A rolling reload stopped after `done` of `total` instances because
    /// of `cause`; `after` says what runs now.
    #[error("{}", rollout_stopped(*.done, *.total, .cause, .after))]
    RolloutStopped {
        done: usize,
        total: usize,
        cause: Box<OpError>,
        after: String,
    },
}

/// New instances that did not become healthy.
#[derive(Debug, thiserror::Error)]
pub enum NotReady {
    /// An instance exited before it was ever healthy: which, why, and the
    /// last lines it printed (they say why far better than an exit code).
    #[error("{}", exited(.id, *.generation, .exit, .output))]
    Exited {
        id: String,
        generation: u64,
        exit: String,
        output: Vec<String>,
    },
    /// `app.ready_timeout` passed; `late` names each instance not healthy
    /// and its state.
    #[error("not healthy within {timeout:?} (app.ready_timeout): {}", .late.join(", "))]
    Timeout {
        timeout: Duration,
        late: Vec<String>,
    },
}

/// Name the bounds only when the user set them.
fn bounds_named(min_set: bool, max_set: bool) -> &'static str {
    match (min_set, max_set) {
        (true, true) => " (app.min and app.max)",
        (true, false) => " (app.min)",
        (false, true) => " (app.max)",
        (false, false) => "",
    }
}

/// `rollout stopped after D of T: REASON; AFTER`, with the lines that
/// follow the first line of the reason (an instance's last output) kept at
/// the end.
fn rollout_stopped(done: usize, total: usize, cause: &OpError, after: &str) -> String {
    let head = format!("rollout stopped after {done} of {total}");
    let reason = cause.to_string();
    match reason.split_once('\n') {
        Some((first, rest)) => format!("{head}: {first}; {after}\n{rest}"),
        None => format!("{head}: {reason}; {after}"),
    }
}

fn exited(id: &str, generation: u64, exit: &str, output: &[String]) -> String {
    let mut message = format!("{id} (generation {generation}) exited during start-up: {exit}");
    if !output.is_empty() {
        message.push_str(&format!("\nlast output of {id}:"));
        for line in output {
            message.push_str(&format!("\n  {line}"));
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages() {
        let bounds = OpError::OutOfBounds {
            wanted: 9,
            min: 1,
            max: 4,
            min_set: false,
            max_set: true,
        };
        assert_eq!(
            bounds.to_string(),
            "cannot scale to 9: the number of instances must be between 1 and 4 (app.max)"
        );
        let exited = NotReady::Exited {
            id: "app-2".into(),
            generation: 3,
            exit: "exit code 1".into(),
            output: vec!["boom".into()],
        };
        let stopped = OpError::RolloutStopped {
            done: 1,
            total: 3,
            cause: Box::new(exited.into()),
            after: "the old instances keep serving".into(),
        };
        assert_eq!(
            stopped.to_string(),
            "rollout stopped after 1 of 3: app-2 (generation 3) exited during start-up: \
             exit code 1; the old instances keep serving\nlast output of app-2:\n  boom"
        );
        let late = NotReady::Timeout {
            timeout: Duration::from_secs(2),
            late: vec![
                "app-1 (starting)".into(),
                "app-2 (backoff, last exit: x)".into(),
            ],
        };
        assert_eq!(
            late.to_string(),
            "not healthy within 2s (app.ready_timeout): app-1 (starting), app-2 (backoff, last exit: x)"
        );
    }
}
