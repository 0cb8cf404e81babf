//! An in-process HTTP/1.1 origin whose answers a test writes as a
//! function of the request, and which keeps every request it got (to
//! count what reached the backend, and see the conditionals shoal sent).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One request as the origin saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub target: String,
    pub headers: HeaderMap,
}

/// An answer: status, header lines, body, and a delay before the head.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Bytes,
    pub delay: Duration,
    /// Stream `body` this many times (frame by frame, as the connection
    /// takes them) instead of once: a large body the origin never holds.
    pub repeat: usize,
}

impl Answer {
    pub fn ok(headers: &[(&'static str, &str)], body: impl Into<Bytes>) -> Answer {
        Answer {
            status: 200,
            headers: headers.iter().map(|(n, v)| (*n, v.to_string())).collect(),
            body: body.into(),
            delay: Duration::ZERO,
            repeat: 1,
        }
    }

    pub fn repeated(mut self, times: usize) -> Answer {
        self.repeat = times;
        self
    }

    pub fn status(mut self, status: u16) -> Answer {
        self.status = status;
        self
    }

    pub fn after(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

type Handler = dyn Fn(&Seen, usize) -> Answer + Send + Sync;

pub struct Origin {
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Seen>>>,
    task: JoinHandle<()>,
}

impl Origin {
    /// `answer(request, n)`: `n` counts the requests for its target so
    /// far, this one included (1 for the first).
    pub async fn start(answer: impl Fn(&Seen, usize) -> Answer + Send + Sync + 'static) -> Origin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
        let answer: Arc<Handler> = Arc::new(answer);
        let all = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let (all, answer) = (all.clone(), answer.clone());
                let service = service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                    let (all, answer) = (all.clone(), answer.clone());
                    async move {
                        let target = req
                            .uri()
                            .path_and_query()
                            .map_or("/".to_string(), |p| p.to_string());
                        let s = Seen {
                            method: req.method().clone(),
                            target: target.clone(),
                            headers: req.headers().clone(),
                        };
                        let n = {
                            let mut all = all.lock().unwrap();
                            all.push(s.clone());
                            all.iter().filter(|x| x.target == target).count()
                        };
                        let a = answer(&s, n);
                        if !a.delay.is_zero() {
                            tokio::time::sleep(a.delay).await;
                        }
                        let body = if a.repeat == 1 {
                            Full::new(a.body).map_err(|e| match e {}).boxed()
                        } else {
                            let chunk = a.body;
                            let frames = (0..a.repeat)
                                .map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone())));
                            StreamBody::new(futures_util::stream::iter(frames)).boxed()
                        };
                        let mut resp = Response::new(body);
                        *resp.status_mut() = StatusCode::from_u16(a.status).unwrap();
                        for (n, v) in a.headers {
                            resp.headers_mut().append(n, v.parse().unwrap());
                        }
                        Ok::<_, Infallible>(resp)
                    }
                });
                tokio::spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Origin { addr, seen, task }
    }

    /// Requests for `target` so far.
    pub fn count(&self, target: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.target == target)
            .count()
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Origin {
    fn drop(&mut self) {
        self.task.abort();
    }
}
