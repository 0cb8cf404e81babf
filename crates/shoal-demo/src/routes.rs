//! The routes, and the per-process state they share.
//!
//! | route                         | answer                                              |
//! |-------------------------------|-----------------------------------------------------|
//! | `GET /`                       | who answered: instance, pid, port, path, requests,  |
//! |                               | and the request's HTTP version and host             |
//! | `GET /health`                 | `{"status":"ok",..}` with the current health status |
//! | `GET /slow?ms=N`              | the same after sleeping N ms (at most 600000)       |
//! | `GET /cpu?ms=N`               | after burning N ms of CPU time (at most 10000)      |
//! | `GET /cpu/stats`              | the burns so far: count, CPU and wall time (ms)     |
//! |                               | and the latest 1000 burns' wall times               |
//! | `GET /status/N`               | status N (200-599)                                  |
//! | `POST /echo`                  | the request body, streamed back as it arrives       |
//! | `POST /grpc/echo`             | gRPC-shaped echo ending in trailers, see `grpc.rs`  |
//! | `GET /ws`                     | WebSocket echo                                      |
//! | `GET /session`                | visit counter in the `demo_visits` cookie           |
//! | `GET /download?bytes=N`       | N bytes of a fixed pattern, streamed                |
//! | `POST /control/...`           | knobs, see `control.rs`                             |
//!
//! `GET` routes also answer `HEAD`. A known path with the wrong method gets 405 with
//! `Allow`; anything else 404. Every response carries `x-demo-instance`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use http::{header, HeaderName, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use serde_json::json;

use crate::body::{self, Body};
use crate::control::{self, Knobs};
use crate::options::{parse_status, DemoOptions};
use crate::websocket::{self, Sessions};
use crate::{access_log, query, session};

/// Longest sleep `/slow` accepts; larger values are capped to it.
const MAX_SLOW_MS: u64 = 600_000;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
static X_DEMO_INSTANCE: HeaderName = HeaderName::from_static("x-demo-instance");

/// Everything one serving process shares between requests.
pub(crate) struct App {
    pub(crate) instance: String,
    instance_header: Option<HeaderValue>,
    pid: u32,
    port: u16,
    requests: AtomicU64,
    access_log: bool,
    pub(crate) knobs: Knobs,
    pub(crate) sessions: Sessions,
    cpu: crate::cpu::Cpu,
}

impl App {
    pub(crate) fn new(opts: DemoOptions, port: u16) -> Self {
        Self {
            instance_header: HeaderValue::from_str(&opts.instance_id).ok(),
            instance: opts.instance_id,
            pid: std::process::id(),
            port,
            requests: AtomicU64::new(0),
            access_log: opts.access_log,
            knobs: Knobs::new(opts.health_status),
            sessions: Sessions::new(),
            cpu: crate::cpu::Cpu::new(opts.cpu_workers),
        }
    }

    /// Answers one request and writes its access line.
    pub(crate) async fn handle(self: &Arc<Self>, req: Request<Incoming>) -> Response<Body> {
        let requests = self.requests.fetch_add(1, Ordering::Relaxed) + 1;
        let method = req.method().clone();
        let path = req.uri().path().to_owned();
        let request_id = req.headers().get(&X_REQUEST_ID).cloned();
        // shoal probes every instance every few seconds; logging each probe
        // would bury the requests people want to watch.
        let probe = req
            .headers()
            .get(http::header::USER_AGENT)
            .is_some_and(|ua| ua.as_bytes().starts_with(b"shoal-health-check"));

        let mut response = self.route(req, &method, &path, requests).await;

        if let Some(instance) = &self.instance_header {
            response
                .headers_mut()
                .insert(X_DEMO_INSTANCE.clone(), instance.clone());
        }
        if self.access_log && !probe {
            access_log::line(&access_log::format(
                &self.instance,
                &method,
                &path,
                response.status().as_u16(),
                request_id.as_ref(),
            ));
        }
        response
    }

