//! TLS to backends: `https://` upstreams and `app.tls`, against real TLS
//! servers started by each test — nginx (Debian's, `ssl` and `http2` on its
//! `listen`) and, for mTLS, HAProxy (`verify required`, which refuses a
//! missing client certificate in the TLS handshake itself; nginx's
//! `ssl_verify_client on` answers HTTP 400 instead, which shoal passes on
//! as the backend's answer). Certificates come from a CA made by the test
//! (rcgen). Each server is one process killed by PID when dropped.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::nginx::sbin;
use crate::support::tls::{Leaf, TestCa};
use crate::support::{eventually, free_port, get, Shoal};

/// A server process the test started; killed and reaped on drop.
struct Server {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    fn access_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("access.log")).unwrap_or_default()
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }
}

async fn listening(child: &mut Child, port: u16, what: &str, log: &Path) {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "{what} exited with {status}: {}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what} did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// nginx serving TLS with `leaf` on `port` (a free one when `None`), h2 by
/// ALPN when `http2`. Every answer is `200 nginx over TLS` with the
/// protocol it was asked in as `X-Backend-Protocol` (also in access.log).
async fn nginx(root: &Path, name: &str, leaf: &Leaf, http2: bool, port: Option<u16>) -> Server {
    nginx_with(root, name, leaf, http2, port, "").await
}

/// [`nginx`] with more `location` blocks in its server.
async fn nginx_with(
    root: &Path,
    name: &str,
    leaf: &Leaf,
    http2: bool,
    port: Option<u16>,
    locations: &str,
) -> Server {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (cert, key) = leaf.write(&dir, "backend");
    let port = port.unwrap_or_else(free_port);
    let conf = format!(
        "master_process off;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log info;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  log_format proto '$server_protocol $request';\n  access_log {d}/access.log proto;\n\
           client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n  fastcgi_temp_path {d}/fastcgi;\n\
           uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:{port} ssl{h2};\n    ssl_certificate {cert};\n\
             ssl_certificate_key {key};\n    {locations}\n\
             location / {{ add_header X-Backend-Protocol $server_protocol always; return 200 \"nginx over TLS\\n\"; }}\n  }}\n}}\n",
        d = dir.display(),
        h2 = if http2 { " http2" } else { "" },
        cert = cert.display(),
        key = key.display(),
    );
    let conf_path = dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let error_log = dir.join("error.log");
    let mut child = Command::new(sbin("nginx"))
        .args(["-p", dir.to_str().unwrap(), "-e"])
        .arg(&error_log)
        .arg("-c")
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nginx (Debian package nginx) must be installed");
    listening(&mut child, port, "nginx", &error_log).await;
    Server { child, port, dir }
}

/// HAProxy terminating TLS with `leaf` and asking for a client certificate
/// signed by `client_ca` (`verify required`): a client without one fails
/// the handshake. It answers `200 haproxy mTLS` itself.
async fn haproxy_mtls(root: &Path, leaf: &Leaf, client_ca: &TestCa) -> Server {
    let dir = root.join("haproxy");
    std::fs::create_dir_all(&dir).unwrap();
    let pem = dir.join("backend.pem");
    std::fs::write(&pem, format!("{}{}", leaf.cert_pem, leaf.key_pem)).unwrap();
    let ca = client_ca.write(&dir);
    let port = free_port();
    let conf = format!(
        "global\n  maxconn 100\n\
         defaults\n  mode http\n  timeout connect 5s\n  timeout client 10s\n  timeout server 10s\n\
         frontend tls\n  bind 127.0.0.1:{port} ssl crt {pem} ca-file {ca} verify required alpn http/1.1\n\
           http-request return status 200 content-type text/plain string \"haproxy mTLS\"\n",
        pem = pem.display(),
        ca = ca.display(),
    );
    let conf_path = dir.join("haproxy.cfg");
    std::fs::write(&conf_path, conf).unwrap();
    let log = dir.join("haproxy.log");
    let out = std::fs::File::create(&log).unwrap();
    let mut child = Command::new(sbin("haproxy"))
        .args(["-db", "-f"])
        .arg(&conf_path)
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("haproxy (Debian package haproxy) must be installed");
    listening(&mut child, port, "haproxy", &log).await;
    Server { child, port, dir }
}

/// One `https://` upstream with `tls` (a flow mapping's inside). Health
/// checks (TLS handshakes) every minute; `panic_mode`, so that a backend
/// whose first check failed is still tried and its error is the answer.
fn config(url: &str, tls: &str, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         upstreams:\n  - url: \"{url}\"\n    tls: {{ {tls} }}\n\
         health: {{ interval: 1m, timeout: 2s }}\nbalance: {{ panic_mode: true }}\n{extra}"
    )
}

