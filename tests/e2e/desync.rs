//! The request-smuggling corpus shipped inside the `http_desync_guardian`
//! crate (AWS's HTTP Desync Guardian, Apache-2.0): its `tests/*.yaml`, 159
//! requests each graded Compliant, Acceptable, Ambiguous or Severe. The
//! files are read from the crate's source, which cargo fetched as a
//! dev-dependency; nothing of them is copied into this repository.
//!
//! Each request is replayed, raw and unchanged, through shoal in front of a
//! raw TCP backend that records exactly the bytes it receives. After the
//! head comes a tail that a desynchronised backend would read as a second
//! request (`0\r\n\r\nGET /smuggled …`). Then:
//!
//! - every connection that reached the backend carries exactly one request,
//!   framed without ambiguity (at most one all-digit Content-Length, or
//!   Transfer-Encoding exactly `chunked` and no Content-Length), with no
//!   byte after its end; a body may be cut short (the client stopped);
//! - the guardian's own analyzer grades each forwarded head Compliant or
//!   Acceptable; the one exception is a GET or HEAD with a body, passed on
//!   as the guardian's "defensive" mode does, with neither connection
//!   reused afterwards;
//! - a case graded Ambiguous or Severe is either rejected (4xx, nothing at
//!   the backend) or reaches it as that one request, never as two.
//!
//! The counts per grade (rejected / normalised / forwarded as sent) are
//! printed and summarised in docs/ARCHITECTURE.md.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use http_desync_guardian::request_analyzer::HttpRequestData;
use http_desync_guardian::{ClassificationReason, RequestSafetyTier};
use serde_yaml_ng::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support::raw::{find, Mode, RawBackend, OK};
use crate::support::{eventually, upstreams_config, Shoal};

/// What follows every head: the end of an empty chunked body, then a
/// request that only a backend out of step with shoal would see.
const TAIL: &[u8] = b"0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";

struct Case {
    file: String,
    name: String,
    tier: String,
    raw: Vec<u8>,
    /// (lower-case name, value) as the client sent them.
    headers: Vec<(String, String)>,
}

/// The crate's source directory, from `cargo metadata`.
fn guardian_dir() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let run = |offline: bool| {
        let mut cmd = std::process::Command::new(&cargo);
        cmd.args(["metadata", "--format-version", "1", "--manifest-path"])
            .arg(&manifest);
        if offline {
            cmd.arg("--offline");
        }
        cmd.output().ok().filter(|o| o.status.success())
    };
    let out = run(true).or_else(|| run(false)).expect("cargo metadata");
    let meta: serde_json::Value = serde_json::from_slice(&out.stdout).expect("metadata json");
    let manifest = meta["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http_desync_guardian")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("http_desync_guardian among the packages (a dev-dependency)");
    PathBuf::from(manifest).parent().unwrap().to_path_buf()
}

/// A YAML scalar as the crate's own test reads it: text, or a number
/// printed; then its escapes (`\xNN`, `\r`, …) applied, as its
/// `unescape_value`.
fn text(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => String::new(),
        other => panic!("unexpected YAML value {other:?}"),
    };
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('x') => {
                let hex: String = chars.by_ref().take(2).collect();
                out.push(char::from(u8::from_str_radix(&hex, 16).expect("\\xNN")));
            }
            Some('b') => out.push('\x08'),
            Some('f') => out.push('\x0c'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some('t') => out.push('\t'),
            Some(other) => out.push(other),
            None => panic!("malformed escape in {s:?}"),
        }
    }
    out
}

