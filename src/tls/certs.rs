//! Reading certificates and keys from PEM files (rustls-pki-types' PEM
//! parser), checking that each key matches its certificate, and the set of
//! loaded certificates with the DNS names each one serves.

use std::collections::HashMap;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use shoal_config::{CertificateFiles, TlsConfig};

/// No certificate chain or key file is this large; a bigger file is a
/// mistake (a device, an archive), and is not read to the end.
const MAX_PEM_FILE: u64 = 1 << 20;

/// A problem with one file: the config key path it belongs to, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileProblem {
    pub at: String,
    pub message: String,
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// One certificate chain with its key, ready for handshakes.
pub struct Loaded {
    pub key: Arc<CertifiedKey>,
    /// DNS names of the leaf's subjectAltName, lowercase (`*.x` wildcards too).
    pub names: Vec<String>,
}

/// The certificates of `tls:`, and which serves which server name.
pub struct CertSet {
    certs: Vec<Loaded>,
    /// Exact names → index; the first certificate naming one wins.
    exact: HashMap<String, usize>,
    /// `*.example.test` is stored as `example.test` → index.
    wildcard: HashMap<String, usize>,
}

impl fmt::Debug for CertSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertSet")
            .field(
                "names",
                &self.certs.iter().map(|c| &c.names).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl CertSet {
    /// `certs` must not be empty (`load_all` sees to it): the first one is
    /// the default.
    fn new(certs: Vec<Loaded>) -> CertSet {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for (i, c) in certs.iter().enumerate() {
            for name in &c.names {
                match name.strip_prefix("*.") {
                    Some(parent) => wildcard.entry(parent.to_string()).or_insert(i),
                    None => exact.entry(name.clone()).or_insert(i),
                };
            }
        }
        CertSet {
            certs,
            exact,
            wildcard,
        }
    }

    /// The certificate for a server name (SNI, lowercase as rustls gives
    /// it): an exact name first, then a wildcard one label deep (as
    /// RFC 6125, nginx and HAProxy), else the default (the first).
    pub fn pick(&self, server_name: Option<&str>) -> &Arc<CertifiedKey> {
        &self.certs[self.index(server_name)].key
    }

    fn index(&self, server_name: Option<&str>) -> usize {
        let Some(name) = server_name else { return 0 };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(&i) = self.exact.get(name) {
            return i;
        }
        name.split_once('.')
            .and_then(|(_, parent)| self.wildcard.get(parent))
            .copied()
            .unwrap_or(0)
    }

    /// For logs: `a.test, *.b.test (default: a.test)`.
    pub fn describe(&self) -> String {
        let names = |c: &Loaded| {
            if c.names.is_empty() {
                "(no DNS name)".to_string()
            } else {
                c.names.join(" ")
            }
        };
        let all: Vec<String> = self.certs.iter().map(names).collect();
        format!("{} (default: {})", all.join(", "), names(&self.certs[0]))
    }
}

/// The crypto provider: ring (aws-lc-rs measured no faster here, and builds
/// aws-lc in C: docs/ARCHITECTURE.md, "Dependencies and why").
pub fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: std::sync::OnceLock<Arc<CryptoProvider>> = std::sync::OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// Read every certificate of `tls:`; every problem is reported, not only
/// the first.
pub fn load_all(tls: &TlsConfig) -> Result<CertSet, Vec<FileProblem>> {
    load_all_at(tls, "tls")
}

/// [`load_all`] of the `tls` section at key path `at` (`listeners[1].tls`).
pub fn load_all_at(tls: &TlsConfig, at: &str) -> Result<CertSet, Vec<FileProblem>> {
    let provider = provider();
    let mut certs = Vec::new();
    let mut problems = Vec::new();
    for files in tls.files_at(at) {
        match load_pair(&files, &provider) {
            Ok(c) => certs.push(c),
            Err(p) => problems.extend(p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    if certs.is_empty() {
        // The config's own validation refuses this shape first.
        return Err(vec![FileProblem {
            at: at.into(),
            message: "has no certificate".into(),
        }]);
    }
    Ok(CertSet::new(certs))
}

/// The check `shoal check` and every config load run: can the files of
/// `tls:` (of every listener, and `admin.tls`) be read, parsed, and does
/// each key match its certificate?
pub fn check(config: &shoal_config::Config) -> Vec<(String, String)> {
    let provider = provider();
    let mut out = Vec::new();
    let public = config.public_listeners();
    let sections = public
        .iter()
        .filter_map(|l| Some((l.tls.as_ref()?, l.tls_at.as_str())))
        .chain(config.admin.tls.as_ref().map(|t| (t, "admin.tls")));
    for (tls, at) in sections {
        out.extend(
            tls.files_at(at)
                .iter()
                .filter(|f| !f.cert.as_os_str().is_empty() && !f.key.as_os_str().is_empty())
                .filter_map(|f| load_pair(f, &provider).err())
                .flatten()
                .map(|p| (p.at, p.message)),
        );
    }
    out
}

/// One certificate chain and its key. Both files are read before either is
/// parsed, so two missing files are two problems.
pub fn load_pair(
    files: &CertificateFiles<'_>,
    provider: &CryptoProvider,
) -> Result<Loaded, Vec<FileProblem>> {
    let (cert, key) = (read(files.cert), read(files.key));
    let problem = |at: &String, message: String| FileProblem {
        at: at.clone(),
        message,
    };
    match (cert, key) {
        (Ok(cert), Ok(key)) => parse_pair(files, &cert, &key, provider).map_err(|p| vec![p]),
        (cert, key) => Err([
            cert.err().map(|m| problem(&files.cert_at, m)),
            key.err().map(|m| problem(&files.key_at, m)),
        ]
        .into_iter()
        .flatten()
        .collect()),
    }
}

fn parse_pair(
    files: &CertificateFiles<'_>,
    bytes: &[u8],
    key_bytes: &[u8],
    provider: &CryptoProvider,
) -> Result<Loaded, FileProblem> {
    let cert_err = |message: String| FileProblem {
        at: files.cert_at.clone(),
        message,
    };
    let key_err = |message: String| FileProblem {
        at: files.key_at.clone(),
        message,
    };
    let shown = |p: &Path| format!("`{}`", p.display());

    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| {
            cert_err(format!(
                "{} is not valid PEM: {}",
                shown(files.cert),
                pem_reason(&e)
            ))
        })?;
    if chain.is_empty() {
        let hint = if PrivateKeyDer::from_pem_slice(bytes).is_ok() {
            " (it holds a private key: are `cert` and `key` swapped?)"
        } else {
            ""
        };
        return Err(cert_err(format!(
            "no certificate in {} (expected a `-----BEGIN CERTIFICATE-----` block){hint}",
            shown(files.cert)
        )));
    }
    let leaf = webpki::EndEntityCert::try_from(&chain[0]).map_err(|e| {
        cert_err(format!(
            "the first certificate in {} cannot be parsed: {e}",
            shown(files.cert)
        ))
    })?;
    let mut names: Vec<String> = Vec::new();
    for name in leaf.valid_dns_names() {
        let name = name.to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    drop(leaf);

    let key = match PrivateKeyDer::from_pem_slice(key_bytes) {
        Ok(k) => k,
        Err(pem::Error::NoItemsFound) => {
            let encrypted = |marker: &[u8]| key_bytes.windows(marker.len()).any(|w| w == marker);
            let hint = if CertificateDer::pem_slice_iter(key_bytes).next().is_some() {
                " (it holds a certificate: are `cert` and `key` swapped?)"
            } else if encrypted(b"ENCRYPTED PRIVATE KEY") {
                " (it holds an encrypted key; shoal needs it unencrypted: \
                 `openssl pkey -in KEY -out PLAIN_KEY`, then keep PLAIN_KEY readable by shoal only)"
            } else {
                ""
            };
            return Err(key_err(format!(
                "no private key in {} (expected a `-----BEGIN PRIVATE KEY-----`, \
                 `RSA PRIVATE KEY` or `EC PRIVATE KEY` block){hint}",
                shown(files.key)
            )));
        }
        Err(e) => {
            return Err(key_err(format!(
                "{} is not valid PEM: {}",
                shown(files.key),
                pem_reason(&e)
            )))
        }
    };
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => key_err(format!(
            "the key in {} does not match the certificate in {}",
            shown(files.key),
            shown(files.cert)
        )),
        other => key_err(format!(
            "cannot use the private key in {}: {other}",
            shown(files.key)
        )),
    })?;
    Ok(Loaded {
        key: Arc::new(certified),
        names,
    })
}

pub(super) fn read(path: &Path) -> Result<Vec<u8>, String> {
    let fail = |e: std::io::Error| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "no such file".to_string(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
            _ => e.to_string(),
        };
        format!("cannot read `{}`: {why}", path.display())
    };
    let file = std::fs::File::open(path).map_err(fail)?;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(fail)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(format!(
            "`{}` is larger than 1MiB: not a PEM certificate or key file",
            path.display()
        ));
    }
    Ok(bytes)
}