fn path(p: &Path) -> String {
    p.display().to_string()
}

/// A 502 with the request id, one log line naming `reason`, and nothing
/// served by the backend (no fallback to cleartext or anything else).
async fn refused(shoal: &Shoal, backend: &Server, reason: &str) {
    let r = get(shoal.proxy, "/").await.expect("an answer from shoal");
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.body));
    let id = r
        .headers
        .get("x-request-id")
        .expect("a request id")
        .to_str()
        .unwrap()
        .to_string();
    assert!(!id.is_empty());
    let expected = format!("backend {}: {reason}", backend.url());
    eventually(Duration::from_secs(5), "the log line", || async {
        shoal
            .log()
            .iter()
            .any(|l| l.contains(&expected) && l.contains(&id))
            .then_some(())
    })
    .await;
    assert_eq!(backend.access_log(), "", "the backend served nothing");
}

crate::under_both_engines!(
    trusted_ca_gets_the_answer,
    wrong_ca_wrong_name_and_expired_are_502,
    client_certificate_for_mtls,
    alpn_picks_h2_or_http1,
);

/// 1. nginx with a certificate from the test CA; `ca:` that CA. The name
///    checked is the URL's host (127.0.0.1, in the certificate) unless
///    `server_name` says another.
async fn trusted_ca_gets_the_answer() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let leaf = ca.leaf(&["backend.test", "127.0.0.1"], "backend");
    let backend = nginx(root.path(), "nginx", &leaf, false, None).await;

    let shoal = Shoal::start(&config(
        &backend.url(),
        &format!("ca: \"{}\"", path(&ca_file)),
        "",
    ));
    for _ in 0..3 {
        let r = get(shoal.proxy, "/").await.unwrap();
        assert_eq!(r.status, 200);
        assert_eq!(&r.body[..], b"nginx over TLS\n");
    }
    assert_eq!(backend.access_log().lines().count(), 3);
    drop(shoal);

    let shoal = Shoal::start(&config(
        &backend.url(),
        &format!("ca: \"{}\", server_name: backend.test", path(&ca_file)),
        "",
    ));
    let r = get(shoal.proxy, "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"nginx over TLS\n");
}

/// 2. An unknown CA, a name the certificate does not carry, an expired
///    certificate: each a 502 and one log line with the reason.
async fn wrong_ca_wrong_name_and_expired_are_502() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let other_dir = root.path().join("other");
    std::fs::create_dir_all(&other_dir).unwrap();
    let other_ca = TestCa::named("another CA").write(&other_dir);

    let good = nginx(
        root.path(),
        "good",
        &ca.leaf(&["backend.test"], "backend"),
        false,
        None,
    )
    .await;
    let shoal = Shoal::start(&config(
        &good.url(),
        &format!("ca: \"{}\", server_name: backend.test", path(&other_ca)),
        "",
    ));
    refused(&shoal, &good, "TLS: certificate signed by an unknown CA").await;
    drop(shoal);

    let shoal = Shoal::start(&config(
        &good.url(),
        &format!("ca: \"{}\", server_name: other.test", path(&ca_file)),
        "",
    ));
    refused(
        &shoal,
        &good,
        "TLS: certificate not valid for `other.test` (it names backend.test",
    )
    .await;
    drop(shoal);

    let expired = nginx(
        root.path(),
        "expired",
        &ca.expired_leaf(&["backend.test"], "backend"),
        false,
        None,
    )
    .await;
    let shoal = Shoal::start(&config(
        &expired.url(),
        &format!("ca: \"{}\", server_name: backend.test", path(&ca_file)),
        "",
    ));
    refused(&shoal, &expired, "TLS: certificate expired").await;
}

