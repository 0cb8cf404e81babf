//! One request on the native engine: the attempts (backend after backend,
//! as `proxy::attempt` decides), each writing the prepared head on a
//! pooled socket and reading the response head; the body is then relayed
//! (`relay.rs`). The engine says how far an attempt got; the retry rules,
//! passive health, `fail_statuses` and the retry budget are the same code
//! as on hyper's path (`proxy::attempt`, `proxy::routing`).
//!
//! Every request here is bodyless, so "sending again" is writing the same
//! head again.

use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::head::{add_lines, edit_head};
use super::idle::Idle;
use super::io::{give_vec, grow, take_vec, write_all, ClientStream, MAX_RESPONSE_HEAD};
use super::relay::{relay, Relayed};
use super::request::Prepared;
use super::response::{self, Parsed, ResponseHead};
use crate::access_log::Report;
use crate::balance::{Endpoint, InFlight};
use crate::proxy::attempt::{Attempts, Next, Reach, Resend};
use crate::proxy::error::ProxyError;
use crate::proxy::forward::Proxy;
use crate::proxy::routing::{Routing, Target};
use crate::proxy::stall::Stalled;
use crate::routes::{HeaderEdits, Policy};
use crate::sticky::Sticky;

/// How the exchange left the client's connection.
pub enum Served {
    /// The answer went out; the connection may carry another request.
    KeepAlive,
    /// The connection ends here, after a whole answer.
    Close,
    /// The connection ends here with nothing more written: the response
    /// was cut, a write to the client failed, or the client went away.
    /// (Over TLS: no close_notify, so a cut body never looks whole.)
    Cut,
    /// Not served: the request needs hyper's path (an h2 or TLS backend).
    /// Nothing was written to the client.
    Handoff,
}

/// What one attempt on one socket came to.
pub(super) enum Failure {
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

impl Failure {
    /// As the proxy's error, and how far the attempt got.
    pub(super) fn classify(self, backend: &str, policy: &Policy) -> (ProxyError, Reach) {
        let backend = backend.to_string();
        match self {
            Failure::Unsent(source) => (ProxyError::UpstreamIo { backend, source }, Reach::Unsent),
            Failure::Read { source, got_bytes } => (
                ProxyError::UpstreamIo { backend, source },
                Reach::Sent {
                    response_started: got_bytes,
                },
            ),
            Failure::Timeout => (
                ProxyError::Timeout {
                    backend,
                    after: policy.response_header_timeout,
                },
                Reach::TimedOut,
            ),
            Failure::Invalid(why) => (
                ProxyError::BadResponse { backend, why },
                Reach::Sent {
                    response_started: true,
                },
            ),
            Failure::ClientGone => unreachable!("answered before it is classified"),
        }
    }
}

/// Client-side settings of the connection the request came on.
pub struct Client<'a> {
    pub stream: &'a mut ClientStream,
    /// `limits.send_timeout`.
    pub send_timeout: Duration,
    /// The listener's idle waits and drain: once the drain began, the
    /// answer says `Connection: close` and the connection ends after it.
    pub idle: &'a Idle,
    /// `limits.abort_on_client_close`: a client's FIN abandons its request.
    pub abort_on_close: bool,
    /// What became of the request, for the access log.
    pub report: &'a mut Report,
}

/// The backend side of one attempt.
pub(super) struct Upstream<'a> {
    pub stream: &'a mut TcpStream,
    pub endpoint: &'a Endpoint,
    /// `proxy.read_timeout`, between two reads of the body.
    pub read_timeout: Duration,
}

/// The request and what it is served under.
struct Job<'a> {
    routing: &'a Routing,
    /// The request's pool and its route's attempt settings.
    target: Target<'a>,
    /// The route's `response_headers` rules.
    response_headers: &'a HeaderEdits,
    /// The route's sticky cookie (`sticky`).
    sticky: Option<&'a Sticky>,
    req: &'a Prepared,
    /// The head the backend gets.
    head: &'a [u8],
}

