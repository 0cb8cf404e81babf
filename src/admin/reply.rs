//! Admin responses: JSON documents, text (metrics) and NDJSON progress streams.

use std::convert::Infallible;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use serde_json::Value;
use tokio::sync::mpsc::UnboundedReceiver;

use crate::supervisor::Event;

/// How often an idle Server-Sent Events stream sends a comment, so proxies
/// and browsers in between keep it open and a gone client is noticed.
const SSE_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(15);

pub type AdminBody = BoxBody<Bytes, Infallible>;

pub fn json(status: StatusCode, body: Value) -> Response<AdminBody> {
    let mut text = serde_json::to_vec_pretty(&body).unwrap_or_default();
    text.push(b'\n');
    let mut resp = Response::new(Full::new(Bytes::from(text)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// A text document (the metrics) of the given content type.
pub fn text(status: StatusCode, content_type: &'static str, body: String) -> Response<AdminBody> {
    let mut resp = Response::new(Full::new(Bytes::from(body)).boxed());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One JSON object per line as the operation goes; the last is `done`.
pub fn progress_stream(rx: UnboundedReceiver<Event>) -> Response<AdminBody> {
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        let event = rx.recv().await?;
        let mut line = serde_json::to_vec(&event).unwrap_or_default();
        line.push(b'\n');
        Some((Ok::<_, Infallible>(Frame::data(Bytes::from(line))), rx))
    });
    ndjson(StreamBody::new(stream).boxed())
}

/// A body of JSON lines (NDJSON), never cached.
pub fn ndjson(body: AdminBody) -> Response<AdminBody> {
    let mut resp = Response::new(body);
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-ndjson"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

/// One Server-Sent Events message: `id:` (when given) and the value as
/// one `data:` line of JSON.
pub fn sse_message(id: Option<u64>, value: &impl serde::Serialize) -> Bytes {
    let mut text = String::new();
    if let Some(id) = id {
        text.push_str(&format!("id: {id}\n"));
    }
    text.push_str("data: ");
    // JSON without pretty-printing has no newline to split.
    text.push_str(&serde_json::to_string(value).unwrap_or_default());
    text.push_str("\n\n");
    Bytes::from(text)
}

/// A comment line, which an SSE client ignores.
pub fn sse_comment(text: &str) -> Bytes {
    Bytes::from(format!(": {}\n\n", text.replace('\n', " ")))
}

/// A `text/event-stream` response of `messages`, with a keep-alive comment
/// whenever nothing was sent for a while.
pub fn sse(
    messages: impl futures_util::Stream<Item = Bytes> + Send + Sync + 'static,
) -> Response<AdminBody> {
    use futures_util::StreamExt;
    let messages = Box::pin(messages);
    let stream = futures_util::stream::unfold(messages, |mut messages| async move {
        let next = tokio::select! {
            m = messages.next() => m?,
            _ = tokio::time::sleep(SSE_KEEPALIVE) => sse_comment("keep-alive"),
        };
        Some((Ok::<_, Infallible>(Frame::data(next)), messages))
    });
    let mut resp = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sse_message_is_an_id_and_one_data_line() {
        let m = sse_message(Some(7), &serde_json::json!({"a": "x\ny"}));
        assert_eq!(&m[..], b"id: 7\ndata: {\"a\":\"x\\ny\"}\n\n");
        assert_eq!(&sse_comment("two\nlines")[..], b": two lines\n\n");
    }
}
