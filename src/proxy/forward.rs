//! One request's trip: prepare headers, pick a backend, send, retry on
//! another backend when that is safe, hand back the response.

use std::net::SocketAddr;
use std::sync::Arc;

use super::limits::RequestBody;
use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Uri;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{Either, Empty};

use super::body::{Lease, ProxyBody};
use super::error::{wants_json, ProxyError};
use super::headers::{
    ambiguous_framing, client_ip, forward, is_upgrade, strip_hop_by_hop, TrustedProxies,
};
use super::pool::UpstreamBody;
use super::request_id::{self, X_REQUEST_ID};
use super::retry_budget::RetryBudget;
use super::upgrade;
use std::time::Duration;

use crate::balance::{Balance, Endpoint, EndpointTable, RequestInfo, Tried};
use arc_swap::ArcSwap;
use shoal_config::{Algorithm, BalanceConfig, ProxyConfig};

pub struct Proxy {
    table: Arc<EndpointTable>,
    routing: ArcSwap<Routing>,
    budget: RetryBudget,
}

/// The settings a config reload may swap while requests are in flight.
pub struct Routing {
    pub trusted: TrustedProxies,
    pub retry_budget_percent: u32,
    pub retry_budget_min: u32,
    pub retry_budget_window: Duration,
    pub balancer: Box<dyn Balance>,
    pub algorithm: Algorithm,
    pub retries: u32,
    pub response_header_timeout: Duration,
    pub read_timeout: Duration,
    pub max_fails: u32,
    pub fail_timeout: Duration,
    pub fail_statuses: Vec<u16>,
    pub tunnel_idle_timeout: Duration,
}

impl Routing {
    pub fn new(balance: &BalanceConfig, proxy: &ProxyConfig) -> Routing {
        Routing {
            trusted: TrustedProxies::default(),
            retry_budget_percent: proxy.retry_budget_percent,
            retry_budget_min: proxy.retry_budget_min,
            retry_budget_window: proxy.retry_budget_window,
            balancer: crate::balance::from_config(balance),
            algorithm: balance.algorithm,
            retries: proxy.retries,
            response_header_timeout: proxy.response_header_timeout,
            read_timeout: proxy.read_timeout,
            max_fails: proxy.max_fails,
            fail_timeout: proxy.fail_timeout,
            fail_statuses: proxy.fail_statuses.clone(),
            tunnel_idle_timeout: proxy.tunnel_idle_timeout,
        }
    }

    /// The peers whose forwarding headers are believed (`trusted_proxies`).
    pub fn with_trusted(mut self, trusted: TrustedProxies) -> Routing {
        self.trusted = trusted;
        self
    }

    /// Passive health: count a failed request against `endpoint`. As nginx
    /// never marks a lone server unavailable, the last endpoint in rotation
    /// is never ejected: a struggling backend beats a 503 for everyone.
    fn failed(&self, table: &EndpointTable, endpoint: &Arc<Endpoint>, why: &ProxyError) {
        let others = table
            .snapshot()
            .endpoints
            .iter()
            .any(|e| e.key() != endpoint.key() && e.in_rotation());
        if !others {
            return;
        }
        if endpoint.record_failure(self.max_fails, self.fail_timeout) {
            tracing::warn!(
                backend = %endpoint.id, error = %why, max_fails = self.max_fails,
                fail_timeout = ?self.fail_timeout,
                "out of rotation after failed requests (passive health)"
            );
        }
    }
}

/// What is needed to send a bodyless idempotent request again after the
/// first attempt consumed it.
struct Replay {
    method: Method,
    uri: Uri,
    headers: HeaderMap,
}

impl Replay {
    fn build(&self) -> Request<UpstreamBody> {
        let mut req = Request::new(Either::Right(Empty::new()));
        *req.method_mut() = self.method.clone();
        *req.uri_mut() = self.uri.clone();
        *req.headers_mut() = self.headers.clone();
        req
    }
}

fn is_idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::PUT | Method::DELETE | Method::TRACE
    )
}

/// A request that is sent on but whose connections are not reused
/// afterwards, on either side, as http_desync_guardian's "defensive" mode
/// does for the requests it grades Ambiguous: a body on GET or HEAD has no
/// defined meaning (RFC 9110 §9.3.1, §9.3.2), so a backend may ignore it
/// and read it as the next request. (A repeated identical Content-Length,
/// the other Ambiguous framing hyper accepts, is merged into one by hyper
/// as RFC 9112 §6.3 allows; shoal never sees the repeat.) A plain GET costs
/// one check.
fn isolated(req: &Request<RequestBody>) -> bool {
    !req.body().is_end_stream() && matches!(*req.method(), Method::GET | Method::HEAD)
}

