//! TLS termination: certificates chosen by SNI (two names, wildcard,
//! default), ALPN h2 / HTTP/1.1 with real curl, `X-Forwarded-Proto: https`,
//! certificate rotation by SIGHUP with connections open, a broken PEM on
//! reload, bad files at `shoal check`, and a client that never says hello.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::support::tls::{client_config, connect_with, curl, presented, Leaf, TestCa, TlsClient};
use crate::support::{demo_config, eventually, Shoal, SHOAL};

struct Certs {
    dir: tempfile::TempDir,
    ca: TestCa,
    ca_path: PathBuf,
    a: Leaf,
    b: Leaf,
}

impl Certs {
    /// A CA, `a.test` (the default) and `b.test` + `*.b.test`, on disk.
    fn new() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        let ca_path = ca.write(dir.path());
        let a = ca.leaf(&["a.test"], "a.test leaf");
        let b = ca.leaf(&["b.test", "*.b.test"], "b.test leaf");
        a.write(dir.path(), "a");
        b.write(dir.path(), "b");
        Certs {
            dir,
            ca,
            ca_path,
            a,
            b,
        }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// `tls:` with both certificates, a.test first.
    fn section(&self) -> String {
        format!(
            "tls:\n  certificates:\n    - {{ cert: \"{}\", key: \"{}\" }}\n    - {{ cert: \"{}\", key: \"{}\" }}\n",
            self.path("a.pem"),
            self.path("a.key"),
            self.path("b.pem"),
            self.path("b.key"),
        )
    }
}

async fn started(certs: &Certs, extra: &str) -> Shoal {
    let shoal = Shoal::start(&demo_config(1, &format!("{}{extra}", certs.section())));
    shoal.wait_healthy(1).await;
    shoal
}

fn which(der: &[u8], certs: &Certs) -> &'static str {
    if der == certs.a.der.as_slice() {
        "a"
    } else if der == certs.b.der.as_slice() {
        "b"
    } else {
        "another certificate"
    }
}

/// Two SNI names each get their own certificate, which curl verifies
/// against the test CA; a name under the wildcard gets `b`; no SNI (by IP)
/// and an unknown name get the default, the first listed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_sni_names_each_get_their_own_certificate() {
    let certs = Certs::new();
    let shoal = started(&certs, "").await;
    shoal
        .wait_log("TLS on: a.test, b.test *.b.test (default: a.test)")
        .await;

    for (host, cn) in [
        ("a.test", "a.test leaf"),
        ("b.test", "b.test leaf"),
        ("x.b.test", "b.test leaf"),
    ] {
        let c = curl(&certs.ca_path, host, shoal.proxy, "/", &[]).await;
        assert_eq!(c.code, 0, "curl {host}: {}\n{}", c.stdout, c.stderr);
        assert!(
            c.stderr.contains(&format!("subject: CN={cn}")),
            "{host}: {}",
            c.stderr
        );
        assert!(c.stdout.contains("\"instance\""), "{host}: {}", c.stdout);
    }

    assert_eq!(
        which(
            &presented(shoal.proxy, Some("a.test")).await.unwrap(),
            &certs
        ),
        "a"
    );
    assert_eq!(
        which(
            &presented(shoal.proxy, Some("b.test")).await.unwrap(),
            &certs
        ),
        "b"
    );
    assert_eq!(
        which(
            &presented(shoal.proxy, Some("www.b.test")).await.unwrap(),
            &certs
        ),
        "b"
    );
    assert_eq!(
        which(&presented(shoal.proxy, None).await.unwrap(), &certs),
        "a",
        "no SNI"
    );
    assert_eq!(
        which(
            &presented(shoal.proxy, Some("c.test")).await.unwrap(),
            &certs
        ),
        "a",
        "unknown name"
    );
    // curl asking for a name no certificate has gets the default, and
    // refuses it: the name does not match.
    let c = curl(&certs.ca_path, "c.test", shoal.proxy, "/", &[]).await;
    assert_ne!(c.code, 0, "{}", c.stderr);
    assert!(c.stderr.contains("subject: CN=a.test leaf"), "{}", c.stderr);
}

