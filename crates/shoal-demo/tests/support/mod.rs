//! Shared by the integration tests: a demo server on an ephemeral port and a small
//! client built on hyper's HTTP/1 connection API.
#![allow(dead_code)] // each test binary uses its own subset

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use shoal_demo::DemoOptions;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
pub type ClientBody = UnsyncBoxBody<Bytes, BoxError>;

/// Options for an in-process server: the access log is off so test output stays
/// readable (the subprocess tests check the log).
pub fn opts(instance: &str) -> DemoOptions {
    DemoOptions {
        instance_id: instance.to_owned(),
        access_log: false,
        ..DemoOptions::default()
    }
}

/// A demo server running in this process on 127.0.0.1:0.
pub struct Server {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    pub async fn start(opts: DemoOptions) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(shoal_demo::serve(listener, opts, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task,
        }
    }

    /// Starts the graceful shutdown without waiting for it.
    pub fn begin_stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Shuts down and waits (at most 10 s) for `serve` to return.
    pub async fn stop(mut self) -> std::io::Result<()> {
        self.begin_stop();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("serve did not return within 10 s")
            .expect("serve panicked")
    }

    /// Whether `serve` has returned.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Waits (at most `limit`) for `serve` to return.
    pub async fn join(self, limit: Duration) -> std::io::Result<()> {
        tokio::time::timeout(limit, self.task)
            .await
            .expect("serve did not return in time")
            .expect("serve panicked")
    }
}

/// One HTTP/1.1 keep-alive connection.
pub struct Client {
    sender: SendRequest<ClientBody>,
}

/// A fully read response.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {:?}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub fn empty() -> ClientBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

pub fn full(bytes: impl Into<Bytes>) -> ClientBody {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(async move {
            let _ = conn.await;
        });
        Self { sender }
    }

    /// Sends a request and returns the response with its body still streaming.
    pub async fn send(
        &mut self,
        req: Request<ClientBody>,
    ) -> hyper::Result<http::Response<Incoming>> {
        self.sender.ready().await?;
        self.sender.send_request(req).await
    }

    pub async fn request(
        &mut self,
        method: Method,
        path: &str,
        headers: &[(&str, &str)],
        body: ClientBody,
    ) -> Reply {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "demo");
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let response = self.send(req.body(body).unwrap()).await.unwrap();
        let (parts, body) = response.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        Reply {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Reply {
        self.request(Method::GET, path, &[], empty()).await
    }

    pub async fn post(&mut self, path: &str) -> Reply {
        self.request(Method::POST, path, &[], empty()).await
    }
}

/// GET on a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Reply {
    Client::connect(addr).await.get(path).await
}

/// POST with an empty body on a fresh connection.
pub async fn post(addr: SocketAddr, path: &str) -> Reply {
    Client::connect(addr).await.post(path).await
}

/// Waits until the server has counted more requests than this helper has made, i.e.
/// until `others` requests made elsewhere have reached it. Polls `GET /`, whose
/// `requests` field counts every request the process has served or is serving.
pub async fn wait_for_requests(addr: SocketAddr, others: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut mine = 0;
    loop {
        mine += 1;
        let seen = get(addr, "/").await.json()["requests"].as_u64().unwrap();
        if seen >= others + mine {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the other requests never arrived"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