    async fn route(
        self: &Arc<Self>,
        req: Request<Incoming>,
        method: &Method,
        path: &str,
        requests: u64,
    ) -> Response<Body> {
        let is_get = *method == Method::GET || *method == Method::HEAD;
        let query = req.uri().query();
        if let Some(status) = self.knobs.fail() {
            if path != "/health" && !path.starts_with("/control/") {
                return self.status(&status.to_string());
            }
        }
        match path {
            "/" if is_get => body::json(
                StatusCode::OK,
                &json!({
                    "instance": self.instance,
                    "pid": self.pid,
                    "port": self.port,
                    "path": path,
                    "requests": requests,
                    "version": format!("{:?}", req.version()),
                    // HTTP/1.1's `Host`, or HTTP/2's `:authority`.
                    "host": req
                        .headers()
                        .get(header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .or_else(|| req.uri().authority().map(|a| a.as_str())),
                }),
            ),
            "/health" if is_get => self.health(),
            "/headers" if is_get => headers(req.headers()),
            "/slow" if is_get => self.slow(query).await,
            "/cpu" if is_get => match query::param(query, "ms").and_then(|v| v.parse::<u64>().ok())
            {
                Some(ms) => self.cpu.handle(&self.instance, ms).await,
                None => self.bad_request("ms must be a whole number of milliseconds"),
            },
            "/cpu/stats" if is_get => self.cpu.stats(&self.instance),
            "/session" if is_get => session::visit(self, req.headers()),
            "/download" if is_get => self.download(query),
            "/ws" if *method == Method::GET => websocket::upgrade(self, req),
            "/echo" if *method == Method::POST => {
                // `?delay_ms=N` holds the answer back, so a test can have
                // requests in flight at a chosen moment.
                if let Some(ms) =
                    query::param(query, "delay_ms").and_then(|v| v.parse::<u64>().ok())
                {
                    tokio::time::sleep(Duration::from_millis(ms.min(MAX_SLOW_MS))).await;
                }
                echo(req)
            }
            "/grpc/echo" if *method == Method::POST => {
                crate::grpc::echo(req).unwrap_or_else(|why| self.bad_request(why))
            }
            "/" | "/health" | "/headers" | "/slow" | "/cpu" | "/cpu/stats" | "/session"
            | "/download" => self.method_not_allowed("GET, HEAD"),
            "/ws" => self.method_not_allowed("GET"),
            "/echo" | "/grpc/echo" => self.method_not_allowed("POST"),
            _ => {
                if let Some(code) = path.strip_prefix("/status/") {
                    if !code.contains('/') {
                        return if is_get {
                            self.status(code)
                        } else {
                            self.method_not_allowed("GET, HEAD")
                        };
                    }
                } else if let Some(what) = path.strip_prefix("/control/") {
                    if let Some(response) = control::handle(self, method, what, query).await {
                        return response;
                    }
                }
                self.not_found(path)
            }
        }
    }

    fn health(&self) -> Response<Body> {
        let code = self.knobs.health();
        let status = StatusCode::from_u16(code).unwrap_or(StatusCode::OK);
        let word = if status.is_success() {
            "ok"
        } else {
            "unhealthy"
        };
        body::json(
            status,
            &json!({"status": word, "instance": self.instance, "code": code}),
        )
    }

    async fn slow(&self, query: Option<&str>) -> Response<Body> {
        let Some(ms) = query::param(query, "ms").and_then(|v| v.parse::<u64>().ok()) else {
            return self.bad_request("ms must be a whole number of milliseconds");
        };
        let ms = ms.min(MAX_SLOW_MS);
        tokio::time::sleep(Duration::from_millis(ms)).await;
        body::json(
            StatusCode::OK,
            &json!({"instance": self.instance, "slept_ms": ms}),
        )
    }

    fn status(&self, code: &str) -> Response<Body> {
        let Some(status) = parse_status(code).and_then(|c| StatusCode::from_u16(c).ok()) else {
            return self.bad_request("the status must be a number in 200-599");
        };
        body::json(
            status,
            &json!({"instance": self.instance, "status": status.as_u16()}),
        )
    }

    fn download(&self, query: Option<&str>) -> Response<Body> {
        let Some(len) = query::param(query, "bytes").and_then(|v| v.parse::<u64>().ok()) else {
            return self.bad_request("bytes must be a whole number");
        };
        let mut response = Response::new(body::Download::new(len).boxed_unsync());
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/octet-stream"),
        );
        response
    }

    pub(crate) fn bad_request(&self, message: &str) -> Response<Body> {
        body::json(
            StatusCode::BAD_REQUEST,
            &json!({"instance": self.instance, "error": message}),
        )
    }

    pub(crate) fn method_not_allowed(&self, allow: &'static str) -> Response<Body> {
        let mut response = body::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"instance": self.instance, "error": "method not allowed"}),
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static(allow));
        response
    }

    fn not_found(&self, path: &str) -> Response<Body> {
        body::json(
            StatusCode::NOT_FOUND,
            &json!({"instance": self.instance, "error": "not found", "path": path}),
        )
    }
}

/// `POST /echo`: the request body becomes the response body frame by frame, so memory
/// stays bounded whatever the size; hyper's backpressure paces the client to the
/// reader. A known request length becomes the response's Content-Length.
fn echo(req: Request<Incoming>) -> Response<Body> {
    let content_type = req.headers().get(header::CONTENT_TYPE).cloned();
    let mut response = Response::new(req.into_body().map_err(Into::into).boxed_unsync());
    if let Some(content_type) = content_type {
        response
            .headers_mut()
            .insert(header::CONTENT_TYPE, content_type);
    }
    response
}

/// The request headers as the app received them (lowercase names; repeated
/// headers joined with ", "), so a proxy's rewriting can be checked.
fn headers(headers: &http::HeaderMap) -> Response<Body> {
    let mut map = serde_json::Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(", ");
        map.insert(name.as_str().to_owned(), serde_json::Value::String(joined));
    }
    body::json(StatusCode::OK, &serde_json::Value::Object(map))
}
