//! TLS from shoal to a backend (`https://` upstreams, `app.tls`): the
//! rustls client config each such backend's pool connects with, the
//! config-load check of its files, and the words a certificate error is
//! logged and answered with.
//!
//! - Trust: `ca` (a PEM file of CA certificates), else the system's trust
//!   store, read once through `rustls-native-certs` (the store curl and
//!   HAProxy's `@system-ca` use, so a CA an administrator added with
//!   `update-ca-certificates` counts).
//! - ALPN: `h2` and `http/1.1` are offered, and the backend's choice
//!   decides the pool's path; `protocol: h2` offers `h2` alone. A connection
//!   that must carry an upgrade (WebSocket) offers `http/1.1` alone.
//! - `verify: false` checks nothing but the handshake's signatures; shoal
//!   warns about it at every start and in `shoal check`.

use std::io;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::ResolvesClientCert;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::sign::CertifiedKey;
use rustls::{
    AlertDescription, CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::pem::PemObject;
use shoal_config::{BackendTls, CertificateFiles, Config, UpstreamProtocol};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::certs::{self, FileProblem};

/// How one backend is reached over TLS.
pub struct Connector {
    /// ALPN `h2` + `http/1.1` (or `h2` alone with `protocol: h2`).
    negotiate: TlsConnector,
    /// ALPN `http/1.1` alone: for a connection an upgrade will take over.
    h1: TlsConnector,
    server_name: ServerName<'static>,
    /// `protocol: h2`: HTTP/2 whatever ALPN says.
    h2_only: bool,
    /// `verify` (false: a warning at start).
    verify: bool,
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connector")
            .field("server_name", &self.server_name)
            .field("h2_only", &self.h2_only)
            .finish()
    }
}

/// A TLS connection and the protocol to speak on it.
pub struct Connected {
    pub stream: TlsStream<TcpStream>,
    pub protocol: UpstreamProtocol,
}

impl Connector {
    /// Reads the files of `tls` and builds the client configs; every
    /// problem is reported with its key path.
    pub fn new(
        tls: &BackendTls<'_>,
        protocol: UpstreamProtocol,
    ) -> Result<Connector, Vec<FileProblem>> {
        let provider = certs::provider();
        let mut problems = Vec::new();
        let at = |key: &str| format!("{}.{key}", tls.at);
        let server_name = match ServerName::try_from(tls.server_name().to_string()) {
            Ok(n) => Some(n),
            Err(_) => {
                let key = match tls.settings.server_name {
                    Some(_) => at("server_name"),
                    None => tls.at.clone(),
                };
                problems.push(FileProblem {
                    at: key,
                    message: format!(
                        "`{}` is not a DNS name or IP address a certificate can be checked against",
                        tls.server_name()
                    ),
                });
                None
            }
        };
        let roots = match &tls.settings.ca {
            Some(path) => roots_from(path, &at("ca")),
            None if !tls.settings.verify => Ok(Arc::new(RootCertStore::empty())),
            None => system_roots().map_err(|message| FileProblem {
                at: tls.at.clone(),
                message,
            }),
        };
        let roots = roots.map_err(|p| problems.push(p)).ok();
        let client_cert = tls.client_cert().and_then(|(cert, key)| {
            let files = CertificateFiles {
                cert,
                key,
                cert_at: at("cert"),
                key_at: at("key"),
            };
            certs::load_pair(&files, &provider)
                .map_err(|p| problems.extend(p))
                .ok()
        });
        let (Some(server_name), Some(roots)) = (server_name, roots) else {
            return Err(problems);
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            // Only fails for versions the provider lacks; ring has both.
            .map_err(|e| {
                vec![FileProblem {
                    at: tls.at.clone(),
                    message: format!("cannot set up TLS: {e}"),
                }]
            })?;
        let builder = if tls.settings.verify {
            builder.with_root_certificates(roots)
        } else {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(LeafOnly {
                    provider,
                    accept: Accept::Any,
                }))
        };
        let mut config = match client_cert {
            Some(loaded) => builder.with_client_cert_resolver(Arc::new(OneCert(loaded.key))),
            None => builder.with_no_client_auth(),
        };
        let h2_only = protocol == UpstreamProtocol::H2;
        let mut h1 = config.clone();
        h1.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.alpn_protocols = match h2_only {
            true => vec![b"h2".to_vec()],
            false => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        };
        Ok(Connector {
            negotiate: TlsConnector::from(Arc::new(config)),
            h1: TlsConnector::from(Arc::new(h1)),
            server_name,
            h2_only,
            verify: tls.settings.verify,
        })
    }