/// 3. mTLS: a backend that requires a client certificate from its CA.
///    Without `cert`/`key`: 502 and the reason; with them: 200.
async fn client_certificate_for_mtls() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let backend = haproxy_mtls(root.path(), &ca.leaf(&["backend.test"], "backend"), &ca).await;
    let (cert, key) = ca
        .leaf(&["shoal.test"], "shoal")
        .write(root.path(), "client");

    let shoal = Shoal::start(&config(
        &backend.url(),
        &format!("ca: \"{}\", server_name: backend.test", path(&ca_file)),
        "",
    ));
    let r = get(shoal.proxy, "/").await.unwrap();
    assert_eq!(r.status, 502);
    // TLS 1.3: the handshake completes on shoal's side, and the backend's
    // refusal is an alert read with the response (hyper: "connection
    // error: …").
    let url = backend.url();
    eventually(Duration::from_secs(5), "the log line", || async {
        shoal
            .log()
            .iter()
            .any(|l| {
                l.contains("request failed")
                    && l.contains(&format!("backend {url}: "))
                    && l.contains("TLS: the backend requires a client certificate")
            })
            .then_some(())
    })
    .await;
    drop(shoal);

    let shoal = Shoal::start(&config(
        &backend.url(),
        &format!(
            "ca: \"{}\", server_name: backend.test, cert: \"{}\", key: \"{}\"",
            path(&ca_file),
            path(&cert),
            path(&key)
        ),
        "",
    ));
    let r = get(shoal.proxy, "/").await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(&r.body[..], b"haproxy mTLS");
}

/// 4. ALPN: shoal offers h2 and http/1.1; an h2-capable nginx is spoken to
///    in HTTP/2, an http/1.1-only one in HTTP/1.1 (nginx's own
///    `$server_protocol`, in a response header and its access log).
async fn alpn_picks_h2_or_http1() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let tls = format!("ca: \"{}\", server_name: backend.test", path(&ca_file));
    for (http2, expected) in [(true, "HTTP/2.0"), (false, "HTTP/1.1")] {
        let name = if http2 { "h2" } else { "h1" };
        let backend = nginx(
            root.path(),
            name,
            &ca.leaf(&["backend.test"], "backend"),
            http2,
            None,
        )
        .await;
        let shoal = Shoal::start(&config(&backend.url(), &tls, ""));
        for _ in 0..3 {
            let r = get(shoal.proxy, "/alpn").await.unwrap();
            assert_eq!(r.status, 200);
            assert_eq!(r.headers["x-backend-protocol"], expected);
        }
        let log = backend.access_log();
        assert_eq!(
            log.lines().filter(|l| l.starts_with(expected)).count(),
            3,
            "{log}"
        );
        // The status shows what the backend chose.
        let s = shoal.status().await;
        let shown = if http2 { "h2" } else { "http1" };
        assert_eq!(s["upstreams"][0]["protocol"], shown, "{s}");
        if http2 {
            assert_eq!(
                s["upstreams"][0]["connections_opened"], 1,
                "one shared h2 connection: {s}"
            );
        }
    }
}

/// `protocol: h2` on a TLS upstream is h2 over TLS only: against nginx
/// with h2 it works; the request is HTTP/2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_h2_over_tls() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let backend = nginx(
        root.path(),
        "h2",
        &ca.leaf(&["backend.test"], "backend"),
        true,
        None,
    )
    .await;
    let shoal = Shoal::start(&format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         upstreams:\n  - url: \"{}\"\n    protocol: h2\n    tls: {{ ca: \"{}\", server_name: backend.test }}\n\
         health: {{ interval: 1m, timeout: 2s }}\n",
        backend.url(),
        path(&ca_file)
    ));
    shoal.wait_upstreams(1).await;
    let r = get(shoal.proxy, "/").await.unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["x-backend-protocol"], "HTTP/2.0");
}