fn load_cases() -> Vec<Case> {
    let dir = guardian_dir().join("tests");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let file = path.file_name().unwrap().to_string_lossy().into_owned();
        let doc: Value = serde_yaml_ng::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        for c in doc.as_sequence().expect("a list of cases") {
            let (method, uri, version) = (text(&c["method"]), text(&c["uri"]), text(&c["version"]));
            // As the crate builds its raw requests.
            let mut raw = format!("{method} {uri} {version}\r\n");
            let mut headers = Vec::new();
            for h in c["headers"].as_sequence().into_iter().flatten() {
                let (name, value) = (text(&h["name"]), text(&h["value"]));
                raw.push_str(&format!("{name}: {value}\r\n"));
                headers.push((name.to_ascii_lowercase(), value));
            }
            raw.push_str("\r\n");
            let mut raw = raw.into_bytes();
            raw.extend_from_slice(TAIL);
            cases.push(Case {
                file: file.clone(),
                name: text(&c["name"]),
                tier: text(&c["expected"]["tier"]),
                raw,
                headers,
            });
        }
    }
    cases
}

/// Sends one case; returns what shoal answered, up to its close or a quiet
/// moment after its first answer.
async fn replay(shoal: &Shoal, raw: &[u8]) -> Vec<u8> {
    let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
    let _ = s.write_all(raw).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        // Until the first answer, wait for it; after it, only briefly, to
        // catch a second answer (a second request shoal passed on).
        let wait = if got.is_empty() {
            deadline.saturating_duration_since(Instant::now())
        } else {
            Duration::from_millis(100)
        };
        match tokio::time::timeout(wait, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => return got,
        }
    }
}

/// One request as the backend got it.
struct Forwarded {
    head: Vec<u8>,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    /// Bytes after the head.
    body_len: usize,
}

/// Parses what one backend connection carried: exactly one request with
/// unambiguous framing and nothing after its end.
fn parse_one(bytes: &[u8]) -> Result<Forwarded, String> {
    let mut hdrs = [httparse::EMPTY_HEADER; 64];
    let mut req = httparse::Request::new(&mut hdrs);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Err("incomplete head".into()),
        Err(e) => return Err(format!("unparsable head: {e}")),
    };
    let headers: Vec<(String, Vec<u8>)> = req
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec()))
        .collect();
    let target = req.path.unwrap_or("").to_string();
    let all = |n: &str| -> Vec<&Vec<u8>> {
        headers
            .iter()
            .filter(|(k, _)| k == n)
            .map(|(_, v)| v)
            .collect()
    };
    let cls = all("content-length");
    let tes = all("transfer-encoding");
    let body = &bytes[head_len..];
    let rest: &[u8] = if !tes.is_empty() {
        if tes.len() != 1 || !tes[0].eq_ignore_ascii_case(b"chunked") || !cls.is_empty() {
            return Err(format!("ambiguous framing: TE {tes:?} CL {cls:?}"));
        }
        chunked_rest(body)?
    } else if let Some(cl) = cls.first() {
        if cls.len() != 1 || cl.is_empty() || !cl.iter().all(u8::is_ascii_digit) {
            return Err(format!("ambiguous Content-Length {cls:?}"));
        }
        let n: usize = std::str::from_utf8(cl).unwrap().parse().unwrap();
        &body[n.min(body.len())..]
    } else {
        body
    };
    if !rest.is_empty() {
        return Err(format!(
            "{} bytes after the request's end: {:?}",
            rest.len(),
            String::from_utf8_lossy(rest)
        ));
    }
    Ok(Forwarded {
        head: bytes[..head_len].to_vec(),
        target,
        headers,
        body_len: bytes.len() - head_len,
    })
}

/// What follows a chunked body (empty if it was cut short).
fn chunked_rest(mut b: &[u8]) -> Result<&[u8], String> {
    loop {
        let Some(eol) = find(b, b"\r\n") else {
            return Ok(&[]);
        };
        let line = std::str::from_utf8(&b[..eol]).map_err(|_| "chunk size not text")?;
        let size = line.split(';').next().unwrap_or("");
        let size = usize::from_str_radix(size, 16).map_err(|_| format!("chunk size {line:?}"))?;
        b = &b[eol + 2..];
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = find(b, b"\r\n") else {
                    return Ok(&[]);
                };
                b = &b[eol + 2..];
                if eol == 0 {
                    return Ok(b);
                }
            }
        }
        if b.len() < size + 2 {
            return Ok(&[]);
        }
        if &b[size..size + 2] != b"\r\n" {
            return Err("chunk not followed by CRLF".into());
        }
        b = &b[size + 2..];
    }
}

