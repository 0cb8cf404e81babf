//! Static files (`routes[].files`): validators and 304s, one range and
//! the answers to several or an unsatisfiable one, a directory's index and
//! its redirect, precompressed siblings, HEAD, and the paths that must
//! never leave the root (`../`, `%2e%2e%2f`, a symlink out) — sent as raw
//! bytes, so no client tidies them first. Under both engines: the native
//! one hands `files` routes to hyper's path.

use std::io::Write;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{read_response, request, upstreams_config, Backend, Reply, Shoal};

crate::under_both_engines!(
    files_with_validators_ranges_and_index,
    paths_never_leave_the_root,
    precompressed_siblings_and_compression,
);

/// `root/` (served) inside a directory that also holds `secret.txt`.
struct Tree {
    dir: tempfile::TempDir,
    text: Vec<u8>,
}

impl Tree {
    fn root(&self) -> std::path::PathBuf {
        self.dir.path().join("root")
    }
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir_all(root.join("docs")).unwrap();
    let text: Vec<u8> = (0..4096u32).map(|i| b'a' + (i % 26) as u8).collect();
    std::fs::write(root.join("a.txt"), &text).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&text).unwrap();
    std::fs::write(root.join("a.txt.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(root.join("index.html"), "<h1>home</h1>").unwrap();
    std::fs::write(root.join("docs/index.html"), "<h1>docs</h1>").unwrap();
    std::fs::write(root.join("page.html"), "<p>".repeat(2000)).unwrap();
    std::fs::write(dir.path().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(dir.path().join("secret.txt"), root.join("link.txt")).unwrap();
    std::os::unix::fs::symlink(root.join("a.txt"), root.join("inside.txt")).unwrap();
    Tree { dir, text }
}

async fn start(tree: &Tree, route_extra: &str, top: &str) -> (Shoal, Backend) {
    let backend = Backend::start("app").await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        &format!(
            "{top}routes:\n  - match: {{ path_prefix: /static }}\n    strip_prefix: /static\n    files: {{ root: {}{route_extra} }}\n  - to: upstreams\n",
            tree.root().display()
        ),
    ));
    shoal.wait_upstreams(1).await;
    (shoal, backend)
}

async fn fetch(addr: SocketAddr, method: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "files.test");
    for (n, v) in headers {
        req = req.header(*n, *v);
    }
    request(addr, req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

async fn files_with_validators_ranges_and_index() {
    let tree = tree();
    let (shoal, _backend) = start(&tree, "", "").await;
    let p = shoal.proxy;

    let r = fetch(p, "GET", "/static/a.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], &tree.text[..]);
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers["content-length"], "4096");
    assert_eq!(r.headers["accept-ranges"], "bytes");
    assert!(r.headers.contains_key("x-request-id"));
    let etag = r.headers["etag"].to_str().unwrap().to_string();
    let modified = r.headers["last-modified"].to_str().unwrap().to_string();
    assert!(etag.starts_with('"') && etag.ends_with("-1000\""), "{etag}");

    // Validators: 304 without a body.
    for (name, value) in [
        ("if-none-match", etag.as_str()),
        ("if-none-match", &format!("\"other\", W/{etag}")),
        ("if-modified-since", modified.as_str()),
    ] {
        let r = fetch(p, "GET", "/static/a.txt", &[(name, value)]).await;
        assert_eq!(r.status, 304, "{name}: {value}");
        assert!(r.body.is_empty());
        assert_eq!(r.headers["etag"], etag.as_str());
    }
    let r = fetch(p, "GET", "/static/a.txt", &[("if-none-match", "\"other\"")]).await;
    assert_eq!(r.status, 200);
    let r = fetch(
        p,
        "GET",
        "/static/a.txt",
        &[("if-modified-since", "Thu, 01 Jan 1970 00:00:01 GMT")],
    )
    .await;
    assert_eq!(r.status, 200);

    // One range: 206 with exactly those bytes.
    for (range, first, last) in [
        ("bytes=10-19", 10, 19),
        ("bytes=4000-", 4000, 4095),
        ("bytes=-5", 4091, 4095),
        ("bytes=4090-9999", 4090, 4095),
    ] {
        let r = fetch(p, "GET", "/static/a.txt", &[("range", range)]).await;
        assert_eq!(r.status, 206, "{range}");
        assert_eq!(&r.body[..], &tree.text[first..=last], "{range}");
        assert_eq!(
            r.headers["content-range"],
            format!("bytes {first}-{last}/4096").as_str()
        );
        assert_eq!(
            r.headers["content-length"],
            (last - first + 1).to_string().as_str()
        );
    }
    // Several ranges: the whole file; past the end: 416; If-Range that
    // does not match: the whole file.
    let r = fetch(p, "GET", "/static/a.txt", &[("range", "bytes=0-1,5-6")]).await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 4096));
    let r = fetch(p, "GET", "/static/a.txt", &[("range", "bytes=5000-")]).await;
    assert_eq!(r.status, 416);
    assert_eq!(r.headers["content-range"], "bytes */4096");
    let r = fetch(
        p,
        "GET",
        "/static/a.txt",
        &[("range", "bytes=0-9"), ("if-range", "\"old\"")],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = fetch(
        p,
        "GET",
        "/static/a.txt",
        &[("range", "bytes=0-9"), ("if-range", &etag)],
    )
    .await;
    assert_eq!(r.status, 206);

    // HEAD: the headers, no body.
    let r = fetch(p, "HEAD", "/static/a.txt", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-length"], "4096");
    assert!(r.body.is_empty());

    // A directory: its index; without the slash, a redirect to it.
    let r = fetch(p, "GET", "/static/", &[]).await;
    assert_eq!(
        (r.status.as_u16(), &r.body[..]),
        (200, &b"<h1>home</h1>"[..])
    );
    assert_eq!(r.headers["content-type"], "text/html; charset=utf-8");
    let r = fetch(p, "GET", "/static/docs/", &[]).await;
    assert_eq!(&r.body[..], b"<h1>docs</h1>");
    let r = fetch(p, "GET", "/static/docs?x=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.headers["location"], "docs/?x=1",
        "relative to /static/docs"
    );

    // Missing: 404 in shoal's format; other methods: 405.
    let r = fetch(
        p,
        "GET",
        "/static/nope.txt",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "not_found");
    let r = fetch(p, "POST", "/static/a.txt", &[]).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.headers["allow"], "GET, HEAD");
    // A symlink inside the root is followed.
    let r = fetch(p, "GET", "/static/inside.txt", &[]).await;
    assert_eq!(&r.body[..], &tree.text[..]);
    // Other paths still go to the pool.
    let r = fetch(p, "GET", "/", &[]).await;
    assert_eq!(r.json()["instance"], "app");
}

