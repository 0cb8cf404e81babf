//! Idle keep-alive connections parked without a task of their own.
//!
//! A tokio task per connection costs about 0.9 KiB that an idle
//! connection keeps for as long as it is open: the task (the connection's
//! future, in 128-byte lines) and the socket's registration with tokio's
//! reactor. Once a plain connection has waited `Idle::park_after` for its
//! next request (`idle.rs` tells it), its task ends and hands the socket
//! here: the socket leaves tokio's reactor (`TcpStream::into_std`) and
//! joins an epoll set of the listener's own, and what the connection needs
//! to go on (`T`: its peer, its settings, its place under
//! `max_connections`) waits in a slab entry of about 100 bytes.
//!
//! One task per listener (`Parker::run`) waits on that epoll set through
//! tokio (`AsyncFd`). When a parked socket becomes readable (the next
//! request, or the client's close) it leaves the set, joins tokio's reactor
//! again and gets a new task, which reads it as if it had never left. The
//! same task closes the sockets whose `idle_timeout` passes (each tick, as
//! the idle sweeper), and the drain closes every parked socket at once: a
//! parked connection is idle, so closing it loses nothing, as for any
//! other idle connection.
//!
//! Parking costs an idle connection two `epoll_ctl` calls and a task when
//! it wakes up; it is for connections idle for a second or more, never for
//! the back-to-back requests of a busy one.

use std::io;
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::epoll::{Epoll, EpollCreateFlags, EpollEvent, EpollFlags, EpollTimeout};
use slab::Slab;
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::TcpStream;

/// Events taken from the epoll set per `epoll_wait`.
const BATCH: usize = 256;

/// What a parked connection needs when it wakes up, or when it is closed
/// while parked.
pub trait Parked: Send + 'static {
    /// Closed while parked (`why`: its `idle_timeout`, or the drain).
    fn closed(self, why: &'static str);
}

/// A listener's parked connections.
pub struct Parker<T> {
    epoll: AsyncFd<EpollSet>,
    parked: Mutex<Slab<Entry<T>>>,
    /// Set once no connection may park any more: the drain began, or
    /// `run` ended (then nothing would wake a parked socket). Why.
    closing: OnceLock<&'static str>,
}

struct Entry<T> {
    socket: std::net::TcpStream,
    /// When its `idle_timeout` closes it (coarse clock).
    due: Instant,
    conn: T,
}

/// The epoll set's descriptor, as `AsyncFd` wants it.
struct EpollSet(Epoll);

impl AsRawFd for EpollSet {
    fn as_raw_fd(&self) -> RawFd {
        self.0 .0.as_raw_fd()
    }
}

impl<T: Parked> Parker<T> {
    /// An empty set; must be made inside the tokio runtime.
    #[allow(unsafe_code)]
    pub fn new() -> io::Result<Parker<T>> {
        let epoll = EpollSet(Epoll::new(EpollCreateFlags::EPOLL_CLOEXEC)?);
        // SAFETY: `EpollSet` owns its descriptor (an `OwnedFd` no one else
        // has), never replaces it, and closes it only when dropped, which
        // is when the `AsyncFd` is.
        let epoll = unsafe { AsyncFd::register_with_interest(epoll, Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Parker {
            epoll,
            parked: Mutex::new(Slab::new()),
            closing: OnceLock::new(),
        })
    }

    /// Connections parked now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        lock(&self.parked).len()
    }

    /// Park `socket` until it is readable or `due` (coarse clock) passes.
    /// If it cannot be (the drain began, or the epoll set refused it), it
    /// is closed, as any idle connection may be.
    pub fn park(&self, socket: TcpStream, due: Instant, conn: T) {
        if let Some(why) = self.closing.get() {
            return conn.closed(why);
        }
        let Ok(socket) = socket.into_std() else {
            // Not registered with tokio: cannot happen for a socket a task
            // read from.
            return conn.closed("idle, and could not leave tokio's reactor");
        };
        let mut parked = lock(&self.parked);
        let entry = parked.vacant_entry();
        let key = entry.key() as u64;
        let interest = EpollFlags::EPOLLIN | EpollFlags::EPOLLRDHUP;
        let set = &self.epoll.get_ref().0;
        if let Err(e) = set.add(socket.as_fd(), EpollEvent::new(interest, key)) {
            drop(parked);
            tracing::debug!(error = %e, "an idle connection could not park; closed");
            return conn.closed("idle, and the epoll set refused it");
        }
        entry.insert(Entry { socket, due, conn });
        crate::metrics::counters::parked(1);
        drop(parked);
        // The drain may have emptied the set just before this entry went in.
        if let Some(why) = self.closing.get() {
            self.close_all(why);
        }
    }

