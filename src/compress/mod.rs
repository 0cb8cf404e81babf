//! Response compression, part of the *respond* phase: gzip, brotli and
//! zstd, negotiated from the request's `Accept-Encoding`, applied to the
//! responses worth it (the configured media types, at least `min_size`,
//! not already encoded, not `no-transform`, not a range, not bodyless),
//! streamed frame by frame (`body::CompressBody`). Only hyper's path
//! compresses: the native engine hands a request that may be compressed
//! to it (`routes::Route::for_hyper`).

mod accept;
mod body;

use http::header::{self, HeaderMap, HeaderValue};
use http::{Response, StatusCode};
use shoal_config::{Codec, CompressConfig, CompressLevels};

pub use accept::negotiate;
pub use body::{CompressBody, Encoder};

use crate::proxy::body::ProxyBody;

/// One route's compression settings, compiled.
#[derive(Debug)]
pub struct Compression {
    codecs: Box<[Codec]>,
    /// Exact media types, lowercase.
    types: Box<[Box<str>]>,
    /// `type/` of each `type/*`, lowercase.
    prefixes: Box<[Box<str>]>,
    min_size: u64,
    levels: CompressLevels,
}

impl Compression {
    pub fn new(c: &CompressConfig) -> Compression {
        let (wild, exact): (Vec<&String>, Vec<&String>) =
            c.types.iter().partition(|t| t.ends_with("/*"));
        Compression {
            codecs: c.codecs.clone().into(),
            types: exact
                .iter()
                .map(|t| t.to_ascii_lowercase().into())
                .collect(),
            prefixes: wild
                .iter()
                .map(|t| t[..t.len() - 1].to_ascii_lowercase().into())
                .collect(),
            min_size: c.min_size,
            levels: c.level,
        }
    }

    /// The coding for a request's response, if the request takes one of
    /// this route's (`HEAD` never: there is no body to compress).
    pub fn negotiate<'a>(
        &self,
        method: &str,
        accept_encoding: impl Iterator<Item = &'a [u8]>,
    ) -> Option<Codec> {
        if method == "HEAD" {
            return None;
        }
        accept::negotiate(accept_encoding, &self.codecs)
    }

    /// Is the media type (parameters aside) one to compress?
    fn takes_type(&self, content_type: &[u8]) -> bool {
        let Ok(ct) = std::str::from_utf8(content_type) else {
            return false;
        };
        let media = ct.split(';').next().unwrap_or("").trim();
        self.types.iter().any(|t| media.eq_ignore_ascii_case(t))
            || self.prefixes.iter().any(|p| {
                media.len() > p.len()
                    && media.is_char_boundary(p.len())
                    && media[..p.len()].eq_ignore_ascii_case(p)
            })
    }

    /// Is this response one to compress? Not a 1xx, 204, 206 or 304, nor
    /// one with `Content-Encoding` or `Content-Range`, `Cache-Control:
    /// no-transform`, a media type not configured, or a `Content-Length`
    /// below `min_size` (an unknown length is compressed).
    pub fn applies(&self, status: StatusCode, headers: &HeaderMap) -> bool {
        if status.is_informational()
            || matches!(
                status,
                StatusCode::NO_CONTENT | StatusCode::PARTIAL_CONTENT | StatusCode::NOT_MODIFIED
            )
            || headers.contains_key(header::CONTENT_ENCODING)
            || headers.contains_key(header::CONTENT_RANGE)
        {
            return false;
        }
        let no_transform = headers.get_all(header::CACHE_CONTROL).iter().any(|v| {
            v.as_bytes()
                .split(|&b| b == b',')
                .any(|d| d.trim_ascii().eq_ignore_ascii_case(b"no-transform"))
        });
        if no_transform {
            return false;
        }
        if !headers
            .get(header::CONTENT_TYPE)
            .is_some_and(|ct| self.takes_type(ct.as_bytes()))
        {
            return false;
        }
        let length = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        length.is_none_or(|n| n >= self.min_size && n > 0)
    }

    /// `resp` compressed with `codec`, when it is one to compress (see
    /// [`Compression::applies`]); else as it was.
    pub fn respond(&self, resp: Response<ProxyBody>, codec: Codec) -> Response<ProxyBody> {
        if !self.applies(resp.status(), resp.headers()) {
            return resp;
        }
        let encoder = match Encoder::new(codec, self.levels.of(codec)) {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(codec = codec.token(), error = %e, "cannot start the encoder; response sent uncompressed");
                return resp;
            }
        };
        let (mut parts, body) = resp.into_parts();
        encoded_headers(&mut parts.headers, codec);
        let body = ProxyBody::boxed(CompressBody::new(body, encoder));
        Response::from_parts(parts, body)
    }
}

