//! The response body on the native engine: what came with the head, then
//! read by read from the backend to the client until its framing (sized,
//! chunked byte for byte, or to the close) says it ended.

use super::chunked::{Malformed, Tracker};
use super::exchange::{read_until, Client, Upstream};
use super::io::{give_body_buf, take_body_buf, write_all, HEAD_BUF};
use super::response::{Framing, ResponseHead};
use crate::proxy::stall::Stalled;

/// Body bytes that arrived with the head and are copied behind it.
const SMALL_BODY: usize = 4 << 10;

pub(super) enum Relayed {
    /// The whole body went to the client.
    Whole { upstream_reusable: bool },
    /// The response was cut (either side failed or stalled); both sockets
    /// are dropped.
    Cut,
    /// The body's framing was broken before anything was sent: a 502.
    Invalid(&'static str),
}

/// Where the body stands.
enum Left {
    Done,
    Bytes(u64),
    Chunks(Tracker),
    ToClose,
}

impl Left {
    fn new(framing: Framing) -> Left {
        match framing {
            Framing::None | Framing::Length(0) => Left::Done,
            Framing::Length(n) => Left::Bytes(n),
            Framing::Chunked => Left::Chunks(Tracker::default()),
            Framing::Close => Left::ToClose,
        }
    }

    /// How many of `data`, the next bytes from the backend, belong to the
    /// body; at its last byte the body is `Done`.
    fn take(&mut self, data: &[u8]) -> Result<usize, Malformed> {
        let (take, done) = match self {
            Left::Done => (0, true),
            Left::Bytes(rest) => {
                let take = data.len().min(usize::try_from(*rest).unwrap_or(usize::MAX));
                *rest -= take as u64;
                (take, *rest == 0)
            }
            Left::Chunks(t) => (t.advance(data)?, t.is_done()),
            Left::ToClose => (data.len(), false),
        };
        if done {
            *self = Left::Done;
        }
        Ok(take)
    }
}

/// Send the client its head (`out`) and the body: what came with the head
/// (`buf[resp.len..filled]`), then read by read (`proxy.read_timeout`
/// between two) until the framing says it ended.
pub(super) async fn relay(
    client: &mut Client<'_>,
    up: &mut Upstream<'_>,
    resp: &ResponseHead,
    buf: &mut [u8],
    filled: usize,
    out: &mut Vec<u8>,
) -> Relayed {
    let client_timeout = client.send_timeout;
    let body = &buf[resp.len..filled];
    let mut reusable = resp.reusable;
    let mut left = Left::new(resp.framing);
    let Ok(first) = left.take(body) else {
        return Relayed::Invalid("malformed chunked body");
    };
    if first < body.len() {
        // Bytes past the end of the response: nobody asked for them.
        reusable = false;
    }
    let stalled = Stalled::ClientSend(client_timeout);
    // A small body goes in the head's buffer: one `send` for the whole
    // response instead of a `writev` of two pieces.
    let sent = if first <= SMALL_BODY {
        out.extend_from_slice(&body[..first]);
        write_all(client.stream, &[out], client_timeout, stalled).await
    } else {
        write_all(
            client.stream,
            &[out, &body[..first]],
            client_timeout,
            stalled,
        )
        .await
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "client went away during the response");
        return Relayed::Cut;
    }
    client.report.bytes_out = first as u64;
    let large = match left {
        Left::Done => false,
        Left::Bytes(rest) => rest > HEAD_BUF as u64,
        Left::Chunks(_) | Left::ToClose => true,
    };
    let mut big = large.then(take_body_buf);
    let through = match big.as_deref_mut() {
        Some(big) => big,
        None => buf,
    };
    let relayed = relay_rest(client, up, left, reusable, through).await;
    if let Some(big) = big {
        give_body_buf(big);
    }
    relayed
}

/// The rest of a body, read by read through `buf`.
async fn relay_rest(
    client: &mut Client<'_>,
    up: &mut Upstream<'_>,
    mut left: Left,
    mut reusable: bool,
    buf: &mut [u8],
) -> Relayed {
    let client_timeout = client.send_timeout;
    let stalled = Stalled::ClientSend(client_timeout);
    let (endpoint, read_timeout) = (up.endpoint, up.read_timeout);
    loop {
        if matches!(left, Left::Done) {
            return Relayed::Whole {
                upstream_reusable: reusable,
            };
        }
        let deadline = tokio::time::Instant::now() + read_timeout;
        let n = match read_until(up.stream, buf, deadline).await {
            Some(Ok(0)) if matches!(left, Left::ToClose) => {
                return Relayed::Whole {
                    upstream_reusable: false,
                }
            }
            Some(Ok(0)) => {
                tracing::warn!(backend = %endpoint.id, "backend closed the connection in the middle of a response body; response cut");
                return Relayed::Cut;
            }
            Some(Ok(n)) => n,
            Some(Err(e)) => {
                tracing::warn!(backend = %endpoint.id, error = %e, "response body failed; response cut");
                return Relayed::Cut;
            }
            None => {
                tracing::warn!(backend = %endpoint.id, after = ?read_timeout, "backend sent no data for proxy.read_timeout; response cut");
                return Relayed::Cut;
            }
        };
        let take = match left.take(&buf[..n]) {
            Ok(take) => take,
            Err(e) => {
                tracing::warn!(backend = %endpoint.id, error = %e, "response cut");
                return Relayed::Cut;
            }
        };
        if take < n {
            reusable = false;
        }
        client.report.bytes_out += take as u64;
        if let Err(e) = write_all(client.stream, &[&buf[..take]], client_timeout, stalled).await {
            tracing::debug!(error = %e, "client went away during the response");
            return Relayed::Cut;
        }
    }
}
