//! Issue 14, sticky sessions: a signed cookie keeps a client on one
//! instance; when that instance leaves (scale down, rolling reload) the
//! client moves with no failed request and gets a new cookie; a cookie
//! that was changed is ignored (normal balancing), never an error. Every
//! case under both engines.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;

use crate::support::{cli, demo_config, Backend, Client, Shoal};
use crate::under_both_engines;

const KEY: &str = "sticky-test-key-0123456789";

under_both_engines!(
    one_cookie_keeps_a_thousand_requests_on_one_instance,
    a_tampered_cookie_is_balanced_normally,
    scale_down_moves_the_client_with_no_failed_request,
    rolling_reload_moves_the_client_with_no_failed_request,
    a_route_s_sticky_wins_and_replicas_share_the_key,
);

/// Three demo instances with `sticky` on the app.
fn sticky_app(instances: u32) -> String {
    let n = format!("  instances: {instances}\n");
    demo_config(instances, "").replace(&n, &format!("{n}  sticky: {{ key: \"{KEY}\", ttl: 1h }}\n"))
}

/// What one response said: the instance's pid and name, and the cookie
/// it set (`name=value`), if it set one.
struct Visit {
    pid: u64,
    instance: String,
    set_cookie: Option<String>,
}

/// `GET /` with `cookie` (a `Cookie` header value), if any.
async fn visit(client: &mut Client, cookie: Option<&str>) -> Result<Visit, String> {
    let mut req = http::Request::get("/").header("host", "shoal.test");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let r = client
        .send(req.body(Full::new(Bytes::new())).unwrap())
        .await?;
    if r.status != 200 {
        return Err(format!("status {}: {:?}", r.status, r.body));
    }
    let set: Vec<_> = r.headers.get_all("set-cookie").iter().collect();
    if set.len() > 1 {
        return Err(format!("{} Set-Cookie headers", set.len()));
    }
    let set_cookie = set.first().map(|v| {
        let v = v.to_str().expect("ascii Set-Cookie");
        assert!(
            v.contains("; Max-Age=3600") && v.contains("; HttpOnly"),
            "{v}"
        );
        v.split(';').next().unwrap().to_string()
    });
    let json = r.json();
    Ok(Visit {
        pid: json["pid"].as_u64().ok_or("no pid")?,
        instance: json["instance"].as_str().ok_or("no instance")?.to_string(),
        set_cookie,
    })
}

/// A cookie that pins the instance named `want` (fresh requests until the
/// balancer sends one there).
async fn cookie_for(shoal: &Shoal, want: &str) -> (String, u64) {
    let mut client = Client::new(shoal.proxy);
    for _ in 0..30 {
        let v = visit(&mut client, None).await.expect("GET /");
        let cookie = v.set_cookie.expect("a request without a cookie gets one");
        if v.instance == want {
            return (cookie, v.pid);
        }
    }
    panic!("no request reached {want}");
}

/// With one cookie, 1,000 requests (8 clients at a time) reach one
/// instance, and none is given a new cookie.
async fn one_cookie_keeps_a_thousand_requests_on_one_instance() {
    let shoal = Shoal::start(&sticky_app(3));
    shoal.wait_healthy(3).await;
    let (cookie, pid) = cookie_for(&shoal, "app-2").await;
    let cookie = Arc::new(cookie);
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (proxy, cookie) = (shoal.proxy, cookie.clone());
        clients.push(tokio::spawn(async move {
            let mut client = Client::new(proxy);
            let mut seen = Vec::new();
            for _ in 0..125 {
                let v = visit(&mut client, Some(&cookie)).await.expect("GET /");
                seen.push((v.pid, v.set_cookie));
            }
            seen
        }));
    }
    let mut total = 0;
    for c in clients {
        for (p, set) in c.await.unwrap() {
            assert_eq!(p, pid, "a request left its pinned instance");
            assert_eq!(set, None, "a pinned request got a new cookie");
            total += 1;
        }
    }
    assert_eq!(total, 1000);
}