/// Serve `req`, whose head for the backend is `head`, reading the
/// backend's response into `buf` (which may grow). `buf` is untouched when
/// the answer is [`Served::Handoff`]: the caller may pass the buffer that
/// holds the client's bytes.
pub async fn serve(
    proxy: &Proxy,
    routing: &Routing,
    mut client: Client<'_>,
    req: &Prepared,
    head: &[u8],
    buf: &mut Vec<u8>,
) -> Served {
    let Some(target) = routing.target(req.route) else {
        return answer_error(&mut client, req, &ProxyError::NoBackend).await;
    };
    if routing.access_log.is_some() {
        client.report.pool = Some(target.pool.name.clone());
    }
    let route = routing.routes.get(req.route);
    let job = Job {
        routing,
        target,
        response_headers: &route.response_headers,
        sticky: route.sticky.as_deref(),
        req,
        head,
    };
    let mut out = take_vec();
    let mut attempts = Attempts::new(proxy, routing, target, (req.key, req.pin));
    let mut last_error = ProxyError::NoBackend;
    let served = loop {
        // A set with an h2 or TLS backend: hyper's path (raw sockets are
        // cleartext HTTP/1.1), decided before the balancer picks.
        let Ok(picked) = attempts.pick_native(&req.request_id) else {
            break Some(Served::Handoff);
        };
        let Some(endpoint) = picked else {
            break None;
        };
        if !endpoint.pool.raw_ok() {
            // The set changed since (a reload added such a backend): not here.
            attempts.pass_over(&endpoint);
            continue;
        }
        let in_flight = attempts.begin(&endpoint);
        client.report.attempts += 1;
        let tried = on_backend(
            &job,
            &mut attempts,
            &endpoint,
            in_flight,
            &mut client,
            buf,
            &mut out,
        );
        match tried.await {
            Ok(served) => break Some(served),
            Err((error, next)) => {
                last_error = error;
                if next == Next::Answer {
                    break None;
                }
            }
        }
    };
    give_vec(out);
    match served {
        Some(served) => served,
        None => answer_error(&mut client, req, &last_error).await,
    }
}

/// The attempt on one backend, with a new connection to it when
/// `attempt::next` says so: how the client was served, or the error and
/// what to do next. `buf` takes the backend's response; `out` the
/// client's response head.
async fn on_backend(
    job: &Job<'_>,
    attempts: &mut Attempts<'_>,
    endpoint: &Arc<Endpoint>,
    in_flight: InFlight,
    client: &mut Client<'_>,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<Served, (ProxyError, Next)> {
    // Bodyless: it can always be written again.
    let resend = Resend {
        idempotent: job.req.idempotent,
        replayable: true,
    };
    let (mut stream, mut reused) = match endpoint.pool.raw_stream().await {
        Ok(got) => got,
        Err(source) => {
            return Err(attempts.connect_failed(&job.req.request_id, endpoint, source, resend))
        }
    };
    loop {
        let mut up = Upstream {
            stream: &mut stream,
            endpoint,
            read_timeout: job.target.policy.read_timeout,
        };
        let started = Instant::now();
        let failure = match send(job, &mut up, client, started, buf, out).await {
            Ok((resp, filled)) => {
                let table = &job.target.pool.table;
                job.routing.observe(table, endpoint, resp.status, started);
                client.report.status = resp.status;
                client.report.upstream = Some(started.elapsed());
                if job.routing.access_log.is_some() {
                    client.report.backend = Some(endpoint.clone());
                }
                return Ok(
                    match relay(client, &mut up, &resp, buf, filled, out).await {
                        Relayed::Whole { upstream_reusable } => {
                            if upstream_reusable {
                                endpoint.pool.put_raw(stream);
                            }
                            drop(in_flight);
                            if resp.close_client {
                                Served::Close
                            } else {
                                Served::KeepAlive
                            }
                        }
                        Relayed::Cut => Served::Cut,
                        Relayed::Invalid(why) => {
                            let error = ProxyError::BadResponse {
                                backend: endpoint.id.clone(),
                                why,
                            };
                            job.routing.failed(table, endpoint, &error);
                            answer_error(client, job.req, &error).await
                        }
                    },
                );
            }
            Err(Failure::ClientGone) => {
                tracing::debug!(backend = %endpoint.id, request_id = ?job.req.request_id, "client closed its connection before the response; request abandoned");
                return Ok(Served::Cut);
            }
            Err(f) => f,
        };
        let (error, reach) = failure.classify(&endpoint.id, job.target.policy);
        tracing::debug!(backend = %endpoint.id, reused, error = %error, "upstream request failed");
        match attempts.failed(
            &job.req.request_id,
            endpoint,
            &error,
            (reach, reused),
            resend,
        ) {
            Next::Reconnect => match Box::pin(endpoint.pool.connect_raw()).await {
                Ok(fresh) => {
                    tracing::debug!(backend = %endpoint.id, "reused connection failed; trying a new one");
                    stream = fresh;
                    reused = false;
                }
                Err(source) => {
                    // On to the next backend, like any request that could
                    // not be delivered.
                    let e = ProxyError::connect(&endpoint.id, source);
                    return Err((e, Next::Elsewhere));
                }
            },
            next => return Err((error, next)),
        }
    }
}

