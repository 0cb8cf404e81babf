//! `shoal top`: a live terminal view of a running shoal, as `pm2 monit`.
//! It talks only to the admin API, as the other client verbs do.
//!
//! | file | |
//! |---|---|
//! | `mod.rs` | the terminal (raw mode, alternate screen, always restored) and the loop |
//! | `fetch.rs` | the polls and the operations, over the admin API |
//! | `model.rs` | what is shown, as data, and its numbers (tested without a terminal) |
//! | `view.rs` | drawing the model with ratatui |
//! | `keys.rs` | keys → actions |
//!
//! One tokio task polls every `--interval` and sends what it got; the loop
//! draws, then waits for a poll, a key, an operation's progress or a
//! signal. A poll that fails is shown and the next one tries again.

mod fetch;
mod keys;
mod model;
mod view;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, Notify};

use super::client::{admin_address, admin_token, Admin, ClientError};
use super::ConfigSource;
use keys::Action;
use model::{Model, Notice, Snapshot};

/// What reaches the loop besides keys.
enum Update {
    Polled(Box<Result<Snapshot, String>>),
    Step(String),
    Finished(Result<String, String>),
}

/// Restores the terminal when dropped: on `q`, on an error, and while a
/// panic unwinds (ratatui's panic hook restores it too, before the
/// message is printed).
struct Screen(ratatui::DefaultTerminal);

impl Drop for Screen {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

pub fn run(src: &ConfigSource, admin: Option<&str>, interval: Duration) -> i32 {
    let result = (|| {
        let addr = admin_address(admin, src)?;
        let address = addr.to_string();
        let admin = Admin::new(addr).with_token(admin_token(src));
        if !std::io::stdout().is_terminal() {
            return Err(TopError::NoTerminal);
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        rt.block_on(watch(admin, address, interval))
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal: {e}");
            1
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum TopError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("`shoal top` draws on a terminal, and stdout is not one; `shoal status` prints the same once")]
    NoTerminal,
    #[error("the terminal: {0}")]
    Terminal(#[from] std::io::Error),
}

async fn watch(admin: Admin, address: String, interval: Duration) -> Result<(), TopError> {
    let admin = Arc::new(admin);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let poll_now = Arc::new(Notify::new());
    let poller = tokio::spawn(poll(admin.clone(), interval, tx.clone(), poll_now.clone()));
    let mut keys = EventStream::new();
    let mut term = signal(SignalKind::terminate())?;
    let mut hangup = signal(SignalKind::hangup())?;
    // Ctrl-C is a key in raw mode; this is `kill -INT`.
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut screen = Screen(ratatui::try_init()?);
    let mut m = Model::new(address);
    let end = loop {
        if let Err(e) = screen.0.draw(|f| view::draw(f, &m)) {
            break Err(e.into());
        }
        tokio::select! {
            Some(update) = rx.recv() => match update {
                Update::Polled(polled) => match *polled {
                    Ok(snap) => m.update(snap),
                    Err(why) => m.failed(why),
                },
                Update::Step(text) => m.notice = Some(Notice::Running(text)),
                Update::Finished(outcome) => {
                    m.notice = Some(match outcome {
                        Ok(text) => Notice::Done(text),
                        Err(why) => Notice::Failed(why),
                    });
                    poll_now.notify_one();
                }
            },
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(k))) => match keys::action(k, m.asking.is_some()) {
                    Action::Quit => break Ok(()),
                    Action::SelectPrevious => m.select_previous(),
                    Action::SelectNext => m.select_next(),
                    Action::ScaleUp => m.ask_scale(1),
                    Action::ScaleDown => m.ask_scale(-1),
                    Action::Reload => m.ask_reload(),
                    answer @ (Action::Confirm | Action::Cancel) => {
                        if let Some(ask) = m.answer(answer == Action::Confirm) {
                            tokio::spawn(operate(admin.clone(), ask, tx.clone(), poll_now.clone()));
                        }
                    }
                    Action::Nothing => {}
                },
                // A resize: drawn again at the top of the loop.
                Some(Ok(_)) => {}
                Some(Err(e)) => break Err(e.into()),
                None => break Ok(()),
            },
            _ = term.recv() => break Ok(()),
            _ = hangup.recv() => break Ok(()),
            _ = interrupt.recv() => break Ok(()),
        }
    };
    poller.abort();
    drop(screen);
    end
}

/// Poll now, then every `interval` (or at once when asked: after an
/// operation), until the loop ends.
async fn poll(
    admin: Arc<Admin>,
    interval: Duration,
    tx: mpsc::UnboundedSender<Update>,
    now: Arc<Notify>,
) {
    let mut cursor = fetch::Cursor::default();
    loop {
        // A poll bounded by the interval's worth of waiting at most a few
        // seconds: an admin API that accepts and never answers is
        // "unreachable" too, not a frozen screen.
        let limit = interval.max(Duration::from_secs(3));
        let got = tokio::time::timeout(limit, fetch::poll(&admin, &mut cursor))
            .await
            .unwrap_or_else(|_| Err(format!("no answer within {}s", limit.as_secs())));
        if tx.send(Update::Polled(Box::new(got))).is_err() {
            return;
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = now.notified() => {}
        }
    }
}

async fn operate(
    admin: Arc<Admin>,
    ask: model::Ask,
    tx: mpsc::UnboundedSender<Update>,
    poll_now: Arc<Notify>,
) {
    let what = ask.what();
    let steps = tx.clone();
    let outcome = fetch::operate(&admin, &ask, |step| {
        let _ = steps.send(Update::Step(format!("{what}: {step}")));
        // The status shows the operation's effect step by step.
        poll_now.notify_one();
    })
    .await
    .map_err(|why| format!("{what}: {why}"))
    .map(|text| format!("{what}: {text}"));
    let _ = tx.send(Update::Finished(outcome));
}
