//! Response compression (`compress:`): nginx serves files without
//! compressing (its `gzip` is off), shoal compresses them on the way.
//! curl (`--compressed`) and Python's `gzip`, `brotli` and `zstandard`
//! decoders get the original bytes back for each codec; what must be left
//! alone is (`identity`, `no-transform`, a small body, `image/png`, HEAD,
//! a range); a stream is flushed as it flows; a 1 GiB response is
//! compressed in bounded memory. Under both engines: the native one must
//! hand these requests to hyper's path, or they would go uncompressed.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::nginx::Nginx;
use crate::support::{demo_config, request, rss, upstreams_config, Reply, Shoal};

crate::under_both_engines!(
    each_codec_decodes_to_the_original,
    what_must_be_left_alone_is,
    a_stream_is_flushed_as_it_flows,
    a_reload_turns_compression_on,
);

const MIB: u64 = 1024 * 1024;

/// A JSON document of `n` records: text that compresses well.
fn json_doc(n: usize) -> Vec<u8> {
    let items: Vec<String> = (0..n)
        .map(|i| format!("{{\"id\":{i},\"name\":\"item-{i}\",\"tags\":[\"a\",\"b\"]}}"))
        .collect();
    format!("[{}]\n", items.join(",\n")).into_bytes()
}

/// nginx serving a directory of files, with its own compression off.
struct Site {
    nginx: Nginx,
    big: Vec<u8>,
    _root: tempfile::TempDir,
}

async fn site() -> Site {
    let root = tempfile::tempdir().unwrap();
    let big = json_doc(3000);
    let d = root.path();
    std::fs::write(d.join("big.json"), &big).unwrap();
    std::fs::create_dir(d.join("nt")).unwrap();
    std::fs::write(d.join("nt/big.json"), &big).unwrap();
    std::fs::write(d.join("vary.json"), &big).unwrap();
    std::fs::write(d.join("small.txt"), vec![b'x'; 100]).unwrap();
    std::fs::write(d.join("pic.png"), &big).unwrap();
    let nginx = Nginx::start(&format!(
        "root {};\n types {{ application/json json; text/plain txt; image/png png; }}\n \
         location /nt/ {{ add_header Cache-Control no-transform; }}\n \
         location = /vary.json {{ add_header Vary Origin; }}",
        d.display()
    ))
    .await;
    Site {
        nginx,
        big,
        _root: root,
    }
}

fn shoal_for(site: &Site, compress: &str) -> Shoal {
    Shoal::start(&upstreams_config(&[site.nginx.addr], compress))
}

async fn fetch(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "site.test");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    request(addr, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

/// `data` decoded by Python's decoder of `codec`.
fn python_decode(codec: &str, data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let (src, dst) = (dir.path().join("in"), dir.path().join("out"));
    std::fs::write(&src, data).unwrap();
    let script = "import sys, gzip, brotli, zstandard\n\
        codec, src, dst = sys.argv[1:]\n\
        data = open(src, 'rb').read()\n\
        if codec == 'gzip': out = gzip.decompress(data)\n\
        elif codec == 'br': out = brotli.decompress(data)\n\
        else: out = zstandard.ZstdDecompressor().decompressobj().decompress(data)\n\
        open(dst, 'wb').write(out)\n";
    let status = Command::new("python3")
        .args(["-c", script, codec])
        .arg(&src)
        .arg(&dst)
        .status()
        .expect("python3 (with the pip packages brotli and zstandard; scripts/test installs them)");
    assert!(status.success(), "python could not decode {codec}");
    std::fs::read(&dst).unwrap()
}

/// curl `--compressed` with this `Accept-Encoding`: (headers, decoded body).
fn curl(addr: SocketAddr, path: &str, accept: &str) -> (String, Vec<u8>) {
    let out = Command::new("curl")
        .args(["-s", "--compressed", "-D", "/dev/stderr", "-H"])
        .arg(format!("Accept-Encoding: {accept}"))
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("curl");
    assert!(out.status.success(), "curl failed: {out:?}");
    (
        String::from_utf8_lossy(&out.stderr).to_lowercase(),
        out.stdout,
    )
}

async fn each_codec_decodes_to_the_original() {
    let site = site().await;
    let shoal = shoal_for(&site, "compress: { enabled: true }\n");
    shoal.wait_upstreams(1).await;
    for codec in ["gzip", "br", "zstd"] {
        let r = fetch(
            shoal.proxy,
            "GET",
            "/big.json",
            &[("accept-encoding", codec)],
        )
        .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.headers["content-encoding"], codec);
        assert_eq!(r.headers["vary"], "Accept-Encoding");
        assert!(!r.headers.contains_key("content-length"), "{:?}", r.headers);
        let etag = r.headers["etag"].to_str().unwrap();
        assert!(
            etag.starts_with("W/\""),
            "the strong ETag made weak: {etag}"
        );
        assert!(
            r.body.len() < site.big.len() / 4,
            "{codec}: {} bytes from {}",
            r.body.len(),
            site.big.len()
        );
        assert!(python_decode(codec, &r.body) == site.big, "{codec}: python");
        let (head, body) = curl(shoal.proxy, "/big.json", codec);
        assert!(
            head.contains(&format!("content-encoding: {codec}")),
            "{head}"
        );
        assert!(body == site.big, "{codec}: curl --compressed");
    }
    // The server's order on a tie (zstd, br, gzip); the client's q-values
    // over it; `x-gzip`.
    for (accept, chosen) in [
        ("gzip, deflate, br, zstd", "zstd"),
        ("gzip, br", "br"),
        ("zstd;q=0.5, gzip", "gzip"),
        ("*", "zstd"),
        ("x-gzip", "gzip"),
    ] {
        let r = fetch(
            shoal.proxy,
            "GET",
            "/big.json",
            &[("accept-encoding", accept)],
        )
        .await;
        assert_eq!(r.headers["content-encoding"], chosen, "{accept}");
    }
    // An existing Vary is kept, Accept-Encoding added.
    let r = fetch(
        shoal.proxy,
        "GET",
        "/vary.json",
        &[("accept-encoding", "gzip")],
    )
    .await;
    let vary: Vec<_> = r.headers.get_all("vary").iter().collect();
    assert_eq!(vary, ["Origin", "Accept-Encoding"]);
}

