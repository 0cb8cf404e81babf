//! `upstreams[].tls`, `app.tls` — TLS from shoal to a backend: which CA
//! vouches for it, the name its certificate must carry, a client
//! certificate for mTLS.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The TLS block of an `https://` upstream or of `app` (`app.tls: true` is
/// this block with every default). Paths are PEM files, relative ones taken
/// from shoal's working directory.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UpstreamTlsConfig {
    /// The CA certificates (PEM) a backend's certificate must chain to;
    /// `None`: the system's trust store.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// The name sent as SNI and looked for in the certificate; `None`: the
    /// URL's host (`localhost` for `app`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server_name: Option<String>,
    /// A client certificate (chain, leaf first) for backends that ask for
    /// one (mTLS)...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// ... and its private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Check the backend's certificate (chain, name, dates). `false` is
    /// allowed, with a warning at every start and `shoal check`.
    pub verify: bool,
}

impl Default for UpstreamTlsConfig {
    fn default() -> Self {
        UpstreamTlsConfig {
            ca: None,
            server_name: None,
            cert: None,
            key: None,
            verify: true,
        }
    }
}

/// A backend's TLS settings with the key path its messages name
/// (`upstreams[2].tls`, `app.tls`) and the name to check by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackendTls<'a> {
    pub settings: &'a UpstreamTlsConfig,
    /// `upstreams[2].tls` or `app.tls`.
    pub at: String,
    /// The URL's host, or `localhost` for `app`.
    pub default_name: String,
}

impl BackendTls<'_> {
    /// `server_name`, or the default.
    pub fn server_name(&self) -> &str {
        self.settings
            .server_name
            .as_deref()
            .unwrap_or(&self.default_name)
    }

    /// The client certificate pair, when both are set.
    pub fn client_cert(&self) -> Option<(&Path, &Path)> {
        match (&self.settings.cert, &self.settings.key) {
            (Some(c), Some(k)) => Some((c, k)),
            _ => None,
        }
    }
}

/// What `app.tls` settings mean when written `true`.
static DEFAULT_TLS: std::sync::OnceLock<UpstreamTlsConfig> = std::sync::OnceLock::new();

impl super::UpstreamConfig {
    /// Whether `url` is `https://`.
    pub fn is_https(&self) -> bool {
        self.url
            .trim_start()
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
    }

    /// The TLS settings of an `https://` upstream (its `tls` block, or the
    /// defaults); `None` for `http://`. `at` is its key path
    /// (`upstreams[0]`, `upstreams.api[1]`).
    pub fn backend_tls(&self, at: &str) -> Option<BackendTls<'_>> {
        if !self.is_https() {
            return None;
        }
        let settings = self
            .tls
            .as_ref()
            .unwrap_or_else(|| DEFAULT_TLS.get_or_init(UpstreamTlsConfig::default));
        let default_name = self.host_port().map(|(h, _)| h).unwrap_or_default();
        Some(BackendTls {
            settings,
            at: format!("{at}.tls"),
            default_name,
        })
    }
}

impl super::AppConfig {
    /// The TLS settings the instances are reached with, if `app.tls` is on;
    /// `at` is the app's key path (`app`, `apps.api`).
    pub fn backend_tls(&self, at: &str) -> Option<BackendTls<'_>> {
        self.tls.as_ref().map(|settings| BackendTls {
            settings,
            at: format!("{at}.tls"),
            default_name: "localhost".into(),
        })
    }
}

impl super::Config {
    /// Every backend reached over TLS: the `https://` upstreams, then the
    /// apps.
    pub fn backend_tls(&self) -> Vec<BackendTls<'_>> {
        let mut out: Vec<BackendTls<'_>> = self
            .upstreams
            .keyed()
            .into_iter()
            .filter_map(|(at, u)| u.backend_tls(&at))
            .collect();
        for (name, app) in self.all_apps() {
            let at = match self.app {
                Some(_) => "app".to_string(),
                None => format!("apps.{name}"),
            };
            out.extend(app.backend_tls(&at));
        }
        out
    }
}