/// 5. Active health checks speak TLS with the upstream's settings: with
///    the right CA the upstream comes up; when the backend's certificate
///    is replaced by one from another CA, the checks fail and it goes
///    down, with the reason in `/api/v1/status`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_use_tls() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let backend = nginx(
        root.path(),
        "before",
        &ca.leaf(&["backend.test"], "backend"),
        false,
        None,
    )
    .await;
    let port = backend.port;
    let shoal = Shoal::start(&format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         upstreams:\n  - url: \"{}\"\n    tls: {{ ca: \"{}\", server_name: backend.test }}\n\
         health: {{ path: /health, interval: 300ms, timeout: 300ms, fall: 1, rise: 1 }}\n",
        backend.url(),
        path(&ca_file)
    ));
    shoal.wait_upstreams(1).await;
    let s = shoal.status().await;
    assert_eq!(s["upstreams"][0]["last_check"]["passed"], true, "{s}");
    assert!(
        backend.access_log().contains("GET /health"),
        "the check reached nginx over TLS"
    );

    // Same place, a certificate from a CA shoal does not trust.
    drop(backend);
    let _impostor = nginx(
        root.path(),
        "after",
        &TestCa::named("impostor CA").leaf(&["backend.test"], "backend"),
        false,
        Some(port),
    )
    .await;
    let s = shoal
        .wait_health("upstreams", "down", 1, Duration::from_secs(10))
        .await;
    let detail = s["upstreams"][0]["last_check"]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        detail.contains("TLS: certificate signed by an unknown CA"),
        "{s}"
    );
}

/// `app.tls`: the instances serve TLS themselves (here nginx, one per
/// instance on the port shoal gives it), checked against `ca` with the
/// name `server_name`; health checks and requests both go over TLS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_instances_serving_tls() {
    let root = tempfile::tempdir().unwrap();
    let d = root.path();
    let ca = TestCa::new();
    let ca_file = ca.write(d);
    let (cert, key) = ca.leaf(&["app.test"], "app").write(d, "app");
    // A template nginx config; each instance's copy gets its port.
    let template = format!(
        "master_process off;\ndaemon off;\npid {d}/nginx-@PORT@.pid;\nerror_log {d}/error-@PORT@.log warn;\n\
         events {{ worker_connections 64; }}\n\
         http {{\n  access_log off;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           server {{\n    listen 127.0.0.1:@PORT@ ssl;\n    ssl_certificate {cert};\n    ssl_certificate_key {key};\n\
             location / {{ return 200 \"instance on @PORT@\\n\"; }}\n  }}\n}}\n",
        d = d.display(),
        cert = cert.display(),
        key = key.display(),
    );
    std::fs::write(d.join("template.conf"), template).unwrap();
    let command = format!(
        "sed s/@PORT@/{{port}}/g {d}/template.conf > {d}/nginx-{{port}}.conf && exec {nginx} -p {d} -e {d}/error-{{port}}.log -c {d}/nginx-{{port}}.conf",
        d = d.display(),
        nginx = sbin("nginx").display(),
    );
    let shoal = Shoal::start(&format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         app:\n  command: '{command}'\n  instances: 2\n  stop_timeout: 2s\n  \
         tls: {{ ca: \"{ca}\", server_name: app.test }}\n  \
         health: {{ path: /health, interval: 300ms, timeout: 300ms }}\n",
        ca = path(&ca_file),
    ));
    shoal.wait_healthy(2).await;
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = get(shoal.proxy, "/").await.unwrap();
        assert_eq!(r.status, 200);
        seen.insert(String::from_utf8_lossy(&r.body).into_owned());
    }
    let status = shoal.status().await;
    assert_eq!(
        seen.len(),
        2,
        "both instances answered: {seen:?} {status} {:?}",
        std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect::<Vec<_>>()
    );
}

/// Passive health counts a TLS failure like a refused connection: beside a
/// good nginx, a backend that refuses shoal's (missing) client certificate
/// is taken out of rotation after `max_fails`, and the GETs it failed are
/// retried on nginx, so every client gets 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_failures_count_for_passive_health() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let good = nginx(
        root.path(),
        "good",
        &ca.leaf(&["backend.test"], "backend"),
        false,
        None,
    )
    .await;
    let mtls = haproxy_mtls(root.path(), &ca.leaf(&["backend.test"], "backend"), &ca).await;
    let tls = format!(
        "{{ ca: \"{}\", server_name: backend.test }}",
        path(&ca_file)
    );
    let shoal = Shoal::start(&format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\n\
         upstreams:\n  - url: \"{}\"\n    tls: {tls}\n  - url: \"{}\"\n    tls: {tls}\n\
         health: {{ interval: 1m, timeout: 2s }}\nbalance: {{ algorithm: round_robin }}\n\
         proxy: {{ max_fails: 1, fail_timeout: 1m }}\n",
        good.url(),
        mtls.url(),
    ));
    shoal.wait_upstreams(2).await;
    for _ in 0..4 {
        let r = get(shoal.proxy, "/").await.unwrap();
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
        assert_eq!(&r.body[..], b"nginx over TLS\n");
    }
    let s = shoal.status().await;
    let mtls_status = s["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["id"] == mtls.url())
        .unwrap()
        .clone();
    assert_eq!(mtls_status["health"], "ejected", "{s}");
    // The line may trail the status on a loaded machine.
    shoal
        .wait_log("out of rotation after failed requests (passive health)")
        .await;
}