#[derive(Default)]
struct Tally {
    rejected: usize,
    normalised: usize,
    as_sent: usize,
}

async fn desync_guardian_corpus_never_desynchronises_the_backend() {
    let cases = load_cases();
    assert_eq!(cases.len(), 159, "the corpus of http_desync_guardian 0.1.3");
    let backend = RawBackend::start(Mode::AnswerAfterHead(OK)).await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        // Bodies streamed, not read in full first: what reaches the
        // backend is then exactly what shoal framed from the client's bytes
        // as they came, the strictest case (a buffered body is re-sent
        // whole, with the length it was read by).
        "proxy: { max_idle_per_backend: 0, retries: 0, replay_body_size: 0 }\n",
    ));
    shoal.wait_upstreams(1).await;

    let mut tally: BTreeMap<String, Tally> = BTreeMap::new();
    let mut problems = Vec::new();
    for case in &cases {
        backend.clear();
        let answer = replay(&shoal, &case.raw).await;
        // Every connection shoal opened for this case, finished.
        eventually(
            Duration::from_secs(5),
            "backend connections closed",
            || async { backend.all_closed().then_some(()) },
        )
        .await;
        let answer = String::from_utf8_lossy(&answer).into_owned();
        let status = answer.get(9..12).unwrap_or("").to_string();
        let label = format!("{} / {} [{}] → {status}", case.file, case.name, case.tier);
        let severe = matches!(case.tier.as_str(), "Severe" | "Ambiguous");

        let mut forwarded = Vec::new();
        for c in backend.conns() {
            match parse_one(&c.bytes) {
                Ok(f) => forwarded.push(f),
                Err(e) => problems.push(format!(
                    "{label}: DESYNC: {e}\n  backend got {:?}",
                    String::from_utf8_lossy(&c.bytes)
                )),
            }
        }
        let closed = answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n");
        for f in &forwarded {
            let graded = HttpRequestData::analyze_raw_request(&f.head);
            // A GET or HEAD with a body is passed on as the guardian's
            // defensive mode does: then neither connection is reused (the
            // client's is closed after the answer; the backend's, see
            // `get_with_a_body_is_isolated`).
            let isolated_get = matches!(
                graded.reason,
                ClassificationReason::UndefinedContentLengthSemantics
                    | ClassificationReason::UndefinedTransferEncodingSemantics
            ) && closed;
            if graded.tier == RequestSafetyTier::Severe
                || (graded.tier == RequestSafetyTier::Ambiguous && !isolated_get)
            {
                problems.push(format!(
                    "{label}: the guardian grades what reached the backend {:?} ({:?}: {:?})\n  {:?}",
                    graded.tier,
                    graded.reason,
                    graded.message,
                    String::from_utf8_lossy(&f.head)
                ));
            }
        }
        println!(
            "{label}; backend got {:?}",
            forwarded
                .iter()
                .map(|f| {
                    let g = HttpRequestData::analyze_raw_request(&f.head);
                    format!(
                        "{:?}/{:?}: {}",
                        g.tier,
                        g.reason,
                        String::from_utf8_lossy(&f.head)
                    )
                })
                .collect::<Vec<_>>()
        );
        let t = tally.entry(case.tier.clone()).or_default();
        match forwarded.len() {
            0 if status.starts_with('4') => t.rejected += 1,
            0 => problems.push(format!(
                "{label}: no 4xx, yet nothing reached the backend: {answer:?}"
            )),
            n => {
                // The tail reaching the backend as a request of its own is
                // pipelining, not smuggling, only when shoal framed the
                // first request's body as exactly the tail's `0\r\n\r\n`:
                // the one reading every compliant parser agrees on (e.g.
                // two identical Content-Length: 5, merged as RFC 9112 §6.3
                // allows). Never for a Severe case.
                let pipelined = n == 2
                    && forwarded[1].target == "/smuggled"
                    && forwarded[0].body_len == 5
                    && case.tier == "Ambiguous";
                if severe && n > 1 && !pipelined {
                    problems.push(format!(
                        "{label}: {n} requests reached the backend: {:?}",
                        forwarded
                            .iter()
                            .map(|f| f.target.clone())
                            .collect::<Vec<_>>()
                    ));
                }
                if severe && forwarded[0].target.starts_with("/smuggled") {
                    problems.push(format!("{label}: the smuggled request reached the backend"));
                }
                // Sent on as the client sent it, or changed on the way
                // (framing re-done, hop-by-hop headers dropped, …)?
                let first = &forwarded[0];
                let kept = case.headers.iter().all(|(name, value)| {
                    first
                        .headers
                        .iter()
                        .any(|(k, v)| k == name && v.as_slice() == value.trim().as_bytes())
                });
                if kept {
                    t.as_sent += 1;
                } else {
                    t.normalised += 1;
                }
            }
        }
    }
    println!(
        "http_desync_guardian corpus through shoal ({} cases):",
        cases.len()
    );
    println!(
        "{:<12} {:>8} {:>11} {:>8}",
        "grade", "rejected", "normalised", "as sent"
    );
    for (tier, t) in &tally {
        println!(
            "{tier:<12} {:>8} {:>11} {:>8}",
            t.rejected, t.normalised, t.as_sent
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A GET with a body reaches the backend (Elasticsearch-style searches
/// need it), but neither connection carries anything after it: the client
/// gets `Connection: close` and what it pipelined is never read, and the
/// backend connection is closed rather than pooled. Plain GETs share one
/// pooled backend connection.
async fn get_with_a_body_is_isolated() {
    let backend = RawBackend::start(Mode::AnswerComplete).await;
    let shoal = Shoal::start(&upstreams_config(&[backend.addr], ""));
    shoal.wait_upstreams(1).await;
    let send = |raw: &'static [u8]| async move {
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        s.write_all(raw).await.unwrap();
        crate::support::read_to_close(&mut s, Duration::from_secs(5))
            .await
            .expect("closed")
    };
    for _ in 0..2 {
        let r = send(b"GET /plain HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    }
    let r = send(
        b"GET /search HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n\r\nhello\
          GET /pipelined HTTP/1.1\r\nhost: x\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    assert!(
        r.to_ascii_lowercase().contains("\r\nconnection: close\r\n"),
        "{r}"
    );
    assert!(r.ends_with("got 5"), "one answer only: {r}");
    let r = send(b"GET /after HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");

    // The plain GETs are served by the native engine and its pool, the GET
    // with a body by hyper's: the body's connection is its own, closed.
    let conns = eventually(Duration::from_secs(5), "backend traffic", || async {
        let c = backend.conns();
        let text = |i: usize| String::from_utf8_lossy(&c[i].bytes).into_owned();
        let search = (0..c.len()).find(|i| text(*i).contains("GET /search "))?;
        let after = (0..c.len()).find(|i| text(*i).contains("GET /after "))?;
        c[search].closed.then_some((c, search, after))
    })
    .await;
    let (conns, search, after) = conns;
    let text = |i: usize| String::from_utf8_lossy(&conns[i].bytes).into_owned();
    assert!(
        text(search).starts_with("GET /search ") && text(search).ends_with("\r\n\r\nhello"),
        "alone on its connection: {}",
        text(search)
    );
    assert_ne!(search, after, "not pooled after the GET with a body");
    let plain: Vec<usize> = (0..conns.len())
        .filter(|i| text(*i).contains("GET /plain "))
        .collect();
    assert_eq!(plain.len(), 1, "the plain GETs share one pooled connection");
    assert_eq!(text(plain[0]).matches("GET /plain ").count(), 2);
    assert!((0..conns.len()).all(|i| !text(i).contains("/pipelined")));
}

crate::under_both_engines!(
    desync_guardian_corpus_never_desynchronises_the_backend,
    get_with_a_body_is_isolated,
);
