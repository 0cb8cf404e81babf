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
use std::task::Poll;
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::FutureExt;
use tokio::io::AsyncReadExt;
use tokio::time::Instant;

use super::exchange::{self, Client, Served};
use super::head::add_lines;
use super::idle::{Idle, Over};
use super::io::{
    give_buf, give_vec, grow, take_buf, take_vec, write_all, ClientStream, MAX_HEAD_BUF,
};
use super::request::{prepare, Head};
use crate::access_log::Report;
use crate::proxy::admit::rate_limited;
use crate::proxy::debug_events;
use crate::proxy::error::ProxyError;
use crate::proxy::forward::Proxy;
use crate::proxy::listener::ListenerRole;
use crate::proxy::stall::Stalled;
use crate::ratelimit::Outcome;

/// The `limits:` a connection was accepted under.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub send_timeout: Duration,
    /// `limits.max_header_size`: a longer head goes to hyper, which
    /// answers 431.
    pub max_head: usize,
    /// `limits.abort_on_client_close`.
    pub abort_on_close: bool,
}

/// How the engine let go of a connection.
pub enum End {
    /// Closed after a whole answer, by a timer, or by the drain: over TLS
    /// the client is told (close_notify).
    Closed,
    /// Ended with nothing more to write: the client went away, or a
    /// response was cut (over TLS, no close_notify: a cut body must not
    /// look whole).
    Gone,
    /// hyper serves the rest of the connection, starting with the bytes
    /// already read from it.
    Handoff(Vec<u8>),
    /// Idle long enough to park (plain TCP only, `park.rs`) after
    /// `served` requests (one or more; `drive` goes on with `resumed` set
    /// to it when the client sends again); its `idle_timeout` ends
    /// `left_ms` from now. (Both `u32`: `End` stays as small as it was.)
    Park { served: u32, left_ms: u32 },
}

/// Drive `stream` until it ends, is handed off or parks; `resumed`: 0
/// for a new connection, else the requests it served before it parked
/// (one or more: it parks only between requests). (Everything by reference: the caller's task holds it for the
/// connection's life, and a second copy here would be carried by every
/// idle connection.)
pub async fn drive(
    stream: &mut ClientStream,
    peer: &SocketAddr,
    proxy: &Proxy,
    (limits, role): (&ConnLimits, &ArcSwap<ListenerRole>),
    (idle, resumed): (&Idle, u32),
) -> End {
    // The first request's head is due header_read_timeout after accepting
    // (as nginx's client_header_timeout), on the coarse clock; later ones
    // from their first bytes (from the read that found them incomplete, so
    // a head that comes whole reads no clock).
    // Over TLS, from accepting: the handshake counted toward it.
    let mut first = match resumed {
        1.. => None,
        0 => Some(
            stream
                .first_head_due()
                .unwrap_or_else(|| crate::clock::coarse() + limits.header_read_timeout),
        ),
    };
    // Where this connection's idle waits are kept (`idle.rs`).
    let shard = idle.shard();
    // Bytes read and not yet served (a pipelined request), if any: an idle
    // connection holds no buffer. (Boxed: rare, and smaller in every task.)
    let mut held: Option<Box<(Vec<u8>, usize)>> = None;
    // Requests served, for the debug events.
    let mut served: u32 = resumed;
    // Only a plain connection parks, and only between requests.
    let parks = matches!(stream, ClientStream::Plain(_));
    loop {
        let (buf, filled) = match held.take() {
            Some(held) => *held,
            None => {
                let due = first.unwrap_or_else(|| crate::clock::coarse() + limits.idle_timeout);
                // Parks (if the listener parks) once idle for a while
                // between requests.
                let may_park = parks && first.is_none();
                match first_bytes(stream, idle, shard, (due, may_park)).await {
                    Ok(read) => read,
                    Err(WaitEnd::Park(left_ms)) => return End::Park { served, left_ms },
                    // Idle for idle_timeout, or never a byte within
                    // header_read_timeout: closed without an answer.
                    Err(why) => {
                        debug_events::closed(peer, stream.engine(), served, || {
                            why.as_str(first.is_some())
                        });
                        return match why {
                            WaitEnd::ClientClosed => End::Gone,
                            WaitEnd::Drain | WaitEnd::TimedOut | WaitEnd::Park(_) => End::Closed,
                        };
                    }
                }
            }
        };
        // Later heads: set on the first read that finds one incomplete.
        let head_deadline = first.take().map(Instant::from_std);
        let read = Read {
            buf,
            filled,
            head_deadline,
        };
        // Boxed: what a request needs lives only while it does, so an idle
        // connection's task holds no more than the wait above.
        let step = Box::pin(one_request(
            stream,
            *peer,
            proxy,
            (*limits, role),
            idle,
            read,
        ))
        .await;
        match step {
            Step::Next(pipelined) => {
                served = served.saturating_add(1);
                held = pipelined.map(Box::new);
            }
            Step::Closed(after) => {
                let served = served.saturating_add(u32::from(after.served()));
                debug_events::closed(peer, stream.engine(), served, || after.why());
                return match after {
                    Closed::WithResponse | Closed::HeadTimeout => End::Closed,
                    Closed::ClientInHead | Closed::Cut => End::Gone,
                };
            }
            Step::Handoff(read) => {
                crate::metrics::counters::native_handoff();
                return End::Handoff(read);
            }
        }
        if idle.is_draining() {
            debug_events::closed(peer, stream.engine(), served, || "drain");
            return End::Closed;
        }
    }
}