/// A cookie changed by the client (one digit of its signature, its
/// backend id, or a made-up value) pins nothing: requests spread over
/// every instance as without a cookie, each answered 200 with a new,
/// valid cookie.
async fn a_tampered_cookie_is_balanced_normally() {
    let shoal = Shoal::start(&sticky_app(3));
    shoal.wait_healthy(3).await;
    let (cookie, pid) = cookie_for(&shoal, "app-1").await;
    let (name, value) = cookie.split_once('=').unwrap();
    let flip = |i: usize| {
        let mut v = value.as_bytes().to_vec();
        v[i] = if v[i] == b'0' { b'1' } else { b'0' };
        format!("{name}={}", String::from_utf8(v).unwrap())
    };
    let last = value.len() - 1;
    for bad in [
        flip(last),
        flip(0),
        format!("{name}=app-1"),
        format!("{name}={value}0"),
    ] {
        let mut client = Client::new(shoal.proxy);
        let mut pids = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let v = visit(&mut client, Some(&format!("a=1; {bad}; b=2")))
                .await
                .unwrap_or_else(|e| panic!("{bad}: {e}"));
            let fresh = v.set_cookie.expect("a new cookie for a bad one");
            assert_ne!(fresh, bad);
            pids.insert(v.pid);
        }
        assert_eq!(pids.len(), 3, "{bad}: balanced over {pids:?}");
    }
    // The untouched cookie still pins.
    let mut client = Client::new(shoal.proxy);
    for _ in 0..10 {
        let v = visit(&mut client, Some(&cookie)).await.unwrap();
        assert_eq!((v.pid, v.set_cookie), (pid, None));
    }
}