/// ALPN: `--http2` negotiates h2, `--http1.1` HTTP/1.1, both reach the
/// demo app, which sees `X-Forwarded-Proto: https`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alpn_picks_h2_or_http11_and_the_backend_sees_https() {
    let certs = Certs::new();
    let shoal = started(&certs, "").await;
    for (flag, version, alpn) in [
        ("--http2", "2", "ALPN: server accepted h2"),
        ("--http1.1", "1.1", "ALPN: server accepted http/1.1"),
    ] {
        let c = curl(&certs.ca_path, "a.test", shoal.proxy, "/headers", &[flag]).await;
        assert_eq!(c.code, 0, "{flag}: {}\n{}", c.stdout, c.stderr);
        assert!(
            c.stdout.ends_with(&format!("http_version={version}\n")),
            "{flag}: {}",
            c.stdout
        );
        assert!(c.stderr.contains(alpn), "{flag}: {}", c.stderr);
        let body = c.stdout.lines().next().unwrap();
        let headers: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(headers["x-forwarded-proto"], "https", "{flag}: {body}");
    }
    // Several h2 streams on each connection, with h2load: all answered.
    {
        let out = tokio::process::Command::new("h2load")
            .args(["-n", "200", "-c", "2", "-m", "10", "--connect-to"])
            .arg(shoal.proxy.to_string())
            .arg(format!("https://a.test:{}/", shoal.proxy.port()))
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Application protocol: h2"), "{text}");
        assert!(text.contains("200 succeeded, 0 failed"), "{text}");
    }
}

