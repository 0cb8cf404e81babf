//! `tls:` — certificates, minimum version and ALPN of the public listener.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `tls:` on the public listener. One certificate is written `cert` + `key`;
/// several (chosen by SNI) as a `certificates` list. Paths are PEM files,
/// relative ones taken from shoal's working directory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsConfig {
    /// One certificate chain (leaf first)...
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// ... and its private key.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// Several certificates; the first is the default (no SNI, no match).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub certificates: Vec<CertificateConfig>,
    /// Oldest TLS version accepted.
    pub min_version: TlsVersion,
    /// Protocols offered through ALPN, in order of preference.
    pub alpn: Vec<Alpn>,
    /// Session resumption: a client that connected before skips the
    /// certificate and key exchange (sessions kept in memory, 256 per
    /// listener). `false`: every connection is a full handshake.
    pub resumption: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            cert: None,
            key: None,
            certificates: Vec::new(),
            min_version: TlsVersion::V1_2,
            alpn: vec![Alpn::H2, Alpn::Http11],
            resumption: true,
        }
    }
}

/// One item of `tls.certificates`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A certificate and key pair as written, with the key paths messages name
/// (`tls.cert`, or `tls.certificates[1].cert`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateFiles<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
    pub cert_at: String,
    pub key_at: String,
}

impl TlsConfig {
    /// Every complete pair, the default first. Incomplete ones (a `cert`
    /// without `key`) are left out: validation reports them.
    pub fn files(&self) -> Vec<CertificateFiles<'_>> {
        self.files_at("tls")
    }

    /// [`TlsConfig::files`] of a `tls` section at key path `at`
    /// (`listeners[1].tls`).
    pub fn files_at(&self, at: &str) -> Vec<CertificateFiles<'_>> {
        let mut out = Vec::new();
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            out.push(CertificateFiles {
                cert,
                key,
                cert_at: format!("{at}.cert"),
                key_at: format!("{at}.key"),
            });
        }
        for (i, c) in self.certificates.iter().enumerate() {
            out.push(CertificateFiles {
                cert: &c.cert,
                key: &c.key,
                cert_at: format!("{at}.certificates[{i}].cert"),
                key_at: format!("{at}.certificates[{i}].key"),
            });
        }
        out
    }

    /// The ALPN protocol ids, as sent on the wire.
    pub fn alpn_ids(&self) -> Vec<Vec<u8>> {
        self.alpn
            .iter()
            .map(|a| a.as_str().as_bytes().to_vec())
            .collect()
    }
}

/// `tls.min_version`: rustls implements TLS 1.2 and 1.3 only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsVersion {
    #[default]
    V1_2,
    V1_3,
}

impl TlsVersion {
    pub fn as_str(self) -> &'static str {
        match self {
            TlsVersion::V1_2 => "1.2",
            TlsVersion::V1_3 => "1.3",
        }
    }

    /// `1.2` or `1.3` (written as a number or a string).
    pub fn parse(text: &str) -> Result<TlsVersion, String> {
        let t = text.trim();
        match t {
            "1.2" => return Ok(TlsVersion::V1_2),
            "1.3" => return Ok(TlsVersion::V1_3),
            _ => {}
        }
        let bare = t
            .to_ascii_lowercase()
            .trim_start_matches("tlsv")
            .trim_start_matches("tls")
            .trim_start_matches(['v', ' ', '_'])
            .replace('_', ".");
        let hint = match bare.as_str() {
            "1.2" | "12" => " (write `1.2`)".to_string(),
            "1.3" | "13" => " (write `1.3`)".to_string(),
            "1" | "1.0" | "1.1" | "10" | "11" => {
                " (TLS 1.0 and 1.1 are obsolete (RFC 8996) and not supported)".to_string()
            }
            _ => String::new(),
        };
        Err(format!(
            "unknown TLS version `{t}`: expected `1.2` or `1.3`{hint}"
        ))
    }
}

impl Serialize for TlsVersion {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // A number, so the effective config prints `1.2` rather than `'1.2'`.
        s.serialize_f64(match self {
            TlsVersion::V1_2 => 1.2,
            TlsVersion::V1_3 => 1.3,
        })
    }
}

impl<'de> Deserialize<'de> for TlsVersion {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::fields::tls_version(d)
    }
}

/// `tls.alpn` items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Alpn {
    #[serde(rename = "h2")]
    H2,
    #[serde(rename = "http/1.1")]
    Http11,
}

impl Alpn {
    pub fn as_str(self) -> &'static str {
        match self {
            Alpn::H2 => "h2",
            Alpn::Http11 => "http/1.1",
        }
    }
}