/// The client's bytes so far for the request being read.
struct Read {
    buf: Vec<u8>,
    filled: usize,
    /// When the head is due; `None`: header_read_timeout from the first
    /// time it is found incomplete (most heads come in one read).
    head_deadline: Option<Instant>,
}

/// What became of one request.
enum Step {
    /// Served; the bytes after it (a pipelined request), if any.
    Next(Option<(Vec<u8>, usize)>),
    Closed(Closed),
    /// For hyper: the bytes read so far.
    Handoff(Vec<u8>),
}

/// Why the connection closed on a request (for the debug event; one byte,
/// so `Step` stays as small as it was).
#[derive(Clone, Copy)]
enum Closed {
    ClientInHead,
    HeadTimeout,
    WithResponse,
    /// The response was cut, a write failed, or the client went away.
    Cut,
}

impl Closed {
    fn served(self) -> bool {
        matches!(self, Closed::WithResponse | Closed::Cut)
    }

    fn why(self) -> &'static str {
        match self {
            Closed::ClientInHead => "the client closed in the middle of a head",
            Closed::HeadTimeout => "limits.header_read_timeout in the middle of a head (408)",
            Closed::WithResponse => "closed with the response (`Connection: close`, or an error)",
            Closed::Cut => "the response was cut, or the client went away",
        }
    }
}

/// Why a connection waiting for a request ended.
#[derive(Clone, Copy)]
enum WaitEnd {
    Drain,
    TimedOut,
    ClientClosed,
    /// Idle long enough to park; the ms left until its idle deadline.
    Park(u32),
}

impl WaitEnd {
    /// `first`: the wait was for the connection's first request.
    fn as_str(self, first: bool) -> &'static str {
        match (self, first) {
            (WaitEnd::Drain, _) => "drain",
            (WaitEnd::TimedOut, true) => "no request within limits.header_read_timeout",
            (WaitEnd::TimedOut, false) => "idle for limits.idle_timeout",
            (WaitEnd::ClientClosed, _) => "the client closed",
            (WaitEnd::Park(_), _) => "parked",
        }
    }
}

/// Why a request goes to hyper, when it is not the head's own reason.
const LARGE_HEAD: &str = "a large head (hyper reads it up to limits.max_header_size)";

