//! A raw TCP backend that records exactly the bytes each connection brings,
//! and whether shoal closed it; what it answers depends on its [`Mode`].

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Clone, Copy, Debug)]
pub enum Mode {
    /// Read and record everything; never answer.
    Record,
    /// Answer this as soon as the first request head is complete (before
    /// its body; e.g. [`OK`]), then keep reading and recording until shoal
    /// closes.
    AnswerAfterHead(&'static [u8]),
    /// Answer `200` once a request's `Content-Length` body is complete;
    /// keep-alive.
    AnswerComplete,
    /// As `AnswerComplete`, but only this long after the request came.
    AnswerCompleteAfter(Duration),
    /// Read the request head, then read nothing for `stall` (a backend that
    /// does not take the body); then drain to EOF, recording whether shoal
    /// had closed the connection by then.
    StallAfterHead { stall: Duration },
}

#[derive(Debug, Default, Clone)]
pub struct Conn {
    pub bytes: Vec<u8>,
    /// shoal closed it (EOF or reset seen).
    pub closed: bool,
    /// How many of `bytes` came before the last [`RawBackend::mark`].
    pub marked: usize,
    pub closed_at: Option<Instant>,
}

pub struct RawBackend {
    pub addr: SocketAddr,
    conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>>,
    task: JoinHandle<()>,
}

impl RawBackend {
    pub async fn start(mode: Mode) -> RawBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Arc<Mutex<Vec<Arc<Mutex<Conn>>>>> = Arc::default();
        let all = conns.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    break;
                };
                let conn = Arc::new(Mutex::new(Conn::default()));
                all.lock().unwrap().push(conn.clone());
                tokio::spawn(serve(stream, conn, mode));
            }
        });
        RawBackend { addr, conns, task }
    }

    /// Every connection so far that brought at least one byte (health
    /// probes, which only connect, are left out).
    pub fn conns(&self) -> Vec<Conn> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .filter(|c| !c.bytes.is_empty())
            .collect()
    }

    /// Every byte that reached the backend since the last [`mark`]
    /// (`RawBackend::mark`), connection by connection, as text (lossy).
    pub fn text(&self) -> String {
        self.conns()
            .iter()
            .map(|c| String::from_utf8_lossy(&c.bytes[c.marked..]).into_owned())
            .collect()
    }

    /// From now on, [`text`](RawBackend::text) shows only later bytes
    /// (also those of connections already open, which `clear` forgets).
    pub fn mark(&self) {
        for c in self.conns.lock().unwrap().iter() {
            let mut c = c.lock().unwrap();
            c.marked = c.bytes.len();
        }
    }

    /// Forget the connections seen so far.
    pub fn clear(&self) {
        self.conns.lock().unwrap().clear();
    }

    /// No connection with data is still open.
    pub fn all_closed(&self) -> bool {
        self.conns().iter().all(|c| c.closed)
    }
}

impl Drop for RawBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const OK: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

async fn serve(mut s: TcpStream, conn: Arc<Mutex<Conn>>, mode: Mode) {
    let mut buf = vec![0u8; 64 << 10];
    // How far into the recorded bytes the requests answered so far reach.
    let mut answered = 0usize;
    let mut head_seen = false;
    loop {
        if let Mode::StallAfterHead { stall } = mode {
            if head_seen {
                tokio::time::sleep(stall).await;
                let drained = tokio::time::timeout(Duration::from_secs(10), async {
                    loop {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                    }
                })
                .await;
                let mut c = conn.lock().unwrap();
                c.closed = drained.is_ok();
                c.closed_at = Some(Instant::now());
                return;
            }
        }
        let n = match s.read(&mut buf).await {
            Ok(0) | Err(_) => {
                let mut c = conn.lock().unwrap();
                c.closed = true;
                c.closed_at = Some(Instant::now());
                return;
            }
            Ok(n) => n,
        };
        let bytes = {
            let mut c = conn.lock().unwrap();
            c.bytes.extend_from_slice(&buf[..n]);
            c.bytes.clone()
        };
        let Some(end) = find(&bytes[answered..], b"\r\n\r\n").map(|i| answered + i + 4) else {
            continue;
        };
        head_seen = true;
        match mode {
            Mode::Record | Mode::StallAfterHead { .. } => {}
            Mode::AnswerAfterHead(answer) => {
                if answered == 0 {
                    answered = end;
                    let _ = s.write_all(answer).await;
                }
            }
            Mode::AnswerComplete | Mode::AnswerCompleteAfter(_) => {
                let len = content_length(&bytes[answered..end]).unwrap_or(0);
                if bytes.len() >= end + len {
                    answered = end + len;
                    if let Mode::AnswerCompleteAfter(after) = mode {
                        tokio::time::sleep(after).await;
                    }
                    let body = format!("got {len}");
                    let resp = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    if s.write_all(resp.as_bytes()).await.is_err() {
                        return;
                    }
                }
            }
        }
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn content_length(head: &[u8]) -> Option<usize> {
    String::from_utf8_lossy(head).lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })
}
