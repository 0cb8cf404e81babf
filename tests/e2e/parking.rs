//! Idle keep-alive connections parked without a task of their own
//! (`proxy/h1/park.rs`): a plain connection on the native engine idle for
//! a second leaves its task and waits in the listener's epoll set. Seen
//! from outside, nothing changes: its next request is answered on the same
//! connection, `idle_timeout` still closes it, the drain still closes it at
//! once, and it still counts as open. `shoal_client_connections_parked`
//! says how many are parked.

use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::support::{read_response, read_to_close, upstreams_config, Backend, Shoal};

fn config(backend: &Backend, engine: &str, extra: &str) -> String {
    upstreams_config(
        &[backend.addr],
        &format!("proxy: {{ engine: {engine} }}\n{extra}"),
    )
}

/// One keep-alive GET on `s`, answered 200.
async fn get(s: &mut TcpStream) {
    s.write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let head = read_response(s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
}

/// `n` client connections to `shoal`, each after one GET answered.
async fn connected(shoal: &Shoal, n: usize) -> Vec<TcpStream> {
    let mut conns = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(shoal.proxy).await.unwrap();
        get(&mut s).await;
        conns.push(s);
    }
    conns
}

/// A shoal on the native engine with `extra` in its config, and `n`
/// connections that had one GET answered each and are now parked.
async fn parked(extra: &str, n: usize) -> (Backend, Shoal, Vec<TcpStream>) {
    let backend = Backend::start("b").await;
    let shoal = Shoal::start(&config(&backend, "native", extra));
    shoal.wait_upstreams(1).await;
    let conns = connected(&shoal, n).await;
    let want = (n as f64, n as f64);
    let seen = wait_counts(&shoal, want, Duration::from_secs(5)).await;
    assert_eq!(seen, want, "{n} idle connections parked, all open");
    (backend, shoal, conns)
}

/// `(parked, open)` from `/metrics`.
async fn counts(shoal: &Shoal) -> (f64, f64) {
    let m = shoal.metrics().await;
    (
        m["shoal_client_connections_parked"],
        m["shoal_client_connections_open"],
    )
}