/// The request target as a backend expects it: origin-form (`/path?query`).
fn origin_form(uri: &Uri) -> Uri {
    if uri.scheme().is_none() && uri.authority().is_none() {
        return uri.clone();
    }
    let pq = uri
        .path_and_query()
        .map(|p| p.as_str())
        .filter(|p| !p.is_empty())
        .unwrap_or("/");
    pq.parse().unwrap_or_else(|_| Uri::from_static("/"))
}

impl Proxy {
    pub fn new(table: Arc<EndpointTable>, routing: Routing) -> Proxy {
        Proxy {
            table,
            routing: ArcSwap::from_pointee(routing),
            budget: RetryBudget::default(),
        }
    }

    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    pub fn set_routing(&self, routing: Routing) {
        self.routing.store(Arc::new(routing));
    }

    pub async fn handle(&self, req: Request<RequestBody>, peer: SocketAddr) -> Response<ProxyBody> {
        let isolate = isolated(&req);
        let client_h1 = req.version() < Version::HTTP_2;
        let mut resp = self.forward(req, peer, isolate).await;
        if isolate && client_h1 && resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            // Nothing after this request on the client's connection is read
            // (a proxy in front may have framed it otherwise).
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }

    async fn forward(
        &self,
        req: Request<RequestBody>,
        peer: SocketAddr,
        isolate: bool,
    ) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        // Owned: it lives across the awaits below (arc-swap's guards are
        // meant for short borrows).
        let routing = self.routing.load_full();
        self.budget.request();
        let client = client_ip(peer.ip(), &parts.headers, &routing.trusted);
        // What the balancer needs of the request (hash, ip_hash), as the
        // client sent it, reduced to a u64 before `parts` moves on.
        let key = routing.balancer.request_key(&RequestInfo {
            client,
            headers: &parts.headers,
            uri: &parts.uri,
        });
        let request_id = request_id::ensure(&mut parts.headers);
        let json = wants_json(&parts.headers);
        if let Some(why) = ambiguous_framing(&parts.headers) {
            let e = ProxyError::BadFraming(why);
            tracing::warn!(request_id = ?request_id, %peer, error = %e, "request rejected");
            return e.to_response(&request_id, json);
        }
        let upgrading = parts.version == Version::HTTP_11 && is_upgrade(&parts.headers);

        strip_hop_by_hop(&mut parts.headers, upgrading);
        // hyper met `Expect: 100-continue` on this hop (it answers 100
        // Continue when the body is first read); not passed on, as nginx
        // and Envoy do.
        if parts.headers.contains_key(header::EXPECT) {
            parts.headers.remove(header::EXPECT);
        }
        forward(
            &mut parts.headers,
            peer.ip(),
            client,
            &routing.trusted,
            "http",
        );
        if !parts.headers.contains_key(header::HOST) {
            if let Some(a) = parts.uri.authority() {
                if let Ok(v) = HeaderValue::from_str(a.as_str()) {
                    parts.headers.insert(header::HOST, v);
                }
            }
        }
        parts.uri = origin_form(&parts.uri);
        parts.version = Version::HTTP_11;

        let client_upgrade = upgrading.then(|| {
            // The client's side of the upgrade resolves once we answer 101.
            let mut stub = Request::new(());
            *stub.extensions_mut() = std::mem::take(&mut parts.extensions);
            hyper::upgrade::on(stub)
        });

        let replay =
            (is_idempotent(&parts.method) && body.is_end_stream() && !upgrading).then(|| Replay {
                method: parts.method.clone(),
                uri: parts.uri.clone(),
                headers: parts.headers.clone(),
            });
        let mut pending = Some(Request::from_parts(parts, Either::Left(body)));

