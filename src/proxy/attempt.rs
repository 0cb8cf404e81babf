//! The *pick* and *retry* phases, written once for both engines: which
//! backend each attempt of a request goes to, and, after an attempt failed,
//! whether the request goes to a new connection to the same backend, to
//! another backend, or back to the client as an error. The engines only
//! say how far an attempt got ([`Reach`]); they decide nothing.
//!
//! The rules are nginx's `proxy_next_upstream error timeout`:
//!
//! | how far it got | sent again? | where | retry budget |
//! |---|---|---|---|
//! | not sent (connect failed, request not written or given back) | always | the same backend on a new connection if a reused one failed (once), else the next | free |
//! | sent, an h2 backend refused it unprocessed (RFC 9113 §8.7) | if it can be sent again (bodyless, or its body kept) | after GOAWAY a new connection to the same backend (up to 3 times), after REFUSED_STREAM the next | free |
//! | sent, failed before any response byte | idempotent and can be sent again | the same backend on a new connection if a reused one failed (once), else the next | charged |
//! | sent, part of a response head came, or none within `response_header_timeout` | idempotent and can be sent again | the next backend | charged |
//!
//! Passive health counts every failed attempt but a refusal and a failed
//! reused connection tried again; a new connection that fails to connect
//! after such a failure, and a client's own body failing, are not the
//! backend's fault and are not counted either.

use std::sync::Arc;

use super::debug_events;
use super::error::ProxyError;
use super::forward::Proxy;
use super::pool::{ConnectError, Refusal};
use super::routing::{Routing, Target};
use crate::balance::{Endpoint, EndpointSet, InFlight, Tried};

/// How many times one request may be put on a new connection to the same
/// backend after its stream was above a GOAWAY. Bounded, so a backend that
/// sends GOAWAY on every connection at once cannot keep a request forever.
const MAX_GOAWAY_RECONNECTS: u32 = 3;

/// How far a failed attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// Nothing of the request reached the backend: the connection could
    /// not be made, the request could not be written, or hyper gave it
    /// back unsent.
    Unsent,
    /// Sent, and an h2 backend said it did not process it.
    Refused(Refusal),
    /// Sent, and the connection failed before a whole response head;
    /// `response_started`: some of a response had come.
    Sent { response_started: bool },
    /// Sent, and no response head came within
    /// `proxy.response_header_timeout`.
    TimedOut,
}

impl Reach {
    /// The backend may have done the request's work.
    fn reached(self) -> bool {
        matches!(self, Reach::Sent { .. } | Reach::TimedOut)
    }
}

/// What the request allows after it was sent once.
#[derive(Debug, Clone, Copy)]
pub struct Resend {
    /// Its method is idempotent (`request_rules::idempotent`).
    pub idempotent: bool,
    /// It can be written again: no body, or a body kept in full
    /// (`proxy.replay_body_size`).
    pub replayable: bool,
}

/// What to do after a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// The same request on a new connection to the same backend.
    Reconnect,
    /// The request to the next backend (if one is left and the retry
    /// budget allows).
    Elsewhere,
    /// No more attempts: the client gets the error.
    Answer,
}

impl Next {
    /// For the debug events.
    pub fn as_str(self) -> &'static str {
        match self {
            Next::Reconnect => "reconnect (a new connection to the same backend)",
            Next::Elsewhere => "elsewhere (the next backend)",
            Next::Answer => "answer",
        }
    }
}

