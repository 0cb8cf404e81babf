//! One request's trip: prepare headers, pick a backend, send, retry on
//! another backend when that is safe, hand back the response.

use std::net::SocketAddr;
use std::sync::Arc;

use http::header::{self, HeaderMap, HeaderValue};
use http::uri::Uri;
use http::{Method, Request, Response, StatusCode, Version};
use http_body::Body as _;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;

use super::body::{Lease, ProxyBody};
use super::error::{wants_json, ProxyError};
use super::headers::{add_forwarded, is_upgrade, strip_hop_by_hop};
use super::pool::UpstreamBody;
use super::request_id::{self, X_REQUEST_ID};
use super::upgrade;
use crate::balance::{Balance, EndpointTable, Tried};
use arc_swap::ArcSwap;
use shoal_config::Algorithm;

pub struct Proxy {
    table: Arc<EndpointTable>,
    routing: ArcSwap<Routing>,
}

/// The settings a config reload may swap while requests are in flight.
pub struct Routing {
    pub balancer: Box<dyn Balance>,
    pub algorithm: Algorithm,
    pub retries: u32,
}

impl Routing {
    pub fn new(algorithm: Algorithm, retries: u32) -> Routing {
        Routing {
            balancer: crate::balance::for_algorithm(algorithm),
            algorithm,
            retries,
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
        }
    }

    pub fn routing(&self) -> Arc<Routing> {
        self.routing.load_full()
    }

    pub fn set_routing(&self, routing: Routing) {
        self.routing.store(Arc::new(routing));
    }

    pub async fn handle(&self, req: Request<Incoming>, peer: SocketAddr) -> Response<ProxyBody> {
        let (mut parts, body) = req.into_parts();
        let request_id = request_id::ensure(&mut parts.headers);
        let json = wants_json(&parts.headers);
        let upgrading = parts.version == Version::HTTP_11 && is_upgrade(&parts.headers);

        strip_hop_by_hop(&mut parts.headers, upgrading);
        add_forwarded(&mut parts.headers, peer.ip(), "http");
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

        // Owned: it lives across the awaits below (arc-swap's guards are
        // meant for short borrows).
        let routing = self.routing.load_full();
        let mut tried = Tried::default();
        let mut last_error = ProxyError::NoBackend;
        for _attempt in 0..=routing.retries {
            let set = self.table.snapshot();
            let Some(i) = routing.balancer.pick(&set, &tried) else {
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
                    continue;
                }
            };
            let mut req = req;
            loop {
                match conn.sender.try_send_request(req).await {
                    Ok(mut resp) => {
                        let id = request_id.clone();
                        resp.headers_mut().insert(X_REQUEST_ID.clone(), id);
                        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                            if let Some(client) = client_upgrade {
                                let upstream = hyper::upgrade::on(&mut resp);
                                upgrade::splice(client, upstream, endpoint.id.clone(), in_flight);
                                let (parts, _) = resp.into_parts();
                                return Response::from_parts(parts, ProxyBody::empty());
                            }
                        }
                        strip_hop_by_hop(resp.headers_mut(), false);
                        let (parts, body) = resp.into_parts();
                        let lease = Lease {
                            conn: Some(conn),
                            _in_flight: in_flight,
                        };
                        return Response::from_parts(parts, ProxyBody::upstream(body, lease));
                    }
                    Err(mut e) => {
                        let unsent = e.take_message();
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
                        last_error = ProxyError::Upstream {
                            backend: endpoint.id.clone(),
                            source,
                        };
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
