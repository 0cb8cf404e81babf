//! `GET /ws`: a WebSocket echo, and the bookkeeping that lets a shutdown close every
//! session politely before the process exits.
//!
//! The handshake is answered here (hyper hands over the raw connection after the 101);
//! tungstenite answers pings and close frames by itself, so the loop only echoes data.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::body::{self, Body};
use crate::routes::App;

/// How long a session gets to finish its close handshake once shutdown starts.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Live WebSocket sessions: told when shutdown starts, counted so the server can wait
/// for them (hyper's graceful shutdown stops tracking a connection once it upgrades).
pub(crate) struct Sessions {
    shutting_down: watch::Sender<bool>,
    live: watch::Sender<usize>,
}

/// Held by a session's task; the session count drops when it does.
struct SessionGuard {
    live: watch::Sender<usize>,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        self.live.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Sessions {
    pub(crate) fn new() -> Self {
        Self {
            shutting_down: watch::Sender::new(false),
            live: watch::Sender::new(0),
        }
    }

    fn enter(&self) -> SessionGuard {
        self.live.send_modify(|n| *n += 1);
        SessionGuard {
            live: self.live.clone(),
        }
    }

    /// Asks every session, present and future, to close.
    pub(crate) fn begin_shutdown(&self) {
        self.shutting_down.send_replace(true);
    }

    /// Resolves when no session is left.
    pub(crate) async fn wait_closed(&self) {
        let mut live = self.live.subscribe();
        // `self` holds the sender, so the channel cannot close under us.
        let _ = live.wait_for(|n| *n == 0).await;
    }
}

/// Answers the upgrade handshake and spawns the echo session.
pub(crate) fn upgrade(app: &Arc<App>, mut req: Request<Incoming>) -> Response<Body> {
    let headers = req.headers();
    if req.version() != Version::HTTP_11
        || !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return app.bad_request("/ws expects a WebSocket upgrade over HTTP/1.1");
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .is_none_or(|v| v.as_bytes() != b"13")
    {
        let mut response = app.bad_request("only WebSocket version 13 is supported");
        response.headers_mut().insert(
            header::SEC_WEBSOCKET_VERSION,
            HeaderValue::from_static("13"),
        );
        return response;
    }
    let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY) else {
        return app.bad_request("Sec-WebSocket-Key is missing");
    };
    let accept = derive_accept_key(key.as_bytes());
    let Ok(accept) = HeaderValue::from_str(&accept) else {
        // A base64 digest is always a valid header value.
        return app.bad_request("cannot answer this Sec-WebSocket-Key");
    };

    let on_upgrade = hyper::upgrade::on(&mut req);
    let guard = app.sessions.enter();
    let shutdown = app.sessions.shutting_down.subscribe();
    tokio::spawn(async move {
        let _guard = guard;
        // Fails if the client went away before the 101 reached it; nothing to do then.
        if let Ok(upgraded) = on_upgrade.await {
            let ws =
                WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
            echo(ws, shutdown).await;
        }
    });

    let mut response = Response::new(body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    response
}

/// Echoes text and binary messages until the peer closes, the connection breaks, or
/// the server shuts down (then the peer gets a 1001 "going away" close).
async fn echo<S>(mut ws: WebSocketStream<S>, mut shutdown: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            msg = ws.next() => {
                let reply = match msg {
                    Some(Ok(Message::Text(text))) => Message::Text(text),
                    Some(Ok(Message::Binary(data))) => Message::Binary(data),
                    // Pings are answered and closes acknowledged by tungstenite itself,
                    // on the next read.
                    Some(Ok(_)) => continue,
                    Some(Err(_)) | None => return,
                };
                if ws.send(reply).await.is_err() {
                    return;
                }
            }
            () = stopping(&mut shutdown) => break,
        }
    }
    let frame = CloseFrame {
        code: CloseCode::Away,
        reason: Utf8Bytes::from_static("server shutting down"),
    };
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if ws.close(Some(frame)).await.is_ok() {
            // Read until the peer's close completes the handshake.
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// Resolves once shutdown has begun (or the server is gone).
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is not `Send`; drop it here, before any await.
    let _ = shutdown.wait_for(|stop| *stop).await.is_ok();
}

/// Whether a comma-separated header (any of its occurrences) lists `token`,
/// ignoring case.
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers.get_all(name).iter().any(|value| {
        value
            .to_str()
            .unwrap_or("")
            .split(',')
            .any(|t| t.trim().eq_ignore_ascii_case(token))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_lists_are_matched_case_insensitively() {
        let mut headers = HeaderMap::new();
        headers.append(header::CONNECTION, HeaderValue::from_static("keep-alive"));
        headers.append(header::CONNECTION, HeaderValue::from_static(" Upgrade , x"));
        assert!(has_token(&headers, header::CONNECTION, "upgrade"));
        assert!(!has_token(&headers, header::CONNECTION, "close"));
        assert!(!has_token(&headers, header::UPGRADE, "websocket"));
    }

    #[tokio::test]
    async fn sessions_are_counted_until_their_guards_drop() {
        let sessions = Sessions::new();
        let a = sessions.enter();
        let b = sessions.enter();
        assert_eq!(*sessions.live.borrow(), 2);
        drop(a);
        let waiting = tokio::spawn(async move {
            sessions.wait_closed().await;
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(b);
        waiting.await.unwrap();
    }
}
