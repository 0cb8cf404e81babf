//! Several public listeners (`listeners:`): two serving the same backends,
//! a reload that adds and removes one while requests keep flowing on the
//! one that stays; `redirect_https` under both engines; the PROXY protocol
//! from a real HAProxy (`send-proxy` and `send-proxy-v2`, the client on
//! another loopback address than HAProxy), and the connections it refuses.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

use crate::support::raw::{Mode, RawBackend, OK};
use crate::support::tls::{TestCa, TlsClient};
use crate::support::{
    cli, eventually, free_port, get, read_response, read_to_close, Backend, Shoal,
};

/// A test CA and a certificate for `example.test`, on disk.
struct Cert {
    dir: tempfile::TempDir,
}

impl Cert {
    fn new() -> Cert {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new();
        ca.leaf(&["example.test"], "example.test")
            .write(dir.path(), "leaf");
        Cert { dir }
    }

    /// `tls: {cert, key}` as a flow mapping.
    fn tls(&self) -> String {
        let p = |n: &str| self.dir.path().join(n).display().to_string();
        format!(
            "{{ cert: \"{}\", key: \"{}\" }}",
            p("leaf.pem"),
            p("leaf.key")
        )
    }
}

fn upstreams(backend: SocketAddr, listeners: &str, extra: &str) -> String {
    format!(
        "admin: {{ listen: 127.0.0.1:0 }}\nupstreams:\n  - url: \"http://{backend}\"\nhealth: {{ interval: 1m, timeout: 1s }}\nlisteners:\n{listeners}{extra}"
    )
}

fn addr(port: u16) -> SocketAddr {
    ([127, 0, 0, 1], port).into()
}

/// A TCP connection from `from` (a loopback address other than 127.0.0.1).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    socket.connect(to).await.unwrap()
}