/// The status line of a request sent as exactly these bytes.
async fn raw_status(addr: SocketAddr, target: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {target} HTTP/1.1\r\nHost: files.test\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let resp = read_response(&mut s, Duration::from_secs(5)).await;
    let status = resp
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, resp)
}

async fn paths_never_leave_the_root() {
    let tree = tree();
    let (shoal, _backend) = start(&tree, "", "").await;
    for target in [
        "/static/../secret.txt",
        "/static/..%2fsecret.txt",
        "/static/%2e%2e%2fsecret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/docs/../../secret.txt",
        "/static/a.txt%00",
        "/static/..%5csecret.txt",
    ] {
        let (status, resp) = raw_status(shoal.proxy, target).await;
        assert!(
            !resp.contains("secret\n") && !resp.ends_with("secret"),
            "{target}: {resp}"
        );
        assert!(
            status == 404 || status == 400,
            "{target}: expected 404 (or 400), got {resp}"
        );
    }
    let (status, resp) = raw_status(shoal.proxy, "/static/link.txt").await;
    assert_eq!(status, 403, "a symlink out of the root: {resp}");
    assert!(!resp.ends_with("secret"));
}

async fn precompressed_siblings_and_compression() {
    let tree = tree();
    let (shoal, _backend) = start(
        &tree,
        ", precompressed: true }\n    response_headers: { set: { cache-control: max-age=60 }",
        "compress: { enabled: true, codecs: [br] }\n",
    )
    .await;
    let p = shoal.proxy;
    let gz = std::fs::read(tree.root().join("a.txt.gz")).unwrap();
    let r = fetch(p, "GET", "/static/a.txt", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.headers["content-encoding"], "gzip");
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers["vary"], "Accept-Encoding");
    assert_eq!(&r.body[..], &gz[..], "the .gz file as it is");
    assert_eq!(
        r.headers["cache-control"], "max-age=60",
        "the route's response_headers"
    );
    // Not accepted: the file itself (br is the route's codec, but there
    // is no .br sibling, and the file is compressed on the way instead).
    let r = fetch(
        p,
        "GET",
        "/static/a.txt",
        &[("accept-encoding", "identity")],
    )
    .await;
    assert!(!r.headers.contains_key("content-encoding"));
    assert_eq!(&r.body[..], &tree.text[..]);
    assert_eq!(r.headers["vary"], "Accept-Encoding");
    let r = fetch(p, "GET", "/static/page.html", &[("accept-encoding", "br")]).await;
    assert_eq!(
        r.headers["content-encoding"], "br",
        "compressed by the route"
    );
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut brotli::Decompressor::new(&r.body[..], 4096), &mut out)
        .unwrap();
    assert_eq!(out, "<p>".repeat(2000).into_bytes());
}