    /// The TLS handshake on `tcp`. `h1_only`: offer `http/1.1` alone (a
    /// connection for an upgrade). The error's text is [`reason`]'s.
    pub async fn connect(&self, tcp: TcpStream, h1_only: bool) -> io::Result<Connected> {
        let connector = match h1_only && !self.h2_only {
            true => &self.h1,
            false => &self.negotiate,
        };
        let stream = connector
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(clarify)?;
        let h2 = self.h2_only || stream.get_ref().1.alpn_protocol() == Some(b"h2");
        Ok(Connected {
            stream,
            protocol: match h2 {
                true => UpstreamProtocol::H2,
                false => UpstreamProtocol::Http1,
            },
        })
    }

    /// Whether HTTP/2 is the only protocol (`protocol: h2`).
    pub fn h2_only(&self) -> bool {
        self.h2_only
    }

    /// Whether the backend's certificate is checked (`verify`).
    pub fn verifies(&self) -> bool {
        self.verify
    }
}

/// The check `shoal check` and every config load run: can every TLS
/// backend's `ca`, `cert` and `key` be read and used, is its name one a
/// certificate can carry?
pub fn check(config: &Config) -> Vec<(String, String)> {
    config
        .backend_tls()
        .iter()
        .filter(|t| {
            // An empty path or an incomplete pair is the config's own error.
            let s = t.settings;
            s.cert.is_some() == s.key.is_some()
                && [&s.ca, &s.cert, &s.key]
                    .iter()
                    .all(|p| p.as_ref().is_none_or(|p| !p.as_os_str().is_empty()))
                && s.server_name
                    .as_deref()
                    .is_none_or(|n| !n.trim().is_empty())
        })
        .filter_map(|t| Connector::new(t, UpstreamProtocol::Http1).err())
        .flatten()
        .map(|p| (p.at, p.message))
        .collect()
}

/// `verify: false` anywhere, as `(key path, warning)`: for `shoal check`
/// and the start's log.
pub fn unverified(config: &Config) -> Vec<(String, String)> {
    config
        .backend_tls()
        .iter()
        .filter(|t| !t.settings.verify)
        .map(|t| {
            (
                format!("{}.verify", t.at),
                "is false: the backend's certificate is not checked, so anyone on the way \
                 can pose as it and read the traffic; give its CA in `ca` instead"
                    .to_string(),
            )
        })
        .collect()
}

pub(super) fn roots_from(
    path: &std::path::Path,
    at: &str,
) -> Result<Arc<RootCertStore>, FileProblem> {
    let problem = |message: String| FileProblem {
        at: at.to_string(),
        message,
    };
    let shown = format!("`{}`", path.display());
    let bytes = certs::read(path).map_err(problem)?;
    let ders: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            problem(format!(
                "{shown} is not valid PEM: {}",
                certs::pem_reason(&e)
            ))
        })?;
    if ders.is_empty() {
        return Err(problem(format!(
            "no certificate in {shown} (expected one or more `-----BEGIN CERTIFICATE-----` blocks)"
        )));
    }
    let mut store = RootCertStore::empty();
    let (_, ignored) = store.add_parsable_certificates(ders);
    if ignored > 0 {
        return Err(problem(format!(
            "{ignored} certificate(s) in {shown} cannot be parsed as a CA certificate"
        )));
    }
    Ok(Arc::new(store))
}

/// The system's trust store, read once.
pub(super) fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut store = RootCertStore::empty();
            store.add_parsable_certificates(found.certs);
            if store.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map(|e| format!(" ({e})"))
                    .unwrap_or_default();
                return Err(format!(
                    "no `ca` given and no CA certificate found in the system's trust store{why}: \
                     set `ca` to the PEM file of the CA that signed the backend's certificate \
                     (or install the `ca-certificates` package)"
                ));
            }
            Ok(Arc::new(store))
        })
        .clone()
}

/// The client certificate, whatever the server asks.
#[derive(Debug)]
struct OneCert(Arc<CertifiedKey>);

