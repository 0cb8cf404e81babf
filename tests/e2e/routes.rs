//! Routes and upstream groups (`routes:`, `upstreams:` as named groups):
//! each request reaches the pool its first matching route names — the app's
//! instances, a group of demo apps, a group of nginx — with the route's
//! path and header rewrites as the backend and the client see them; routes
//! that answer themselves (`redirect`, `respond`), 404 when none matches,
//! per-route timeouts, and a reload that changes the routes. Every test
//! runs under both engines.

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::nginx::Nginx;
use crate::support::{demo_config, Backend, Client, Shoal};

crate::under_both_engines!(
    routes_see_the_path_the_application_reads,
    a_listener_with_routes_of_its_own,
    each_request_reaches_the_pool_its_route_names,
    routes_answer_themselves_and_unmatched_requests_get_404,
    a_route_has_its_own_timeouts,
    a_reload_changes_routes_and_groups,
);

/// nginx that answers with what it was sent: the URI, `X-Route`, `Cookie`
/// and `Host`, and adds a response header a route removes.
async fn echoing_nginx() -> Nginx {
    Nginx::start(
        "location / { add_header X-Upstream nginx always; \
         return 200 \"uri=$request_uri route=$http_x_route cookie=$http_cookie host=$host\\n\"; }",
    )
    .await
}