/// Clients that keep what `Set-Cookie` gives them (as a browser does),
/// each sending `GET /` every few milliseconds from `cookie` until `stop`
/// (at most 30 s): every response, or the failures.
fn browsers(
    shoal: &Shoal,
    n: usize,
    cookie: &str,
    stop: &Arc<AtomicBool>,
) -> Vec<tokio::task::JoinHandle<(Vec<Visit>, Vec<String>)>> {
    (0..n)
        .map(|_| {
            let (proxy, stop) = (shoal.proxy, stop.clone());
            let mut jar = cookie.to_string();
            tokio::spawn(async move {
                let mut client = Client::new(proxy);
                let (mut seen, mut failed) = (Vec::new(), Vec::new());
                let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
                while !stop.load(Ordering::Relaxed) && tokio::time::Instant::now() < deadline {
                    match visit(&mut client, Some(&jar)).await {
                        Ok(v) => {
                            if let Some(c) = &v.set_cookie {
                                jar = c.clone();
                            }
                            seen.push(v);
                        }
                        Err(e) => failed.push(e),
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                (seen, failed)
            })
        })
        .collect()
}

/// One client's responses, from a cookie pinned to `first`: it stays
/// until it moves, it moves only with a new cookie, and a new cookie only
/// comes with a move. Returns the pids it was on, in order.
fn check_moves(seen: &[Visit], first: u64) -> Vec<u64> {
    let mut on = vec![first];
    for (i, v) in seen.iter().enumerate() {
        let moved = v.pid != *on.last().unwrap();
        assert_eq!(
            moved,
            v.set_cookie.is_some(),
            "response {i}: pid {} after {on:?}, Set-Cookie {:?}",
            v.pid,
            v.set_cookie
        );
        if moved {
            assert!(
                !on.contains(&v.pid),
                "back on an instance it left: {on:?} {}",
                v.pid
            );
            on.push(v.pid);
        }
    }
    on
}

/// The pinned instance scaled away under load: its clients move to
/// another instance with no failed request, get a new cookie there and
/// stay.
async fn scale_down_moves_the_client_with_no_failed_request() {
    let shoal = Shoal::start(&sticky_app(3));
    shoal.wait_healthy(3).await;
    // `scale` stops the highest slots first.
    let (cookie, pid) = cookie_for(&shoal, "app-3").await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = browsers(&shoal, 4, &cookie, &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (code, out, err) = cli(shoal.admin, &["scale", "2"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        let (seen, failed) = c.await.unwrap();
        assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
        assert!(seen.len() > 20, "only {} requests", seen.len());
        assert_eq!(seen[0].pid, pid, "pinned before the scale");
        let on = check_moves(&seen, pid);
        assert_eq!(on.len(), 2, "moved once, to a remaining instance: {on:?}");
        let last = seen.last().unwrap();
        assert!(
            last.instance == "app-1" || last.instance == "app-2",
            "{}",
            last.instance
        );
    }
}

/// A rolling reload replaces every instance under load: each client
/// moves whenever its instance is replaced (its successor in the same
/// slot is another backend), with no failed request and a new cookie
/// each time, and ends on a new instance.
async fn rolling_reload_moves_the_client_with_no_failed_request() {
    let shoal = Shoal::start(&sticky_app(3));
    let before: Vec<u64> = shoal.wait_healthy(3).await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["pid"].as_u64())
        .collect();
    let (cookie, pid) = cookie_for(&shoal, "app-1").await;
    let stop = Arc::new(AtomicBool::new(false));
    let clients = browsers(&shoal, 4, &cookie, &stop);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let (code, out, err) = cli(shoal.admin, &["reload"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(out.contains("rolling reload done"), "{out}");
    tokio::time::sleep(Duration::from_millis(800)).await;
    stop.store(true, Ordering::Relaxed);
    let after: Vec<u64> = shoal.wait_healthy(3).await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["pid"].as_u64())
        .collect();
    for c in clients {
        let (seen, failed) = c.await.unwrap();
        assert!(failed.is_empty(), "{} failed: {failed:?}", failed.len());
        assert_eq!(seen[0].pid, pid, "pinned before the reload");
        let on = check_moves(&seen, pid);
        assert!(on.len() >= 2, "never moved: {on:?}");
        let last = *on.last().unwrap();
        assert!(
            after.contains(&last) && !before.contains(&last),
            "ends on a new instance: {on:?}, before {before:?}, after {after:?}"
        );
    }
}

/// A route's `sticky` replaces its group's (its cookie name is used); and
/// two shoal replicas with the same key and backends honour each other's
/// cookies.
async fn a_route_s_sticky_wins_and_replicas_share_the_key() {
    let backends = [
        Backend::start("b1").await,
        Backend::start("b2").await,
        Backend::start("b3").await,
    ];
    let servers: String = backends
        .iter()
        .map(|b| format!("      - url: \"http://{}\"\n", b.addr))
        .collect();
    let config = format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\nhealth: {{ interval: 1m, timeout: 1s }}\n\
         upstreams:\n  api:\n    servers:\n{servers}    sticky: {{ key: \"{KEY}\", cookie: group_cookie }}\n\
         routes:\n  - match: {{ path_prefix: /r }}\n    strip_prefix: /r\n    to: api\n    sticky: {{ key: \"{KEY}\", cookie: route_cookie, ttl: 1h }}\n\
         \x20 - to: api\n"
    );
    let a = Shoal::start(&config);
    let b = Shoal::start(&config);
    a.wait_upstreams(3).await;
    b.wait_upstreams(3).await;
    let get = |shoal: &Shoal, path: &str, cookie: Option<String>| {
        let (proxy, path) = (shoal.proxy, path.to_string());
        async move {
            let mut req = http::Request::get(path).header("host", "shoal.test");
            if let Some(c) = cookie {
                req = req.header("cookie", c);
            }
            let r = crate::support::request(proxy, req.body(Full::new(Bytes::new())).unwrap())
                .await
                .unwrap();
            assert_eq!(r.status, 200);
            let set = r
                .headers
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
            (r.json()["instance"].as_str().unwrap().to_string(), set)
        }
    };
    let (_, set) = get(&a, "/", None).await;
    assert!(set.unwrap().starts_with("group_cookie="));
    let (home, set) = get(&a, "/r/", None).await;
    let cookie = set.expect("route cookie");
    assert!(cookie.starts_with("route_cookie="), "{cookie}");
    // The other replica sends the same cookie to the same backend.
    for shoal in [&a, &b, &b, &a, &b] {
        let (inst, set) = get(shoal, "/r/", Some(cookie.clone())).await;
        assert_eq!((inst, set), (home.clone(), None));
    }
    // The group's cookie name means nothing on the route.
    let group_named = cookie.replacen("route_cookie", "group_cookie", 1);
    let (_, set) = get(&b, "/r/", Some(group_named)).await;
    assert!(set.is_some(), "not pinned by another cookie's name");
}