/// Read the rest of a head, then serve the request.
async fn one_request(
    stream: &mut ClientStream,
    peer: SocketAddr,
    proxy: &Proxy,
    (limits, role): (ConnLimits, &ArcSwap<ListenerRole>),
    idle: &Idle,
    read: Read,
) -> Step {
    let Read {
        mut buf,
        mut filled,
        mut head_deadline,
    } = read;
    let routing = proxy.routing();
    // The listener's name only when a listener has routes of its own.
    let role = routing.routes.by_listener().then(|| role.load());
    let listener = role.as_ref().map_or("", |r| &r.name);
    let mut head = take_vec();
    let (req, answered) = loop {
        match prepare(
            &buf[..filled],
            (peer, listener, idle.is_draining()),
            stream.proto(),
            &routing,
            &mut head,
        ) {
            Head::Ready(req) | Head::Answered(req) if req.len > limits.max_head => {
                return handoff(buf, filled, head, (&peer, LARGE_HEAD))
            }
            Head::Ready(req) => break (req, false),
            Head::Answered(req) => break (req, true),
            Head::Handoff(why) => return handoff(buf, filled, head, (&peer, why)),
            // A large head: past 16 KiB, hyper reads it up to
            // limits.max_header_size, or answers 431.
            Head::Partial if filled >= limits.max_head => {
                return handoff(buf, filled, head, (&peer, LARGE_HEAD))
            }
            Head::Partial if filled == buf.len() && !grow(&mut buf, MAX_HEAD_BUF) => {
                return handoff(buf, filled, head, (&peer, LARGE_HEAD))
            }
            Head::Partial => {}
        }
        let deadline =
            *head_deadline.get_or_insert_with(|| Instant::now() + limits.header_read_timeout);
        let more = tokio::time::timeout_at(deadline, stream.read(&mut buf[filled..])).await;
        match more {
            Ok(Ok(n)) if n > 0 => filled += n,
            Ok(_) => {
                give_buf(buf);
                give_vec(head);
                return Step::Closed(Closed::ClientInHead);
            }
            Err(_) => {
                give_buf(buf);
                give_vec(head);
                header_timeout(stream, limits).await;
                return Step::Closed(Closed::HeadTimeout);
            }
        }
    };
    let (mut req, mut answered) = (req, answered);
    let mut report = Report {
        cache: req.cache,
        ..Report::default()
    };
    if !req.limits.is_empty() {
        // The *admit* phase's rate limits, now the route is known.
        let asked = std::mem::take(&mut req.limits);
        let outcome = match routing.limits.decide_now(&asked) {
            Some(outcome) => outcome,
            // Redis: a round trip, in a future of its own.
            None => Box::pin(routing.limits.decide(asked)).await,
        };
        report.rate_limit = Some(outcome.word());
        match outcome {
            Outcome::Pass(note) => {
                req.rate = note;
                if let (true, Some(note)) = (answered, note) {
                    add_lines(&mut head, |o| note.write_h1(o));
                }
            }
            Outcome::Refuse(note) => {
                head.clear();
                rate_limited(req.request_id.as_bytes(), req.json, note).write_h1(
                    &mut head,
                    !req.keep_alive,
                    req.head_only,
                );
                // Refused before the cache could answer.
                req.body = bytes::Bytes::new();
                report.cache = None;
                answered = true;
            }
        }
    }
    let client = Client {
        stream,
        send_timeout: limits.send_timeout,
        idle,
        abort_on_close: limits.abort_on_close,
        report: &mut report,
    };
    // The response goes through the client's buffer when nothing is
    // pipelined behind the request (one buffer per request in flight, not
    // two); the client's bytes are still there if the answer is Handoff.
    let pipelined = filled > req.len;
    let mut resp_buf = if pipelined {
        take_buf()
    } else {
        std::mem::take(&mut buf)
    };
    let served = if answered {
        exchange::answer(client, &req, &head).await
    } else {
        exchange::serve(proxy, &routing, client, &req, &head, &mut resp_buf).await
    };
    if !matches!(served, Served::Handoff) {
        if let Some(route) = routing.routes.get_checked(req.route) {
            route.stats.request();
        }
        // The *log* phase.
        if let (Some(log), Some(facts)) = (&routing.access_log, &req.facts) {
            log.log(facts, &report);
        }
    }
    if pipelined {
        give_buf(resp_buf);
    } else {
        buf = resp_buf;
    }
    match served {
        Served::KeepAlive => {}
        Served::Close | Served::Cut => {
            give_buf(buf);
            give_vec(head);
            let why = match served {
                Served::Cut => Closed::Cut,
                _ => Closed::WithResponse,
            };
            return Step::Closed(why);
        }
        Served::Handoff => {
            return handoff(
                buf,
                filled,
                head,
                (
                    &peer,
                    "a backend of the pool needs hyper's path (h2 or TLS)",
                ),
            )
        }
    }
    give_vec(head);
    if pipelined {
        buf.copy_within(req.len..filled, 0);
        Step::Next(Some((buf, filled - req.len)))
    } else {
        give_buf(buf);
        Step::Next(None)
    }
}