/// A WebSocket through a TLS backend that chose h2 (nginx with `http2`,
/// proxying `/ws` to a demo app): an upgrade needs HTTP/1.1, so it gets a
/// connection of its own offering `http/1.1` alone, while plain requests
/// stay on the shared h2 connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_to_a_backend_that_chose_h2() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;

    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let app = crate::support::Backend::start("ws-app").await;
    let ws = format!(
        "location /ws {{ proxy_pass http://{}; proxy_http_version 1.1; \
         proxy_set_header Upgrade $http_upgrade; proxy_set_header Connection upgrade; }}",
        app.addr
    );
    let backend = nginx_with(
        root.path(),
        "h2",
        &ca.leaf(&["backend.test"], "backend"),
        true,
        None,
        &ws,
    )
    .await;
    let shoal = Shoal::start(&config(
        &backend.url(),
        &format!("ca: \"{}\", server_name: backend.test", path(&ca_file)),
        "",
    ));
    let r = get(shoal.proxy, "/").await.unwrap();
    assert_eq!(r.headers["x-backend-protocol"], "HTTP/2.0");

    let (mut socket, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", shoal.proxy))
        .await
        .expect("ws connect through shoal and nginx");
    assert_eq!(resp.status(), 101);
    for i in 0..5 {
        let text = format!("hello {i}");
        socket.send(Message::text(text.clone())).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(10), socket.next())
            .await
            .expect("an echo")
            .expect("open")
            .expect("a message");
        assert_eq!(got, Message::text(text));
    }
    // nginx logs an upgraded request when its connection ends.
    socket.close(None).await.unwrap();
    eventually(
        Duration::from_secs(10),
        "/ws in nginx's log, over HTTP/1.1",
        || async {
            backend
                .access_log()
                .lines()
                .any(|l| l.starts_with("HTTP/1.1 GET /ws"))
                .then_some(())
        },
    )
    .await;
    let r = get(shoal.proxy, "/").await.unwrap();
    assert_eq!(
        r.headers["x-backend-protocol"], "HTTP/2.0",
        "still h2 for the rest"
    );
}

/// mTLS with nginx requiring a client certificate (`ssl_verify_client
/// on`): with shoal's `cert`/`key` nginx verifies it and answers; without
/// one, nginx itself answers 400 (it refuses in HTTP, not in the
/// handshake), and shoal passes that answer on — never a 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_requiring_a_client_certificate() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new();
    let ca_file = ca.write(root.path());
    let (cert, key) = ca
        .leaf(&["shoal.test"], "shoal-client")
        .write(root.path(), "client");
    let backend = nginx_with(
        root.path(),
        "nginx-mtls",
        &ca.leaf(&["backend.test"], "backend"),
        false,
        None,
        &format!(
            "ssl_verify_client on;\n    ssl_client_certificate {};\n    \
             location /who {{ return 200 \"verify=$ssl_client_verify dn=$ssl_client_s_dn\\n\"; }}",
            ca_file.display()
        ),
    )
    .await;
    let tls = |client: bool| {
        let mut t = format!("ca: \"{}\", server_name: backend.test", path(&ca_file));
        if client {
            t.push_str(&format!(
                ", cert: \"{}\", key: \"{}\"",
                path(&cert),
                path(&key)
            ));
        }
        t
    };
    let shoal = Shoal::start(&config(&backend.url(), &tls(true), ""));
    let r = get(shoal.proxy, "/who").await.unwrap();
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let body = String::from_utf8_lossy(&r.body);
    assert!(body.starts_with("verify=SUCCESS dn="), "{body}");
    assert!(body.contains("CN=shoal-client"), "{body}");
    drop(shoal);

    let shoal = Shoal::start(&config(&backend.url(), &tls(false), ""));
    let r = get(shoal.proxy, "/who").await.unwrap();
    assert_eq!(r.status, 400, "{}", String::from_utf8_lossy(&r.body));
    assert!(String::from_utf8_lossy(&r.body).contains("No required SSL certificate"));
}
