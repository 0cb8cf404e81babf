//! One client connection on the native engine: wait for a request holding
//! no buffer, read its head, serve it, and again — until the client or a
//! timer ends the connection, or a request comes that hyper serves.
//!
//! The timers are those of `proxy::limits` (its table of phases), kept by
//! the driver itself: `header_read_timeout` from accepting for the first
//! request and from the first byte for the next (408 once part of a head
//! has come, a plain close before), `idle_timeout` between requests,
//! `limits.send_timeout` on every write to the client.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::exchange::{self, Client, Served};
use super::io::{give_buf, give_vec, take_buf, take_vec, write_all, BUF_SIZE};
use super::request::{prepare, Head};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::Proxy;
use crate::proxy::stall::Stalled;

/// The `limits:` a connection was accepted under.
#[derive(Debug, Clone, Copy)]
pub struct Timers {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
}

/// How the engine let go of a connection.
pub enum End {
    /// Closed (by either side, a timer, or the drain).
    Closed,
    /// hyper serves the rest: the socket, and the bytes already read from it.
    Handoff(TcpStream, Vec<u8>),
}

/// Drive `stream` until it ends or is handed off.
pub async fn drive(
    mut stream: TcpStream,
    peer: SocketAddr,
    proxy: &Proxy,
    timers: Timers,
    stop: &CancellationToken,
) -> End {
    let accepted = Instant::now();
    let mut first = true;
    // Bytes read and not yet served (a pipelined request), if any: an idle
    // connection holds no buffer.
    let mut held: Option<(Vec<u8>, usize)> = None;
    loop {
        if held.is_none() {
            let wait = if first {
                accepted + timers.header_read_timeout
            } else {
                Instant::now() + timers.idle_timeout
            };
            tokio::select! {
                biased;
                _ = stop.cancelled() => return End::Closed,
                ready = tokio::time::timeout_at(wait, stream.readable()) => match ready {
                    Ok(Ok(())) => {}
                    // Idle for idle_timeout, or never a byte within
                    // header_read_timeout: closed without an answer.
                    Ok(Err(_)) | Err(_) => return End::Closed,
                },
            }
        }
        let (mut buf, mut filled) = held.take().unwrap_or_else(|| (take_buf(), 0));
        let head_deadline = if first {
            accepted + timers.header_read_timeout
        } else {
            Instant::now() + timers.header_read_timeout
        };
        let routing = proxy.routing();
        let mut head = take_vec();
        let req = loop {
            if filled > 0 {
                match prepare(&buf[..filled], peer, "http", &routing.trusted, &mut head) {
                    Head::Ready(req) => break req,
                    Head::Handoff(why) => {
                        tracing::trace!(%peer, why, "request handed to hyper");
                        return handoff(stream, buf, filled, head);
                    }
                    Head::Partial if filled == BUF_SIZE => {
                        // A large head: hyper reads it up to
                        // limits.max_header_size, or answers 431.
                        return handoff(stream, buf, filled, head);
                    }
                    Head::Partial => {}
                }
            }
            let read =
                tokio::time::timeout_at(head_deadline, stream.read(&mut buf[filled..])).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => {
                    give_buf(buf);
                    give_vec(head);
                    return End::Closed;
                }
                Ok(Ok(n)) => filled += n,
                Err(_) => {
                    give_buf(buf);
                    give_vec(head);
                    if filled > 0 {
                        header_timeout(&mut stream, timers).await;
                    }
                    return End::Closed;
                }
            }
        };
        first = false;
        let client = Client {
            stream: &mut stream,
            send_timeout: timers.send_timeout,
            closing: stop.is_cancelled(),
        };
        // Boxed: the exchange's state lives only while a request does, so
        // an idle connection's task stays small.
        let served = Box::pin(exchange::serve(proxy, &routing, client, &req, &head)).await;
        drop(routing);
        match served {
            Served::KeepAlive => {}
            Served::Close => {
                give_buf(buf);
                give_vec(head);
                return End::Closed;
            }
            Served::Handoff => return handoff(stream, buf, filled, head),
        }
        give_vec(head);
        if filled > req.len {
            buf.copy_within(req.len..filled, 0);
            held = Some((buf, filled - req.len));
        } else {
            give_buf(buf);
        }
        if stop.is_cancelled() {
            return End::Closed;
        }
    }
}

fn handoff(stream: TcpStream, mut buf: Vec<u8>, filled: usize, head: Vec<u8>) -> End {
    crate::metrics::counters::native_handoff();
    give_vec(head);
    buf.truncate(filled);
    End::Handoff(stream, buf)
}

/// Part of a head came, not all of it, within `header_read_timeout`: 408.
async fn header_timeout(stream: &mut TcpStream, timers: Timers) {
    let id = crate::proxy::request_id::generate();
    let e = ProxyError::HeaderTimeout {
        after: timers.header_read_timeout,
    };
    tracing::debug!(request_id = ?id, error = %e, "request refused");
    let bytes = super::generated::to_bytes(e.to_response(&id, false), true);
    let _ = write_all(
        stream,
        &[&bytes],
        timers.send_timeout,
        Stalled::ClientSend(timers.send_timeout),
    )
    .await;
}