async fn get(client: &mut Client, host: &str, path: &str) -> crate::support::Reply {
    client
        .send(
            Request::get(path)
                .header("host", host)
                .header("cookie", "session=1")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap()
}

async fn each_request_reaches_the_pool_its_route_names() {
    let api = [Backend::start("api-a").await, Backend::start("api-b").await];
    let nginx = echoing_nginx().await;
    let shoal = Shoal::start(&demo_config(
        2,
        &format!(
            "proxy: {{ retries: 1 }}
upstreams:
  api:
    servers:
      - url: http://{a}
      - url: http://{b}
    balance: {{ algorithm: round_robin }}
    health: {{ interval: 1m, timeout: 1s }}
  web:
    - url: http://{web}
routes:
  - name: api
    match: {{ host: api.test, path_prefix: /v2 }}
    to: api
    strip_prefix: /v2
    response_headers: {{ set: {{ x-pool: api }} }}
  - name: static
    match: {{ path_prefix: /static/ }}
    to: web
    strip_prefix: /static
    add_prefix: /assets
    request_headers: {{ set: {{ x-route: web }}, remove: [cookie] }}
    response_headers: {{ set: {{ x-served: shoal }}, remove: [x-upstream] }}
  - name: echo
    match: {{ path: /echo, methods: [POST] }}
    to: app
  - name: app
    match: {{ host: '*.app.test' }}
    to: app
",
            a = api[0].addr,
            b = api[1].addr,
            web = nginx.addr,
        ),
    ));
    shoal.wait_healthy(2).await;
    shoal.wait_upstreams(3).await;
    let mut client = Client::new(shoal.proxy);

    // The app's instances, by host.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let r = get(&mut client, "www.app.test", "/").await;
        assert_eq!(r.status, 200);
        seen.insert(r.json()["instance"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen,
        ["app-1", "app-2"].map(String::from).into(),
        "the app's pool only"
    );

    // The api group, by host and path, the prefix stripped: the demo app
    // answers `/` with the path it got.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..4 {
        let r = get(&mut client, "api.test", "/v2").await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.json()["path"], "/", "strip_prefix: /v2 → /");
        assert_eq!(r.headers["x-pool"], "api");
        seen.insert(r.json()["instance"].as_str().unwrap().to_string());
    }
    assert_eq!(
        seen,
        ["api-a", "api-b"].map(String::from).into(),
        "round robin over the group"
    );
    // The same path on another host is not the api route's.
    let r = get(&mut client, "www.app.test", "/v2").await;
    assert_ne!(
        r.json()["instance"].as_str().unwrap_or("").get(..4),
        Some("api-")
    );

    // nginx: prefix stripped and another added, request header set and
    // removed, response headers set and removed.
    let r = get(&mut client, "files.test", "/static/css/site.css?v=3").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "uri=/assets/css/site.css?v=3 route=web cookie= host=files.test\n"
    );
    assert_eq!(r.headers["x-served"], "shoal");
    assert!(r.headers.get("x-upstream").is_none(), "{:?}", r.headers);

    // A request with a body (hyper's path on either engine), by method.
    let r = client
        .send(
            Request::post("/echo")
                .header("host", "any.test")
                .body(Full::new(Bytes::from_static(b"hello")))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(&r.body[..], b"hello");

    // Each route's count, by name.
    let m = shoal.metrics().await;
    assert!(
        m["shoal_route_requests_total{route=\"api\"}"] >= 4.0,
        "{m:?}"
    );
    assert!(
        m["shoal_route_requests_total{route=\"static\"}"] >= 1.0,
        "{m:?}"
    );
    assert!(
        m["shoal_route_requests_total{route=\"app\"}"] >= 6.0,
        "{m:?}"
    );
    // The groups' backends are in the status, by group.
    let status = shoal.status().await;
    let groups: Vec<_> = status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["group"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(groups, ["api", "api", "web"]);
}

async fn routes_answer_themselves_and_unmatched_requests_get_404() {
    let shoal = Shoal::start(&demo_config(
        1,
        "proxy: { retries: 1 }
routes:
  - match: { path: /old }
    redirect: { to: 'https://{host}/new{query}', status: 301 }
  - match: { path_prefix: /down }
    respond: { status: 503, body: back soon, headers: { retry-after: '60' } }
  - match: { path_prefix: /app }
    to: app
",
    ));
    shoal.wait_healthy(1).await;
    let mut client = Client::new(shoal.proxy);

    let r = get(&mut client, "shop.test:8080", "/old?a=1&b=2").await;
    assert_eq!(r.status, 301);
    assert_eq!(r.headers["location"], "https://shop.test:8080/new?a=1&b=2");
    assert!(r.headers.contains_key("x-request-id"));

    let r = get(&mut client, "shop.test", "/down/page").await;
    assert_eq!(r.status, 503);
    assert_eq!(&r.body[..], b"back soon");
    assert_eq!(r.headers["retry-after"], "60");
    assert_eq!(r.headers["content-type"], "text/plain; charset=utf-8");

    // HEAD gets the head of the same answer, no body; the connection
    // stays usable.
    let r = client
        .send(
            Request::head("/down")
                .header("host", "shop.test")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!((r.status.as_u16(), r.body.len()), (503, 0));
    assert_eq!(r.headers["content-length"], "9");

    // No route: 404 from shoal, in text or JSON like its other errors.
    let r = get(&mut client, "shop.test", "/elsewhere").await;
    assert_eq!(r.status, 404);
    let id = r.headers["x-request-id"].to_str().unwrap().to_string();
    assert!(
        String::from_utf8_lossy(&r.body).contains(&format!("no_route (request id {id})")),
        "{:?}",
        r.body
    );
    let r = client
        .send(
            Request::get("/elsewhere")
                .header("host", "shop.test")
                .header("accept", "application/json")
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 404);
    assert_eq!(r.json()["error"], "no_route");

    // The app still answers on its route, on the same connection.
    let r = get(&mut client, "shop.test", "/app").await;
    assert_eq!(r.status, 404, "the demo app has no /app: its own 404");
    assert!(r.body.starts_with(b"{") || !r.body.is_empty());
    let log = shoal.log().join("\n");
    assert!(log.contains("no route for the request (404)"), "{log}");
}

async fn a_route_has_its_own_timeouts() {
    let shoal = Shoal::start(&demo_config(
        1,
        "proxy: { retries: 0, response_header_timeout: 10s }
routes:
  - match: { path_prefix: /fast }
    to: app
    strip_prefix: /fast
    proxy: { response_header_timeout: 300ms }
  - to: app
",
    ));
    shoal.wait_healthy(1).await;
    let mut client = Client::new(shoal.proxy);
    let started = std::time::Instant::now();
    let r = get(&mut client, "a.test", "/fast/slow?ms=2000").await;
    assert_eq!(r.status, 504, "{:?}", r.body);
    assert!(
        started.elapsed() < Duration::from_millis(1800),
        "{:?}",
        started.elapsed()
    );
    // The same backend path on the route without an override waits.
    let r = get(&mut client, "a.test", "/slow?ms=600").await;
    assert_eq!(r.status, 200);
}

async fn a_reload_changes_routes_and_groups() {
    let api = Backend::start("api-a").await;
    let nginx = echoing_nginx().await;
    let config = |routes: &str, groups: &str| {
        demo_config(
            1,
            &format!("proxy: {{ retries: 1 }}\nupstreams:\n{groups}routes:\n{routes}"),
        )
    };
    let before = config(
        "  - { match: { path_prefix: /x }, to: api }\n  - { to: app }\n",
        &format!("  api: [{{ url: 'http://{}' }}]\n", api.addr),
    );
    let shoal = Shoal::start(&before);
    shoal.wait_healthy(1).await;
    shoal.wait_upstreams(1).await;
    let mut client = Client::new(shoal.proxy);
    let r = get(&mut client, "a.test", "/x").await;
    assert_eq!(r.json()["instance"], "api-a");

    // /x now goes to a new group (nginx); the api group is gone.
    let after = config(
        "  - { match: { path_prefix: /x }, to: web }\n  - { to: app }\n",
        &format!("  web: [{{ url: 'http://{}' }}]\n", nginx.addr),
    );
    std::fs::write(
        shoal.config_path(),
        crate::support::with_test_engine(&after),
    )
    .unwrap();
    let (code, out, err) = crate::support::cli(shoal.admin, &["reload", "--apply-config"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    let r = get(&mut client, "a.test", "/x/y").await;
    assert_eq!(r.status, 200);
    assert!(r.body.starts_with(b"uri=/x/y "), "{:?}", r.body);
    let status = shoal.status().await;
    let ids: Vec<_> = status["upstreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["group"].as_str().unwrap().to_string(),
                u["id"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(ids, [("web".to_string(), format!("http://{}", nginx.addr))]);
    // The app's route still serves.
    let r = get(&mut client, "a.test", "/").await;
    assert_eq!(r.json()["instance"], "app-1");
}

/// `pid`s of one app's instances, by instance id.
async fn pids_of(shoal: &Shoal, app: &str) -> std::collections::BTreeMap<String, u64> {
    shoal.status().await["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["app"] == app && i["state"] == "running")
        .map(|i| {
            (
                i["id"].as_str().unwrap().to_string(),
                i["pid"].as_u64().unwrap(),
            )
        })
        .collect()
}

/// Two apps (the demo app twice) and a group of nginx behind one shoal,
/// routed by path: each load reaches only its app, with the prefix
/// stripped; scaling one app and a rolling reload of the other leave the
/// other's processes alone, with no failed request in either load.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_apps_scale_and_reload_apart() {
    let nginx = echoing_nginx().await;
    let app = |n: u32| {
        format!(
            "    command: [\"{shoal}\", \"demo-app\", \"--port\", \"{{port}}\"]\n    instances: {n}\n    \
             health: {{ path: /health, interval: 500ms, timeout: 500ms, fall: 3, rise: 2 }}\n    \
             stop_timeout: 5s\n",
            shoal = crate::support::SHOAL
        )
    };
    let shoal = Shoal::start(&format!(
        "listen: 127.0.0.1:0\nadmin: {{ listen: 127.0.0.1:0 }}\napps:\n  front:\n{}  api:\n{}\
         upstreams:\n  files: [{{ url: 'http://{}' }}]\n\
         routes:\n  - {{ match: {{ path_prefix: /api }}, to: api, strip_prefix: /api }}\n  \
         - {{ match: {{ path_prefix: /assets }}, to: files, request_headers: {{ set: {{ x-route: files }} }} }}\n  \
         - {{ to: front }}\n",
        app(2),
        app(2),
        nginx.addr
    ));
    shoal.wait_healthy(4).await;
    shoal.wait_upstreams(1).await;
    let status = shoal.status().await;
    let names: Vec<_> = status["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].clone())
        .collect();
    assert_eq!(names, ["api", "front"]);

    let mut client = Client::new(shoal.proxy);
    let r = get(&mut client, "a.test", "/assets/logo.svg").await;
    assert_eq!(
        String::from_utf8_lossy(&r.body),
        "uri=/assets/logo.svg route=files cookie=session=1 host=a.test\n"
    );

    let front_load = crate::support::load::Load::start(shoal.proxy, 4, 20, Duration::from_secs(12));
    let api_load = crate::support::load::Load::with_paths(
        shoal.proxy,
        4,
        20,
        Duration::from_secs(12),
        "/api/",
        "/api/echo",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Scale front: api's processes stay.
    let api_before = pids_of(&shoal, "api").await;
    let (code, out, err) = crate::support::cli(shoal.admin, &["scale", "front", "3"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    shoal.wait_healthy(5).await;
    assert_eq!(
        pids_of(&shoal, "api").await,
        api_before,
        "scaling front left api alone"
    );
    assert_eq!(pids_of(&shoal, "front").await.len(), 3);

    // Roll api: front's processes stay, api's are all new.
    let front_before = pids_of(&shoal, "front").await;
    let (code, out, err) = crate::support::cli(shoal.admin, &["reload", "api"]).await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(
        pids_of(&shoal, "front").await,
        front_before,
        "reloading api left front alone"
    );
    let api_after = pids_of(&shoal, "api").await;
    assert_eq!(api_after.len(), 2);
    assert!(
        api_after
            .values()
            .all(|p| !api_before.values().any(|b| b == p)),
        "{api_before:?} → {api_after:?}"
    );

    // Naming no app, with two, is refused with the names.
    let (code, _, err) = crate::support::cli(shoal.admin, &["scale", "4"]).await;
    assert_ne!(code, 0);
    assert!(err.contains("several apps (api, front)"), "{err}");

    let front = front_load.finish().await;
    let api = api_load.finish().await;
    assert!(
        front.failed.is_empty(),
        "front: {:?}",
        &front.failed[..front.failed.len().min(5)]
    );
    assert!(
        api.failed.is_empty(),
        "api: {:?}",
        &api.failed[..api.failed.len().min(5)]
    );
    assert!(
        front.ok > 100 && api.ok > 100,
        "front {} api {}",
        front.ok,
        api.ok
    );
    assert!(
        front.instances.iter().all(|i| i.starts_with("front-")),
        "{:?}",
        front.instances
    );
    assert!(
        api.instances.iter().all(|i| i.starts_with("api-")),
        "{:?}",
        api.instances
    );
}

/// A listener with `routes` of its own serves those; the other listeners
/// serve the top-level ones.
async fn a_listener_with_routes_of_its_own() {
    let (public, internal) = (crate::support::free_port(), crate::support::free_port());
    let shoal = Shoal::start(
        &demo_config(
            1,
            &format!(
                "proxy: {{ retries: 1 }}
listeners:
  - {{ name: public, listen: 127.0.0.1:{public} }}
  - name: internal
    listen: 127.0.0.1:{internal}
    routes:
      - {{ name: internal-app, match: {{ path_prefix: /app }}, to: app, strip_prefix: /app }}
      - {{ name: internal-other, respond: {{ status: 403, body: internal only }} }}
routes:
  - {{ name: public-app, to: app }}
"
            ),
        )
        // `listeners` in place of the one-listener `listen`.
        .replacen("listen: 127.0.0.1:0\n", "", 1),
    );
    shoal.wait_healthy(1).await;
    let addr = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut on_public = Client::new(addr(public));
    let mut on_internal = Client::new(addr(internal));
    // The top-level routes on the public listener: everything to the app.
    let r = get(&mut on_public, "a.test", "/").await;
    assert_eq!(
        (r.status.as_u16(), r.json()["path"].as_str()),
        (200, Some("/"))
    );
    let r = get(&mut on_public, "a.test", "/app").await;
    assert_eq!(r.status, 404, "the demo app has no /app");
    // The internal listener's own: /app stripped to the app, the rest 403.
    let r = get(&mut on_internal, "a.test", "/app").await;
    assert_eq!(
        (r.status.as_u16(), r.json()["path"].as_str()),
        (200, Some("/"))
    );
    let r = get(&mut on_internal, "a.test", "/").await;
    assert_eq!(r.status, 403);
    assert_eq!(&r.body[..], b"internal only");
    let m = shoal.metrics().await;
    assert!(
        m["shoal_route_requests_total{route=\"internal-other\"}"] >= 1.0,
        "{m:?}"
    );
    assert!(
        m["shoal_route_requests_total{route=\"public-app\"}"] >= 2.0,
        "{m:?}"
    );
}

/// `/x/../admin`, `//admin` and `/%61dmin` are `/admin` to the application
/// behind: the route for `/admin` takes them too (on raw sockets, as a
/// client library would clean the path itself).
async fn routes_see_the_path_the_application_reads() {
    let shoal = Shoal::start(&demo_config(
        1,
        "proxy: { retries: 1 }
routes:
  - { match: { path_prefix: /admin }, respond: { status: 403, body: no } }
  - { to: app }
",
    ));
    shoal.wait_healthy(1).await;
    for target in [
        "/admin",
        "/x/../admin",
        "//admin",
        "/%61dmin",
        "/./admin/./x",
        "/x/..//admin",
    ] {
        let mut s = tokio::net::TcpStream::connect(shoal.proxy).await.unwrap();
        use tokio::io::AsyncWriteExt;
        s.write_all(
            format!("GET {target} HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .unwrap();
        let head = crate::support::read_response(&mut s, Duration::from_secs(5)).await;
        assert!(head.starts_with("HTTP/1.1 403"), "{target}: {head}");
    }
    // What the backend gets is the path it reads.
    let mut s = tokio::net::TcpStream::connect(shoal.proxy).await.unwrap();
    use tokio::io::AsyncWriteExt;
    s.write_all(b"GET /a/../%68ealth HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let head = crate::support::read_response(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
}
