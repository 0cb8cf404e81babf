//! `GET /ws` with a real WebSocket client.

mod support;

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use support::{get, Server};
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

const STEP: Duration = Duration::from_secs(5);

#[tokio::test]
async fn echoes_text_binary_and_answers_ping_and_close() {
    let server = Server::start(support::opts("ws-1")).await;
    let (mut ws, response) = connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    assert_eq!(response.headers()["x-demo-instance"], "ws-1");

    ws.send(Message::text("hello")).await.unwrap();
    let reply = tokio::time::timeout(STEP, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::text("hello"));

    let blob: Bytes = (0..=255u8).cycle().take(200_000).collect();
    ws.send(Message::binary(blob.clone())).await.unwrap();
    let reply = tokio::time::timeout(STEP, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::Binary(blob));

    ws.send(Message::Ping(Bytes::from_static(b"are you there")))
        .await
        .unwrap();
    let reply = tokio::time::timeout(STEP, ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(reply, Message::Pong(Bytes::from_static(b"are you there")));

    ws.close(None).await.unwrap();
    // The server acknowledges the close; then the stream ends.
    loop {
        match tokio::time::timeout(STEP, ws.next()).await.unwrap() {
            Some(Ok(Message::Close(_))) => continue,
            Some(Ok(other)) => panic!("unexpected {other:?} after close"),
            Some(Err(_)) | None => break,
        }
    }
    // The session is gone, so shutdown does not wait for it.
    server.stop().await.unwrap();
}

#[tokio::test]
async fn plain_get_on_ws_is_rejected() {
    let server = Server::start(support::opts("ws")).await;
    let reply = get(server.addr, "/ws").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["instance"], "ws");
    let reply = support::post(server.addr, "/ws").await;
    assert_eq!(reply.status, StatusCode::METHOD_NOT_ALLOWED);
    server.stop().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_sessions_with_going_away() {
    let mut server = Server::start(support::opts("ws")).await;
    let (mut ws, _) = connect_async(format!("ws://{}/ws", server.addr))
        .await
        .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    assert_eq!(
        tokio::time::timeout(STEP, ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap(),
        Message::text("before")
    );

    server.begin_stop();
    match tokio::time::timeout(STEP, ws.next()).await.unwrap() {
        Some(Ok(Message::Close(Some(frame)))) => assert_eq!(frame.code, CloseCode::Away),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // Reading on lets tungstenite answer the close, which completes the handshake.
    while let Ok(Some(Ok(_))) = tokio::time::timeout(STEP, ws.next()).await {}
    server.join(STEP).await.unwrap();
}