impl ResolvesClientCert for OneCert {
    fn resolve(&self, _: &[&[u8]], _: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// A verifier that builds no chain to a CA. `verify: false` (and the admin
/// CLI's `--insecure`) accepts any certificate; the admin CLI's pin
/// (`tls/admin_client.rs`) accepts only the config's own. Either way the
/// handshake's signatures are still checked (a broken handshake is not a
/// trusted one either, and only the key's holder can present a pinned
/// certificate).
#[derive(Debug)]
pub(super) struct LeafOnly {
    pub(super) provider: Arc<CryptoProvider>,
    pub(super) accept: Accept,
}

/// Which server certificates [`LeafOnly`] accepts.
#[derive(Debug)]
pub(super) enum Accept {
    Any,
    /// One of these, else the handshake fails with the message.
    OneOf(Vec<CertificateDer<'static>>, &'static str),
}

impl ServerCertVerifier for LeafOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match &self.accept {
            Accept::Any => Ok(ServerCertVerified::assertion()),
            Accept::OneOf(certs, _) if certs.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                Ok(ServerCertVerified::assertion())
            }
            Accept::OneOf(_, refusal) => Err(rustls::Error::General((*refusal).into())),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// An error of a TLS stream in the words shoal logs and answers with:
/// `TLS: certificate expired`. Other errors are left as they are.
pub fn clarify(e: io::Error) -> io::Error {
    match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(tls) => io::Error::new(e.kind(), format!("TLS: {}", reason(tls))),
        None => e,
    }
}

/// What went wrong, for someone who has to fix the backend or `tls:`.
pub fn reason(e: &rustls::Error) -> String {
    use rustls::Error as E;
    match e {
        E::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate signed by an unknown CA (not one `tls.ca` or the system trusts)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not valid yet".into()
            }
            CertificateError::NotValidForName => "certificate not valid for the server name".into(),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "certificate not valid for `{}` (it names {}; set `tls.server_name`?)",
                expected.to_str(),
                match presented.is_empty() {
                    true => "nothing".to_string(),
                    false => presented
                        .iter()
                        .map(|p| bare_name(p))
                        .collect::<Vec<_>>()
                        .join(", "),
                }
            ),
            CertificateError::Revoked => "certificate revoked".into(),
            CertificateError::BadSignature => "certificate signed by an unknown CA (a trusted CA \
                                                has its issuer's name, but did not sign it)"
                .into(),
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "certificate not issued for a TLS server".into()
            }
            other => format!("certificate rejected: {other:?}"),
        },
        E::AlertReceived(AlertDescription::CertificateRequired) => {
            "the backend requires a client certificate (set `tls.cert` and `tls.key`)".into()
        }
        E::AlertReceived(
            a @ (AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateExpired
            | AlertDescription::CertificateRevoked
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied),
        ) => format!("the backend refused the client certificate (alert {a:?})"),
        E::AlertReceived(a) => format!("the backend ended the handshake (alert {a:?})"),
        E::NoApplicationProtocol => {
            "no common ALPN protocol (the backend speaks neither h2 nor http/1.1 by ALPN)".into()
        }
        other => other.to_string(),
    }
}

/// rustls gives a certificate's names as `DnsName("a.test")`: the name.
fn bare_name(presented: &str) -> &str {
    presented
        .split_once('(')
        .and_then(|(_, rest)| rest.strip_suffix(')'))
        .map(|inner| inner.trim_matches('"'))
        .unwrap_or(presented)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn certificate_errors_in_words() {
        let cert = |e| reason(&rustls::Error::InvalidCertificate(e));
        assert!(cert(CertificateError::UnknownIssuer)
            .starts_with("certificate signed by an unknown CA"));
        assert!(
            cert(CertificateError::BadSignature).starts_with("certificate signed by an unknown CA")
        );
        assert_eq!(cert(CertificateError::Expired), "certificate expired");
        assert_eq!(
            cert(CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("api.test").unwrap(),
                presented: vec!["DnsName(\"a.test\")".into(), "b.test".into()],
            }),
            "certificate not valid for `api.test` (it names a.test, b.test; set `tls.server_name`?)"
        );
        assert!(reason(&rustls::Error::AlertReceived(
            AlertDescription::CertificateRequired
        ))
        .starts_with("the backend requires a client certificate"));
        assert!(reason(&rustls::Error::AlertReceived(
            AlertDescription::BadCertificate
        ))
        .starts_with("the backend refused the client certificate"));
    }

    #[test]
    fn an_io_error_from_rustls_is_told_in_words() {
        let raw = io::Error::new(
            io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(CertificateError::Expired),
        );
        let clear = clarify(raw);
        assert_eq!(clear.to_string(), "TLS: certificate expired");
        let other = clarify(io::Error::from(io::ErrorKind::ConnectionReset));
        assert_eq!(other.kind(), io::ErrorKind::ConnectionReset);
    }
}
