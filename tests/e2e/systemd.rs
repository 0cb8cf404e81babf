//! systemd's notification protocol (`Type=notify`): the test plays systemd.
//! It binds a datagram socket, gives its path to shoal in `NOTIFY_SOCKET`
//! with a watchdog (`WATCHDOG_USEC`), and reads what shoal sends: `READY=1`
//! once a backend is in rotation, `RELOADING=1` with `MONOTONIC_USEC` and
//! `READY=1` around a config reload (SIGHUP, what `ExecReload` sends),
//! `WATCHDOG=1` pings, `STOPPING=1` at SIGTERM; and the app's instances do
//! not inherit the variables.

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tokio::net::UnixDatagram;

use crate::support::{demo_config, get, Shoal};

/// The next message that is not a watchdog ping, counting the pings.
async fn next(sock: &UnixDatagram, pings: &mut usize) -> String {
    let mut buf = vec![0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(20), sock.recv(&mut buf))
            .await
            .expect("a notification within 20 s")
            .expect("recv");
        let msg = String::from_utf8_lossy(&buf[..n]).into_owned();
        if msg == "WATCHDOG=1\n" {
            *pings += 1;
        } else {
            return msg;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_reloading_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&path).unwrap();
    let started = Instant::now();
    let mut shoal = Shoal::start_env(
        &demo_config(2, ""),
        &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "400000"),
        ],
    );
    let mut pings = 0;

    // READY=1 only once a backend is in rotation: /ready agrees at once.
    let ready = next(&sock, &mut pings).await;
    assert!(ready.starts_with("READY=1\nSTATUS=serving: "), "{ready:?}");
    assert!(ready.contains("backends in rotation"), "{ready:?}");
    let r = get(shoal.admin, "/ready").await.unwrap();
    assert_eq!(r.status, 200, "READY=1 was sent before /ready said so");

    // The instances do not inherit the protocol's variables.
    let pids = shoal.instance_pids().await;
    assert!(!pids.is_empty());
    for pid in pids {
        let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
        let env = String::from_utf8_lossy(&env);
        for name in ["NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID="] {
            assert!(
                !env.split('\0').any(|v| v.starts_with(name)),
                "instance {pid} has {name}"
            );
        }
        assert!(env.contains("INSTANCE_ID="), "read the right process");
    }

    // A config reload: RELOADING=1 with the monotonic clock, then READY=1.
    shoal.signal(Signal::SIGHUP);
    let reloading = next(&sock, &mut pings).await;
    let lines: Vec<&str> = reloading.lines().collect();
    assert_eq!(lines.first(), Some(&"RELOADING=1"), "{reloading:?}");
    let usec: u64 = lines
        .iter()
        .find_map(|l| l.strip_prefix("MONOTONIC_USEC="))
        .expect("MONOTONIC_USEC, which systemd 253 requires")
        .parse()
        .unwrap();
    assert!(usec > 0);
    let again = next(&sock, &mut pings).await;
    assert!(again.starts_with("READY=1\n"), "{again:?}");

    // The watchdog: a ping every half WATCHDOG_USEC (200 ms).
    let t = Instant::now();
    while t.elapsed() < Duration::from_millis(1100) {
        let mut buf = [0u8; 64];
        if let Ok(Ok(n)) =
            tokio::time::timeout(Duration::from_millis(1100), sock.recv(&mut buf)).await
        {
            assert_eq!(&buf[..n], b"WATCHDOG=1\n");
            pings += 1;
        }
    }
    let expected = started.elapsed().as_millis() / 200;
    assert!(
        pings >= 4 && (pings as u128) <= expected + 2,
        "{pings} pings in {:?}",
        started.elapsed()
    );

    shoal.signal(Signal::SIGTERM);
    let stopping = next(&sock, &mut pings).await;
    assert!(stopping.starts_with("STOPPING=1\n"), "{stopping:?}");
    assert_eq!(shoal.wait_exit(Duration::from_secs(20)), Some(0));
}