/// The decision itself; `reused`: the attempt's connection came from the
/// pool; `reconnects`: new connections to this backend so far.
pub fn next(reach: Reach, reused: bool, reconnects: u32, resend: Resend) -> Next {
    let again = match reach {
        Reach::Unsent => true,
        Reach::Refused(_) => resend.replayable,
        Reach::Sent { .. } | Reach::TimedOut => resend.idempotent && resend.replayable,
    };
    if !again {
        return Next::Answer;
    }
    let same_backend = match reach {
        // The connection is going away, the backend is not (a graceful
        // restart, a per-connection request limit).
        Reach::Refused(Refusal::GoAway) => reconnects < MAX_GOAWAY_RECONNECTS,
        // The backend sheds load: another one should take it.
        Reach::Refused(Refusal::RefusedStream) => false,
        // Most likely the backend closed this idle keep-alive connection
        // just as it was used: once, a new one before moving on.
        Reach::Unsent
        | Reach::Sent {
            response_started: false,
        } => reused && reconnects == 0,
        Reach::Sent {
            response_started: true,
        }
        | Reach::TimedOut => false,
    };
    if same_backend {
        Next::Reconnect
    } else {
        Next::Elsewhere
    }
}

/// The native engine cannot serve this request: hand it to hyper's path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeedsHyper;

/// One request's attempts, backend after backend.
pub struct Attempts<'a> {
    proxy: &'a Proxy,
    routing: &'a Routing,
    /// The request's pool and its route's attempt settings.
    target: Target<'a>,
    /// The balancer's key for the request (`hash`, `ip_hash`).
    key: Option<u64>,
    /// The backend the request's sticky cookie names (`sticky`): picked
    /// first while it is in rotation and not tried.
    pin: Option<u64>,
    tried: Tried,
    /// Attempts begun.
    begun: u32,
    /// The last attempt reached a backend: the next costs the retry budget.
    charge: bool,
    /// New connections to the current backend.
    reconnects: u32,
}