async fn what_must_be_left_alone_is() {
    let site = site().await;
    let shoal = shoal_for(
        &site,
        "compress:\n  enabled: true\n  codecs: [gzip, br]\n  level: { gzip: 6 }\n",
    );
    shoal.wait_upstreams(1).await;
    let plain = |r: &Reply, what: &str| {
        assert!(
            !r.headers.contains_key("content-encoding"),
            "{what}: {:?}",
            r.headers
        );
        assert!(r.headers.contains_key("content-length"), "{what}");
    };
    let gzip = [("accept-encoding", "gzip, br")];
    for (path, accept, what) in [
        ("/big.json", "identity", "identity"),
        ("/big.json", "gzip;q=0, br;q=0", "q=0"),
        ("/big.json", "zstd", "a codec not configured"),
        ("/nt/big.json", "gzip", "no-transform"),
        ("/small.txt", "gzip", "100 bytes"),
        ("/pic.png", "gzip", "image/png"),
    ] {
        let r = fetch(shoal.proxy, "GET", path, &[("accept-encoding", accept)]).await;
        assert_eq!(r.status, 200, "{what}");
        plain(&r, what);
        assert_eq!(
            r.body.len() as u64,
            r.headers["content-length"]
                .to_str()
                .unwrap()
                .parse::<u64>()
                .unwrap()
        );
    }
    let r = fetch(
        shoal.proxy,
        "GET",
        "/big.json",
        &[gzip[0], ("range", "bytes=0-99")],
    )
    .await;
    assert_eq!(r.status, 206);
    plain(&r, "a range");
    assert_eq!(&r.body[..], &site.big[..100]);
    let r = fetch(shoal.proxy, "HEAD", "/big.json", &gzip).await;
    plain(&r, "HEAD");
    // The route may turn it off, or change it.
    drop(shoal);
    let shoal = shoal_for(
        &site,
        "compress: { enabled: true }\nroutes:\n  - match: { path_prefix: /nt }\n    to: upstreams\n    compress: false\n  - match: { path: /small.txt }\n    to: upstreams\n    compress: { min_size: 10, codecs: [gzip] }\n  - to: upstreams\n",
    );
    shoal.wait_upstreams(1).await;
    let r = fetch(shoal.proxy, "GET", "/small.txt", &gzip).await;
    assert_eq!(r.headers["content-encoding"], "gzip", "route's min_size");
    let r = fetch(shoal.proxy, "GET", "/big.json", &gzip).await;
    assert_eq!(r.headers["content-encoding"], "br", "top level");
}

