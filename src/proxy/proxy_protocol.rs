//! The PROXY protocol (HAProxy's `send-proxy` / `send-proxy-v2`) on a
//! listener with `proxy_protocol: v1 | v2`: the header that opens the
//! connection, before TLS or HTTP, and carries the client's address.
//!
//! Only a peer in `trusted_proxies` may send one; any other peer is
//! refused before a byte is read. A trusted peer must send a valid header
//! of the listener's version within `limits.header_read_timeout` (as
//! HAProxy's `accept-proxy` requires one), or it is refused too. The
//! header is parsed by the `ppp` crate over bytes *peeked* from the socket;
//! exactly its length is then read, so whatever follows (a TLS ClientHello,
//! an HTTP head) stays in the socket for the engines, which take a plain
//! `TcpStream` as before.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use nix::sys::socket::{recv, MsgFlags};
use ppp::{v1, v2, PartialResult};
use shoal_config::ProxyProtocol;
use tokio::io::{AsyncReadExt, Interest};
use tokio::net::TcpStream;

/// The longest header read: v1's is at most 107 bytes; a v2 header's TLVs
/// (HAProxy's unique id, SSL details, ...) fit well within this.
const MAX_HEADER: usize = 4096;

/// Why a connection on a PROXY protocol listener was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The TCP peer is not in `trusted_proxies`.
    Untrusted,
    /// No header, another version's, or one that does not parse.
    Invalid(&'static str),
    /// No complete header within `limits.header_read_timeout`.
    Timeout,
    /// The peer closed (or reset) before a whole header arrived.
    Closed,
}

impl Refused {
    fn reason(self) -> &'static str {
        match self {
            Refused::Untrusted => "untrusted",
            Refused::Invalid(_) => "invalid",
            Refused::Timeout => "timeout",
            Refused::Closed => "closed",
        }
    }
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::Untrusted => f.write_str("the peer is not in trusted_proxies"),
            Refused::Invalid(why) => f.write_str(why),
            Refused::Timeout => {
                f.write_str("no complete PROXY protocol header within limits.header_read_timeout")
            }
            Refused::Closed => f.write_str("closed before a complete PROXY protocol header"),
        }
    }
}

/// The reasons in the order [`refused_counts`] gives them.
pub const REASONS: [&str; 4] = ["untrusted", "invalid", "timeout", "closed"];
static REFUSED: [AtomicU64; 4] = [const { AtomicU64::new(0) }; 4];
/// When the last refusal was logged (ms on the coarse clock), for the rate limit.
static LAST_LOGGED: AtomicU64 = AtomicU64::new(0);

/// `(reason, count)` of the connections refused so far, for `/metrics`.
pub fn refused_counts() -> Vec<(&'static str, u64)> {
    REASONS
        .iter()
        .zip(REFUSED.iter())
        .map(|(r, c)| (*r, c.load(Ordering::Relaxed)))
        .collect()
}

/// Count a refusal and log it: at `warn` at most once a second (a port
/// scan or a misconfigured balancer must not flood the log), else at
/// `debug`.
pub fn refused(listener: &str, peer: SocketAddr, why: Refused) {
    let i = REASONS.iter().position(|r| *r == why.reason()).unwrap_or(0);
    REFUSED[i].fetch_add(1, Ordering::Relaxed);
    let now = crate::clock::now_ms();
    let last = LAST_LOGGED.load(Ordering::Relaxed);
    if now.saturating_sub(last) >= 1000
        && LAST_LOGGED
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        tracing::warn!(listener, %peer, "connection refused: {why} (PROXY protocol listener; further refusals within 1s are logged at debug)");
    } else {
        tracing::debug!(listener, %peer, "connection refused: {why} (PROXY protocol listener)");
    }
}

/// Read the PROXY header that opens `stream`, and only it. `Ok(Some(addr))`:
/// the client's address; `Ok(None)`: keep the TCP peer (v2 `LOCAL`, a
/// balancer's own health check; v1 `UNKNOWN`; an address family other
/// than IPv4/IPv6).
pub async fn read_header(
    stream: &mut TcpStream,
    version: ProxyProtocol,
    timeout: Duration,
) -> Result<Option<SocketAddr>, Refused> {
    match tokio::time::timeout(timeout, read(stream, version)).await {
        Ok(r) => r,
        Err(_) => Err(Refused::Timeout),
    }
}