/// Waits until `/metrics` shows `want` (parked, open); the last seen if
/// not within `within`.
async fn wait_counts(shoal: &Shoal, want: (f64, f64), within: Duration) -> (f64, f64) {
    let until = Instant::now() + within;
    loop {
        let now = counts(shoal).await;
        if now == want || Instant::now() > until {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Three connections idle past a second park (native engine) and each
/// answers its next request on the same connection, pipelined ones too;
/// they park again, and a client's close while parked ends its connection.
/// With `proxy.engine: hyper` nothing parks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_park_and_serve_their_next_request() {
    let backend = Backend::start("b").await;
    for engine in ["native", "hyper"] {
        let shoal = Shoal::start(&config(&backend, engine, "limits: { idle_timeout: 60s }\n"));
        shoal.wait_upstreams(1).await;
        let mut conns = connected(&shoal, 3).await;
        if engine == "hyper" {
            tokio::time::sleep(Duration::from_millis(2000)).await;
            assert_eq!(counts(&shoal).await, (0.0, 3.0), "hyper parks nothing");
            continue;
        }
        let seen = wait_counts(&shoal, (3.0, 3.0), Duration::from_secs(5)).await;
        assert_eq!(seen, (3.0, 3.0), "three idle connections parked, all open");

        // The next request on each parked connection: answered on it.
        for s in &mut conns {
            get(s).await;
        }
        // Two pipelined on a parked one, the second closing: both
        // answered, in order, then the close.
        let seen = wait_counts(&shoal, (3.0, 3.0), Duration::from_secs(5)).await;
        assert_eq!(seen, (3.0, 3.0), "parked again after their requests");
        let mut last = conns.pop().unwrap();
        last.write_all(
            b"GET / HTTP/1.1\r\nhost: t\r\n\r\nGET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n",
        )
        .await
        .unwrap();
        let both = read_to_close(&mut last, Duration::from_secs(5))
            .await
            .expect("closed after the second answer");
        assert_eq!(both.matches("HTTP/1.1 200 OK\r\n").count(), 2, "{both}");

        // A client that closes while parked: its connection ends.
        let seen = wait_counts(&shoal, (2.0, 2.0), Duration::from_secs(5)).await;
        assert_eq!(seen, (2.0, 2.0));
        drop(conns.remove(0));
        let seen = wait_counts(&shoal, (1.0, 1.0), Duration::from_secs(5)).await;
        assert_eq!(
            seen,
            (1.0, 1.0),
            "the closed one is neither parked nor open"
        );
        assert!(!shoal.log().iter().any(|l| l.contains("panicked")));
    }
}

/// A parked connection still closes at `limits.idle_timeout` (counted from
/// its last response, within the sweeper's tick: 50 ms here, an eighth of
/// `header_read_timeout`), and stops counting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_closes_at_its_idle_timeout() {
    let backend = Backend::start("b").await;
    let shoal = Shoal::start(&config(
        &backend,
        "native",
        "limits: { idle_timeout: 3s, header_read_timeout: 400ms }\n",
    ));
    shoal.wait_upstreams(1).await;
    let mut s = connected(&shoal, 1).await.remove(0);
    let answered = Instant::now();
    let seen = wait_counts(&shoal, (1.0, 1.0), Duration::from_secs(3)).await;
    assert_eq!(seen, (1.0, 1.0), "parked before its idle timeout");
    let rest = read_to_close(&mut s, Duration::from_secs(6))
        .await
        .expect("the parked connection was not closed at idle_timeout");
    assert!(rest.is_empty(), "{rest}");
    let after = answered.elapsed();
    // Not a second late for the time it waited before parking.
    assert!(
        after >= Duration::from_millis(2900) && after < Duration::from_millis(3900),
        "closed {after:?} after its last response (idle_timeout: 3s)"
    );
    let seen = wait_counts(&shoal, (0.0, 0.0), Duration::from_secs(2)).await;
    assert_eq!(seen, (0.0, 0.0));
}

/// The drain closes parked connections at once, as any idle connection,
/// while a request still in flight keeps shoal in its grace period (so the
/// kernel's close at exit cannot pass for it); that request is answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drain_closes_parked_connections_at_once() {
    let (_backend, mut shoal, mut conns) = parked(
        "shutdown: { grace: 30s }\nlimits: { idle_timeout: 5m }\n",
        3,
    )
    .await;
    // In flight for 4 s from now.
    let mut busy = TcpStream::connect(shoal.proxy).await.unwrap();
    busy.write_all(b"GET /slow?ms=4000 HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    shoal.signal(nix::sys::signal::Signal::SIGTERM);
    for s in &mut conns {
        let rest = read_to_close(s, Duration::from_secs(5))
            .await
            .expect("a parked connection stayed open after the drain began");
        assert!(rest.is_empty(), "{rest}");
    }
    let closed_after = signalled.elapsed();
    assert!(
        closed_after < Duration::from_millis(2000),
        "parked connections closed {closed_after:?} after SIGTERM, not at once"
    );
    let answer = read_to_close(&mut busy, Duration::from_secs(10))
        .await
        .expect("the request in flight was answered and closed");
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(
        signalled.elapsed() > closed_after + Duration::from_millis(1000),
        "the request in flight ended too soon for this test to mean anything"
    );
    let code = tokio::task::block_in_place(|| shoal.wait_exit(Duration::from_secs(10)));
    assert_eq!(code, Some(0), "{:#?}", shoal.log());
}

/// A parked connection keeps its place under `limits.max_connections`, as
/// an idle one in its task does: with one allowed, a second client waits
/// until the parked one closes, then is served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_parked_connection_keeps_its_max_connections_slot() {
    let (_backend, shoal, mut conns) =
        parked("limits: { idle_timeout: 60s, max_connections: 1 }\n", 1).await;
    let first = conns.remove(0);
    // Connected in the kernel's backlog; not accepted while the slot is held.
    let mut second = TcpStream::connect(shoal.proxy).await.unwrap();
    second
        .write_all(b"GET / HTTP/1.1\r\nhost: t\r\n\r\n")
        .await
        .unwrap();
    let early = read_response(&mut second, Duration::from_millis(1500)).await;
    assert!(early.is_empty(), "served past max_connections: {early}");
    drop(first);
    let head = read_response(&mut second, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
}