impl<'a> Attempts<'a> {
    pub fn new(
        proxy: &'a Proxy,
        routing: &'a Routing,
        target: Target<'a>,
        (key, pin): (Option<u64>, Option<u64>),
    ) -> Attempts<'a> {
        Attempts {
            proxy,
            routing,
            target,
            key,
            pin,
            tried: Tried::default(),
            begun: 0,
            charge: false,
            reconnects: 0,
        }
    }

    /// The backend for the next attempt; `None` when `proxy.retries` are
    /// used up, the retry budget refuses a retry that would cost a backend
    /// work, or no backend is left (in rotation and not tried, or a running
    /// one in panic mode).
    pub fn pick(&mut self, request_id: &dyn std::fmt::Debug) -> Option<Arc<Endpoint>> {
        self.pick_for(request_id, false).unwrap_or(None)
    }

    /// The native engine's pick: `Err(NeedsHyper)` for a first attempt when
    /// a backend of the set needs hyper's path (h2, TLS). Decided before
    /// the balancer is asked, so that it picks once per request (a pick
    /// advances round robin's turn).
    pub fn pick_native(
        &mut self,
        request_id: &dyn std::fmt::Debug,
    ) -> Result<Option<Arc<Endpoint>>, NeedsHyper> {
        self.pick_for(request_id, true)
    }

    fn pick_for(
        &mut self,
        request_id: &dyn std::fmt::Debug,
        native: bool,
    ) -> Result<Option<Arc<Endpoint>>, NeedsHyper> {
        if self.begun > self.target.policy.retries {
            debug_events::no_pick(
                request_id,
                &self.target.pool.name,
                self.begun + 1,
                "proxy.retries used up",
            );
            return Ok(None);
        }
        if self.charge {
            let r = self.routing;
            if !self.proxy.budget().try_retry(
                r.retry_budget_percent,
                r.retry_budget_min,
                r.retry_budget_window,
            ) {
                crate::metrics::counters::retry_budget_exhausted();
                tracing::warn!(request_id = ?request_id, "retry budget exhausted; not retrying");
                return Ok(None);
            }
            self.charge = false;
        }
        let set = self.target.pool.table.snapshot();
        if native && !set.all_raw() && self.is_first() {
            return Err(NeedsHyper);
        }
        let pool = &self.target.pool;
        if let Some(e) = self.pinned(&set) {
            debug_events::picked(
                request_id,
                &pool.name,
                &e.id,
                pool.algorithm,
                self.begun + 1,
                true,
            );
            return Ok(Some(e));
        }
        let Some(i) = pool.pick(&set, &self.tried, self.key) else {
            debug_events::no_pick(
                request_id,
                &pool.name,
                self.begun + 1,
                "none in rotation and not tried",
            );
            return Ok(None);
        };
        let e = &set.endpoints[i];
        debug_events::picked(
            request_id,
            &pool.name,
            &e.id,
            pool.algorithm,
            self.begun + 1,
            false,
        );
        Ok(Some(e.clone()))
    }

    /// The backend the sticky cookie names, if it is in `set`, in
    /// rotation (not draining, down, stopped or ejected) and not tried: a
    /// scan of the set, only for a request with a valid cookie.
    fn pinned(&self, set: &EndpointSet) -> Option<Arc<Endpoint>> {
        let pin = self.pin?;
        set.endpoints
            .iter()
            .find(|e| e.sticky_id() == pin && e.in_rotation() && !self.tried.contains(e.key()))
            .cloned()
    }

    /// No attempt has begun or been passed over yet.
    pub fn is_first(&self) -> bool {
        self.tried.is_empty()
    }

    /// Pass over a backend this engine does not send to (the native
    /// engine and an h2 backend): the next pick goes elsewhere.
    pub fn pass_over(&mut self, endpoint: &Endpoint) {
        self.tried.push(endpoint.key());
    }

    /// An attempt on `endpoint` begins: the request counts for the retry
    /// budget once, and every attempt after the first as a retry.
    pub fn begin(&mut self, endpoint: &Arc<Endpoint>) -> InFlight {
        if self.begun == 0 {
            self.proxy.budget().request();
        } else {
            crate::metrics::counters::retry();
        }
        self.begun += 1;
        self.reconnects = 0;
        self.tried.push(endpoint.key());
        endpoint.start_request()
    }

    /// The attempt on `endpoint` failed with `error`, having got as far as
    /// `reach` on a connection that was `reused` from the pool: passive
    /// health, and what to do next.
    pub fn failed(
        &mut self,
        request_id: &dyn std::fmt::Debug,
        endpoint: &Arc<Endpoint>,
        error: &ProxyError,
        (reach, reused): (Reach, bool),
        resend: Resend,
    ) -> Next {
        let next = next(reach, reused, self.reconnects, resend);
        debug_events::failed(request_id, &endpoint.id, self.begun, error, reach, next);
        if next == Next::Reconnect {
            self.reconnects += 1;
            return next;
        }
        if reach == Reach::TimedOut {
            // As slow as the timeout, at least: p2c_ewma steers away.
            endpoint.observe_latency(self.target.policy.response_header_timeout);
        }
        if !matches!(reach, Reach::Refused(_)) {
            // A refusal is the backend shedding load or going away
            // cleanly, not a failure.
            self.routing
                .failed(&self.target.pool.table, endpoint, error);
        }
        self.charge = reach.reached();
        next
    }

    /// A connection to `endpoint` could not be made, so nothing was sent:
    /// the error, and what to do next (as [`Attempts::failed`]).
    pub fn connect_failed(
        &mut self,
        request_id: &dyn std::fmt::Debug,
        endpoint: &Arc<Endpoint>,
        source: ConnectError,
        resend: Resend,
    ) -> (ProxyError, Next) {
        tracing::debug!(backend = %endpoint.id, error = %source, "connect failed, trying another backend");
        let error = ProxyError::connect(&endpoint.id, source);
        let next = self.failed(request_id, endpoint, &error, (Reach::Unsent, false), resend);
        (error, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::{EndpointTable, Health};

    const ANY: Resend = Resend {
        idempotent: true,
        replayable: true,
    };
    const POST: Resend = Resend {
        idempotent: false,
        replayable: true,
    };
    const STREAMED: Resend = Resend {
        idempotent: true,
        replayable: false,
    };

    #[test]
    fn what_never_reached_a_backend_always_goes_on() {
        for resend in [ANY, POST, STREAMED] {
            assert_eq!(next(Reach::Unsent, false, 0, resend), Next::Elsewhere);
            assert_eq!(next(Reach::Unsent, true, 0, resend), Next::Reconnect);
            assert_eq!(next(Reach::Unsent, true, 1, resend), Next::Elsewhere);
        }
    }

    #[test]
    fn what_reached_one_goes_on_only_if_idempotent_and_replayable() {
        for reach in [
            Reach::Sent {
                response_started: false,
            },
            Reach::Sent {
                response_started: true,
            },
            Reach::TimedOut,
        ] {
            assert_eq!(next(reach, false, 0, POST), Next::Answer, "{reach:?}");
            assert_eq!(next(reach, false, 0, STREAMED), Next::Answer, "{reach:?}");
            assert_eq!(next(reach, false, 0, ANY), Next::Elsewhere, "{reach:?}");
        }
        let fresh_fail = Reach::Sent {
            response_started: false,
        };
        assert_eq!(next(fresh_fail, true, 0, ANY), Next::Reconnect);
        assert_eq!(next(fresh_fail, true, 1, ANY), Next::Elsewhere);
        assert_eq!(next(fresh_fail, true, 0, POST), Next::Answer);
        let started = Reach::Sent {
            response_started: true,
        };
        assert_eq!(next(started, true, 0, ANY), Next::Elsewhere);
        assert_eq!(next(Reach::TimedOut, true, 0, ANY), Next::Elsewhere);
    }

    #[test]
    fn refusals_follow_the_backend_s_word() {
        let goaway = Reach::Refused(Refusal::GoAway);
        let refused = Reach::Refused(Refusal::RefusedStream);
        for resend in [ANY, POST] {
            assert_eq!(next(goaway, false, 0, resend), Next::Reconnect);
            assert_eq!(next(goaway, true, 2, resend), Next::Reconnect);
            assert_eq!(next(goaway, true, 3, resend), Next::Elsewhere);
            assert_eq!(next(refused, true, 0, resend), Next::Elsewhere);
        }
        assert_eq!(next(goaway, false, 0, STREAMED), Next::Answer);
        assert!(!goaway.reached() && !Reach::Unsent.reached());
        assert!(Reach::TimedOut.reached());
    }

    #[test]
    fn a_sticky_pin_is_picked_while_in_rotation_and_not_tried() {
        let table = Arc::new(EndpointTable::new());
        for port in [1, 2, 3] {
            let e = Endpoint::new(
                format!("app-{port}"),
                ([127, 0, 0, 1], port).into(),
                1,
                &Default::default(),
            );
            e.begin_epoch(Health::Up);
            table.insert(e);
        }
        let config = shoal_config::Config::default();
        let routing = Routing::single(table.clone(), &config);
        let proxy = Proxy::new(Routing::single(table.clone(), &config));
        let target = routing.target(0).unwrap();
        let set = table.load_full();
        let pinned = set.endpoints[1].clone();
        let pick = |pin| {
            Attempts::new(&proxy, &routing, target, (None, Some(pin)))
                .pick(&"t")
                .unwrap()
        };
        for _ in 0..20 {
            assert_eq!(pick(pinned.sticky_id()).key(), pinned.key());
        }
        // A retry goes elsewhere.
        let mut attempts =
            Attempts::new(&proxy, &routing, target, (None, Some(pinned.sticky_id())));
        let first = attempts.pick(&"t").unwrap();
        let _in_flight = attempts.begin(&first);
        assert_ne!(attempts.pick(&"t").unwrap().key(), pinned.key());
        // Out of rotation (draining, down, ejected): balanced as usual.
        for health in [Health::Stopped, Health::Down, Health::Starting] {
            pinned.begin_epoch(health);
            for _ in 0..10 {
                assert_ne!(pick(pinned.sticky_id()).key(), pinned.key(), "{health:?}");
            }
        }
        // A pin that names no backend of the set: balanced (the two in
        // rotation, by turns).
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..6 {
            seen.insert(pick(12345).key());
        }
        assert_eq!(seen.len(), 2);
    }
}