/// The headers of a response whose body is now in `codec`: its coding,
/// `Vary: Accept-Encoding` (merged with the response's own), no
/// `Content-Length` (the length is unknown until the end: chunked on
/// HTTP/1.1), and a strong `ETag` made weak (the bytes are not the same;
/// nginx does so too), no `Accept-Ranges` (ranges of the coded body are
/// not offered).
pub fn encoded_headers(headers: &mut HeaderMap, codec: Codec) {
    headers.insert(
        header::CONTENT_ENCODING,
        HeaderValue::from_static(codec.token()),
    );
    headers.remove(header::CONTENT_LENGTH);
    headers.remove(header::ACCEPT_RANGES);
    vary_accept_encoding(headers);
    if let Some(etag) = headers.get(header::ETAG) {
        if !etag.as_bytes().starts_with(b"W/") {
            let mut weak = b"W/".to_vec();
            weak.extend_from_slice(etag.as_bytes());
            if let Ok(v) = HeaderValue::from_bytes(&weak) {
                headers.insert(header::ETAG, v);
            }
        }
    }
}

/// `Vary: Accept-Encoding`, unless the response's `Vary` names it or `*`.
pub fn vary_accept_encoding(headers: &mut HeaderMap) {
    let named = headers.get_all(header::VARY).iter().any(|v| {
        v.as_bytes().split(|&b| b == b',').any(|n| {
            let n = n.trim_ascii();
            n == b"*" || n.eq_ignore_ascii_case(b"accept-encoding")
        })
    });
    if !named {
        headers.append(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
}

/// The fuzz target's `Accept-Encoding` (`crate::fuzz::request_target`):
/// what is chosen is one of the codecs offered.
#[cfg(any(test, fuzzing))]
pub(crate) fn fuzz_negotiate(value: &[u8]) -> Option<Codec> {
    let offered = [Codec::Zstd, Codec::Br, Codec::Gzip];
    let chosen = accept::negotiate(std::iter::once(value), &offered);
    assert!(chosen.is_none_or(|c| offered.contains(&c)));
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(lines: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in lines {
            h.append(*n, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn which_responses_are_compressed() {
        let c = Compression::new(&CompressConfig::default());
        let ok = StatusCode::OK;
        let json = [("content-type", "application/json; charset=utf-8")];
        assert!(c.applies(ok, &headers(&json)), "unknown length");
        assert!(c.applies(ok, &headers(&[("content-type", "Text/HTML")])));
        assert!(!c.applies(ok, &headers(&[("content-type", "image/png")])));
        assert!(!c.applies(ok, &headers(&[])), "no type");
        assert!(!c.applies(ok, &headers(&[("content-type", "text")])));
        let small = [("content-type", "text/plain"), ("content-length", "100")];
        assert!(!c.applies(ok, &headers(&small)));
        let big = [("content-type", "text/plain"), ("content-length", "1024")];
        assert!(c.applies(ok, &headers(&big)));
        for status in [204, 206, 304, 101] {
            let s = StatusCode::from_u16(status).unwrap();
            assert!(!c.applies(s, &headers(&json)), "{status}");
        }
        for extra in [
            ("content-encoding", "gzip"),
            ("cache-control", "public, No-Transform"),
            ("content-range", "bytes 0-1/2"),
        ] {
            let mut h = headers(&json);
            h.append(extra.0, HeaderValue::from_static(extra.1));
            assert!(!c.applies(ok, &h), "{extra:?}");
        }
    }

    #[test]
    fn the_headers_of_an_encoded_response() {
        let mut h = headers(&[
            ("content-length", "5000"),
            ("etag", "\"abc\""),
            ("vary", "Origin"),
            ("accept-ranges", "bytes"),
        ]);
        encoded_headers(&mut h, Codec::Br);
        assert_eq!(h["content-encoding"], "br");
        assert!(!h.contains_key("content-length"));
        assert!(!h.contains_key("accept-ranges"));
        assert_eq!(h["etag"], "W/\"abc\"");
        let vary: Vec<_> = h.get_all("vary").iter().collect();
        assert_eq!(vary, ["Origin", "Accept-Encoding"]);
        let mut h = headers(&[("etag", "W/\"x\""), ("vary", "accept-encoding")]);
        encoded_headers(&mut h, Codec::Gzip);
        assert_eq!(h["etag"], "W/\"x\"");
        assert_eq!(h.get_all("vary").iter().count(), 1);
    }
}