        let mut tried = Tried::default();
        let mut last_error = ProxyError::NoBackend;
        // Set when the last attempt reached a backend: trying again costs
        // backends work, so it must fit the retry budget.
        let mut charge = false;
        for _attempt in 0..=routing.retries {
            if charge {
                if !self.budget.try_retry(
                    routing.retry_budget_percent,
                    routing.retry_budget_min,
                    routing.retry_budget_window,
                ) {
                    tracing::warn!(request_id = ?request_id, "retry budget exhausted; not retrying");
                    break;
                }
                charge = false;
            }
            let set = self.table.snapshot();
            let Some(i) = routing.balancer.pick(&set, &tried, key) else {
                break;
            };
            let endpoint = set.endpoints[i].clone();
            drop(set);
            tried.push(endpoint.key());
            let in_flight = endpoint.start_request();

            let Some(req) = pending
                .take()
                .or_else(|| replay.as_ref().map(Replay::build))
            else {
                break;
            };
            let mut conn = match endpoint.pool.checkout().await {
                Ok(c) => c,
                Err(source) => {
                    // Nothing was sent: the request, body and all, can go elsewhere.
                    pending = Some(req);
                    tracing::debug!(backend = %endpoint.id, error = %source, "connect failed, trying another backend");
                    last_error = ProxyError::Connect {
                        backend: endpoint.id.clone(),
                        source,
                    };
                    routing.failed(&self.table, &endpoint, &last_error);
                    continue;
                }
            };
            let mut req = req;
            loop {
                let started = std::time::Instant::now();
                let sent = tokio::time::timeout(
                    routing.response_header_timeout,
                    conn.sender.try_send_request(req),
                )
                .await;
                let Ok(sent) = sent else {
                    // Dropping the exchange closes its connection. The request
                    // may have been processed: only a replay may go elsewhere.
                    last_error = ProxyError::Timeout {
                        backend: endpoint.id.clone(),
                        after: routing.response_header_timeout,
                    };
                    routing.failed(&self.table, &endpoint, &last_error);
                    // As slow as the timeout, at least: p2c_ewma steers away.
                    endpoint.observe_latency(routing.response_header_timeout);
                    pending = replay.as_ref().map(Replay::build);
                    charge = true;
                    break;
                };
                match sent {
                    Ok(mut resp) => {
                        endpoint.observe_latency(started.elapsed());
                        if !routing.fail_statuses.is_empty()
                            && routing.fail_statuses.contains(&resp.status().as_u16())
                        {
                            let why = ProxyError::Status {
                                backend: endpoint.id.clone(),
                                status: resp.status().as_u16(),
                            };
                            routing.failed(&self.table, &endpoint, &why);
                        }
                        let id = request_id.clone();
                        resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
                        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                            if let Some(client) = client_upgrade {
                                let upstream = hyper::upgrade::on(&mut resp);
                                upgrade::splice(
                                    client,
                                    upstream,
                                    endpoint.id.clone(),
                                    in_flight,
                                    routing.tunnel_idle_timeout,
                                );
                                let (parts, _) = resp.into_parts();
                                return Response::from_parts(parts, ProxyBody::empty());
                            }
                        }
                        strip_hop_by_hop(resp.headers_mut(), false);
                        let (parts, body) = resp.into_parts();
                        let lease = Lease {
                            conn: Some(conn),
                            _in_flight: in_flight,
                            reuse: !isolate,
                        };
                        return Response::from_parts(
                            parts,
                            ProxyBody::upstream(body, lease, routing.read_timeout),
                        );
                    }
                    Err(mut e) => {
                        let unsent = e.take_message();
                        let reached_backend = unsent.is_none();
                        let source = e.into_error();
                        tracing::debug!(backend = %endpoint.id, reused = conn.reused, sent = unsent.is_none(), error = %source, "upstream request failed");
                        let again = unsent.or_else(|| replay.as_ref().map(Replay::build));
                        if conn.reused {
                            // Most likely the backend closed this idle keep-alive
                            // connection just as we used it: once, try the same
                            // backend on a new connection before moving on.
                            if let Some(r) = again {
                                match endpoint.pool.connect_new().await {
                                    Ok(fresh) => {
                                        conn = fresh;
                                        req = r;
                                        continue;
                                    }
                                    Err(source) => {
                                        pending = Some(r);
                                        last_error = ProxyError::Connect {
                                            backend: endpoint.id.clone(),
                                            source,
                                        };
                                        break;
                                    }
                                }
                            }
                        }
                        if source.is_user() {
                            // Our side failed: the client's body was
                            // malformed or cut. Not the backend's fault, and
                            // nothing to retry.
                            last_error = ProxyError::ClientBody(source);
                            pending = None;
                            break;
                        }
                        last_error = ProxyError::Upstream {
                            backend: endpoint.id.clone(),
                            source,
                        };
                        routing.failed(&self.table, &endpoint, &last_error);
                        charge = reached_backend;
                        // `again` is the unsent request or a replay; without
                        // one, a body was (partly) consumed or the method is
                        // not safe to repeat: answer with the error.
                        pending = again;
                        break;
                    }
                }
            }
            if pending.is_none() && replay.is_none() {
                break;
            }
        }
        tracing::warn!(request_id = ?request_id, error = %last_error, status = last_error.status().as_u16(), "request failed");
        last_error.to_response(&request_id, json)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absolute_targets_become_origin_form() {
        assert_eq!(origin_form(&"http://a.b/x?y=1".parse().unwrap()), "/x?y=1");
        assert_eq!(origin_form(&"http://a.b".parse().unwrap()), "/");
        assert_eq!(origin_form(&"/p".parse().unwrap()), "/p");
    }
}
