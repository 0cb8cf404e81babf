//! slowhttptest (Debian's `slowhttptest`), a DoS tool not written for
//! shoal: slowloris (headers dribbled in), slow body (R-U-Dead-Yet) and
//! slow read, each bounded in connections and time, against shoal with
//! 2-second client timeouts. While each runs, a normal client keeps asking
//! on fresh connections and must get every answer, each within a second;
//! and shoal must have closed the slow connections itself (its debug log
//! names the timeout for each), not merely served them.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::support::{demo_config, get, Shoal};

const LIMITS: &str =
    "limits: { header_read_timeout: 2s, body_read_timeout: 2s, send_timeout: 2s }\n";

struct Outcome {
    /// slowhttptest's last words ("Exit status: ...").
    exit_status: String,
    /// The most connections its CSV report counted as closed (it samples
    /// once a second, so it lags: reported, not judged).
    closed_max: u64,
    probes: usize,
    slowest: Duration,
    failures: Vec<String>,
}

/// Runs slowhttptest with `args` against `shoal` (its `-u` is given as a
/// path), probing shoal meanwhile.
async fn attack(shoal: &Shoal, args: &[&str], path: &str) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report");
    let mut run = tokio::process::Command::new("slowhttptest")
        .args(args)
        .args(["-p", "2", "-g", "-o"])
        .arg(&report)
        .arg("-u")
        .arg(format!("http://{}{path}", shoal.proxy))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("run slowhttptest (Debian package `slowhttptest`; scripts/test installs it)");
    let stdout = run.stdout.take().unwrap();
    let output = tokio::spawn(async move {
        let mut s = String::new();
        let mut stdout = stdout;
        let _ = tokio::io::AsyncReadExt::read_to_string(&mut stdout, &mut s).await;
        s
    });
    // Let the attack open its connections before judging the service.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (mut probes, mut slowest, mut failures) = (0, Duration::ZERO, Vec::new());
    let status = loop {
        let t = Instant::now();
        match tokio::time::timeout(Duration::from_secs(1), get(shoal.proxy, "/")).await {
            Ok(Ok(r)) if r.status == 200 => {}
            Ok(Ok(r)) => failures.push(format!("status {}", r.status)),
            Ok(Err(e)) => failures.push(e),
            Err(_) => failures.push("no answer within 1s".into()),
        }
        probes += 1;
        slowest = slowest.max(t.elapsed());
        if let Ok(Some(status)) = run.try_wait() {
            break status;
        }
        if probes > 400 {
            panic!("slowhttptest still running after {probes} probes");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let out = strip_ansi(&output.await.unwrap());
    assert!(status.success(), "slowhttptest: {status}\n{out}");
    let exit_status = out
        .lines()
        .skip_while(|l| !l.contains("Exit status:"))
        .take(1)
        .collect::<String>();
    Outcome {
        exit_status,
        closed_max: closed_max(&report.with_extension("csv")),
        probes,
        slowest,
        failures,
    }
}

fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The highest "Closed" count in slowhttptest's CSV report
/// (`Seconds,Closed,Pending,Connected,Service Available`).
fn closed_max(csv: &Path) -> u64 {
    let text = std::fs::read_to_string(csv).unwrap_or_else(|e| panic!("{}: {e}", csv.display()));
    text.lines()
        .skip(1)
        .filter_map(|l| l.split(',').nth(1)?.trim().parse().ok())
        .max()
        .unwrap_or(0)
}

async fn started() -> Shoal {
    let shoal = Shoal::start(&demo_config(1, LIMITS));
    shoal.wait_healthy(1).await;
    shoal
}

fn closed_by(shoal: &Shoal, needle: &str) -> usize {
    shoal.log().iter().filter(|l| l.contains(needle)).count()
}

fn check_served(o: &Outcome, what: &str) {
    println!(
        "{what}: {} probes, slowest {:?}, slowhttptest: {:?}, its CSV counted {} closed",
        o.probes, o.slowest, o.exit_status, o.closed_max
    );
    assert!(
        o.failures.is_empty(),
        "{what}: probes failed: {:?}",
        o.failures
    );
    assert!(o.probes >= 20, "{what}: only {} probes", o.probes);
    assert!(
        o.slowest < Duration::from_secs(1),
        "{what}: {:?}",
        o.slowest
    );
}

/// Slowloris: 300 connections sending a header line every second, never
/// finishing the head. Each is answered 408 and closed at
/// `header_read_timeout`, so slowhttptest runs out of connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_others_served() {
    let shoal = started().await;
    let o = attack(
        &shoal,
        &["-H", "-c", "300", "-r", "150", "-i", "1", "-l", "12"],
        "/",
    )
    .await;
    check_served(&o, "slowloris");
    let closed = closed_by(&shoal, "limits.header_read_timeout");
    assert!(closed >= 270, "shoal closed {closed} of 300 slow heads");
    assert!(
        o.exit_status.contains("No open connections left"),
        "{}",
        o.exit_status
    );
}

/// Slow body: 300 POSTs declaring 8 KiB and sending a few bytes every 3
/// seconds. Each is cut at `body_read_timeout` (2s without body data).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_body_connections_are_closed_and_others_served() {
    let shoal = started().await;
    let o = attack(
        &shoal,
        &[
            "-B", "-c", "300", "-r", "150", "-i", "3", "-s", "8192", "-l", "12",
        ],
        "/echo",
    )
    .await;
    check_served(&o, "slow body");
    let closed = closed_by(&shoal, "limits.body_read_timeout");
    assert!(closed >= 270, "shoal cut {closed} of 300 slow bodies");
    assert!(
        o.exit_status.contains("No open connections left"),
        "{}",
        o.exit_status
    );
}

/// Slow read: 100 clients each asking for 3 MiB and reading 16 bytes every
/// 3 seconds through a tiny receive window. Once the kernel's buffers
/// (about 1.7 MiB per connection on loopback) are full, shoal's writes wait,
/// and each connection is closed at `send_timeout`. slowhttptest cannot see
/// that close (the FIN is queued behind data it does not read), so shoal's
/// log is the witness. 100 rather than 300 connections: each holds a few
/// MiB of kernel socket buffers while it lasts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_readers_are_closed_and_others_served() {
    let shoal = started().await;
    let o = attack(
        &shoal,
        &[
            "-X", "-c", "100", "-r", "100", "-w", "1", "-y", "16", "-n", "3", "-z", "16", "-k",
            "1", "-l", "8",
        ],
        "/download?bytes=3145728",
    )
    .await;
    check_served(&o, "slow read");
    let closed = closed_by(&shoal, "limits.send_timeout");
    assert!(closed >= 90, "shoal closed {closed} of 100 slow readers");
}