/// Wait until the client sends something (by `due`, on the coarse clock,
/// and unless the drain begins), and read it into a buffer taken only
/// then: `readable` may report a socket ready before any byte has come (a
/// fresh one, for instance), and an idle connection must not hold a
/// buffer. `Err`: the client closed, the time ran out, the drain began,
/// or it is time to park (if it `parks`).
async fn first_bytes(
    stream: &mut ClientStream,
    idle: &Idle,
    shard: usize,
    (due, parks): (std::time::Instant, bool),
) -> Result<(Vec<u8>, usize), WaitEnd> {
    if stream.readable_without_socket() {
        // The next request's bytes came with the records of the last one.
        if let Some(read) = read_now(stream) {
            return read;
        }
    }
    // The deadline and the drain's wake-up, outside this task (`idle.rs`).
    let mut wait = idle.wait(shard, due, parks);
    loop {
        // `poll_read_ready` rather than `readable()`: the waker waits in
        // the socket's registration, not in a waiter node in this future
        // (which every idle connection would carry).
        let ready = std::future::poll_fn(|cx| {
            if idle.is_draining() {
                return Poll::Ready(Err(Over::Expired));
            }
            if let Poll::Ready(r) = stream.poll_read_ready(cx) {
                return Poll::Ready(r.map_err(|_| Over::Expired));
            }
            wait.poll_over(cx).map(Err)
        })
        .await;
        match ready {
            Ok(()) => {}
            Err(_) if idle.is_draining() => return Err(WaitEnd::Drain),
            Err(Over::Expired) => return Err(WaitEnd::TimedOut),
            Err(Over::Park) => {
                let left = wait.left(crate::clock::coarse());
                let left_ms = u32::try_from(left.as_millis()).unwrap_or(u32::MAX);
                return Err(WaitEnd::Park(left_ms));
            }
        }
        // `None`: not ready after all; the read found nothing and cleared
        // the readiness: wait again, holding nothing.
        if let Some(read) = read_now(stream) {
            return read;
        }
    }
}

/// A read that does not wait, into a buffer taken for it: the bytes, the
/// client's close, or `None` (nothing there; the buffer is given back).
fn read_now(stream: &mut ClientStream) -> Option<Result<(Vec<u8>, usize), WaitEnd>> {
    let mut buf = take_buf();
    match stream.read(&mut buf).now_or_never() {
        Some(Ok(n)) if n > 0 => Some(Ok((buf, n))),
        Some(_) => {
            give_buf(buf);
            Some(Err(WaitEnd::ClientClosed))
        }
        None => {
            give_buf(buf);
            None
        }
    }
}

fn handoff(
    mut buf: Vec<u8>,
    filled: usize,
    head: Vec<u8>,
    (peer, why): (&SocketAddr, &'static str),
) -> Step {
    debug_events::handed_off(peer, why);
    give_vec(head);
    buf.truncate(filled);
    Step::Handoff(buf)
}

/// Part of a head came, not all of it, within `header_read_timeout`: 408.
async fn header_timeout(stream: &mut ClientStream, limits: ConnLimits) {
    let id = crate::proxy::request_id::generate();
    let e = ProxyError::HeaderTimeout {
        after: limits.header_read_timeout,
    };
    tracing::debug!(request_id = ?id, error = %e, "request refused");
    let mut bytes = Vec::with_capacity(256);
    e.answer(id.as_bytes(), false)
        .write_h1(&mut bytes, true, false);
    let _ = write_all(
        stream,
        &[&bytes],
        limits.send_timeout,
        Stalled::ClientSend(limits.send_timeout),
    )
    .await;
}
