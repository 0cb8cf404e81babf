//! TLS from the CLI verbs (`status`, `scale`, `reload`, `logs`, `events`)
//! to an admin listener with `admin.tls`. Whom the CLI trusts, first match:
//!
//! - `--insecure`: any certificate (for testing only: anyone on the way can
//!   pose as shoal and read the token);
//! - `SHOAL_ADMIN_CA=FILE`: a certificate one of FILE's CAs signed, for
//!   the host the CLI connects to (`--admin https://HOST:PORT`, else the
//!   config's `admin.listen` address);
//! - the config's own `admin.tls` certificates (`-c FILE`): exactly those,
//!   pinned, whatever names they carry;
//! - else the system's trust store, for the host's name.
//!
//! Only `http/1.1` is offered by ALPN: the client speaks HTTP/1.1.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject;
use shoal_config::TlsConfig;
use tokio_rustls::TlsConnector;

use super::certs;
use super::client::{roots_from, system_roots, Accept, LeafOnly};

/// The environment variable naming a PEM file of CAs the CLI trusts.
pub const CA_VAR: &str = "SHOAL_ADMIN_CA";

/// How the CLI reaches one admin listener over TLS.
pub struct AdminTls {
    pub connector: TlsConnector,
    pub name: ServerName<'static>,
    /// Whom it trusts, for error messages.
    pub trust: Trust,
}

/// Where the trust of an [`AdminTls`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trust {
    Insecure,
    CaFile,
    Pinned,
    System,
}

/// The TLS client for the admin listener at `host` (a DNS name or an IP
/// address, as the CLI was told). `ca` is `SHOAL_ADMIN_CA`'s file, `own`
/// the config's `admin.tls` (if the CLI has the config). The error is a
/// sentence naming the file or setting at fault.
pub fn connector(
    host: &str,
    insecure: bool,
    ca: Option<&std::path::Path>,
    own: Option<&TlsConfig>,
) -> Result<AdminTls, String> {
    let provider = certs::provider();
    let name = ServerName::try_from(host.to_string()).map_err(|_| {
        format!("`{host}` is not a DNS name or IP address to check a certificate for")
    })?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        // Only fails for versions the provider lacks; ring has both.
        .map_err(|e| format!("cannot set up TLS: {e}"))?;
    let (verifier, trust): (Arc<dyn ServerCertVerifier>, Trust) = match (insecure, ca, own) {
        (true, _, _) => (
            Arc::new(LeafOnly {
                provider,
                accept: Accept::Any,
            }),
            Trust::Insecure,
        ),
        (false, Some(ca), _) => {
            let roots = roots_from(ca, CA_VAR).map_err(|p| p.to_string())?;
            (webpki(roots, &provider)?, Trust::CaFile)
        }
        // The config's own certificates: the server must present one of them.
        (false, None, Some(own)) => (
            Arc::new(LeafOnly {
                provider,
                accept: Accept::OneOf(
                    pinned(own)?,
                    "the admin listener's certificate is none of the config's `admin.tls` \
                     certificates",
                ),
            }),
            Trust::Pinned,
        ),
        (false, None, None) => (webpki(system_roots()?, &provider)?, Trust::System),
    };
    let mut config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(AdminTls {
        connector: TlsConnector::from(Arc::new(config)),
        name,
        trust,
    })
}

fn webpki(
    roots: Arc<RootCertStore>,
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ServerCertVerifier>, String> {
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
            .build()
            .map_err(|e| format!("cannot set up TLS: {e}"))?;
    Ok(verifier)
}

/// Every certificate of `admin.tls`'s files (leaves and their chains).
fn pinned(own: &TlsConfig) -> Result<Vec<CertificateDer<'static>>, String> {
    let mut out = Vec::new();
    for f in own.files_at("admin.tls") {
        let bytes = certs::read(f.cert).map_err(|m| format!("{}: {m}", f.cert_at))?;
        for der in CertificateDer::pem_slice_iter(&bytes) {
            out.push(der.map_err(|e| {
                format!(
                    "{}: `{}` is not valid PEM: {}",
                    f.cert_at,
                    f.cert.display(),
                    certs::pem_reason(&e)
                )
            })?);
        }
    }
    if out.is_empty() {
        return Err("admin.tls: no certificate to trust in the config's files".into());
    }
    Ok(out)
}
