//! Response bodies: one boxed type for every route, JSON helpers, and the generated
//! download body.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, SizeHint};

pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every response. Unsync because hyper's `Incoming` (streamed back
/// by `/echo`) need not be `Sync`.
pub(crate) type Body = http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError>;

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

pub(crate) fn empty() -> Body {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A JSON response. Statuses that must not carry content (204, 205, 304) get none.
pub(crate) fn json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let no_content = matches!(
        status,
        StatusCode::NO_CONTENT | StatusCode::RESET_CONTENT | StatusCode::NOT_MODIFIED
    );
    let body = if no_content {
        empty()
    } else {
        // Serialising a `Value` cannot fail; fall back to an empty object all the same.
        let mut bytes = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
        bytes.push(b'\n');
        full(bytes)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    if !no_content {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
    }
    response
}

/// Size of each chunk `/download` produces.
pub(crate) const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// The repeated pattern `/download` sends: 64-byte lines, so a download is readable
/// text and every byte is predictable (`PATTERN[i % 64]`).
pub(crate) const PATTERN: &[u8; 64] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_\n";

static CHUNK: [u8; DOWNLOAD_CHUNK] = {
    let mut chunk = [0u8; DOWNLOAD_CHUNK];
    let mut i = 0;
    while i < DOWNLOAD_CHUNK {
        chunk[i] = PATTERN[i % PATTERN.len()];
        i += 1;
    }
    chunk
};

/// `n` bytes of [`PATTERN`], produced one shared static chunk at a time: memory use
/// is the same for 1 byte and for 100 GiB.
pub(crate) struct Download {
    remaining: u64,
}

impl Download {
    pub(crate) fn new(len: u64) -> Self {
        Self { remaining: len }
    }
}

impl hyper::body::Body for Download {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.remaining == 0 {
            return Poll::Ready(None);
        }
        let len = usize::try_from(self.remaining)
            .unwrap_or(DOWNLOAD_CHUNK)
            .min(DOWNLOAD_CHUNK);
        self.remaining -= len as u64;
        Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(&CHUNK[..len])))))
    }

    fn is_end_stream(&self) -> bool {
        self.remaining == 0
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.remaining)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::body::Body as _;

    #[tokio::test]
    async fn download_produces_exactly_n_bytes_of_pattern() {
        for n in [0u64, 1, 63, 64, 65_535, 65_536, 65_537, 300_001] {
            let bytes = Download::new(n).collect().await.unwrap().to_bytes();
            assert_eq!(bytes.len() as u64, n);
            assert!(bytes
                .iter()
                .enumerate()
                .all(|(i, b)| *b == PATTERN[i % PATTERN.len()]));
        }
    }

    #[test]
    fn download_size_hint_is_exact() {
        let body = Download::new(5 << 30);
        assert_eq!(body.size_hint().exact(), Some(5 << 30));
        assert!(!body.is_end_stream());
        assert!(Download::new(0).is_end_stream());
    }

    #[test]
    fn json_omits_body_for_no_content_statuses() {
        let value = serde_json::json!({"a": 1});
        let r = json(StatusCode::NO_CONTENT, &value);
        assert!(r.headers().get(header::CONTENT_TYPE).is_none());
        assert!(r.body().is_end_stream());
        let r = json(StatusCode::OK, &value);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }
}