async fn read(
    stream: &mut TcpStream,
    version: ProxyProtocol,
) -> Result<Option<SocketAddr>, Refused> {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; MAX_HEADER];
    let mut seen = 0;
    loop {
        // Peek inside `try_io`: readiness is cleared only when no byte came
        // since the last peek, so a wait never misses one.
        stream.readable().await.map_err(|_| Refused::Closed)?;
        let fd = stream.as_raw_fd();
        let peeked = stream.try_io(Interest::READABLE, || {
            let flags = MsgFlags::MSG_PEEK | MsgFlags::MSG_DONTWAIT;
            let n = recv(fd, &mut buf, flags).map_err(std::io::Error::from)?;
            if n == seen && n != 0 {
                return Err(std::io::ErrorKind::WouldBlock.into());
            }
            Ok(n)
        });
        let n = match peeked {
            Ok(0) => return Err(Refused::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(_) => return Err(Refused::Closed),
        };
        seen = n;
        match parse(&buf[..n], version) {
            Parsed::Incomplete if n < MAX_HEADER => continue,
            Parsed::Incomplete => {
                return Err(Refused::Invalid("the PROXY protocol header is too long"))
            }
            Parsed::Invalid(why) => return Err(Refused::Invalid(why)),
            Parsed::Header { len, client } => {
                // Exactly the header's bytes (already in the socket).
                let mut header = vec![0u8; len];
                stream
                    .read_exact(&mut header)
                    .await
                    .map_err(|_| Refused::Closed)?;
                return Ok(client);
            }
        }
    }
}