pub(super) fn pem_reason(e: &pem::Error) -> String {
    match e {
        pem::Error::MissingSectionEnd { end_marker } => format!(
            "a block is missing its `-----END {}-----` line",
            String::from_utf8_lossy(end_marker)
        ),
        pem::Error::IllegalSectionStart { line } => {
            format!("bad BEGIN line `{}`", String::from_utf8_lossy(line))
        }
        pem::Error::Base64Decode(why) => format!("bad base64 ({why})"),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    struct Files {
        dir: tempfile::TempDir,
    }

    impl Files {
        fn new() -> Files {
            Files {
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn write(&self, name: &str, text: &str) -> PathBuf {
            let p = self.dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            p
        }

        /// A self-signed certificate for `names`: (cert path, key path).
        fn pair(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let ck = rcgen::generate_simple_self_signed(names).unwrap();
            (
                self.write(&format!("{stem}.pem"), &ck.cert.pem()),
                self.write(&format!("{stem}.key"), &ck.signing_key.serialize_pem()),
            )
        }
    }

    fn files<'a>(cert: &'a Path, key: &'a Path) -> CertificateFiles<'a> {
        CertificateFiles {
            cert,
            key,
            cert_at: "tls.cert".into(),
            key_at: "tls.key".into(),
        }
    }

    fn load(cert: &Path, key: &Path) -> Result<Loaded, Vec<FileProblem>> {
        load_pair(&files(cert, key), &provider())
    }

    fn problems(cert: &Path, key: &Path) -> Vec<FileProblem> {
        match load(cert, key) {
            Ok(_) => panic!("expected a problem"),
            Err(p) => p,
        }
    }

    fn problem(cert: &Path, key: &Path) -> FileProblem {
        let mut p = problems(cert, key);
        assert_eq!(p.len(), 1, "{p:?}");
        p.remove(0)
    }

    #[test]
    fn loads_a_pair_and_its_names() {
        let f = Files::new();
        let (cert, key) = f.pair("a", &["A.test", "*.a.test", "a.test"]);
        let loaded = load(&cert, &key).unwrap();
        assert_eq!(loaded.names, vec!["a.test", "*.a.test"]);
        assert_eq!(loaded.key.cert.len(), 1);
    }

    #[test]
    fn file_problems_name_the_key_and_the_file() {
        let f = Files::new();
        let (a_cert, a_key) = f.pair("a", &["a.test"]);
        let (_, b_key) = f.pair("b", &["b.test"]);
        let missing = f.dir.path().join("nope.pem");

        let p = problem(&missing, &a_key);
        assert_eq!(p.at, "tls.cert");
        assert_eq!(
            p.message,
            format!("cannot read `{}`: no such file", missing.display())
        );

        let p = problem(&a_cert, &b_key);
        assert_eq!(p.at, "tls.key");
        assert_eq!(
            p.message,
            format!(
                "the key in `{}` does not match the certificate in `{}`",
                b_key.display(),
                a_cert.display()
            )
        );

        let p = problem(&a_key, &a_cert);
        assert_eq!(p.at, "tls.cert");
        assert!(p.message.contains("no certificate in"), "{}", p.message);
        assert!(
            p.message.contains("are `cert` and `key` swapped?"),
            "{}",
            p.message
        );

        let garbage = f.write(
            "bad.pem",
            "-----BEGIN CERTIFICATE-----\nnot base64 !!\n-----END CERTIFICATE-----\n",
        );
        let p = problem(&garbage, &a_key);
        assert!(p.message.contains("is not valid PEM"), "{}", p.message);

        let cut = f.write("cut.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n");
        let p = problem(&cut, &a_key);
        assert!(
            p.message.ends_with(
                "is not valid PEM: a block is missing its `-----END CERTIFICATE-----` line"
            ),
            "{}",
            p.message
        );

        let not_x509 = f.write(
            "nx.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        );
        let p = problem(&not_x509, &a_key);
        assert!(p.message.contains("cannot be parsed"), "{}", p.message);

        let encrypted = f.write(
            "enc.key",
            "-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
        );
        let p = problem(&a_cert, &encrypted);
        assert!(
            p.message.contains("it holds an encrypted key"),
            "{}",
            p.message
        );

        let empty = f.write("empty.key", "");
        let p = problem(&a_cert, &empty);
        assert_eq!(p.at, "tls.key");
        assert!(p.message.starts_with("no private key in"), "{}", p.message);
    }

    #[test]
    fn picks_by_server_name_with_wildcards_and_a_default() {
        let f = Files::new();
        let mut certs = Vec::new();
        for (stem, names) in [
            ("default", &["default.test"][..]),
            ("a", &["a.test", "www.a.test"][..]),
            ("b", &["*.b.test"][..]),
            ("a-again", &["a.test"][..]),
        ] {
            let (cert, key) = f.pair(stem, names);
            certs.push(load(&cert, &key).unwrap());
        }
        let ders: Vec<Vec<u8>> = certs.iter().map(|c| c.key.cert[0].to_vec()).collect();
        let set = CertSet::new(certs);
        let which = |sni: Option<&str>| {
            let der = set.pick(sni).cert[0].to_vec();
            ders.iter().position(|d| *d == der).unwrap()
        };
        assert_eq!(which(None), 0, "no SNI: the default");
        assert_eq!(which(Some("default.test")), 0);
        assert_eq!(
            which(Some("a.test")),
            1,
            "the first certificate naming it wins"
        );
        assert_eq!(which(Some("www.a.test")), 1);
        assert_eq!(which(Some("a.test.")), 1, "a trailing dot is the same name");
        assert_eq!(which(Some("x.b.test")), 2, "wildcard");
        assert_eq!(
            which(Some("b.test")),
            0,
            "a wildcard does not cover its parent"
        );
        assert_eq!(which(Some("y.x.b.test")), 0, "nor two labels");
        assert_eq!(which(Some("other.test")), 0, "no match: the default");
        assert_eq!(set.certs.len(), 4);
        assert!(
            set.describe().ends_with("(default: default.test)"),
            "{}",
            set.describe()
        );
    }
}
