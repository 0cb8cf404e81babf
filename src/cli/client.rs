//! A small client for the admin API, used by `status`, `scale` and `reload`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::ConfigSource;

/// Where the admin API is: `--admin URL`, else the config's `admin.listen`,
/// else the default `127.0.0.1:9090`.
pub fn admin_address(admin: Option<&str>, src: &ConfigSource) -> Result<SocketAddr, String> {
    if let Some(url) = admin {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or(url)
            .trim_end_matches('/');
        return rest
            .parse()
            .map_err(|_| format!("--admin {url}: expected http://HOST:PORT with an IP address"));
    }
    let addr = if src.demo || src.file.exists() {
        super::load_settings(src)?.admin.listen
    } else {
        shoal_config::AdminConfig::default().listen
    };
    // A wildcard bind is reached through loopback.
    Ok(match addr.ip() {
        ip if ip.is_unspecified() => SocketAddr::new(
            if ip.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            addr.port(),
        ),
        _ => addr,
    })
}

pub struct Admin {
    addr: SocketAddr,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Admin {
        Admin { addr }
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<http::Response<Incoming>, String> {
        let unreachable = |e: &dyn std::fmt::Display| {
            format!(
                "no shoal answers at {} ({e}); is it running? (admin address from -c FILE's admin.listen, or --admin URL)",
                self.addr
            )
        };
        let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(self.addr))
            .await
            .map_err(|_| unreachable(&"timed out"))?
            .map_err(|e| unreachable(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| unreachable(&e))?;
        tokio::spawn(conn);
        let bytes = body.map(|b| b.to_string()).unwrap_or_default();
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(bytes)))
            .map_err(|e| e.to_string())?;
        sender.send_request(req).await.map_err(|e| unreachable(&e))
    }

    pub async fn get_json(&self, path: &str) -> Result<serde_json::Value, String> {
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(error_text(status, &body));
        }
        serde_json::from_slice(&body).map_err(|e| format!("bad JSON from the admin API: {e}"))
    }
}

pub fn error_text(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| {
            format!(
                "admin API answered {status}: {}",
                String::from_utf8_lossy(body)
            )
        })
}