async fn a_reload_turns_compression_on() {
    let site = site().await;
    let shoal = shoal_for(&site, "");
    shoal.wait_upstreams(1).await;
    let gzip = [("accept-encoding", "gzip")];
    let r = fetch(shoal.proxy, "GET", "/big.json", &gzip).await;
    assert!(
        !r.headers.contains_key("content-encoding"),
        "off by default"
    );
    let on = upstreams_config(&[site.nginx.addr], "compress: { enabled: true }\n");
    std::fs::write(shoal.config_path(), crate::support::with_test_engine(&on)).unwrap();
    let (code, out, err) = crate::support::cli(shoal.admin, &["reload", "--apply-config"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = fetch(shoal.proxy, "GET", "/big.json", &gzip).await;
    assert_eq!(r.headers["content-encoding"], "gzip");
}

/// A backend that sends one event, waits, then ends the stream.
async fn event_stream_backend() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let event = b"data: hello\n\n";
                let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\
                            transfer-encoding: chunked\r\n\r\n";
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s
                    .write_all(format!("{:x}\r\n", event.len()).as_bytes())
                    .await;
                let _ = s.write_all(event).await;
                let _ = s.write_all(b"\r\n").await;
                tokio::time::sleep(Duration::from_secs(3)).await;
                let _ = s.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

async fn a_stream_is_flushed_as_it_flows() {
    let backend = event_stream_backend().await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend],
        "compress: { enabled: true, codecs: [gzip] }\n",
    ));
    shoal.wait_upstreams(1).await;
    let stream = TcpStream::connect(shoal.proxy).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get("/events")
        .header("host", "x")
        .header("accept-encoding", "gzip")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let started = Instant::now();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let mut body = resp.into_body();
    let mut decoder = flate2::write::GzDecoder::new(Vec::new());
    while !decoder.get_ref().ends_with(b"\n\n") {
        let frame = tokio::time::timeout(Duration::from_secs(2), body.frame())
            .await
            .expect("the first event within 2 s: the encoder must flush when the backend pauses")
            .unwrap()
            .unwrap();
        if let Ok(data) = frame.into_data() {
            std::io::Write::write_all(&mut decoder, &data).unwrap();
            std::io::Write::flush(&mut decoder).unwrap();
        }
    }
    assert_eq!(decoder.get_ref(), b"data: hello\n\n");
    assert!(started.elapsed() < Duration::from_secs(2));
}

/// 1 GiB from the demo app's `/download`, compressed with zstd and
/// decoded by the test as it arrives; shoal's resident set grows by less
/// than 64 MiB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gigabyte_is_compressed_in_bounded_memory() {
    let shoal = Shoal::start(&demo_config(
        1,
        "compress:\n  enabled: true\n  codecs: [zstd]\n  types: [application/octet-stream]\n  level: { zstd: 1 }\n",
    ));
    shoal.wait_healthy(1).await;
    let pid = shoal.pid();
    let (n, _) = download(shoal.proxy, 4 * MIB).await;
    assert_eq!(n, 4 * MIB);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let baseline = rss(pid);
    let max = Arc::new(AtomicU64::new(baseline));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (max, done) = (max.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                max.fetch_max(rss(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let (n, compressed) = download(shoal.proxy, 1024 * MIB).await;
    done.store(true, Ordering::Relaxed);
    sampler.await.unwrap();
    assert_eq!(n, 1024 * MIB, "decoded bytes");
    let growth = max.load(Ordering::Relaxed).saturating_sub(baseline);
    eprintln!(
        "1 GiB compressed to {} KiB; shoal RSS baseline {} KiB, growth {} KiB",
        compressed / 1024,
        baseline / 1024,
        growth / 1024
    );
    assert!(compressed < 64 * MIB, "compressed: {compressed} bytes");
    assert!(
        growth < 64 * MIB,
        "shoal's RSS grew by {} KiB",
        growth / 1024
    );
}

/// A sink that checks the demo app's pattern and counts.
struct Pattern {
    offset: u64,
}

const DOWN_PATTERN: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\n";

impl std::io::Write for Pattern {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        for (i, b) in buf.iter().enumerate() {
            let at = ((self.offset + i as u64) % 64) as usize;
            assert_eq!(*b, DOWN_PATTERN[at], "byte {}", self.offset + i as u64);
        }
        self.offset += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// GET `/download?bytes=N` with `Accept-Encoding: zstd`: (decoded bytes,
/// compressed bytes).
async fn download(addr: SocketAddr, bytes: u64) -> (u64, u64) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = Request::get(format!("/download?bytes={bytes}"))
        .header("host", "x")
        .header("accept-encoding", "zstd")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-encoding"], "zstd");
    let mut body = resp.into_body();
    let mut decoder = zstd::stream::write::Decoder::new(Pattern { offset: 0 }).unwrap();
    let mut compressed = 0u64;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            compressed += data.len() as u64;
            std::io::Write::write_all(&mut decoder, &data).unwrap();
        }
    }
    std::io::Write::flush(&mut decoder).unwrap();
    (decoder.get_ref().offset, compressed)
}
