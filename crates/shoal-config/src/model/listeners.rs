//! `listeners:` — several public listeners, each with its own address,
//! TLS, redirect to HTTPS and PROXY protocol. The top-level `listen:` +
//! `tls:` stay as the one-listener shorthand; [`Config::public_listeners`]
//! gives the list either way.

use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use super::{Config, TlsConfig};

impl Config {
    /// Every list of routes with its key path: the top-level `routes`,
    /// then each listener's own, with the listener's name.
    pub fn route_lists(&self) -> Vec<(String, Option<String>, &[super::RouteConfig])> {
        let mut out = vec![("routes".to_string(), None, self.routes.as_slice())];
        for (i, l) in self.listeners.iter().enumerate() {
            if !l.routes.is_empty() {
                let name = l.name.clone().unwrap_or_else(|| l.listen.to_string());
                out.push((
                    format!("listeners[{i}].routes"),
                    Some(name),
                    l.routes.as_slice(),
                ));
            }
        }
        out
    }
}

/// One item of `listeners:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerConfig {
    /// Used in logs, metrics and the status API; default: the address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Address this listener accepts on.
    #[serde(deserialize_with = "crate::fields::socket_addr")]
    pub listen: SocketAddr,
    /// TLS termination on this listener; `None` serves plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// Answer every request with a 301 to the same URL on the (first) TLS
    /// listener instead of proxying it.
    #[serde(default)]
    pub redirect_https: bool,
    /// Whether connections start with a PROXY protocol header (HAProxy's
    /// `send-proxy` / `send-proxy-v2`) that carries the client's address.
    #[serde(default)]
    pub proxy_protocol: ProxyProtocol,
    /// This listener's own routes, in place of the top-level `routes`
    /// (as an nginx `server` block has its own `location`s).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<super::RouteConfig>,
}

/// `listeners[].proxy_protocol`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ProxyProtocol {
    /// No header: the TCP peer is the client.
    #[default]
    Off,
    /// The text header (`PROXY TCP4 … \r\n`), HAProxy's `send-proxy`.
    V1,
    /// The binary header, HAProxy's `send-proxy-v2`.
    V2,
}

impl ProxyProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            ProxyProtocol::Off => "off",
            ProxyProtocol::V1 => "v1",
            ProxyProtocol::V2 => "v2",
        }
    }
}

/// A public listener as shoal runs it, from `listeners[N]` or from the
/// top-level shorthand.
#[derive(Debug, Clone, PartialEq)]
pub struct PublicListener {
    /// `name`, or the address as written.
    pub name: String,
    pub listen: SocketAddr,
    pub tls: Option<TlsConfig>,
    pub redirect_https: bool,
    pub proxy_protocol: ProxyProtocol,
    /// The key path of its address (`listen`, `listeners[1].listen`).
    pub listen_at: String,
    /// The key path of its `tls` section (`tls`, `listeners[1].tls`).
    pub tls_at: String,
}

impl Config {
    /// Every public listener: `listeners:`, or the one of `listen:` and
    /// `tls:` when `listeners:` is empty.
    pub fn public_listeners(&self) -> Vec<PublicListener> {
        if self.listeners.is_empty() {
            return vec![PublicListener {
                name: self.listen.to_string(),
                listen: self.listen,
                tls: self.tls.clone(),
                redirect_https: false,
                proxy_protocol: ProxyProtocol::Off,
                listen_at: "listen".into(),
                tls_at: "tls".into(),
            }];
        }
        self.listeners
            .iter()
            .enumerate()
            .map(|(i, l)| PublicListener {
                name: l.name.clone().unwrap_or_else(|| l.listen.to_string()),
                listen: l.listen,
                tls: l.tls.clone(),
                redirect_https: l.redirect_https,
                proxy_protocol: l.proxy_protocol,
                listen_at: format!("listeners[{i}].listen"),
                tls_at: format!("listeners[{i}].tls"),
            })
            .collect()
    }
}
