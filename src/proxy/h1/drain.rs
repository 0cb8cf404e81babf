//! The listener's drain as the engine's connections watch it, with no lock
//! per request.
//!
//! hyper's connections watch the listener's `CancellationToken`. Its
//! `is_cancelled()` and each `cancelled()` wait take the token's mutex,
//! and every connection of the listener shares that token: four or five
//! lock round trips on one mutex per request, from every worker thread.
//! Here a connection registers its wake-up once, when it starts, and each
//! request reads one atomic flag.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

#[derive(Default)]
pub struct Drain {
    draining: AtomicBool,
    wake: Notify,
}

impl Drain {
    /// Begin the drain: idle connections close at once, busy ones after
    /// their request (answered with `Connection: close`).
    pub fn begin(&self) {
        // Set before the wake-up: a connection woken by it sees the flag.
        self.draining.store(true, Ordering::Release);
        self.wake.notify_waiters();
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// A connection's wake-up for the drain. Poll it once with
    /// [`Watch::register`]; from then on the drain wakes the connection's
    /// task, which reads [`is_draining`](Self::is_draining).
    pub fn watch(&self) -> Watch<'_> {
        Watch {
            notified: self.wake.notified(),
        }
    }
}

pin_project_lite::pin_project! {
    pub struct Watch<'a> {
        #[pin]
        notified: Notified<'a>,
    }
}

impl Watch<'_> {
    /// Store this task's waker with the drain (one lock, once per
    /// connection). A task's waker stays the same for its life, so nothing
    /// needs polling again.
    pub async fn register(self: Pin<&mut Self>) {
        let mut notified = self.project().notified;
        std::future::poll_fn(|cx: &mut Context<'_>| {
            // Ready: the drain began already; the flag says so.
            let _ = notified.as_mut().poll(cx);
            Poll::Ready(())
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[tokio::test]
    async fn a_registered_task_is_woken_by_the_drain() {
        let drain = Arc::new(Drain::default());
        let d = drain.clone();
        let task = tokio::spawn(async move {
            let watch = d.watch();
            tokio::pin!(watch);
            watch.as_mut().register().await;
            // Waits on the flag alone, as the engine's idle wait does.
            std::future::poll_fn(|_| {
                if d.is_draining() {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            })
            .await;
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!task.is_finished());
        drain.begin();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the drain did not wake the task")
            .unwrap();
    }

    #[tokio::test]
    async fn registering_after_the_drain_sees_it() {
        let drain = Drain::default();
        drain.begin();
        let watch = drain.watch();
        tokio::pin!(watch);
        watch.as_mut().register().await;
        assert!(drain.is_draining());
    }
}
