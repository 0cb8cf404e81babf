//! Writes that make no progress: nginx's `send_timeout` (shoal → client,
//! `limits.send_timeout`) and `proxy_send_timeout` (shoal → backend,
//! `proxy.send_timeout`).
//!
//! Both are "between two successful writes", not for the whole transfer: a
//! [`WriteStall`] sits in the connection's I/O wrapper, is armed by the first
//! write that has to wait (the peer's receive window is full) and disarmed by
//! the next write that goes through. Its timer is allocated the first time a
//! write of the connection waits, so a connection whose writes never block —
//! a plain keep-alive GET with a small response — costs one bool check per
//! write and no timer.

use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// Which peer stopped moving; carried inside the `io::Error` the stalled
/// read or write returns, so `ProxyError` can answer 408 or 504.
#[derive(Debug, Clone, Copy, thiserror::Error)]
pub enum Stalled {
    #[error("the client sent no request body data for {0:?} (limits.body_read_timeout)")]
    ClientBody(Duration),
    #[error("the client read none of the response for {0:?} (limits.send_timeout)")]
    ClientSend(Duration),
    #[error("the backend read none of the request for {0:?} (proxy.send_timeout)")]
    UpstreamSend(Duration),
}

impl Stalled {
    pub fn into_io(self) -> io::Error {
        io::Error::new(io::ErrorKind::TimedOut, self)
    }

    /// The `Stalled` somewhere in an error's chain of causes, looking inside
    /// `io::Error`s too (whose own `source()` skips the error they wrap).
    pub fn find(e: &(dyn Error + 'static)) -> Option<Stalled> {
        let mut cause = Some(e);
        while let Some(c) = cause {
            if let Some(s) = c.downcast_ref::<Stalled>() {
                return Some(*s);
            }
            if let Some(s) = c
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .and_then(|inner| inner.downcast_ref::<Stalled>())
            {
                return Some(*s);
            }
            cause = c.source();
        }
        None
    }
}

pub struct WriteStall {
    after: Duration,
    timer: Option<Pin<Box<Sleep>>>,
    armed: bool,
}

impl WriteStall {
    pub fn new(after: Duration) -> WriteStall {
        WriteStall {
            after,
            timer: None,
            armed: false,
        }
    }

    /// Pass a write's outcome through: progress disarms the timer; a write
    /// that waits arms it (once) and fails with `stalled(after)` when it
    /// fires.
    #[inline]
    pub fn check<R>(
        &mut self,
        cx: &mut Context<'_>,
        polled: Poll<io::Result<R>>,
        stalled: impl FnOnce(Duration) -> Stalled,
    ) -> Poll<io::Result<R>> {
        match polled {
            Poll::Ready(Ok(r)) => {
                self.armed = false;
                Poll::Ready(Ok(r))
            }
            Poll::Pending if self.expired(cx) => Poll::Ready(Err(stalled(self.after).into_io())),
            other => other,
        }
    }

    fn expired(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.armed {
            let deadline = Instant::now() + self.after;
            match &mut self.timer {
                Some(t) => t.as_mut().reset(deadline),
                None => self.timer = Some(Box::pin(tokio::time::sleep_until(deadline))),
            }
            self.armed = true;
        }
        self.timer
            .as_mut()
            .is_some_and(|t| t.as_mut().poll(cx).is_ready())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn found_through_hyper_style_and_io_wrappers() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] io::Error);
        let e = Outer(Stalled::UpstreamSend(Duration::from_secs(1)).into_io());
        assert!(matches!(
            Stalled::find(&e),
            Some(Stalled::UpstreamSend(d)) if d == Duration::from_secs(1)
        ));
        let plain = Outer(io::Error::other("x"));
        assert!(Stalled::find(&plain).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn fires_only_after_a_wait_without_progress() {
        let mut stall = WriteStall::new(Duration::from_secs(2));
        let s = Stalled::ClientSend;
        std::future::poll_fn(|cx| {
            assert!(stall.check::<usize>(cx, Poll::Pending, s).is_pending());
            Poll::Ready(())
        })
        .await;
        tokio::time::advance(Duration::from_millis(1500)).await;
        // Progress, then a new wait: the clock starts again.
        std::future::poll_fn(|cx| {
            assert!(matches!(
                stall.check(cx, Poll::Ready(Ok(1usize)), s),
                Poll::Ready(Ok(1))
            ));
            assert!(stall.check::<usize>(cx, Poll::Pending, s).is_pending());
            Poll::Ready(())
        })
        .await;
        tokio::time::advance(Duration::from_millis(1500)).await;
        std::future::poll_fn(|cx| {
            assert!(stall.check::<usize>(cx, Poll::Pending, s).is_pending());
            Poll::Ready(())
        })
        .await;
        tokio::time::advance(Duration::from_millis(600)).await;
        std::future::poll_fn(|cx| {
            let r = stall.check::<usize>(cx, Poll::Pending, s);
            let Poll::Ready(Err(e)) = r else {
                panic!("not expired: {r:?}")
            };
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
            assert!(matches!(Stalled::find(&e), Some(Stalled::ClientSend(_))));
            Poll::Ready(())
        })
        .await;
    }
}