/// Write the head, then read until the response head is whole (skipping
/// 1xx). On success the response head is in `ResponseHead` and `buf[..filled]`
/// holds what was read (the head, then the body's first bytes). While it
/// waits, a client that closes its connection ends the wait. The response
/// head is due `response_header_timeout` after `started`.
async fn send(
    job: &Job<'_>,
    up: &mut Upstream<'_>,
    client: &Client<'_>,
    started: Instant,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> Result<(ResponseHead, usize), Failure> {
    let (req, upstream) = (job.req, &mut *up.stream);
    let send_timeout = up.endpoint.pool.send_timeout();
    write_all(
        upstream,
        &[job.head],
        send_timeout,
        Stalled::UpstreamSend(send_timeout),
    )
    .await
    .map_err(Failure::Unsent)?;
    let deadline =
        tokio::time::Instant::from_std(started) + job.target.policy.response_header_timeout;
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
                Parsed::Ready(resp) => {
                    if !job.response_headers.is_empty() {
                        edit_head(out, job.response_headers);
                    }
                    if let Some(note) = &job.req.rate {
                        add_lines(out, |o| note.write_h1(o));
                    }
                    if let Some(sticky) = job.sticky {
                        if Sticky::renew(req.pin, up.endpoint) {
                            // Before the empty line that ends the head
                            // (`out` holds the head alone).
                            debug_assert!(out.ends_with(b"\r\n\r\n"));
                            out.truncate(out.len() - 2);
                            sticky.write_line(out, up.endpoint);
                            out.extend_from_slice(b"\r\n");
                        }
                    }
                    return Ok((resp, filled));
                }
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
async fn client_gone(client: &ClientStream, abort_on_close: bool) {
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
pub(super) async fn read_until(
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

/// shoal's own answer to `req` (a route's `redirect` or `respond`, a
/// file, a cache hit, or 404), already written as `bytes` (a hit's stored
/// body follows from `req.body`), which say `Connection: close` when the
/// client asked for it. While the drain runs, the connection ends after it.
pub async fn answer(mut client: Client<'_>, req: &Prepared, bytes: &[u8]) -> Served {
    let close = !req.keep_alive || client.idle.is_draining();
    write_answer(&mut client, bytes, &req.body, close).await
}

/// The status of an answer written as HTTP/1.1 bytes (`HTTP/1.1 NNN …`).
fn status_of(bytes: &[u8]) -> u16 {
    bytes
        .get(9..12)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

/// The error answer, with the request id; the client's connection stays
/// open for 502/503/504 (not for the statuses an `Answer` closes).
async fn answer_error(client: &mut Client<'_>, req: &Prepared, error: &ProxyError) -> Served {
    tracing::warn!(request_id = ?req.request_id, error = %error, status = error.status().as_u16(), "request failed");
    let answer = error.answer(req.request_id.as_bytes(), req.json);
    let close = !req.keep_alive || client.idle.is_draining() || answer.closes();
    let mut bytes = Vec::with_capacity(256);
    answer.write_h1(&mut bytes, close, req.head_only);
    write_answer(client, &bytes, &[], close).await
}

/// An answer shoal wrote: `bytes` (a head, and maybe its body), then
/// `body` (a stored body written after the head, never copied; empty for
/// most).
async fn write_answer(client: &mut Client<'_>, bytes: &[u8], body: &[u8], close: bool) -> Served {
    client.report.status = status_of(bytes);
    let head = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(0, |p| p + 4);
    client.report.bytes_out = (bytes.len() - head + body.len()) as u64;
    let parts: &[&[u8]] = if body.is_empty() {
        &[bytes]
    } else {
        &[bytes, body]
    };
    match write_all(
        &mut *client.stream,
        parts,
        client.send_timeout,
        Stalled::ClientSend(client.send_timeout),
    )
    .await
    {
        Ok(()) if !close => Served::KeepAlive,
        Ok(()) => Served::Close,
        Err(_) => Served::Cut,
    }
}