    /// Wake the connections that become readable (`resume` gives each a
    /// task again) and close those past their deadline every `tick()`,
    /// until the drain. However it ends (the drain, an epoll error, a
    /// panic, the future dropped), every parked connection is closed and
    /// none parks from then on: none waits for a wake-up that cannot come.
    pub async fn run(&self, tick: impl Fn() -> Duration, mut resume: impl FnMut(TcpStream, T)) {
        let _closes = CloseOnEnd(self);
        let mut events = vec![EpollEvent::empty(); BATCH];
        let mut next_sweep = Instant::now() + tick();
        while self.closing.get().is_none() {
            let ready = tokio::select! {
                r = self.epoll.readable() => r,
                _ = tokio::time::sleep_until(next_sweep.into()) => {
                    self.close_expired(crate::clock::coarse());
                    next_sweep = Instant::now() + tick();
                    continue;
                }
            };
            let Ok(mut guard) = ready else { return };
            let n = match self.epoll.get_ref().0.wait(&mut events, EpollTimeout::ZERO) {
                Ok(n) => n,
                Err(nix::errno::Errno::EINTR) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "epoll_wait on the parked connections failed");
                    return;
                }
            };
            if n < events.len() {
                // The set is drained for now: wait for tokio to see it
                // readable again.
                guard.clear_ready();
            }
            drop(guard);
            for ev in &events[..n] {
                if let Some((socket, conn)) = self.unpark(ev.data() as usize) {
                    match TcpStream::from_std(socket) {
                        Ok(socket) => resume(socket, conn),
                        Err(_) => conn.closed("the socket could not rejoin tokio's reactor"),
                    }
                }
            }
        }
    }

    /// Take `key`'s connection out of the set.
    fn unpark(&self, key: usize) -> Option<(std::net::TcpStream, T)> {
        let entry = lock(&self.parked).try_remove(key)?;
        crate::metrics::counters::parked(-1);
        let _ = self.epoll.get_ref().0.delete(entry.socket.as_fd());
        Some((entry.socket, entry.conn))
    }

    /// Close the connections whose `idle_timeout` passed by `now`.
    fn close_expired(&self, now: Instant) {
        let expired: Vec<Entry<T>> = {
            let mut parked = lock(&self.parked);
            let keys: Vec<usize> = parked
                .iter()
                .filter(|(_, e)| e.due <= now)
                .map(|(k, _)| k)
                .collect();
            let out = keys.into_iter().map(|k| parked.remove(k)).collect();
            // After a burst: give back what the trailing free slots hold.
            if parked.len() < parked.capacity() / 4 {
                parked.shrink_to_fit();
            }
            out
        };
        self.closed(expired, "idle for limits.idle_timeout");
    }

    /// Begin the drain: every parked connection is closed, and none parks
    /// from now on; `run` ends.
    pub fn begin_drain(&self) {
        self.close_from_now("drain");
    }

    /// No connection parks from now on, and those parked are closed.
    fn close_from_now(&self, why: &'static str) {
        let _ = self.closing.set(why);
        self.close_all(self.closing.get().copied().unwrap_or(why));
    }

    fn close_all(&self, why: &'static str) {
        let all: Vec<Entry<T>> = lock(&self.parked).drain().collect();
        self.closed(all, why);
    }

    /// Closed outside the lock (each entry's `closed` may log).
    fn closed(&self, entries: Vec<Entry<T>>, why: &'static str) {
        crate::metrics::counters::parked(-(entries.len() as i64));
        let set = &self.epoll.get_ref().0;
        for e in entries {
            // Out of the set before it is closed: a copy of the descriptor
            // (a child between fork and exec) would keep it in.
            let _ = set.delete(e.socket.as_fd());
            drop(e.socket);
            e.conn.closed(why);
        }
    }
}

/// Ends parking when `run` ends, however it does.
struct CloseOnEnd<'a, T: Parked>(&'a Parker<T>);

