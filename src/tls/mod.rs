//! TLS termination on the public listener (rustls, ring provider), and
//! TLS to backends (`client.rs`).
//!
//! - `certs.rs`: PEM files → certificate chains and keys, checked to match;
//!   the set of certificates and which DNS names each serves.
//! - `resolver.rs`: the certificate for a handshake, by SNI, from an
//!   `ArcSwap`'d set: a reload swaps certificates for new handshakes only.
//! - `client.rs`: the rustls client config of an `https://` upstream or of
//!   `app.tls`, its config-load check, and certificate errors in words.
//! - `admin_client.rs`: the CLI's TLS to an admin listener with
//!   `admin.tls`, and whom it trusts.
//!
//! [`Terminator`] is what the listener asks, once per accepted connection,
//! whether to do a handshake and with which rustls config. TLS can be turned
//! on, off or changed by a config reload; that applies to connections
//! accepted after it, as `limits` do.

pub mod admin_client;
mod certs;
pub mod client;
mod resolver;

use std::sync::Arc;

use arc_swap::ArcSwapOption;
use rustls::ServerConfig;
use shoal_config::{Alpn, TlsConfig, TlsVersion};

pub use certs::{check, load_all, load_all_at, CertSet, FileProblem};
pub use resolver::SniResolver;

/// The TLS side of the public listener: off, or a rustls config whose
/// certificate resolver can be swapped.
#[derive(Default)]
pub struct Terminator {
    active: ArcSwapOption<Active>,
}

struct Active {
    server: Arc<ServerConfig>,
    resolver: Arc<SniResolver>,
    min_version: TlsVersion,
    alpn: Vec<Alpn>,
}

/// Why TLS cannot be set up as the config says.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// Certificate or key files that cannot be used, each with its key path.
    #[error("{}", join(.0))]
    Files(Vec<FileProblem>),
    /// rustls refused the settings (only for protocol versions the crypto
    /// provider lacks; ring has both).
    #[error("cannot set up TLS: {0}")]
    Setup(#[source] rustls::Error),
}

fn join(problems: &[FileProblem]) -> String {
    problems
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Certificates read for a reload, not yet in use.
pub struct Prepared(Option<CertSet>);

impl Terminator {
    /// Reads the certificates of `tls` (if any; `at` is its key path, as
    /// `tls` or `listeners[1].tls`): the start of shoal.
    pub fn new(tls: Option<&TlsConfig>, at: &str) -> Result<Terminator, TlsError> {
        let t = Terminator::default();
        let prepared = Terminator::prepare(tls, at)?;
        let summary = t.apply(tls, prepared)?;
        if !summary.is_empty() {
            tracing::info!("{summary}");
        }
        Ok(t)
    }

    /// Reads and checks the certificate files of `tls`, changing nothing; a
    /// failure leaves the running certificates in place.
    pub fn prepare(tls: Option<&TlsConfig>, at: &str) -> Result<Prepared, TlsError> {
        match tls {
            None => Ok(Prepared(None)),
            Some(tls) => load_all_at(tls, at)
                .map(|set| Prepared(Some(set)))
                .map_err(TlsError::Files),
        }
    }

    /// Puts prepared certificates (and `tls`'s settings) in use for the
    /// handshakes to come. Returns what changed, for the reload summary.
    pub fn apply(&self, tls: Option<&TlsConfig>, prepared: Prepared) -> Result<String, TlsError> {
        let (Some(tls), Some(set)) = (tls, prepared.0) else {
            let was_on = self.active.swap(None).is_some();
            return Ok(match was_on {
                true => "TLS turned off: new connections are plain HTTP".into(),
                false => String::new(),
            });
        };
        let described = set.describe();
        let current = self.active.load();
        if let Some(a) = current.as_ref() {
            if a.min_version == tls.min_version && a.alpn == tls.alpn {
                // Same settings: keep the rustls config (and its session
                // cache); only the certificates change.
                a.resolver.replace(set);
                return Ok(format!("TLS certificates re-read: {described}"));
            }
        }
        let resolver = Arc::new(SniResolver::new(set));
        let server = Arc::new(server_config(tls, resolver.clone())?);
        let turned_on = current.is_none();
        self.active.store(Some(Arc::new(Active {
            server,
            resolver,
            min_version: tls.min_version,
            alpn: tls.alpn.clone(),
        })));
        Ok(match turned_on {
            true => format!("TLS on: {described}"),
            false => format!(
                "TLS settings updated (min_version {}, alpn {}); certificates: {described}",
                tls.min_version.as_str(),
                tls.alpn
                    .iter()
                    .map(|a| a.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        })
    }

    /// The rustls config for a connection accepted now; `None`: plain HTTP.
    #[inline]
    pub fn server_config(&self) -> Option<Arc<ServerConfig>> {
        self.active.load().as_ref().map(|a| a.server.clone())
    }
}

fn server_config(tls: &TlsConfig, resolver: Arc<SniResolver>) -> Result<ServerConfig, TlsError> {
    let versions: &[&'static rustls::SupportedProtocolVersion] = match tls.min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut config = ServerConfig::builder_with_provider(certs::provider())
        .with_protocol_versions(versions)
        // Only fails for versions the provider lacks; ring has both.
        .map_err(TlsError::Setup)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = tls.alpn_ids();
    if !tls.resumption {
        // No session kept, and no TLS 1.3 ticket sent to name one.
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        config.send_tls13_tickets = 0;
    }
    Ok(config)
}