/// Two listeners, one plain and one TLS, serve the same backend; a reload
/// adds a third and removes the TLS one while a client keeps sending on
/// the plain one, none of whose requests fails. A reload whose new address
/// is taken changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listeners_serve_the_same_backends_and_reload_adds_and_removes() {
    let backend = Backend::start("b1").await;
    let cert = Cert::new();
    let (plain, secure, third) = (free_port(), free_port(), free_port());
    let two = format!(
        "  - {{ name: plain, listen: 127.0.0.1:{plain} }}\n  - {{ name: secure, listen: 127.0.0.1:{secure}, tls: {} }}\n",
        cert.tls()
    );
    let shoal = Shoal::start(&upstreams(backend.addr, &two, ""));
    shoal.wait_upstreams(1).await;

    let r = get(addr(plain), "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["instance"], "b1", "{:?}", r.body);
    let mut tls = TlsClient::connect(addr(secure), "example.test")
        .await
        .unwrap();
    let r = tls.get("example.test", "/headers").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["x-forwarded-proto"], "https", "{:?}", r.body);
    let status = shoal.status().await;
    let listed = &status["listeners"];
    assert_eq!(listed.as_array().unwrap().len(), 2, "{status}");
    assert_eq!(listed[0]["name"], "plain");
    assert_eq!(listed[0]["address"], format!("127.0.0.1:{plain}"));
    assert_eq!(listed[0]["tls"], false);
    assert_eq!(listed[1]["name"], "secure");
    assert_eq!(listed[1]["tls"], true);
    assert_eq!(listed[1]["proxy_protocol"], "off");
    shoal
        .wait_log(&format!(
            "proxy listening on 127.0.0.1:{secure} (https; listener secure)"
        ))
        .await;

    // Requests on the plain listener, new connections each, throughout.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load = {
        let (stop, sent, failed) = (stop.clone(), sent.clone(), failed.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                match get(addr(plain), "/").await {
                    Ok(r) if r.status == 200 => {}
                    other => {
                        eprintln!("failed: {:?}", other.map(|r| r.status));
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
                sent.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    // A taken address: nothing changes.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let path = shoal.config_path();
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(
        &path,
        original.replace(
            "listeners:\n",
            &format!("listeners:\n  - {{ name: busy, listen: 127.0.0.1:{taken_port} }}\n"),
        ),
    )
    .unwrap();
    let (code, out, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_ne!(code, 0, "{out}\n{err}");
    assert!(
        format!("{out}{err}").contains(&format!(
            "cannot listen on 127.0.0.1:{taken_port} (listeners[0].listen)"
        )),
        "{out}\n{err}"
    );
    assert_eq!(
        shoal.status().await["listeners"].as_array().unwrap().len(),
        2
    );
    drop(taken);

    // Remove `secure`, add `third`.
    let changed = original.replace(
        &format!(
            "  - {{ name: secure, listen: 127.0.0.1:{secure}, tls: {} }}\n",
            cert.tls()
        ),
        &format!("  - {{ name: third, listen: 127.0.0.1:{third} }}\n"),
    );
    assert_ne!(changed, original);
    std::fs::write(&path, changed).unwrap();
    let (code, out, err) = cli(shoal.admin, &["reload", "--config"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains(&format!("listener third added on 127.0.0.1:{third}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("listener secure on 127.0.0.1:{secure} removed")),
        "{out}"
    );

    let r = get(addr(third), "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["instance"], "b1", "{:?}", r.body);
    eventually(
        Duration::from_secs(5),
        "the TLS listener closed",
        || async {
            TcpStream::connect(addr(secure))
                .await
                .is_err()
                .then_some(())
        },
    )
    .await;
    let names: Vec<String> = shoal.status().await["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["plain", "third"]);
    let (code, out, _) = cli(shoal.admin, &["status"]).await;
    assert!(
        out.contains(&format!(
            "on 127.0.0.1:{plain} (plain), 127.0.0.1:{third} (third)"
        )),
        "{code}: {out}"
    );

    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    assert!(
        sent.load(Ordering::Relaxed) > 10,
        "too few requests to tell"
    );
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "requests failed on the listener that stayed"
    );
}

/// `redirect_https`: 301 to the TLS listener's port with the request's
/// host and target; nothing reaches the backend.
async fn redirect_to_the_tls_listener() {
    let backend = RawBackend::start(Mode::AnswerAfterHead(OK)).await;
    let cert = Cert::new();
    let (plain, secure) = (free_port(), free_port());
    let list = format!(
        "  - {{ listen: 127.0.0.1:{plain}, redirect_https: true }}\n  - {{ listen: 127.0.0.1:{secure}, tls: {} }}\n",
        cert.tls()
    );
    let shoal = Shoal::start(&upstreams(backend.addr, &list, ""));
    shoal.wait_upstreams(1).await;

    let mut s = TcpStream::connect(addr(plain)).await.unwrap();
    s.write_all(format!("GET /p?q=1 HTTP/1.1\r\nHost: example.test:{plain}\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let head = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(
        head.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{head}"
    );
    assert!(
        head.to_ascii_lowercase().contains(&format!(
            "\r\nlocation: https://example.test:{secure}/p?q=1\r\n"
        )),
        "{head}"
    );
    // Keep-alive: a second request on the same connection, Host without a port.
    s.write_all(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(&mut s, Duration::from_secs(5)).await;
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("\r\nlocation: https://example.test:{secure}/\r\n")),
        "{head}"
    );
    assert!(backend.conns().is_empty(), "a request reached the backend");
    // The TLS listener itself proxies.
    let mut tls = TlsClient::connect(addr(secure), "example.test")
        .await
        .unwrap();
    assert_eq!(tls.get("example.test", "/").await.unwrap().status, 200);
}

crate::under_both_engines!(redirect_to_the_tls_listener);

/// HAProxy, run by the test from its temp dir (`haproxy -f FILE -db`),
/// killed by PID when dropped.
struct Haproxy {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Haproxy {
    /// One TCP frontend per `(port, shoal listener, send-proxy option)`.
    async fn start(routes: &[(u16, SocketAddr, &str)]) -> Haproxy {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = String::from(
            "global\n  maxconn 100\ndefaults\n  mode tcp\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n",
        );
        for (i, (port, to, send)) in routes.iter().enumerate() {
            cfg.push_str(&format!(
                "frontend fe{i}\n  bind 127.0.0.1:{port}\n  default_backend be{i}\nbackend be{i}\n  server shoal {to} {send}\n"
            ));
        }
        let path = dir.path().join("haproxy.cfg");
        std::fs::write(&path, cfg).unwrap();
        let child = Command::new(crate::support::nginx::sbin("haproxy"))
            .arg("-f")
            .arg(&path)
            .arg("-db")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start haproxy (apt-get install haproxy)");
        let haproxy = Haproxy { child, _dir: dir };
        for (port, ..) in routes {
            eventually(Duration::from_secs(10), "haproxy listening", || async {
                TcpStream::connect(addr(*port)).await.ok().map(|_| ())
            })
            .await;
        }
        haproxy
    }
}

impl Drop for Haproxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// GET /headers through `to` from 127.0.0.2: the demo app's view of the
/// forwarding headers.
async fn headers_from_second_address(to: SocketAddr) -> serde_json::Value {
    let mut s = connect_from([127, 0, 0, 2], to).await;
    s.write_all(b"GET /headers HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let text = read_to_close(&mut s, Duration::from_secs(5))
        .await
        .expect("an answer");
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    let body = &text[text.find("\r\n\r\n").unwrap() + 4..];
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// HAProxy with `send-proxy` and with `send-proxy-v2` in front of shoal
/// listeners (the v2 one twice: plain, and TLS after the header): the
/// backend sees the client's address (127.0.0.2), not HAProxy's
/// (127.0.0.1), in X-Forwarded-For and X-Real-IP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_send_proxy_v1_and_v2_carry_the_client_address() {
    let backend = Backend::start("b1").await;
    let cert = Cert::new();
    let (v1, v2, v2tls) = (free_port(), free_port(), free_port());
    let list = format!(
        "  - {{ name: pp1, listen: 127.0.0.1:{v1}, proxy_protocol: v1 }}\n  - {{ name: pp2, listen: 127.0.0.1:{v2}, proxy_protocol: v2 }}\n  - {{ name: pp2tls, listen: 127.0.0.1:{v2tls}, proxy_protocol: v2, tls: {} }}\n",
        cert.tls()
    );
    let shoal = Shoal::start(&upstreams(
        backend.addr,
        &list,
        "trusted_proxies: [127.0.0.1/32]\n",
    ));
    shoal.wait_upstreams(1).await;
    let (h1, h2, h3) = (free_port(), free_port(), free_port());
    let _haproxy = Haproxy::start(&[
        (h1, addr(v1), "send-proxy"),
        (h2, addr(v2), "send-proxy-v2"),
        (h3, addr(v2tls), "send-proxy-v2"),
    ])
    .await;

    for (front, which) in [(h1, "send-proxy"), (h2, "send-proxy-v2")] {
        let seen = headers_from_second_address(addr(front)).await;
        assert_eq!(seen["x-forwarded-for"], "127.0.0.2", "{which}: {seen}");
        assert_eq!(seen["x-real-ip"], "127.0.0.2", "{which}: {seen}");
    }
    let tcp = connect_from([127, 0, 0, 2], addr(h3)).await;
    let mut tls = TlsClient::over(tcp, "example.test").await.unwrap();
    let seen = tls.get("example.test", "/headers").await.unwrap().json();
    assert_eq!(seen["x-forwarded-for"], "127.0.0.2", "TLS: {seen}");
    assert_eq!(seen["x-real-ip"], "127.0.0.2", "TLS: {seen}");
    assert_eq!(seen["x-forwarded-proto"], "https", "TLS: {seen}");
    let status = shoal.status().await;
    assert_eq!(status["listeners"][0]["proxy_protocol"], "v1", "{status}");
    assert_eq!(status["listeners"][1]["proxy_protocol"], "v2", "{status}");
}

/// Refused, with nothing sent to the backend: a PROXY header from a peer
/// outside `trusted_proxies`, plain HTTP from a trusted peer, a v1 header
/// with garbage. A valid header from a trusted peer is served (so the
/// refusals are not for another reason).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_protocol_refusals() {
    let backend = RawBackend::start(Mode::AnswerComplete).await;
    let port = free_port();
    let list = format!("  - {{ listen: 127.0.0.1:{port}, proxy_protocol: v1 }}\n");
    let shoal = Shoal::start(&upstreams(
        backend.addr,
        &list,
        "trusted_proxies: [127.0.0.1/32]\nlimits: { header_read_timeout: 1s }\n",
    ));
    shoal.wait_upstreams(1).await;
    let to = addr(port);
    let request = "GET / HTTP/1.1\r\nHost: app.test\r\nConnection: close\r\n\r\n";
    let header = format!("PROXY TCP4 192.0.2.7 127.0.0.1 40000 {port}\r\n");

    // Served: trusted peer, valid header; the backend sees the client.
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(format!("{header}{request}").as_bytes())
        .await
        .unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(
        backend
            .text()
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 192.0.2.7\r\n"),
        "{}",
        backend.text()
    );
    backend.clear();

    // Served: the header cut in two segments (right after the source
    // port, where the line alone would not parse), the request after a
    // pause.
    let cut = header.find("40000 ").unwrap() + 6;
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(&header.as_bytes()[..cut]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.write_all(&header.as_bytes()[cut..]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.write_all(request.as_bytes()).await.unwrap();
    let answer = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "split header: {answer}");
    backend.clear();

    // Refused after limits.header_read_timeout: a header that never ends.
    let mut s = TcpStream::connect(to).await.unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.7").await.unwrap();
    let began = std::time::Instant::now();
    let answer = read_to_close(&mut s, Duration::from_secs(5)).await;
    assert_eq!(answer.as_deref(), Some(""), "a slow header was not closed");
    assert!(
        began.elapsed() >= Duration::from_millis(800),
        "{:?}",
        began.elapsed()
    );

    for (from, bytes, what) in [
        (
            [127, 0, 0, 2],
            format!("{header}{request}"),
            "untrusted peer",
        ),
        ([127, 0, 0, 1], request.to_string(), "no header"),
        (
            [127, 0, 0, 1],
            format!("PROXY TCP4 not-an-ip 127.0.0.1 x y\r\n{request}"),
            "garbage header",
        ),
    ] {
        let mut s = connect_from(from, to).await;
        let _ = s.write_all(bytes.as_bytes()).await;
        let answer = read_to_close(&mut s, Duration::from_secs(5)).await;
        assert_eq!(
            answer.as_deref(),
            Some(""),
            "{what}: not closed without an answer"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        backend.conns().is_empty(),
        "reached the backend: {}",
        backend.text()
    );

    let m = shoal.metrics().await;
    assert_eq!(
        m["shoal_proxy_protocol_refused_total{reason=\"untrusted\"}"], 1.0,
        "{m:?}"
    );
    assert_eq!(
        m["shoal_proxy_protocol_refused_total{reason=\"invalid\"}"], 2.0,
        "{m:?}"
    );
    assert_eq!(
        m["shoal_proxy_protocol_refused_total{reason=\"timeout\"}"], 1.0,
        "{m:?}"
    );
    shoal
        .wait_log("connection refused: the peer is not in trusted_proxies")
        .await;
}
