//! The client `shoal verify` sends its requests with: one keep-alive
//! HTTP/1.1 connection per replica, a cookie jar of one cookie (the sticky
//! one), and a time-out on every request.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

const TIMEOUT: Duration = Duration::from_secs(10);

pub struct Probe {
    addr: SocketAddr,
    host: String,
    sender: Option<SendRequest<Empty<Bytes>>>,
}

/// What one request got.
pub struct Got {
    pub status: StatusCode,
    /// `NAME=VALUE` of each `Set-Cookie`.
    pub cookies: Vec<String>,
}

impl Probe {
    pub fn new(addr: SocketAddr, host: String) -> Probe {
        Probe {
            addr,
            host,
            sender: None,
        }
    }

    async fn sender(&mut self) -> Result<&mut SendRequest<Empty<Bytes>>, String> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::time::timeout(TIMEOUT, TcpStream::connect(self.addr))
                .await
                .map_err(|_| format!("connecting to {}: timed out", self.addr))?
                .map_err(|e| format!("connecting to {}: {e}", self.addr))?;
            let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("{}: {e}", self.addr))?;
            tokio::spawn(conn);
            self.sender = Some(sender);
        }
        Ok(self.sender.as_mut().expect("just set"))
    }

    /// `GET path`, with `cookie` if given; the body is read and dropped.
    pub async fn get(&mut self, path: &str, cookie: Option<&str>) -> Result<Got, String> {
        let mut req = Request::get(path).header(header::HOST, self.host.as_str());
        if let Some(c) = cookie {
            req = req.header(header::COOKIE, c);
        }
        let req = req.body(Empty::new()).map_err(|e| e.to_string())?;
        let addr = self.addr;
        let sender = self.sender().await?;
        sender.ready().await.map_err(|e| format!("{addr}: {e}"))?;
        let exchange = async {
            let resp = sender.send_request(req).await?;
            let (parts, body) = resp.into_parts();
            body.collect().await?;
            Ok::<_, hyper::Error>(parts)
        };
        let parts = match tokio::time::timeout(TIMEOUT, exchange).await {
            Ok(Ok(p)) => p,
            Ok(Err(e)) => {
                self.sender = None;
                return Err(format!("{addr}: {e}"));
            }
            Err(_) => {
                self.sender = None;
                return Err(format!("{addr}: no answer within {TIMEOUT:?}"));
            }
        };
        let cookies = parts
            .headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(|v| v.split(';').next())
            .map(|v| v.trim().to_string())
            .collect();
        Ok(Got {
            status: parts.status,
            cookies,
        })
    }
}
