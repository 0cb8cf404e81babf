//! A small client for the admin API, used by `status`, `scale` and `reload`.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{ConfigSource, LoadError};

/// Why a client verb (`status`, `scale`, `reload`) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--admin {url}: expected http://HOST:PORT with an IP address")]
    AdminUrl { url: String },
    /// The config that names the admin address cannot be loaded.
    #[error(transparent)]
    Config(#[from] LoadError),
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// Nothing answers at the admin address; `reason` is what the
    /// connection said.
    #[error("no shoal answers at {addr} ({reason}); is it running? (admin address from -c FILE's admin.listen, or --admin URL)")]
    Unreachable { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Request(#[source] http::Error),
    /// The connection failed while the answer was read.
    #[error("{0}")]
    Read(#[source] hyper::Error),
    /// The admin API refused, saying why (its `error` field).
    #[error("{message}")]
    Refused { status: StatusCode, message: String },
    /// The admin API answered an error without a JSON `error` field.
    #[error("admin API answered {status}: {body}")]
    Unexpected { status: StatusCode, body: String },
    #[error("bad JSON from the admin API: {0}")]
    BadJson(#[source] serde_json::Error),
    #[error("lost the connection to shoal: {0}")]
    Lost(#[source] hyper::Error),
    /// The operation ran and failed; the message is the server's.
    #[error("{0}")]
    Failed(String),
    #[error("the admin API closed the stream before the operation finished")]
    Unfinished,
}

/// Where the admin API is: `--admin URL`, else the config's `admin.listen`,
/// else the default `127.0.0.1:9090`.
pub fn admin_address(admin: Option<&str>, src: &ConfigSource) -> Result<SocketAddr, ClientError> {
    if let Some(url) = admin {
        let rest = url
            .strip_prefix("http://")
            .unwrap_or(url)
            .trim_end_matches('/');
        return rest.parse().map_err(|_| ClientError::AdminUrl {
            url: url.to_string(),
        });
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

/// The admin token the CLI sends: the config's (`admin.token` or
/// `token_file`), else `SHOAL_ADMIN_TOKEN`.
pub fn admin_token(src: &ConfigSource) -> Option<String> {
    let from_config = (src.demo || src.file.exists())
        .then(|| super::load_settings(src).ok())
        .flatten()
        .and_then(|c| crate::admin::auth::read_token(&c.admin).ok().flatten());
    from_config.map(|t| t.to_string()).or_else(|| {
        std::env::var("SHOAL_ADMIN_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty())
    })
}

pub struct Admin {
    addr: SocketAddr,
    token: Option<String>,
}

impl Admin {
    pub fn new(addr: SocketAddr) -> Admin {
        Admin { addr, token: None }
    }

    /// Sent as `Authorization: Bearer TOKEN`.
    pub fn with_token(mut self, token: Option<String>) -> Admin {
        self.token = token;
        self
    }

    pub async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<http::Response<Incoming>, ClientError> {
        let unreachable = |e: &dyn std::fmt::Display| ClientError::Unreachable {
            addr: self.addr,
            reason: e.to_string(),
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
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, self.addr.to_string())
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = &self.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {}", t.trim()));
        }
        let req = req
            .body(Full::new(Bytes::from(bytes)))
            .map_err(ClientError::Request)?;
        sender.send_request(req).await.map_err(|e| unreachable(&e))
    }

    /// GET a JSON document and read it as a `T`.
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<T, ClientError> {
        let resp = self.send(Method::GET, path, None).await?;
        let status = resp.status();
        let body = resp
            .into_body()
            .collect()
            .await
            .map_err(ClientError::Read)?
            .to_bytes();
        if status != StatusCode::OK {
            return Err(refusal(status, &body));
        }
        serde_json::from_slice(&body).map_err(ClientError::BadJson)
    }
}

/// A non-200 answer: its JSON `error`, or the status and the body.
pub fn refusal(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_owned))
    {
        Some(message) => ClientError::Refused { status, message },
        None => ClientError::Unexpected {
            status,
            body: String::from_utf8_lossy(body).into_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_says_the_apis_error_or_what_came() {
        let e = refusal(
            StatusCode::CONFLICT,
            br#"{"error": "another operation is running: scale to 3"}"#,
        );
        assert!(matches!(
            e,
            ClientError::Refused {
                status: StatusCode::CONFLICT,
                ..
            }
        ));
        assert_eq!(e.to_string(), "another operation is running: scale to 3");
        let e = refusal(StatusCode::BAD_GATEWAY, b"upstream down");
        assert_eq!(
            e.to_string(),
            "admin API answered 502 Bad Gateway: upstream down"
        );
    }

    #[test]
    fn a_bad_admin_url_is_named() {
        let src = ConfigSource {
            file: "does-not-matter.yaml".into(),
            demo: false,
        };
        let e = admin_address(Some("http://localhost:9090"), &src).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--admin http://localhost:9090: expected http://HOST:PORT with an IP address"
        );
        assert_eq!(
            admin_address(Some("http://127.0.0.1:9191/"), &src).unwrap(),
            "127.0.0.1:9191".parse::<SocketAddr>().unwrap()
        );
    }
}