/// SIGHUP with the config text unchanged re-reads the certificate files:
/// new connections get the new certificate, while a keep-alive connection
/// and a slow request opened before go on undisturbed. A broken PEM on the
/// next SIGHUP is refused with the key named in the log, and the previous
/// certificate keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_rotates_certificates_without_dropping_connections() {
    let certs = Certs::new();
    let shoal = started(&certs, "").await;
    let proxy = shoal.proxy;

    let mut open = TlsClient::connect(proxy, "a.test").await.unwrap();
    assert_eq!(which(&open.leaf, &certs), "a");
    assert_eq!(open.get("a.test", "/").await.unwrap().status, 200);
    let slow = tokio::spawn(async move {
        let mut c = TlsClient::connect(proxy, "a.test").await.unwrap();
        c.get("a.test", "/slow?ms=3000").await
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    // Rotate: a new certificate for a.test in the same files.
    let rotated = certs.ca.leaf(&["a.test"], "a.test rotated");
    rotated.write(certs.dir.path(), "a");
    shoal.signal(Signal::SIGHUP);
    eventually(
        Duration::from_secs(10),
        "the rotated certificate",
        || async {
            let der = presented(proxy, Some("a.test")).await.ok()?;
            (der == rotated.der).then_some(())
        },
    )
    .await;
    shoal.wait_log("TLS certificates re-read").await;
    let c = curl(&certs.ca_path, "a.test", proxy, "/", &[]).await;
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(
        c.stderr.contains("subject: CN=a.test rotated"),
        "{}",
        c.stderr
    );
    // b.test was re-read too, unchanged.
    assert_eq!(
        which(&presented(proxy, Some("b.test")).await.unwrap(), &certs),
        "b"
    );

    // The connections opened before the rotation were not touched.
    assert!(
        !open.sender.is_closed(),
        "keep-alive connection closed by the reload"
    );
    assert_eq!(open.get("a.test", "/").await.unwrap().status, 200);
    let slow = slow.await.unwrap().expect("slow request across the reload");
    assert_eq!(slow.status, 200);

    // A broken PEM (a half-written file): refused, logged with its key,
    // and the certificate in use is kept.
    let half = &rotated.cert_pem[..rotated.cert_pem.len() / 2];
    std::fs::write(certs.dir.path().join("a.pem"), half).unwrap();
    shoal.signal(Signal::SIGHUP);
    eventually(
        Duration::from_secs(10),
        "the reload error in the log",
        || async {
            shoal
                .log()
                .iter()
                .any(|l| {
                    l.contains("tls.certificates[0].cert")
                        && l.contains("is not valid PEM: a block is missing its `-----END CERTIFICATE-----` line")
                })
                .then_some(())
        },
    )
    .await;
    shoal
        .wait_log("ERROR config not applied (the running config is kept)")
        .await;
    assert_eq!(presented(proxy, Some("a.test")).await.unwrap(), rotated.der);
    let c = curl(&certs.ca_path, "a.test", proxy, "/", &[]).await;
    assert_eq!(
        c.code, 0,
        "still serving after a failed reload: {}",
        c.stderr
    );
    assert_eq!(open.get("a.test", "/").await.unwrap().status, 200);
}

/// Bad files are config errors: `shoal check` (and `shoal up`) exit 78
/// naming the key path and its line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_certificate_files_fail_check_naming_key_and_line() {
    let certs = Certs::new();
    let run = |verb: &str, yaml: String| {
        let path = certs.dir.path().join(format!("{verb}.yaml"));
        std::fs::write(&path, yaml).unwrap();
        let out = std::process::Command::new(SHOAL)
            .args([verb, "-c"])
            .arg(&path)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let base = "listen: 127.0.0.1:0\nadmin: {listen: 127.0.0.1:0}\nupstreams:\n  - url: http://127.0.0.1:9\n";
    let missing = certs.path("missing.pem");

    // Line 6: `cert:` of the one-certificate form.
    let yaml = format!(
        "{base}tls:\n  cert: \"{missing}\"\n  key: \"{}\"\n",
        certs.path("a.key")
    );
    let (code, err) = run("check", yaml.clone());
    assert_eq!(code, Some(78), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "{}:6: tls.cert: cannot read `{missing}`: no such file",
            certs.path("check.yaml")
        )
    );
    let (code, err) = run("up", yaml.clone());
    assert_eq!(
        code,
        Some(78),
        "`shoal up` refuses it before starting: {err}"
    );
    assert!(err.contains(":6: tls.cert: cannot read"), "{err}");
    // The client verbs only need `admin.listen`: they do not read the
    // certificate files (an operator may not be allowed to read the key).
    let (code, err) = run("status", yaml);
    assert_ne!(code, Some(78), "{err}");
    assert!(!err.contains("tls.cert"), "{err}");

    // The second certificate's key belongs to the first: line 9.
    let yaml = format!(
        "{base}tls:\n  certificates:\n    - {{cert: \"{a}\", key: \"{ak}\"}}\n    - cert: \"{b}\"\n      key: \"{ak}\"\n",
        a = certs.path("a.pem"),
        ak = certs.path("a.key"),
        b = certs.path("b.pem"),
    );
    let (code, err) = run("check", yaml);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("check.yaml:9: tls.certificates[1].key: the key in `"),
        "{err}"
    );
    assert!(err.contains("does not match the certificate in"), "{err}");

    // Not PEM at all.
    let junk = certs.dir.path().join("junk.pem");
    std::fs::write(&junk, "hello\n").unwrap();
    let yaml = format!(
        "{base}tls:\n  cert: \"{}\"\n  key: \"{}\"\n",
        junk.display(),
        certs.path("a.key")
    );
    let (code, err) = run("check", yaml);
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains("check.yaml:6: tls.cert: no certificate in"),
        "{err}"
    );

    // And good files pass.
    let yaml = format!("{base}{}", certs.section());
    let (code, err) = run("check", yaml);
    assert_eq!(code, Some(0), "{err}");
}

