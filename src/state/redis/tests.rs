//! The Redis store on a real `redis-server` started here on a free
//! loopback port (and killed by its PID at the end): the behaviour suite
//! with the memory store's results, the script's reload after
//! `SCRIPT FLUSH`, the keys' expiry, and a start with Redis down.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::RedisStore;
use crate::state::tests::behaviour;
use crate::state::{Ask, Quota, Store};

/// One redis-server of this test binary.
struct Server {
    child: Child,
    port: u16,
    _dir: tempdir::Dir,
}

mod tempdir {
    /// A directory removed when dropped.
    pub struct Dir(pub std::path::PathBuf);
    impl Dir {
        pub fn new(tag: &str) -> Dir {
            let p = std::env::temp_dir().join(format!(
                "shoal-redis-{tag}-{}-{}",
                std::process::id(),
                fastrand::u64(..)
            ));
            std::fs::create_dir_all(&p).unwrap();
            Dir(p)
        }
    }
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    fn start_on(port: u16) -> Server {
        let dir = tempdir::Dir::new("lib");
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed (scripts/test installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Server {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn config(url: &str) -> shoal_config::StateConfig {
    shoal_config::StateConfig {
        backend: shoal_config::StateBackend::Redis,
        url: Some(url.into()),
        pool_size: 2,
        ..Default::default()
    }
}

/// The store once it has a connection.
async fn connected(url: &str) -> RedisStore {
    let store = RedisStore::new(&config(url)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.connected() == 0 {
        assert!(Instant::now() < deadline, "no connection to {url}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    store
}

async fn allowed(store: &RedisStore, key: &str, quota: Quota) -> Option<bool> {
    let mut out = Vec::new();
    store
        .check(
            &[Ask {
                key: key.as_bytes(),
                quota,
            }],
            &mut out,
        )
        .await
        .ok()
        .map(|()| out[0].allowed)
}

#[tokio::test]
async fn redis_passes_the_behaviour_suite_and_mends_itself() {
    let server = Server::start_on(free_port());
    let store = connected(&server.url()).await;
    behaviour(&store, "t").await;
    assert!(store.health().up());

    // The keys expire once their bucket is full again: the suite's last
    // key has 4 requests counted at 1/hour → 4 hours (in ms).
    let ttl: i64 = server.cli(&["PTTL", "shoal:rl:{t:e}"]).parse().unwrap();
    assert!(
        (4 * 3_600_000 - 60_000..=4 * 3_600_000).contains(&ttl),
        "ttl {ttl}"
    );

    // Redis forgets the script: it is loaded again, and nothing counts
    // twice.
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    let q = Quota::new(Duration::from_secs(3600), 2);
    assert_eq!(allowed(&store, "t:f", q).await, Some(true));
    assert_eq!(server.cli(&["SCRIPT", "FLUSH"]), "OK");
    let mut out = Vec::new();
    let asks = [
        Ask {
            key: b"t:f",
            quota: q,
        },
        Ask {
            key: b"t:g",
            quota: q,
        },
    ];
    store.check(&asks, &mut out).await.unwrap();
    assert_eq!((out[0].allowed, out[0].remaining), (true, 0));
    assert_eq!((out[1].allowed, out[1].remaining), (true, 1));
    assert_eq!(allowed(&store, "t:f", q).await, Some(false));
}

#[tokio::test]
async fn a_store_made_while_redis_is_down_answers_at_once_then_connects() {
    let port = free_port();
    let store = RedisStore::new(&config(&format!("redis://127.0.0.1:{port}"))).unwrap();
    let q = Quota::new(Duration::from_secs(3600), 5);
    let t = Instant::now();
    assert_eq!(
        allowed(&store, "down:a", q).await,
        None,
        "no Redis, no verdict"
    );
    assert!(t.elapsed() < Duration::from_millis(50), "{:?}", t.elapsed());
    assert!(!store.health().up());

    let _server = Server::start_on(port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if allowed(&store, "down:a", q).await == Some(true) {
            break;
        }
        assert!(Instant::now() < deadline, "never connected");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(store.health().up());
    assert!(
        store
            .health()
            .errors
            .load(std::sync::atomic::Ordering::Relaxed)
            >= 1
    );
}

#[tokio::test]
async fn a_lease_takes_what_the_bucket_has_up_to_the_size_asked() {
    let server = Server::start_on(free_port());
    let store = connected(&server.url()).await;
    let q = Quota::new(Duration::from_secs(3600), 12);
    let ask = [Ask {
        key: b"lease:a",
        quota: q,
    }];
    let mut got = Vec::new();
    for _ in 0..4 {
        let (v, granted) = store.decide(&ask, &[5]).await.unwrap()[0];
        got.push((v.allowed, v.remaining, granted));
    }
    // 12 tokens: 5, 5, the last 2, then a refusal.
    assert_eq!(
        got,
        [(true, 7, 5), (true, 2, 5), (true, 0, 2), (false, 0, 0)]
    );
}
