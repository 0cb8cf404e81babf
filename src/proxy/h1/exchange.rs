//! One request on the native engine: pick a backend, send the prepared
//! head on a pooled socket, read the response head, pass the body through,
//! and retry elsewhere when that is safe — the same rules as
//! `proxy::forward` (nginx's `proxy_next_upstream error timeout`):
//!
//! - not delivered (connect failed, the head could not be written): the
//!   next backend, free of the retry budget;
//! - failed on a reused keep-alive socket before any response byte: once
//!   more on a new connection to the same backend (it most likely closed
//!   the idle socket as we used it), if the method is idempotent;
//! - delivered and failed before a whole response head (reset, timeout, an
//!   unreadable head): the next backend if the method is idempotent and
//!   the retry budget allows;
//! - otherwise 502/503/504 with the request id (`proxy::error`).
//!
//! Every request here is bodyless, so "sending again" is writing the same
//! head again.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use shoal_config::UpstreamProtocol;

use super::chunked::{Malformed, Tracker};
use super::idle::Idle;
use super::io::{
    give_body_buf, give_vec, grow, take_body_buf, take_vec, write_all, HEAD_BUF, MAX_RESPONSE_HEAD,
};
use super::request::Prepared;
use super::response::{self, Framing, Parsed, ResponseHead};
use crate::balance::{Endpoint, Tried};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::{Proxy, Routing};
use crate::proxy::stall::Stalled;

/// How the exchange left the client's connection.
pub enum Served {
    /// The answer went out; the connection may carry another request.
    KeepAlive,
    /// The connection ends here.
    Close,
    /// Not served: the request needs hyper's path (an h2 backend, a hash
    /// key). Nothing was written to the client.
    Handoff,
}

/// What one attempt on one socket came to.
enum Failure {
    /// The head could not be written: the backend cannot have processed it.
    Unsent(io::Error),
    /// Sent; the socket failed or closed before a whole response head.
    /// `got_bytes`: some of a response had arrived.
    Read { source: io::Error, got_bytes: bool },
    /// Sent; no response head within `proxy.response_header_timeout`.
    Timeout,
    /// Sent; the response head is not one the engine can pass on.
    Invalid(&'static str),
    /// The client closed its connection while the response was awaited:
    /// the request is abandoned (nginx's 499), not the backend's fault.
    ClientGone,
}

/// Client-side settings of the connection the request came on.
pub struct Client<'a> {
    pub stream: &'a mut TcpStream,
    /// `limits.send_timeout`.
    pub send_timeout: Duration,
    /// The listener's idle waits and drain: once the drain began, the
    /// answer says `Connection: close` and the connection ends after it.
    pub idle: &'a Idle,
    /// `limits.abort_on_client_close`: a client's FIN abandons its request.
    pub abort_on_close: bool,
}

/// Serve `req`, whose head for the backend is `head`, reading the
/// backend's response into `buf` (which may grow). `buf` is untouched when
/// the answer is [`Served::Handoff`]: the caller may pass the buffer that
/// holds the client's bytes.
pub async fn serve(
    proxy: &Proxy,
    routing: &Routing,
    client: Client<'_>,
    req: &Prepared,
    head: &[u8],
    buf: &mut Vec<u8>,
) -> Served {
    let key = req.key;
    let mut out = take_vec();
    let served = attempts(proxy, routing, client, req, head, key, buf, &mut out).await;
    give_vec(out);
    served
}