/// A client that opens TCP and never sends a ClientHello (or only part of
/// one) is closed after `limits.header_read_timeout`, while other clients
/// are served meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_that_never_says_hello_is_closed_after_header_read_timeout() {
    let certs = Certs::new();
    let shoal = started(&certs, "limits: { header_read_timeout: 1s }\n").await;
    let mut silent = TcpStream::connect(shoal.proxy).await.unwrap();
    let mut partial = TcpStream::connect(shoal.proxy).await.unwrap();
    // The start of a TLS handshake record, and nothing more.
    tokio::io::AsyncWriteExt::write_all(&mut partial, &[0x16, 0x03, 0x01, 0x00])
        .await
        .unwrap();
    let opened = Instant::now();

    // Others are served while those two hang.
    for _ in 0..3 {
        let mut c = TlsClient::connect(shoal.proxy, "b.test").await.unwrap();
        assert_eq!(c.get("b.test", "/").await.unwrap().status, 200);
    }

    for (name, sock) in [("silent", &mut silent), ("partial", &mut partial)] {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf)).await;
        let n = match read {
            Ok(Ok(n)) => n,
            Ok(Err(_)) => 0, // reset: closed as well
            Err(_) => panic!("{name}: still open 5s after connecting"),
        };
        assert_eq!(
            n, 0,
            "{name}: expected the connection closed, got {n} bytes"
        );
    }
    let after = opened.elapsed();
    assert!(
        after >= Duration::from_millis(900),
        "closed too early: {after:?}"
    );
}

/// TLS can be turned on by a config reload: connections accepted after it
/// get a handshake; turned off again, plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_turned_on_and_off_by_reload() {
    let certs = Certs::new();
    let plain = demo_config(1, "");
    let shoal = Shoal::start(&plain);
    shoal.wait_healthy(1).await;
    assert!(crate::support::get(shoal.proxy, "/").await.is_ok());
    assert!(presented(shoal.proxy, Some("a.test")).await.is_err());

    write_config(&shoal.config_path(), &format!("{plain}{}", certs.section()));
    shoal.signal(Signal::SIGHUP);
    eventually(Duration::from_secs(10), "TLS on after reload", || async {
        presented(shoal.proxy, Some("a.test")).await.ok()
    })
    .await;
    let c = curl(&certs.ca_path, "b.test", shoal.proxy, "/headers", &[]).await;
    assert_eq!(c.code, 0, "{}", c.stderr);
    assert!(
        c.stdout.contains("\"x-forwarded-proto\":\"https\""),
        "{}",
        c.stdout
    );

    write_config(&shoal.config_path(), &plain);
    shoal.signal(Signal::SIGHUP);
    eventually(Duration::from_secs(10), "plain HTTP again", || async {
        crate::support::get(shoal.proxy, "/").await.ok()
    })
    .await;
}

fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

/// Session resumption: a returning client resumes by default (TLS 1.3, a
/// ticket from its first connection); with `tls.resumption: false` every
/// connection is a full handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_resume_unless_turned_off() {
    use rustls::HandshakeKind::{Full, Resumed};
    let certs = Certs::new();
    for (extra, second) in [("", Resumed), ("  resumption: false\n", Full)] {
        let shoal = started(&certs, extra).await;
        let config = client_config(&["http/1.1"]);
        let first = connect_with(config.clone(), shoal.proxy, Some("a.test"))
            .await
            .unwrap();
        assert_eq!(first.get_ref().1.handshake_kind(), Some(Full));
        // TLS 1.3 tickets come after the handshake: a request and its
        // answer carry them to the client.
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(first))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = http::Request::get("/")
            .header("host", "a.test")
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        assert_eq!(sender.send_request(req).await.unwrap().status(), 200);
        for _ in 0..2 {
            let again = connect_with(config.clone(), shoal.proxy, Some("a.test"))
                .await
                .unwrap();
            assert_eq!(
                again.get_ref().1.handshake_kind(),
                Some(second),
                "tls extra {extra:?}"
            );
        }
    }
}
