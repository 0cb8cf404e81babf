//! Static files (`routes[].files`): a route action beside `to`,
//! `redirect` and `respond`, answered here for both engines (the native
//! engine writes the answer as bytes, `proxy::h1::files`, unless it
//! streams). GET and HEAD; `ETag` (nginx's form,
//! mtime-size in hex) and `Last-Modified`, `If-None-Match` /
//! `If-Modified-Since` → 304, one `Range` → 206 (`If-Range` honoured),
//! a directory's `index`, precompressed `.zst`/`.br`/`.gz` siblings, a
//! media type by extension. The file system is read in place (as nginx
//! without `aio`); a file up to `INLINE` is read whole, a larger one is
//! streamed in 64 KiB frames through tokio's fs.

pub(crate) mod path;
mod range;

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Response, StatusCode};
use http_body::{Body, Frame, SizeHint};
use shoal_config::{Codec, FilesConfig};
use std::io::{Read, Seek};
use tokio::io::{AsyncRead, ReadBuf};

use crate::proxy::answer::Answer;
use crate::proxy::body::{BodyError, ProxyBody};
use crate::proxy::request_id::X_REQUEST_ID;
use range::Range;

pub use path::{percent_decode, relative};

/// One frame of a file body.
const CHUNK: usize = 64 * 1024;

/// The siblings `precompressed` looks for, in the server's order.
const PRECOMPRESSED: [(Codec, &str); 3] =
    [(Codec::Zstd, "zst"), (Codec::Br, "br"), (Codec::Gzip, "gz")];

/// A `files` route, compiled.
#[derive(Debug)]
pub struct Files {
    /// Canonical (symlinks resolved), so a file's canonical path can be
    /// checked against it.
    root: PathBuf,
    /// As configured: resolved again when a file is outside `root`, in
    /// case the root is a link that has moved since.
    configured: PathBuf,
    index: Box<str>,
    precompressed: bool,
}

/// Why a path is not served.
enum Refused {
    NotFound,
    Forbidden,
}

/// A regular file under the root, ready to open.
struct Found {
    path: PathBuf,
    meta: std::fs::Metadata,
}

impl Files {
    pub fn new(c: &FilesConfig) -> Files {
        Files {
            root: std::fs::canonicalize(&c.root).unwrap_or_else(|_| c.root.clone()),
            configured: c.root.clone(),
            index: c.index.as_str().into(),
            precompressed: c.precompressed,
        }
    }

    /// `rel` below the root, with every symlink resolved: it must stay
    /// under the root (403 if a link leads out) and exist (404).
    fn resolve(&self, rel: &Path) -> Result<Found, Refused> {
        let canonical =
            std::fs::canonicalize(self.configured.join(rel)).map_err(|e| match e.kind() {
                std::io::ErrorKind::PermissionDenied => Refused::Forbidden,
                _ => Refused::NotFound,
            })?;
        if !canonical.starts_with(&self.root) {
            // The root itself may be a link that a deploy moved
            // (`/srv/current` → `releases/N+1`): what it names now.
            let now = std::fs::canonicalize(&self.configured).map_err(|_| Refused::NotFound)?;
            if now == self.root || !canonical.starts_with(&now) {
                return Err(Refused::Forbidden);
            }
        }
        let meta = std::fs::metadata(&canonical).map_err(|_| Refused::NotFound)?;
        Ok(Found {
            path: canonical,
            meta,
        })
    }

    /// The precompressed sibling of `file` the client takes best, if any.
    fn sibling(&self, file: &Found, headers: &HeaderMap) -> Option<(Codec, Found)> {
        let accept = headers.get_all(header::ACCEPT_ENCODING);
        if !self.precompressed || accept.iter().next().is_none() {
            return None;
        }
        let mut found = Vec::new();
        for (codec, ext) in PRECOMPRESSED {
            let mut name = file.path.clone().into_os_string();
            name.push(".");
            name.push(ext);
            let Ok(rel) = Path::new(&name).strip_prefix(&self.root) else {
                continue;
            };
            if let Ok(f) = self.resolve(rel) {
                if f.meta.is_file() {
                    found.push((codec, f));
                }
            }
        }
        let offered: Vec<Codec> = found.iter().map(|(c, _)| *c).collect();
        let chosen = crate::compress::negotiate(accept.iter().map(|v| v.as_bytes()), &offered)?;
        found.into_iter().find(|(c, _)| *c == chosen)
    }

