//! `hyper-baseline LISTEN BACKEND...`: the smallest useful hyper reverse
//! proxy — HTTP/1.1 in, round robin over the backends, keep-alive pooled
//! connections out (hyper-util's legacy client), bodies streamed, 502 on an
//! upstream error. No health checks, request ids, forwarding headers,
//! timeouts, limits, retries or metrics: what hyper itself costs per
//! request, for bench/run to compare shoal with.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use http_body_util::{combinators::BoxBody, BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, hyper::Error>;

struct Proxy {
    client: Client<HttpConnector, Incoming>,
    backends: Vec<String>,
    next: AtomicUsize,
}

impl Proxy {
    async fn handle(&self, mut req: Request<Incoming>) -> Response<Body> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.backends.len();
        let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
        let uri: Uri = match format!("http://{}{pq}", self.backends[i]).parse() {
            Ok(u) => u,
            Err(_) => return status(StatusCode::BAD_REQUEST),
        };
        *req.uri_mut() = uri;
        match self.client.request(req).await {
            Ok(resp) => resp.map(|b| b.boxed()),
            Err(_) => status(StatusCode::BAD_GATEWAY),
        }
    }
}

fn status(s: StatusCode) -> Response<Body> {
    let mut r = Response::new(Empty::new().map_err(|never| match never {}).boxed());
    *r.status_mut() = s;
    r
}

fn main() {
    let mut args = std::env::args().skip(1);
    let listen: SocketAddr = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: hyper-baseline LISTEN BACKEND...");
    let backends: Vec<String> = args.collect();
    assert!(
        !backends.is_empty(),
        "usage: hyper-baseline LISTEN BACKEND..."
    );
    // One worker thread, as shoal (`workers: 1`), nginx and HAProxy are run.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(256)
            .build(connector);
        let proxy = Arc::new(Proxy {
            client,
            backends,
            next: AtomicUsize::new(0),
        });
        let listener = TcpListener::bind(listen).await.expect("bind");
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req| {
                    let proxy = proxy.clone();
                    async move { Ok::<_, std::convert::Infallible>(proxy.handle(req).await) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
}