impl<T: Parked> Drop for CloseOnEnd<'_, T> {
    fn drop(&mut self) {
        self.0.close_from_now("the parked connections' task ended");
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding it cannot leave an entry half-written.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::sync::mpsc;

    /// A parked test connection: says how it was closed.
    struct Conn(u32, mpsc::UnboundedSender<(u32, &'static str)>);

    impl Parked for Conn {
        fn closed(self, why: &'static str) {
            let _ = self.1.send((self.0, why));
        }
    }

    /// A connected pair of real sockets on loopback: (client, server).
    async fn pair() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (server, _) = l.accept().await.unwrap();
        (client, server)
    }

    fn far() -> Instant {
        crate::clock::coarse() + Duration::from_secs(3600)
    }

    #[tokio::test]
    async fn a_parked_socket_comes_back_with_its_bytes_when_the_client_sends() {
        let parker = Arc::new(Parker::<Conn>::new().unwrap());
        let (closed, _closed_rx) = mpsc::unbounded_channel();
        let (resumed, mut resumed_rx) = mpsc::unbounded_channel();
        let runner = tokio::spawn({
            let parker = parker.clone();
            async move {
                parker
                    .run(
                        || Duration::from_millis(20),
                        move |s, c: Conn| {
                            let _ = resumed.send((s, c.0));
                        },
                    )
                    .await
            }
        });
        let mut clients = Vec::new();
        for i in 0..3 {
            let (client, server) = pair().await;
            parker.park(server, far(), Conn(i, closed.clone()));
            clients.push(client);
        }
        assert_eq!(parker.len(), 3);
        // Nothing sent: nothing comes back.
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(resumed_rx.try_recv().is_err());
        clients[1]
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let (mut server, which) = tokio::time::timeout(Duration::from_secs(5), resumed_rx.recv())
            .await
            .expect("the readable socket was not resumed")
            .unwrap();
        assert_eq!(which, 1);
        assert_eq!(parker.len(), 2);
        let mut got = [0u8; 64];
        let n = server.read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"GET / HTTP/1.1\r\n\r\n");
        // The resumed socket is tokio's again: it answers both ways.
        server.write_all(b"ok").await.unwrap();
        let n = clients[1].read(&mut got).await.unwrap();
        assert_eq!(&got[..n], b"ok");
        // A client that closes wakes its socket too (it reads the end).
        drop(clients.remove(0));
        let (mut server, which) = tokio::time::timeout(Duration::from_secs(5), resumed_rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(which, 0);
        assert_eq!(server.read(&mut got).await.unwrap(), 0);
        runner.abort();
    }

    #[tokio::test]
    async fn a_parked_socket_past_its_deadline_is_closed_and_the_drain_closes_the_rest() {
        let parker = Arc::new(Parker::<Conn>::new().unwrap());
        let (closed, mut closed_rx) = mpsc::unbounded_channel();
        let runner = tokio::spawn({
            let parker = parker.clone();
            async move { parker.run(|| Duration::from_millis(20), |_, _| {}).await }
        });
        let (mut soon_client, soon) = pair().await;
        let (mut late_client, late) = pair().await;
        let now = crate::clock::coarse();
        parker.park(
            soon,
            now + Duration::from_millis(50),
            Conn(0, closed.clone()),
        );
        parker.park(late, far(), Conn(1, closed.clone()));
        let first = tokio::time::timeout(Duration::from_secs(5), closed_rx.recv())
            .await
            .expect("the expired socket was not closed")
            .unwrap();
        assert_eq!(first, (0, "idle for limits.idle_timeout"));
        let mut got = [0u8; 8];
        assert_eq!(
            soon_client.read(&mut got).await.unwrap(),
            0,
            "the client sees the close"
        );
        assert_eq!(parker.len(), 1);

        parker.begin_drain();
        assert_eq!(closed_rx.recv().await.unwrap(), (1, "drain"));
        assert_eq!(late_client.read(&mut got).await.unwrap(), 0);
        tokio::time::timeout(Duration::from_secs(5), runner)
            .await
            .expect("run did not end at the drain")
            .unwrap();
        // After the drain nothing parks: closed at once.
        let (mut c, s) = pair().await;
        parker.park(s, far(), Conn(2, closed.clone()));
        assert_eq!(closed_rx.recv().await.unwrap(), (2, "drain"));
        assert_eq!(c.read(&mut got).await.unwrap(), 0);
        assert_eq!(parker.len(), 0);
    }

    #[tokio::test]
    async fn when_run_ends_every_parked_socket_is_closed_and_none_parks_after() {
        let parker = Arc::new(Parker::<Conn>::new().unwrap());
        let (closed, mut closed_rx) = mpsc::unbounded_channel();
        let runner = tokio::spawn({
            let parker = parker.clone();
            async move { parker.run(|| Duration::from_millis(20), |_, _| {}).await }
        });
        let (mut client, server) = pair().await;
        parker.park(server, far(), Conn(0, closed.clone()));
        tokio::time::sleep(Duration::from_millis(50)).await;
        // As if the task had failed: nothing would wake a parked socket.
        runner.abort();
        let why = "the parked connections' task ended";
        let first = tokio::time::timeout(Duration::from_secs(5), closed_rx.recv())
            .await
            .expect("the parked socket stayed open after run ended")
            .unwrap();
        assert_eq!(first, (0, why));
        let mut got = [0u8; 8];
        assert_eq!(client.read(&mut got).await.unwrap(), 0);
        let (_c, s) = pair().await;
        parker.park(s, far(), Conn(1, closed.clone()));
        assert_eq!(closed_rx.recv().await.unwrap(), (1, why));
        assert_eq!(parker.len(), 0);
    }
}
