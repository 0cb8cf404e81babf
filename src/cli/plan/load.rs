//! The load: `concurrency` clients, each on its own keep-alive HTTP/1.1
//! connection (hyper), each sending the next request as soon as the last
//! one was answered (a closed loop), for a bounded time and a bounded
//! count. What one step measured is a [`StepResult`].

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{header, Request};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request waits at most this long for its answer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the load goes.
#[derive(Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Host`: the address as the user wrote it.
    pub host: String,
    /// Path and query, e.g. `/cpu?ms=5`.
    pub path: String,
}

/// What one step of the load measured.
#[derive(Debug, Clone)]
pub struct StepResult {
    pub concurrency: usize,
    /// Requests sent (answered or not).
    pub requests: u64,
    /// Of them: answered 5xx or 429, or not answered.
    pub errors: u64,
    /// The first error, in words.
    pub first_error: Option<String>,
    /// From the first request sent to the last answer received.
    pub elapsed: Duration,
    /// Response times of the answered requests, sorted.
    pub latencies: Vec<Duration>,
}

impl StepResult {
    /// Answered requests (errors not counted) per second.
    pub fn rps(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs <= 0.0 {
            return 0.0;
        }
        self.requests.saturating_sub(self.errors) as f64 / secs
    }

    /// The `q` quantile (0–1) of the response times, nearest rank.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.latencies.is_empty() {
            return None;
        }
        let rank = (q * self.latencies.len() as f64).ceil() as usize;
        Some(self.latencies[rank.clamp(1, self.latencies.len()) - 1])
    }

    /// Errors among all that was sent.
    pub fn error_ratio(&self) -> f64 {
        if self.requests == 0 {
            return 0.0;
        }
        self.errors as f64 / self.requests as f64
    }
}

/// A keep-alive connection, opened again after a failure.
struct Conn {
    target: Target,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

/// What one request got: its status, or why there was none.
pub type Outcome = Result<http::StatusCode, String>;

impl Conn {
    fn new(target: Target) -> Conn {
        Conn {
            target,
            sender: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Empty<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let addr = self.target.addr;
            let stream = tokio::time::timeout(REQUEST_TIMEOUT, TcpStream::connect(addr))
                .await
                .map_err(|_| format!("connecting to {addr}: timed out"))?
                .map_err(|e| format!("connecting to {addr}: {e}"))?;
            let _ = stream.set_nodelay(true);
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("{addr}: {e}"))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just set"))
    }

    /// One `GET`; the body is read to its end and dropped.
    async fn get(&mut self) -> Outcome {
        let req = Request::get(self.target.path.as_str())
            .header(header::HOST, self.target.host.as_str())
            .header(header::USER_AGENT, "shoal-plan")
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let sender = self.sender().await?;
        let exchange = async {
            sender.ready().await?;
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            resp.into_body().collect().await?;
            Ok::<_, hyper::Error>(status)
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok(status)) => Ok(status),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e.to_string())
            }
            Err(_) => {
                self.sender = None;
                Err(format!("no answer within {REQUEST_TIMEOUT:?}"))
            }
        }
    }
}

/// A failed answer: the server could not serve it (5xx), or refused for
/// load (429).
fn failed(status: http::StatusCode) -> bool {
    status.is_server_error() || status == http::StatusCode::TOO_MANY_REQUESTS
}

/// One request on a fresh connection: does anything answer there?
pub async fn probe(target: &Target) -> Outcome {
    Conn::new(target.clone()).get().await
}

/// Runs `concurrency` clients for `length`, or until `max_requests` were
/// sent in all.
pub async fn step(
    target: &Target,
    concurrency: usize,
    length: Duration,
    max_requests: u64,
) -> StepResult {
    let started = Instant::now();
    let until = started + length;
    let budget = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(max_requests));
    let clients: Vec<_> = (0..concurrency)
        .map(|_| {
            let target = target.clone();
            let budget = budget.clone();
            tokio::spawn(async move {
                let mut conn = Conn::new(target);
                let mut latencies = Vec::new();
                let (mut requests, mut errors) = (0u64, 0u64);
                let mut first_error = None;
                while Instant::now() < until
                    && budget
                        .fetch_update(
                            std::sync::atomic::Ordering::Relaxed,
                            std::sync::atomic::Ordering::Relaxed,
                            |b| b.checked_sub(1),
                        )
                        .is_ok()
                {
                    let sent = Instant::now();
                    match conn.get().await {
                        Ok(status) => {
                            requests += 1;
                            latencies.push(sent.elapsed());
                            if failed(status) {
                                errors += 1;
                                first_error.get_or_insert_with(|| format!("answered {status}"));
                            }
                        }
                        Err(e) => {
                            requests += 1;
                            errors += 1;
                            first_error.get_or_insert(e);
                            // Not a busy loop against a port that refuses.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    }
                }
                (requests, errors, first_error, latencies)
            })
        })
        .collect();
    let mut out = StepResult {
        concurrency,
        requests: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for c in clients {
        if let Ok((requests, errors, first_error, latencies)) = c.await {
            out.requests += requests;
            out.errors += errors;
            if out.first_error.is_none() {
                out.first_error = first_error;
            }
            out.latencies.extend(latencies);
        }
    }
    out.elapsed = started.elapsed();
    out.latencies.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(ms: &[u64], errors: u64, secs: u64) -> StepResult {
        StepResult {
            concurrency: 1,
            requests: ms.len() as u64,
            errors,
            first_error: None,
            elapsed: Duration::from_secs(secs),
            latencies: ms.iter().map(|m| Duration::from_millis(*m)).collect(),
        }
    }

    #[test]
    fn rates_and_quantiles() {
        let r = result(&(1..=100).collect::<Vec<_>>(), 10, 2);
        assert_eq!(r.rps(), 45.0);
        assert_eq!(r.quantile(0.95), Some(Duration::from_millis(95)));
        assert_eq!(r.quantile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(r.error_ratio(), 0.1);
        let empty = result(&[], 0, 0);
        assert_eq!(empty.rps(), 0.0);
        assert_eq!(empty.quantile(0.95), None);
        assert_eq!(empty.error_ratio(), 0.0);
    }
}
