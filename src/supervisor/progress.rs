//! Progress of a long operation (scale, rolling reload, config reload), sent
//! to whoever asked for it — the CLI over the admin API — and to the log.
//! Nobody listening is fine: the operation goes on.

use serde::Serialize;
use tokio::sync::mpsc;

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Progress {
        message: String,
        done: usize,
        total: usize,
    },
    Done {
        ok: bool,
        message: String,
    },
}

#[derive(Clone, Default)]
pub struct Progress {
    tx: Option<mpsc::UnboundedSender<Event>>,
}

impl Progress {
    pub fn channel() -> (Progress, mpsc::UnboundedReceiver<Event>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Progress { tx: Some(tx) }, rx)
    }

    /// Progress that only goes to the log (signals, memory replacement).
    pub fn log_only() -> Progress {
        Progress { tx: None }
    }

    pub fn step(&self, done: usize, total: usize, message: impl Into<String>) {
        let message = message.into();
        // A step that moves no count (`started app-4 on port …`) has none
        // to log (it read `done=0 total=0`).
        if total > 0 {
            tracing::info!(done, total, "{message}");
        } else {
            tracing::info!("{message}");
        }
        crate::events::emit(crate::events::Kind::Step, None, None, message.clone());
        self.send(Event::Progress {
            message,
            done,
            total,
        });
    }

    /// The operation's end: what it did, or why it failed.
    pub fn finish<E: std::fmt::Display>(&self, result: &Result<String, E>) {
        let (ok, message) = match result {
            Ok(m) => {
                tracing::info!("{m}");
                (true, m.clone())
            }
            Err(e) => {
                let m = e.to_string();
                tracing::error!("{m}");
                (false, m)
            }
        };
        self.send(Event::Done { ok, message });
    }

    fn send(&self, e: Event) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(e);
        }
    }
}
