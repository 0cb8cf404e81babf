//! WebSocket through shoal: many messages both ways, and the tunnel idle
//! timeout (`proxy.tunnel_idle_timeout`) closing an idle tunnel but not a
//! busy one.

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::support::{demo_config, Shoal};

/// Message `i` of the echo test: text and binary mixed, a few of 64 KiB.
fn message(i: usize) -> Message {
    if i % 100 == 37 {
        let data: Vec<u8> = (0..64 * 1024).map(|j| ((i + j) % 253) as u8).collect();
        return Message::binary(data);
    }
    if i % 2 == 0 {
        let text = format!("message {i} ").repeat(1 + i % 50);
        Message::text(text)
    } else {
        let data: Vec<u8> = (0..(i * 37) % 4096 + 1)
            .map(|j| ((i * 7 + j) % 256) as u8)
            .collect();
        Message::binary(data)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echoes_a_thousand_messages() {
    let shoal = Shoal::start(&demo_config(2, ""));
    shoal.wait_healthy(2).await;
    let url = format!("ws://{}/ws", shoal.proxy);
    let (ws, resp) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect");
    assert_eq!(resp.status(), 101);
    let (mut sink, mut stream) = ws.split();
    const N: usize = 1000;

    let started = Instant::now();
    // Send and receive at the same time, so both directions stream at once.
    let sender = tokio::spawn(async move {
        for i in 0..N {
            sink.send(message(i)).await.expect("send");
        }
        sink
    });
    let mut big = 0;
    for i in 0..N {
        let got = tokio::time::timeout(Duration::from_secs(20), stream.next())
            .await
            .unwrap_or_else(|_| panic!("no echo for message {i} within 20s"))
            .unwrap_or_else(|| panic!("stream ended before message {i}"))
            .unwrap_or_else(|e| panic!("message {i}: {e}"));
        let want = message(i);
        if want.len() == 64 * 1024 {
            big += 1;
        }
        assert_eq!(
            got.is_text(),
            want.is_text(),
            "message {i}: kind differs (got {} bytes)",
            got.len()
        );
        assert!(got == want, "message {i} differs ({} bytes)", got.len());
    }
    assert_eq!(big, 10, "the 64 KiB messages were exercised");
    eprintln!("1000 websocket messages echoed in {:?}", started.elapsed());
    let mut sink = sender.await.unwrap();
    sink.send(Message::Close(None)).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_idle_tunnel_is_closed_busy_one_is_not() {
    let shoal = Shoal::start(&demo_config(1, "proxy: { tunnel_idle_timeout: 1s }\n"));
    shoal.wait_healthy(1).await;
    let url = format!("ws://{}/ws", shoal.proxy);
    // Taken before the idle tunnel exists, so its idle clock starts later.
    let opened = Instant::now();
    let (mut idle, _) = tokio_tungstenite::connect_async(url.clone())
        .await
        .expect("ws connect (idle)");
    let (mut busy, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connect (busy)");

    // The busy one: a message every 300 ms for 3 s, each echoed.
    let busy_task = tokio::spawn(async move {
        let started = Instant::now();
        let mut i = 0;
        while started.elapsed() < Duration::from_secs(3) {
            busy.send(Message::text(format!("tick {i}")))
                .await
                .expect("busy: send");
            let got = tokio::time::timeout(Duration::from_secs(2), busy.next())
                .await
                .expect("busy: echo within 2s")
                .expect("busy: stream ended")
                .expect("busy: read error");
            assert_eq!(got.into_text().unwrap().as_str(), format!("tick {i}"));
            i += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        // Still open after more than 3 tunnel timeouts.
        busy.send(Message::text("last"))
            .await
            .expect("busy: last send");
        let got = busy
            .next()
            .await
            .expect("busy: ended")
            .expect("busy: error");
        assert_eq!(got.into_text().unwrap().as_str(), "last");
        busy.close(None).await.unwrap();
        i
    });

    // The idle one: nothing sent; shoal must end it after ~1 s. The end is
    // either a clean end of stream or a reset without a closing handshake.
    let end = tokio::time::timeout(Duration::from_secs(5), idle.next())
        .await
        .expect("idle websocket still open after 5s");
    let closed_after = opened.elapsed();
    match end {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {}
        Some(Ok(m)) => panic!("idle websocket got a message: {m:?}"),
    }
    eprintln!("idle websocket closed after {closed_after:?} ({end:?})");
    assert!(
        closed_after >= Duration::from_secs(1) && closed_after <= Duration::from_secs(3),
        "idle websocket closed after {closed_after:?}, expected ~1s"
    );

    let ticks = busy_task.await.expect("busy websocket stayed open");
    assert!(ticks >= 8, "only {ticks} ticks in 3s");
    crate::support::eventually(Duration::from_secs(2), "idle close logged", || async {
        shoal.log_contains("no traffic either way").then_some(())
    })
    .await;
}
