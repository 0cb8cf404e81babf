//! varnishtest (Debian's `varnish`), a tool not written for shoal, checks
//! byte by byte what reaches a backend and what comes back: each script in
//! `tests/vtc/` plays the client and a fake backend (`s1`) on either side
//! of a real shoal. See `tests/vtc/README.md`.
//!
//! HTTP/1.1 trailers, which varnishtest cannot read, are checked here with
//! raw sockets.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::raw::{find, Mode, RawBackend};
use crate::support::{read_to_close, upstreams_config, Shoal};

/// Runs `tests/vtc/{file}` against a fresh shoal whose only upstream is the
/// script's `s1`; fails with varnishtest's log (and shoal's) if it fails.
async fn varnishtest(file: &str) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let backend: SocketAddr = ([127, 0, 0, 1], port).into();
    let shoal = Shoal::start(&upstreams_config(
        &[backend],
        "proxy: { max_idle_per_backend: 0 }\n",
    ));
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vtc")
        .join(file);
    let run = tokio::process::Command::new("varnishtest")
        .args(["-v", "-t", "60"])
        .arg(format!("-Dbackend_port={port}"))
        .arg(format!("-Dshoal_port={}", shoal.proxy.port()))
        .arg(format!("-Dadmin_port={}", shoal.admin.port()))
        .arg(&script)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(90), run)
        .await
        .unwrap_or_else(|_| panic!("varnishtest {file} did not finish"))
        .expect("run varnishtest (Debian package `varnish`; scripts/test installs it)");
    let log = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        panic!(
            "varnishtest {file}: {}\n{log}\n{}\n--- shoal's log:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr),
            shoal.log().join("\n")
        );
    }
    assert!(log.contains(" passed "), "{log}");
}

async fn vtc_headers() {
    varnishtest("headers.vtc").await;
}

async fn vtc_bodies() {
    varnishtest("bodies.vtc").await;
}

async fn vtc_upgrade() {
    varnishtest("upgrade.vtc").await;
}

async fn vtc_smuggling() {
    varnishtest("smuggling.vtc").await;
}

/// Trailers of a chunked body pass both ways on HTTP/1.1 when announced in
/// a `Trailer` header (and, towards the client, asked for with
/// `TE: trailers`), as hyper sends them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_trailers_pass_both_ways() {
    let backend = RawBackend::start(Mode::AnswerAfterHead(
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: x-checksum\r\n\r\n\
          3\r\nabc\r\n0\r\nx-checksum: 42\r\n\r\n",
    ))
    .await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        "proxy: { max_idle_per_backend: 0 }\n",
    ));
    shoal.wait_upstreams(1).await;

    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(b"GET /t HTTP/1.1\r\nhost: x\r\nte: trailers\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let resp = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    assert!(
        resp.ends_with("\r\n\r\n3\r\nabc\r\n0\r\nx-checksum: 42\r\n\r\n"),
        "{resp:?}"
    );

    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    s.write_all(
        b"POST /up HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\ntrailer: x-sum\r\n\
          connection: close\r\n\r\n5\r\nhello\r\n0\r\nx-sum: 9\r\n\r\n",
    )
    .await
    .unwrap();
    let resp = read_to_close(&mut s, Duration::from_secs(5)).await.unwrap();
    assert!(resp.starts_with("HTTP/1.1 200 OK"), "{resp}");
    let got = crate::support::eventually(
        Duration::from_secs(5),
        "the upload at the backend",
        || async {
            backend
                .conns()
                .into_iter()
                .find(|c| c.bytes.starts_with(b"POST /up ") && c.closed)
                .map(|c| c.bytes)
        },
    )
    .await;
    let text = String::from_utf8_lossy(&got);
    let head_end = find(&got, b"\r\n\r\n").unwrap() + 4;
    assert!(
        text.to_ascii_lowercase().contains("\r\ntrailer: x-sum\r\n"),
        "{text:?}"
    );
    assert_eq!(
        &text[head_end..],
        "5\r\nhello\r\n0\r\nx-sum: 9\r\n\r\n",
        "{text:?}"
    );
}

crate::under_both_engines!(vtc_headers, vtc_bodies, vtc_upgrade, vtc_smuggling,);