/// The attempts, backend after backend. `buf` takes the backend's
/// response; `out` the client's response head.
#[allow(clippy::too_many_arguments)]
async fn attempts(
    proxy: &Proxy,
    routing: &Routing,
    client: Client<'_>,
    req: &Prepared,
    head: &[u8],
    key: Option<u64>,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Served {
    let table = proxy.table();
    let mut tried = Tried::default();
    let mut last_error = ProxyError::NoBackend;
    let mut charge = false;
    let mut counted = false;
    for attempt in 0..=routing.retries {
        if charge {
            if !proxy.budget().try_retry(
                routing.retry_budget_percent,
                routing.retry_budget_min,
                routing.retry_budget_window,
            ) {
                crate::metrics::counters::retry_budget_exhausted();
                tracing::warn!(request_id = ?req.request_id.header_value(), "retry budget exhausted; not retrying");
                break;
            }
            charge = false;
        }
        let set = table.snapshot();
        let Some(i) = routing.pick(&set, &tried, key) else {
            break;
        };
        let endpoint = set.endpoints[i].clone();
        drop(set);
        if endpoint.pool.protocol() == UpstreamProtocol::H2 {
            if tried.is_empty() {
                return Served::Handoff;
            }
            // A retry that lands on an h2 backend (a mixed set): not here.
            tried.push(endpoint.key());
            continue;
        }
        if !counted {
            proxy.budget().request();
            counted = true;
        }
        if attempt > 0 {
            crate::metrics::counters::retry();
        }
        tried.push(endpoint.key());
        let in_flight = endpoint.start_request();

        let (mut upstream, mut reused) = match endpoint.pool.take_raw() {
            Some(s) => (s, true),
            None => match Box::pin(endpoint.pool.connect_raw()).await {
                Ok(s) => (s, false),
                Err(source) => {
                    tracing::debug!(backend = %endpoint.id, error = %source, "connect failed, trying another backend");
                    last_error = ProxyError::Connect {
                        backend: endpoint.id.clone(),
                        source,
                    };
                    routing.failed(table, &endpoint, &last_error);
                    continue;
                }
            },
        };
        let mut reconnected = false;
        loop {
            let started = Instant::now();
            let sent = send(
                started,
                &mut upstream,
                &client,
                &endpoint,
                routing,
                req,
                head,
                buf,
                out,
            )
            .await;
            let failure = match sent {
                Ok((resp, filled)) => {
                    endpoint.record_response(resp.status, started);
                    if !routing.fail_statuses.is_empty()
                        && routing.fail_statuses.contains(&resp.status)
                    {
                        let why = ProxyError::Status {
                            backend: endpoint.id.clone(),
                            status: resp.status,
                        };
                        routing.failed(table, &endpoint, &why);
                    }
                    let relayed = relay(
                        &mut *client.stream,
                        client.send_timeout,
                        &mut upstream,
                        &endpoint,
                        routing.read_timeout,
                        &resp,
                        buf,
                        filled,
                        out,
                    )
                    .await;
                    return match relayed {
                        Relayed::Whole { upstream_reusable } => {
                            if upstream_reusable {
                                endpoint.pool.put_raw(upstream);
                            }
                            drop(in_flight);
                            if resp.close_client {
                                Served::Close
                            } else {
                                Served::KeepAlive
                            }
                        }
                        Relayed::Cut => Served::Close,
                        Relayed::Invalid(why) => {
                            let error = ProxyError::BadResponse {
                                backend: endpoint.id.clone(),
                                why,
                            };
                            routing.failed(table, &endpoint, &error);
                            return answer_error(client, req, &error).await;
                        }
                    };
                }
                Err(Failure::ClientGone) => {
                    tracing::debug!(backend = %endpoint.id, request_id = ?req.request_id.header_value(), "client closed its connection before the response; request abandoned");
                    return Served::Close;
                }
                Err(f) => f,
            };
            // The same backend once more on a new socket: the idle one
            // was most likely closed by the backend as we used it.
            let stale = reused
                && !reconnected
                && match &failure {
                    Failure::Unsent(_) => true,
                    Failure::Read { got_bytes, .. } => !got_bytes && req.idempotent,
                    Failure::Timeout | Failure::Invalid(_) | Failure::ClientGone => false,
                };
            if stale {
                match Box::pin(endpoint.pool.connect_raw()).await {
                    Ok(fresh) => {
                        tracing::debug!(backend = %endpoint.id, "reused connection failed; trying a new one");
                        upstream = fresh;
                        reused = false;
                        reconnected = true;
                        continue;
                    }
                    Err(source) => {
                        // As forward.rs: on to the next backend, like any
                        // request that could not be delivered.
                        last_error = ProxyError::Connect {
                            backend: endpoint.id.clone(),
                            source,
                        };
                        break;
                    }
                }
            }
            // Sent again: what never reached the backend, whatever the
            // method; what did, only if it is idempotent.
            let reached = !matches!(failure, Failure::Unsent(_));
            let again = !reached || req.idempotent;
            let error = match failure {
                Failure::Unsent(source) | Failure::Read { source, .. } => ProxyError::UpstreamIo {
                    backend: endpoint.id.clone(),
                    source,
                },
                Failure::Timeout => {
                    // As slow as the timeout, at least: p2c_ewma steers away.
                    endpoint.observe_latency(routing.response_header_timeout);
                    ProxyError::Timeout {
                        backend: endpoint.id.clone(),
                        after: routing.response_header_timeout,
                    }
                }
                Failure::Invalid(why) => ProxyError::BadResponse {
                    backend: endpoint.id.clone(),
                    why,
                },
                Failure::ClientGone => unreachable!("answered above"),
            };
            tracing::debug!(backend = %endpoint.id, reused, error = %error, "upstream request failed");
            routing.failed(table, &endpoint, &error);
            // Retrying what reached the backend costs it work: budgeted.
            // What never got there (unsent) is free.
            charge = reached;
            last_error = error;
            if !again {
                return answer_error(client, req, &last_error).await;
            }
            break;
        }
    }
    answer_error(client, req, &last_error).await
}

/// Write the head, then read until the response head is whole (skipping
/// 1xx). On success the response head is in `ResponseHead` and `buf[..filled]`
/// holds what was read (the head, then the body's first bytes). While it
/// waits, a client that closes its connection ends the wait. The response
/// head is due `response_header_timeout` after `started`.
#[allow(clippy::too_many_arguments)]
async fn send(
    started: Instant,
    upstream: &mut TcpStream,
    client: &Client<'_>,
    endpoint: &Arc<Endpoint>,
    routing: &Routing,
    req: &Prepared,
    head: &[u8],
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(ResponseHead, usize), Failure> {
    write_all(
        upstream,
        &[head],
        endpoint.pool.send_timeout(),
        Stalled::UpstreamSend(endpoint.pool.send_timeout()),
    )
    .await
    .map_err(Failure::Unsent)?;
    let deadline = tokio::time::Instant::from_std(started) + routing.response_header_timeout;
    let mut filled = 0;
    loop {
        let read = tokio::select! {
            biased;
            read = read_until(upstream, &mut buf[filled..], deadline) => read,
            () = client_gone(client.stream, client.abort_on_close) => return Err(Failure::ClientGone),
        };
        let n = match read {
            Some(Ok(n)) => n,
            Some(Err(source)) => {
                return Err(Failure::Read {
                    source,
                    got_bytes: filled > 0,
                })
            }
            None => return Err(Failure::Timeout),
        };
        if n == 0 {
            return Err(Failure::Read {
                source: io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before a whole response head",
                ),
                got_bytes: filled > 0,
            });
        }
        filled += n;
        loop {
            // The drain may have begun while the backend answered.
            match response::prepare(
                &buf[..filled],
                req.head_only,
                req.keep_alive && !client.idle.is_draining(),
                &req.request_id,
                out,
            ) {
                Parsed::Partial => break,
                Parsed::Informational(len) => {
                    buf.copy_within(len..filled, 0);
                    filled -= len;
                }
                Parsed::Invalid(why) => return Err(Failure::Invalid(why)),
                Parsed::Ready(resp) => return Ok((resp, filled)),
            }
        }
        if filled == buf.len() && !grow(buf, MAX_RESPONSE_HEAD) {
            return Err(Failure::Invalid("response head larger than 256 KiB"));
        }
    }
}

/// Resolves when the client has reset its connection (or it failed), or,
/// with `abort_on_close` (`limits.abort_on_client_close`), ended its
/// sending side; without it, a client that half-closed after its request
/// still gets the answer (the connection ends after it). A client that
/// sent more (a pipelined request) is still there: then it never
/// resolves. A peek, so nothing is taken from the socket; no syscall until
/// the socket has something. (`poll_peek`: the waker waits in the socket's
/// reader slot, which nothing else uses meanwhile, rather than in a waiter
/// node linked in and out of the socket's list per request.)
async fn client_gone(client: &TcpStream, abort_on_close: bool) {
    let mut probe = [0u8; 1];
    let mut probe = tokio::io::ReadBuf::new(&mut probe);
    match std::future::poll_fn(|cx| client.poll_peek(cx, &mut probe)).await {
        Err(_) => {}
        Ok(0) if abort_on_close => {}
        Ok(_) => std::future::pending().await,
    }
}

/// A read that finishes by `deadline`; `None` when it did not. Data already
/// there is read without setting a timer.
async fn read_until(
    stream: &mut TcpStream,
    buf: &mut [u8],
    deadline: tokio::time::Instant,
) -> Option<io::Result<usize>> {
    if let Some(r) = stream.read(buf).now_or_never() {
        return Some(r);
    }
    tokio::time::timeout_at(deadline, stream.read(buf))
        .await
        .ok()
}

/// Body bytes that arrived with the head and are copied behind it.
const SMALL_BODY: usize = 4 << 10;

enum Relayed {
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
#[allow(clippy::too_many_arguments)]
async fn relay(
    client: &mut TcpStream,
    client_timeout: Duration,
    upstream: &mut TcpStream,
    endpoint: &Endpoint,
    read_timeout: Duration,
    resp: &ResponseHead,
    buf: &mut [u8],
    filled: usize,
    out: &mut Vec<u8>,
) -> Relayed {
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
        write_all(client, &[out], client_timeout, stalled).await
    } else {
        write_all(client, &[out, &body[..first]], client_timeout, stalled).await
    };
    if let Err(e) = sent {
        tracing::debug!(error = %e, "client went away during the response");
        return Relayed::Cut;
    }
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
    let relayed = relay_rest(
        client,
        client_timeout,
        upstream,
        endpoint,
        read_timeout,
        left,
        reusable,
        through,
    )
    .await;
    if let Some(big) = big {
        give_body_buf(big);
    }
    relayed
}

/// The rest of a body, read by read through `buf`.
#[allow(clippy::too_many_arguments)]
async fn relay_rest(
    client: &mut TcpStream,
    client_timeout: Duration,
    upstream: &mut TcpStream,
    endpoint: &Endpoint,
    read_timeout: Duration,
    mut left: Left,
    mut reusable: bool,
    buf: &mut [u8],
) -> Relayed {
    let stalled = Stalled::ClientSend(client_timeout);
    loop {
        if matches!(left, Left::Done) {
            return Relayed::Whole {
                upstream_reusable: reusable,
            };
        }
        let deadline = tokio::time::Instant::now() + read_timeout;
        let n = match read_until(upstream, buf, deadline).await {
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
        if let Err(e) = write_all(client, &[&buf[..take]], client_timeout, stalled).await {
            tracing::debug!(error = %e, "client went away during the response");
            return Relayed::Cut;
        }
    }
}

/// The error answer, with the request id; the client's connection stays
/// open for 502/503/504 (not for the statuses an `Answer` closes).
async fn answer_error(client: Client<'_>, req: &Prepared, error: &ProxyError) -> Served {
    let id = req.request_id.header_value();
    tracing::warn!(request_id = ?id, error = %error, status = error.status().as_u16(), "request failed");
    let answer = error.answer(req.request_id.as_bytes(), req.json);
    let close = !req.keep_alive || client.idle.is_draining() || answer.closes();
    let mut bytes = Vec::with_capacity(256);
    answer.write_h1(&mut bytes, close, req.head_only);
    match write_all(
        client.stream,
        &[&bytes],
        client.send_timeout,
        Stalled::ClientSend(client.send_timeout),
    )
    .await
    {
        Ok(()) if !close => Served::KeepAlive,
        _ => Served::Close,
    }
}