    /// The answer to a request for `uri_path` (after the route's rewrite).
    /// The file system is read in place, as nginx does (without its
    /// `aio`): a page-cache hit costs a few syscalls, where a trip to
    /// tokio's blocking pool per call cost several thread hand-offs. A
    /// file up to [`INLINE`] is read whole here; a larger one streams.
    pub fn serve(
        &self,
        method: &Method,
        uri_path: &str,
        query: Option<&str>,
        headers: &HeaderMap,
        request_id: &HeaderValue,
        json: bool,
    ) -> Response<ProxyBody> {
        let answer = |status: StatusCode, kind: &'static str| {
            Answer {
                status,
                kind,
                request_id: request_id.as_bytes(),
                json,
                rate: None,
            }
            .to_response()
        };
        let not_found = || answer(StatusCode::NOT_FOUND, "not_found");
        let forbidden = || answer(StatusCode::FORBIDDEN, "forbidden");
        if method != Method::GET && method != Method::HEAD {
            let mut resp = answer(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
            resp.headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            return resp;
        }
        let Some((rel, dir_path)) = relative(uri_path) else {
            tracing::info!(request_id = ?request_id, path = uri_path, "static file path refused (404)");
            return not_found();
        };
        let mut file = match self.resolve(&rel) {
            Ok(f) => f,
            Err(Refused::NotFound) => return not_found(),
            Err(Refused::Forbidden) => {
                tracing::info!(request_id = ?request_id, path = uri_path, "static file outside the root (403)");
                return forbidden();
            }
        };
        if file.meta.is_dir() {
            if !dir_path {
                // `/docs` → `/docs/`, as nginx, so relative links resolve.
                // Relative to the request (`docs/`): the path here is the
                // rewritten one, and the client's may have had a prefix.
                let q = query.map(|q| format!("?{q}")).unwrap_or_default();
                let last = uri_path.rsplit('/').next().unwrap_or("");
                let mut resp = answer(StatusCode::MOVED_PERMANENTLY, "moved");
                if let Ok(v) = HeaderValue::from_str(&format!("{last}/{q}")) {
                    resp.headers_mut().insert(header::LOCATION, v);
                }
                return resp;
            }
            file = match self.resolve(&rel.join(&*self.index)) {
                Ok(f) if f.meta.is_file() => f,
                // A directory without its index: nginx's 403.
                Ok(_) | Err(Refused::Forbidden) | Err(Refused::NotFound) => return forbidden(),
            };
        } else if dir_path || !file.meta.is_file() {
            return not_found();
        }
        let content_type = media_type(&file.path);
        let (encoding, file) = match self.sibling(&file, headers) {
            Some((codec, sibling)) => (Some(codec), sibling),
            None => (None, file),
        };
        let how = How {
            content_type,
            encoding,
            varies: self.precompressed,
            json,
        };
        respond(method, &file, &how, headers, request_id).unwrap_or_else(|e| {
                tracing::warn!(request_id = ?request_id, path = %file.path.display(), error = %e, "cannot read a static file");
                not_found()
            })
    }
}

/// `"mtime-size"` in hex, as nginx.
fn etag(meta: &std::fs::Metadata) -> String {
    format!("\"{:x}-{:x}\"", mtime_secs(meta), meta.len())
}

