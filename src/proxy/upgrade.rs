//! WebSocket and other HTTP/1.1 upgrades: once the backend answers 101, the
//! two connections are spliced and bytes flow both ways until either closes,
//! or until no byte has moved in either direction for `tunnel_idle_timeout`
//! (HAProxy's `timeout tunnel`), when both are closed.
//!
//! The copy is `tokio::io::copy_bidirectional`: one fixed buffer per
//! direction, so a slow reader pushes back on the fast writer, and when one
//! side ends the other side's write half is shut down while the opposite
//! direction keeps flowing (half-close). Each side is wrapped so a read that
//! yields bytes stamps the shared "last activity" clock the watchdog reads.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::balance::InFlight;

pub fn splice(
    client: OnUpgrade,
    upstream: OnUpgrade,
    backend: String,
    in_flight: InFlight,
    idle_timeout: Duration,
) {
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(%backend, error = %e, "upgrade did not complete");
                return;
            }
        };
        let clock = Arc::new(Activity::new());
        let mut client = Tracked::new(TokioIo::new(client), clock.clone());
        let mut upstream = Tracked::new(TokioIo::new(upstream), clock.clone());
        tokio::select! {
            copied = tokio::io::copy_bidirectional(&mut client, &mut upstream) => match copied {
                Ok((up, down)) => tracing::debug!(
                    %backend, bytes_to_backend = up, bytes_to_client = down,
                    "upgraded connection closed"
                ),
                Err(e) => {
                    tracing::debug!(%backend, error = %e, "upgraded connection ended with an error")
                }
            },
            () = clock.idle_for(idle_timeout) => tracing::info!(
                %backend, tunnel_idle_timeout = ?idle_timeout,
                "closing upgraded connection (WebSocket): no traffic either way for proxy.tunnel_idle_timeout"
            ),
        }
        // Dropping both ends closes both sockets.
    });
}

/// When bytes last moved, in nanoseconds since `start`. One relaxed store per
/// read that produced data; only the watchdog reads it.
struct Activity {
    start: Instant,
    last: AtomicU64,
}

impl Activity {
    fn new() -> Activity {
        Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    fn touch(&self) {
        let nanos = self.start.elapsed().as_nanos();
        self.last
            .store(u64::try_from(nanos).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `timeout`. A zero timeout never fires.
    async fn idle_for(&self, timeout: Duration) {
        if timeout.is_zero() {
            return std::future::pending().await;
        }
        loop {
            let last = self.start + Duration::from_nanos(self.last.load(Ordering::Relaxed));
            let Some(deadline) = last.checked_add(timeout) else {
                return std::future::pending().await;
            };
            if Instant::now() >= deadline {
                return;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// An upgraded connection that stamps `clock` whenever a read yields bytes.
struct Tracked<T> {
    io: T,
    clock: Arc<Activity>,
}

impl<T> Tracked<T> {
    fn new(io: T, clock: Arc<Activity>) -> Tracked<T> {
        Tracked { io, clock }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.clock.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// Splices two in-memory pipes the way `splice` does and reports whether
    /// the watchdog (rather than the copy) ended it.
    async fn run(
        a: tokio::io::DuplexStream,
        b: tokio::io::DuplexStream,
        timeout: Duration,
    ) -> bool {
        let clock = Arc::new(Activity::new());
        let mut a = Tracked::new(a, clock.clone());
        let mut b = Tracked::new(b, clock.clone());
        tokio::select! {
            _ = tokio::io::copy_bidirectional(&mut a, &mut b) => false,
            () = clock.idle_for(timeout) => true,
        }
    }

    #[tokio::test]
    async fn idle_tunnel_is_closed() {
        let (a, _client) = tokio::io::duplex(1024);
        let (b, _backend) = tokio::io::duplex(1024);
        let started = Instant::now();
        assert!(run(a, b, Duration::from_millis(200)).await);
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(200) && took < Duration::from_secs(2),
            "{took:?}"
        );
    }

    #[tokio::test]
    async fn traffic_either_way_keeps_it_open() {
        let (a, mut client) = tokio::io::duplex(1024);
        let (b, mut backend) = tokio::io::duplex(1024);
        let timeout = Duration::from_millis(300);
        let splice = tokio::spawn(run(a, b, timeout));
        for i in 0..10u8 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut one = [0u8];
            if i % 2 == 0 {
                client.write_all(&[i]).await.unwrap();
                backend.read_exact(&mut one).await.unwrap();
            } else {
                backend.write_all(&[i]).await.unwrap();
                client.read_exact(&mut one).await.unwrap();
            }
            assert_eq!(
                one[0],
                i,
                "still spliced after {} ms",
                100 * (u32::from(i) + 1)
            );
        }
        let quiet = Instant::now();
        assert!(splice.await.unwrap(), "closed once idle");
        assert!(
            quiet.elapsed() < Duration::from_secs(2),
            "{:?}",
            quiet.elapsed()
        );
    }

    #[tokio::test]
    async fn half_close_keeps_the_other_direction() {
        let (a, mut client) = tokio::io::duplex(1024);
        let (b, mut backend) = tokio::io::duplex(1024);
        let splice = tokio::spawn(run(a, b, Duration::from_secs(60)));
        client.write_all(b"bye").await.unwrap();
        client.shutdown().await.unwrap();
        let mut got = Vec::new();
        backend.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"bye", "backend sees the client's EOF");
        backend.write_all(b"still here").await.unwrap();
        let mut reply = [0u8; 10];
        client.read_exact(&mut reply).await.unwrap();
        assert_eq!(&reply, b"still here");
        drop(backend);
        assert!(
            !splice.await.unwrap(),
            "ended by the copy, not the watchdog"
        );
    }
}