#[derive(Debug, PartialEq)]
enum Parsed {
    /// A prefix of a valid header: read more.
    Incomplete,
    Invalid(&'static str),
    /// A whole header of `len` bytes; the client's address, if it names one.
    Header {
        len: usize,
        client: Option<SocketAddr>,
    },
}

/// The header at the start of `bytes`, of the listener's `version` only.
fn parse(bytes: &[u8], version: ProxyProtocol) -> Parsed {
    match version {
        ProxyProtocol::V1 => parse_v1(bytes),
        ProxyProtocol::V2 => parse_v2(bytes),
        ProxyProtocol::Off => Parsed::Invalid("no PROXY protocol on this listener"),
    }
}

/// A v1 header is one line, `PROXY ...\r\n`, of at most 107 bytes. It is
/// complete when its line has ended; only then is it parsed (`ppp` takes
/// some cut-off lines for wrong ones), so a header that arrives in pieces
/// is waited for.
fn parse_v1(bytes: &[u8]) -> Parsed {
    const PREFIX: &[u8] = b"PROXY ";
    const MAX_V1: usize = 107;
    let n = bytes.len().min(PREFIX.len());
    if bytes[..n] != PREFIX[..n] {
        return Parsed::Invalid(if bytes.starts_with(b"\r\n") {
            "a PROXY protocol v2 header on a `proxy_protocol: v1` listener"
        } else {
            "no PROXY protocol v1 header (`PROXY ...`)"
        });
    }
    let Some(end) = bytes.iter().take(MAX_V1).position(|b| *b == b'\n') else {
        return match bytes.len() >= MAX_V1 {
            true => Parsed::Invalid("the PROXY protocol v1 header is longer than 107 bytes"),
            false => Parsed::Incomplete,
        };
    };
    let line = &bytes[..=end];
    match v1::Header::try_from(line) {
        Ok(h) if h.header.len() == line.len() => Parsed::Header {
            len: line.len(),
            client: match h.addresses {
                v1::Addresses::Tcp4(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Tcp6(a) => Some((a.source_address, a.source_port).into()),
                v1::Addresses::Unknown => None,
            },
        },
        _ => Parsed::Invalid("the PROXY protocol v1 header does not parse"),
    }
}

/// A v2 header: the 12-byte signature, version and command, family, and
/// the length of what follows.
fn parse_v2(bytes: &[u8]) -> Parsed {
    let signature = v2::PROTOCOL_PREFIX;
    let n = bytes.len().min(signature.len());
    if bytes[..n] != signature[..n] {
        return Parsed::Invalid(if bytes.starts_with(b"PROXY") {
            "a PROXY protocol v1 header on a `proxy_protocol: v2` listener"
        } else {
            "no PROXY protocol v2 header"
        });
    }
    match v2::Header::try_from(bytes) {
        Ok(h) => Parsed::Header {
            len: h.header.len(),
            client: match (h.command, h.addresses) {
                (v2::Command::Local, _) => None,
                (_, v2::Addresses::IPv4(a)) => Some((a.source_address, a.source_port).into()),
                (_, v2::Addresses::IPv6(a)) => Some((a.source_address, a.source_port).into()),
                _ => None,
            },
        },
        Err(e) if e.is_incomplete() => Parsed::Incomplete,
        Err(_) => Parsed::Invalid("the PROXY protocol v2 header does not parse"),
    }
}

/// The `proxy_header` fuzz target (src/fuzz.rs): the first byte picks the
/// listener's version, the rest is what the peer sent. Parsing never
/// panics; a header's length is within the input and the header alone
/// parses the same (nothing after it is taken); and every shorter prefix
/// of it is `Incomplete`, so a header that arrives in pieces is waited
/// for, never refused.
#[cfg(any(test, fuzzing))]
pub fn fuzz(data: &[u8]) {
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let version = if pick & 1 == 0 {
        ProxyProtocol::V1
    } else {
        ProxyProtocol::V2
    };
    let parsed = parse(bytes, version);
    if let Parsed::Header { len, .. } = parsed {
        assert!(
            len > 0 && len <= bytes.len(),
            "length {len} of {}",
            bytes.len()
        );
        assert_eq!(parse(&bytes[..len], version), parsed, "the header alone");
        for cut in 0..len {
            assert_eq!(
                parse(&bytes[..cut], version),
                Parsed::Incomplete,
                "a prefix of {cut} bytes of a {len}-byte header"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v1_header_and_what_follows() {
        let text = b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 8080\r\nGET / HTTP/1.1\r\n";
        for seed in std::fs::read_dir(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/fuzz/seeds/proxy_header"
        ))
        .unwrap()
        {
            fuzz(&std::fs::read(seed.unwrap().path()).unwrap());
        }
        assert_eq!(
            parse(text, ProxyProtocol::V1),
            Parsed::Header {
                len: 42,
                client: Some("10.1.2.3:40000".parse().unwrap())
            }
        );
        assert_eq!(
            parse(b"PROXY TCP4 10.1.2.3 127.0.0.1 40000 80", ProxyProtocol::V1),
            Parsed::Incomplete
        );
        assert_eq!(parse(b"PRO", ProxyProtocol::V1), Parsed::Incomplete);
        assert!(matches!(
            parse(b"PROXY TCP4 garbage here\r\n", ProxyProtocol::V1),
            Parsed::Invalid(_)
        ));
        assert!(matches!(
            parse(b"GET / HTTP/1.1\r\n", ProxyProtocol::V1),
            Parsed::Invalid(_)
        ));
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n", ProxyProtocol::V1),
            Parsed::Header {
                len: 15,
                client: None
            }
        );
    }

    /// A stable-toolchain stand-in for the fuzz target: the seeds with
    /// bytes changed, cut, doubled, the version bit flipped.
    #[test]
    fn mutated_seeds_hold() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/seeds/proxy_header");
        let seeds: Vec<Vec<u8>> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| std::fs::read(e.unwrap().path()).unwrap())
            .collect();
        let mut rng = fastrand::Rng::with_seed(13);
        for _ in 0..20_000 {
            let mut data = seeds[rng.usize(..seeds.len())].clone();
            for _ in 0..rng.usize(1..4) {
                let at = rng.usize(..data.len());
                match rng.u8(..4) {
                    0 => data[at] = rng.u8(..),
                    1 => data.truncate(at.max(1)),
                    2 => data.insert(at, [b' ', b'\r', b'\n', b'0', b':'][rng.usize(..5)]),
                    _ => data[0] ^= 1,
                }
            }
            fuzz(&data);
        }
    }

    #[test]
    fn v2_proxy_and_local() {
        let src: SocketAddr = "10.9.8.7:5555".parse().unwrap();
        let dst: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let proxy = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Proxy,
            v2::Protocol::Stream,
            (src, dst),
        )
        .build()
        .unwrap();
        let mut bytes = proxy.clone();
        bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
        assert_eq!(
            parse(&bytes, ProxyProtocol::V2),
            Parsed::Header {
                len: proxy.len(),
                client: Some(src)
            }
        );
        assert_eq!(parse(&proxy[..20], ProxyProtocol::V2), Parsed::Incomplete);
        assert!(matches!(
            parse(&proxy, ProxyProtocol::V1),
            Parsed::Invalid(_)
        ));
        let local = v2::Builder::with_addresses(
            v2::Version::Two | v2::Command::Local,
            v2::Protocol::Stream,
            (src, dst),
        )
        .build()
        .unwrap();
        assert_eq!(
            parse(&local, ProxyProtocol::V2),
            Parsed::Header {
                len: local.len(),
                client: None
            }
        );
    }
}