fn mtime_secs(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

/// Does `If-None-Match` name `tag` (weak comparison, RFC 9110 §13.1.2)?
fn none_match(header: &[u8], tag: &str) -> bool {
    let bare = |t: &[u8]| t.strip_prefix(b"W/").unwrap_or(t).to_vec();
    let tag = bare(tag.as_bytes());
    header
        .split(|&b| b == b',')
        .map(|t| t.trim_ascii())
        .any(|t| t == b"*" || bare(t) == tag)
}

/// How a found file is answered.
struct How {
    content_type: &'static str,
    /// The coding of a precompressed sibling being served.
    encoding: Option<Codec>,
    /// `Vary: Accept-Encoding` (the route serves precompressed siblings).
    varies: bool,
    /// Errors in JSON.
    json: bool,
}

fn respond(
    method: &Method,
    file: &Found,
    how: &How,
    req: &HeaderMap,
    request_id: &HeaderValue,
) -> std::io::Result<Response<ProxyBody>> {
    let (content_type, encoding, varies) = (how.content_type, how.encoding, how.varies);
    let len = file.meta.len();
    let tag = etag(&file.meta);
    let modified = file.meta.modified().unwrap_or(UNIX_EPOCH);
    let last_modified = httpdate::fmt_http_date(modified);
    let mut resp = Response::new(ProxyBody::empty());
    let h = resp.headers_mut();
    h.insert(X_REQUEST_ID.clone(), request_id.clone());
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    if let Ok(v) = HeaderValue::from_str(&last_modified) {
        h.insert(header::LAST_MODIFIED, v);
    }
    if let Some(codec) = encoding {
        h.insert(
            header::CONTENT_ENCODING,
            HeaderValue::from_static(codec.token()),
        );
    }
    if varies {
        crate::compress::vary_accept_encoding(h);
    }
    // If-None-Match wins over If-Modified-Since (RFC 9110 §13.2.2).
    let not_modified = match req.get(header::IF_NONE_MATCH) {
        Some(inm) => none_match(inm.as_bytes(), &tag),
        None => req
            .get(header::IF_MODIFIED_SINCE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .is_some_and(|since| mtime_secs(&file.meta) <= secs(since)),
    };
    if not_modified {
        *resp.status_mut() = StatusCode::NOT_MODIFIED;
        return Ok(resp);
    }
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    let if_range_holds = req.get(header::IF_RANGE).is_none_or(|v| {
        let v = v.as_bytes();
        // A strong validator only (RFC 9110 §13.1.5).
        v == tag.as_bytes() || v == last_modified.as_bytes()
    });
    let range = match req.get(header::RANGE) {
        Some(r) if method == Method::GET && if_range_holds => range::parse(r.as_bytes(), len),
        _ => Range::Full,
    };
    let (start, end) = match range {
        Range::Full => (0, len),
        Range::Part(first, last) => {
            *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {first}-{last}/{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            (first, last + 1)
        }
        Range::Unsatisfiable => {
            let mut resp = Answer {
                status: StatusCode::RANGE_NOT_SATISFIABLE,
                kind: "range_not_satisfiable",
                request_id: request_id.as_bytes(),
                json: how.json,
                rate: None,
            }
            .to_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes */{len}")) {
                resp.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            return Ok(resp);
        }
    };
    let h = resp.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start));
    if method == Method::HEAD {
        return Ok(resp);
    }
    let mut f = std::fs::File::open(&file.path)?;
    if start > 0 {
        f.seek(std::io::SeekFrom::Start(start))?;
    }
    let want = end - start;
    if want <= INLINE {
        let mut bytes = vec![0; want as usize];
        f.read_exact(&mut bytes)?;
        *resp.body_mut() = ProxyBody::full(Bytes::from(bytes));
        return Ok(resp);
    }
    *resp.body_mut() = ProxyBody::boxed(FileBody {
        file: tokio::fs::File::from_std(f),
        remaining: want,
        buf: BytesMut::new(),
    });
    Ok(resp)
}

fn secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// Files (or ranges) up to this are read whole when they are answered;
/// larger ones stream in `CHUNK`s.
pub const INLINE: u64 = 256 << 10;

/// A file's bytes, `remaining` of them from where it was opened, in
/// frames of at most `CHUNK`.
struct FileBody {
    file: tokio::fs::File,
    remaining: u64,
    buf: BytesMut,
}

impl Body for FileBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.remaining == 0 {
            return Poll::Ready(None);
        }
        let want = usize::try_from(this.remaining).unwrap_or(CHUNK).min(CHUNK);
        this.buf.resize(want, 0);
        let mut rb = ReadBuf::new(&mut this.buf[..want]);
        match Pin::new(&mut this.file).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => Poll::Ready(Some(Err(e.into()))),
            Poll::Ready(Ok(())) => {
                let n = rb.filled().len();
                if n == 0 {
                    // The file shrank while it was sent: the response is cut.
                    let e = std::io::Error::new(
                        std::io::ErrorKind::UnexpectedEof,
                        "the file is shorter than when its length was sent",
                    );
                    return Poll::Ready(Some(Err(e.into())));
                }
                this.remaining -= n as u64;
                this.buf.truncate(n);
                Poll::Ready(Some(Ok(Frame::data(this.buf.split().freeze()))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

/// The media type by extension (nginx's `mime.types`, the common part);
/// `application/octet-stream` for the rest.
fn media_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json",
        "txt" => "text/plain; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "xml" => "application/xml",
        "svg" | "svgz" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "webmanifest" => "application/manifest+json",
        _ => "application/octet-stream",
    }
}

/// The config-load check (`shoal check`, `shoal up`, a reload): every
/// `files.root` is a directory that can be read. `(key path, message)`.
pub fn check(config: &shoal_config::Config) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let lists = config.route_lists();
    let routes = lists
        .iter()
        .flat_map(|(list, _, routes)| routes.iter().enumerate().map(move |(i, r)| (list, i, r)));
    for (list, i, route) in routes {
        let Some(files) = &route.files else { continue };
        let root = &files.root;
        if root.as_os_str().is_empty() {
            continue;
        }
        let at = format!("{list}[{i}].files.root");
        let shown = root.display();
        match std::fs::metadata(root) {
            Ok(m) if m.is_dir() => {
                if let Err(e) = std::fs::read_dir(root) {
                    problems.push((at, format!("cannot read `{shown}`: {}", io_reason(&e))));
                }
            }
            Ok(_) => problems.push((at, format!("`{shown}` is not a directory"))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push((at, format!("`{shown}` does not exist")))
            }
            Err(e) => problems.push((at, format!("cannot read `{shown}`: {}", io_reason(&e)))),
        }
    }
    problems
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// The fuzz target's checks of path decoding (`crate::fuzz::request_target`).
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz_path(path: &str) {
    if let Some((rel, _)) = path::relative(path) {
        for c in rel.components() {
            assert!(
                matches!(c, std::path::Component::Normal(_)),
                "{path:?} → {rel:?} leaves its directory"
            );
        }
        assert!(
            !rel.as_os_str().as_encoded_bytes().contains(&0),
            "{path:?}: NUL"
        );
    }
}

/// The fuzz target's checks of `Range` (`crate::fuzz::request_target`).
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz_range(header: &[u8], len: u64) {
    if let Range::Part(first, last) = range::parse(header, len) {
        assert!(
            first <= last && last < len,
            "{header:?} of {len}: {first}-{last}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_compares_weakly() {
        assert!(none_match(b"\"a-1\"", "\"a-1\""));
        assert!(none_match(b"W/\"a-1\"", "\"a-1\""));
        assert!(none_match(b"\"x\", \"a-1\"", "\"a-1\""));
        assert!(none_match(b"*", "\"a-1\""));
        assert!(!none_match(b"\"a-2\"", "\"a-1\""));
    }

    #[test]
    fn media_types_by_extension() {
        assert_eq!(media_type(Path::new("a/b.CSS")), "text/css; charset=utf-8");
        assert_eq!(media_type(Path::new("x.png")), "image/png");
        assert_eq!(media_type(Path::new("noext")), "application/octet-stream");
    }
}
