//! A small client for the admin API, used by `status`, `scale` and `reload`.

use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{header, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::{ConfigSource, LoadError};
use crate::tls::admin_client::{self, AdminTls, Trust};

/// Why a client verb (`status`, `scale`, `reload`) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("--admin {url}: expected http://HOST:PORT or https://HOST:PORT (HOST an IP address or a name that resolves)")]
    AdminUrl { url: String },
    /// What the CLI should trust over HTTPS cannot be set up.
    #[error("cannot set up HTTPS to the admin API: {0}")]
    Trust(String),
    /// The TLS handshake with the admin API failed.
    #[error("HTTPS to the admin API at {addr} failed: {reason}{}", trust_hint(*.trust))]
    Tls {
        addr: SocketAddr,
        reason: String,
        trust: Trust,
    },
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

/// `--insecure`: over HTTPS, accept any certificate from the admin API.
static INSECURE: AtomicBool = AtomicBool::new(false);

pub fn set_insecure(insecure: bool) {
    INSECURE.store(insecure, Ordering::Relaxed);
}

/// Where the admin API is, and whether it speaks HTTPS.
pub struct Target {
    pub addr: SocketAddr,
    tls: Option<AdminTls>,
}

/// `ADDR`, or `https://ADDR` over TLS.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.tls {
            Some(_) => write!(f, "https://{}", self.addr),
            None => write!(f, "{}", self.addr),
        }
    }
}

/// Where the admin API is: `--admin URL`, else the config's `admin.listen`,
/// else the default `127.0.0.1:9090`. HTTPS with `--admin https://…`, or
/// when the config has `admin.tls` (and `--admin` names no scheme).
pub fn admin_address(admin: Option<&str>, src: &ConfigSource) -> Result<Target, ClientError> {
    let has_config = src.demo || src.file.exists();
    let (addr, host, scheme, config) = match admin {
        Some(url) => {
            let bad = || ClientError::AdminUrl {
                url: url.to_string(),
            };
            let (scheme, rest) = match url.split_once("://") {
                Some((s @ ("http" | "https"), rest)) => (Some(s), rest),
                Some(_) => return Err(bad()),
                None => (None, url),
            };
            let rest = rest.trim_end_matches('/');
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port.parse().map_err(|_| bad())?;
            let addr = (host, port)
                .to_socket_addrs()
                .ok()
                .and_then(|mut a| a.next())
                .ok_or_else(bad)?;
            // The config only says whom to trust here: one that cannot be
            // loaded is no reason not to try.
            let config = has_config.then(|| super::load_settings(src).ok()).flatten();
            (addr, host.to_string(), scheme, config)
        }
        None => {
            let config = has_config.then(|| super::load_settings(src)).transpose()?;
            let listen = config
                .as_ref()
                .map(|c| c.admin.listen)
                .unwrap_or(shoal_config::AdminConfig::default().listen);
            let addr = reachable(listen);
            (addr, addr.ip().to_string(), None, config)
        }
    };
    let own = config.as_ref().and_then(|c| c.admin.tls.as_ref());
    let https = match scheme {
        Some(s) => s == "https",
        None => own.is_some(),
    };
    let tls = match https {
        false => None,
        true => {
            let ca = std::env::var_os(admin_client::CA_VAR)
                .filter(|v| !v.is_empty())
                .map(std::path::PathBuf::from);
            let insecure = INSECURE.load(Ordering::Relaxed);
            Some(
                admin_client::connector(&host, insecure, ca.as_deref(), own)
                    .map_err(ClientError::Trust)?,
            )
        }
    };
    Ok(Target { addr, tls })
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

fn trust_hint(trust: Trust) -> &'static str {
    match trust {
        Trust::Insecure => "",
        Trust::CaFile => " (the certificate was checked against SHOAL_ADMIN_CA's CAs)",
        Trust::Pinned => " (the certificate was checked against the config's admin.tls; set SHOAL_ADMIN_CA=FILE to trust a CA instead)",
        Trust::System => " (the certificate was checked against the system's CAs: give the config with -c FILE to trust its admin.tls certificate, or SHOAL_ADMIN_CA=FILE to trust a CA; --insecure, for testing only, trusts any)",
    }
}

/// Reads and writes of the connection, plain or TLS.
trait Io: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Io for T {}

/// Where a client on this host reaches a listener bound to `listen`: a
/// wildcard bind (`0.0.0.0`, `[::]`) through loopback of the same family.
pub fn reachable(listen: SocketAddr) -> SocketAddr {
    match listen.ip() {
        ip if ip.is_unspecified() => SocketAddr::new(
            if ip.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            },
            listen.port(),
        ),
        _ => listen,
    }
}

pub struct Admin {
    addr: SocketAddr,
    tls: Option<AdminTls>,
    token: Option<String>,
}

impl Admin {
    pub fn new(target: Target) -> Admin {
        Admin {
            addr: target.addr,
            tls: target.tls,
            token: None,
        }
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
        let io: Box<dyn Io> = match &self.tls {
            None => Box::new(stream),
            Some(tls) => {
                let handshake = tls.connector.connect(tls.name.clone(), stream);
                let stream = tokio::time::timeout(Duration::from_secs(5), handshake)
                    .await
                    .map_err(|_| unreachable(&"TLS handshake timed out"))?
                    .map_err(|e| ClientError::Tls {
                        addr: self.addr,
                        reason: tls_reason(e),
                        trust: tls.trust,
                    })?;
                Box::new(stream)
            }
        };
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
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

/// A failed handshake in words: a plain-HTTP admin listener answers a
/// TLS hello with bytes that are no TLS record.
fn tls_reason(e: std::io::Error) -> String {
    let tls = e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match tls {
        Some(rustls::Error::InvalidMessage(_)) => {
            "it does not speak TLS (is admin.tls set on that shoal? try http://)".into()
        }
        Some(rustls::Error::General(m)) => m.clone(),
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer)) => {
            "certificate signed by an unknown CA".into()
        }
        Some(other) => crate::tls::client::reason(other),
        None => e.to_string(),
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

/// The runtime of a command that makes load and measures it (`shoal
/// verify`, `shoal plan`): two workers, so the requests it sends do not
/// wait behind its own bookkeeping. `None`, said on stderr, when it cannot
/// start.
pub fn load_runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
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
        for bad in ["http://127.0.0.1", "ftp://127.0.0.1:9090", "http://[::1]:x"] {
            let e = admin_address(Some(bad), &src).err().expect(bad);
            assert_eq!(
                e.to_string(),
                format!("--admin {bad}: expected http://HOST:PORT or https://HOST:PORT (HOST an IP address or a name that resolves)")
            );
        }
        let t = admin_address(Some("http://127.0.0.1:9191/"), &src).unwrap();
        assert_eq!(t.addr, "127.0.0.1:9191".parse::<SocketAddr>().unwrap());
        assert!(t.tls.is_none());
        let t = admin_address(Some("localhost:9191"), &src).unwrap();
        assert_eq!(t.addr.port(), 9191);
        assert!(t.tls.is_none());
    }

    #[test]
    fn https_is_asked_by_the_url() {
        let src = ConfigSource {
            file: "does-not-matter.yaml".into(),
            demo: false,
        };
        set_insecure(true);
        let t = admin_address(Some("https://127.0.0.1:9443"), &src).unwrap();
        assert_eq!(t.tls.map(|t| t.trust), Some(Trust::Insecure));
    }
}
