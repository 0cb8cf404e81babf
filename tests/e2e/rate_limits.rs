//! Rate limits in this process (`rate_limits:`, `state.backend: memory`):
//! a burst, then 429 with `Retry-After` and the RateLimit headers; keys by
//! client address (as `trusted_proxies` lets it be known), header, cookie
//! and route; rules scoped to routes and matches; routes that answer
//! themselves counted too; a reload keeps counts and run-time changes; the
//! admin API's changes, resets and refusals; the metrics. Under both
//! engines. (Redis: `state_redis.rs`.)

use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::Value;

use crate::support::{request, upstreams_config, Backend, Client, Reply, Shoal};

crate::under_both_engines!(
    a_burst_passes_then_429_with_the_headers,
    rules_count_by_header_cookie_and_route_where_they_apply,
    the_client_address_is_the_one_trusted_proxies_allow,
    a_reload_keeps_counts_and_run_time_changes,
    the_admin_api_changes_resets_and_refuses,
);

async fn send(client: &mut Client, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut req = Request::get(path).header("host", "rl.test");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    client
        .send(req.body(Full::new(Bytes::new())).unwrap())
        .await
        .unwrap()
}

fn header<'a>(r: &'a Reply, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(|v| v.to_str().unwrap())
}

/// Statuses of `n` requests.
async fn statuses(client: &mut Client, n: usize, path: &str, headers: &[(&str, &str)]) -> Vec<u16> {
    let mut out = Vec::new();
    for _ in 0..n {
        out.push(send(client, path, headers).await.status.as_u16());
    }
    out
}

async fn admin(shoal: &Shoal, method: &str, path: &str, body: &str, token: Option<&str>) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", shoal.admin.to_string());
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    request(
        shoal.admin,
        req.body(Full::new(Bytes::from(body.to_string()))).unwrap(),
    )
    .await
    .unwrap()
}

async fn a_burst_passes_then_429_with_the_headers() {
    let backend = Backend::start("b").await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        "rate_limits:
  - name: per_ip
    rate: 100/hour
    burst: 5
  - name: quiet
    key: header:x-quiet
    rate: 100/hour
    burst: 50
    headers: false
",
    ));
    shoal.wait_upstreams(1).await;
    let mut client = Client::new(shoal.proxy);
    for want in (0..5).rev() {
        let r = send(&mut client, "/", &[]).await;
        assert_eq!(r.status, 200, "within the burst");
        assert_eq!(header(&r, "ratelimit-limit"), Some("5"));
        assert_eq!(header(&r, "ratelimit-remaining"), Some(&*want.to_string()));
        let reset: u64 = header(&r, "ratelimit-reset").unwrap().parse().unwrap();
        // 36 s per request used (100/hour).
        assert!(
            (36 * (5 - want)..=36 * (5 - want) + 1).contains(&reset),
            "reset {reset}"
        );
        assert!(header(&r, "retry-after").is_none());
    }
    let r = send(&mut client, "/", &[]).await;
    assert_eq!(r.status, 429);
    assert_eq!(header(&r, "ratelimit-limit"), Some("5"));
    assert_eq!(header(&r, "ratelimit-remaining"), Some("0"));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((35..=36).contains(&retry), "retry-after {retry}");
    assert!(header(&r, "x-request-id").is_some());
    let body = String::from_utf8_lossy(&r.body);
    assert!(
        body.contains("429 Too Many Requests: rate_limited"),
        "{body}"
    );
    // In JSON when asked; the connection stays open (same client).
    let r = send(&mut client, "/", &[("accept", "application/json")]).await;
    assert_eq!(r.status, 429);
    let v = r.json();
    assert_eq!(v["error"], "rate_limited");
    assert_eq!(v["status"], 429);
    assert!(v["request_id"].as_str().is_some_and(|s| !s.is_empty()));

    // A rule with `headers: false` says nothing on allowed responses, but
    // its refusals carry them. (Another client address is needed: per_ip
    // refuses 127.0.0.1 now; the rules are checked, so use the other
    // rule's key only — per_ip still applies, so reset it first.)
    let reset = admin(
        &shoal,
        "DELETE",
        "/api/v1/rate-limits/per_ip?key=127.0.0.1",
        "",
        None,
    )
    .await;
    assert_eq!(reset.status, 200);
    assert_eq!(reset.json()["reset"], true);
    let r = send(&mut client, "/", &[("x-quiet", "q")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        header(&r, "ratelimit-limit"),
        Some("5"),
        "only per_ip's headers"
    );

    let m = shoal.metrics().await;
    assert_eq!(
        m.get("shoal_rate_limit_decisions_total{rule=\"per_ip\",outcome=\"limited\"}"),
        Some(&2.0)
    );
    assert_eq!(
        m.get("shoal_rate_limit_decisions_total{rule=\"per_ip\",outcome=\"allowed\"}"),
        Some(&6.0)
    );
    assert_eq!(
        m.get("shoal_rate_limit_decisions_total{rule=\"quiet\",outcome=\"allowed\"}"),
        Some(&1.0)
    );
}

async fn rules_count_by_header_cookie_and_route_where_they_apply() {
    let backend = Backend::start("b").await;
    let shoal = Shoal::start(&upstreams_config(
        &[backend.addr],
        "routes:
  - name: api
    match: { path_prefix: /api }
    to: upstreams
    strip_prefix: /api
  - name: hello
    match: { path: /hello }
    respond: { status: 200, body: \"hi\\n\" }
  - name: rest
    to: upstreams
rate_limits:
  - name: per_key
    key: header:X-Api-Key
    rate: 100/hour
    burst: 2
    routes: [api]
  - name: per_session
    key: [cookie:session, route]
    rate: 100/hour
    burst: 1
    match: { methods: [POST] }
  - name: hello
    key: route
    rate: 100/hour
    burst: 3
    routes: [hello]
",
    ));
    shoal.wait_upstreams(1).await;
    let mut c = Client::new(shoal.proxy);
    // By API key, on the api route only; each key apart; no key: not counted.
    assert_eq!(
        statuses(&mut c, 3, "/api/", &[("x-api-key", "A")]).await,
        [200, 200, 429]
    );
    assert_eq!(
        statuses(&mut c, 2, "/api/", &[("x-api-key", "B")]).await,
        [200, 200]
    );
    assert_eq!(statuses(&mut c, 4, "/api/", &[]).await, [200; 4]);
    assert_eq!(
        statuses(&mut c, 3, "/", &[("x-api-key", "A")]).await,
        [200; 3]
    );
    // By cookie and route together, POST only (match).
    let post = |path: &'static str, cookie: &'static str| {
        Request::post(path)
            .header("host", "rl.test")
            .header("cookie", cookie)
            .body(Full::new(Bytes::from_static(b"x")))
            .unwrap()
    };
    let mut got = Vec::new();
    for (path, cookie) in [
        ("/echo", "a=1; session=s1"),
        ("/echo", "session=s1"),
        ("/api/echo", "session=s1"),
        ("/echo", "session=s2"),
    ] {
        got.push(c.send(post(path, cookie)).await.unwrap().status.as_u16());
    }
    assert_eq!(
        got,
        [200, 429, 200, 200],
        "s1 on rest, again, s1 on api, s2 on rest"
    );
    assert_eq!(
        statuses(&mut c, 2, "/", &[("cookie", "session=s1")]).await,
        [200, 200],
        "GET is not matched"
    );
    // A route that answers itself is limited as well, and its answer
    // carries the headers.
    let r = send(&mut c, "/hello", &[]).await;
    assert_eq!(header(&r, "ratelimit-remaining"), Some("2"));
    assert_eq!(&r.body[..], b"hi\n");
    assert_eq!(statuses(&mut c, 3, "/hello", &[]).await, [200, 200, 429]);
}

async fn the_client_address_is_the_one_trusted_proxies_allow() {
    let backend = Backend::start("b").await;
    let rule = "rate_limits:
  - name: per_ip
    rate: 100/hour
    burst: 1
";
    // Trusted: each X-Forwarded-For address has its own bucket.
    let trusted = Shoal::start(&upstreams_config(
        &[backend.addr],
        &format!("trusted_proxies: [127.0.0.1]\n{rule}"),
    ));
    trusted.wait_upstreams(1).await;
    let mut c = Client::new(trusted.proxy);
    for ip in ["10.0.0.1", "10.0.0.2", "2001:db8::1"] {
        assert_eq!(
            statuses(&mut c, 2, "/", &[("x-forwarded-for", ip)]).await,
            [200, 429],
            "{ip}"
        );
    }
    let reset = admin(
        &trusted,
        "DELETE",
        "/api/v1/rate-limits/per_ip?key=2001%3Adb8%3A%3A1",
        "",
        None,
    )
    .await;
    assert_eq!(reset.json()["reset"], true, "{:?}", reset.json());
    assert_eq!(
        statuses(&mut c, 1, "/", &[("x-forwarded-for", "2001:db8::1")]).await,
        [200]
    );
    // Not trusted: the header is the client's word; the peer is counted.
    let untrusted = Shoal::start(&upstreams_config(&[backend.addr], rule));
    untrusted.wait_upstreams(1).await;
    let mut c = Client::new(untrusted.proxy);
    assert_eq!(
        statuses(&mut c, 1, "/", &[("x-forwarded-for", "10.0.0.1")]).await,
        [200]
    );
    assert_eq!(
        statuses(&mut c, 1, "/", &[("x-forwarded-for", "10.0.0.2")]).await,
        [429]
    );
}

async fn a_reload_keeps_counts_and_run_time_changes() {
    let backend = Backend::start("b").await;
    let config = |extra: &str| {
        upstreams_config(
            &[backend.addr],
            &format!(
                "rate_limits:
  - name: per_ip
    rate: 100/hour
    burst: 3
  - name: other
    key: header:x-other
    rate: 10/s
{extra}"
            ),
        )
    };
    let shoal = Shoal::start(&config(""));
    shoal.wait_upstreams(1).await;
    let mut c = Client::new(shoal.proxy);
    assert_eq!(statuses(&mut c, 2, "/", &[]).await, [200, 200]);
    // A run-time change of `other`, then a reload that adds a rule.
    let r = admin(
        &shoal,
        "PUT",
        "/api/v1/rate-limits/other",
        r#"{"burst": 1}"#,
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());
    std::fs::write(
        shoal.config_path(),
        crate::support::with_test_engine(&config(
            "  - name: third\n    key: header:x-third\n    rate: 1/s\n",
        )),
    )
    .unwrap();
    let (code, out, err) = crate::support::cli(shoal.admin, &["reload", "--apply-config"]).await;
    assert_eq!(code, 0, "{out}{err}");
    // per_ip kept its count: one left of three.
    let r = send(&mut c, "/", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(header(&r, "ratelimit-remaining"), Some("0"));
    assert_eq!(send(&mut c, "/", &[]).await.status, 429);
    // `other` kept its run-time burst of 1; `third` is there.
    let list = admin(&shoal, "GET", "/api/v1/rate-limits", "", None)
        .await
        .json();
    let rules = list["rules"].as_array().unwrap();
    let by = |n: &str| {
        rules
            .iter()
            .find(|r| r["name"] == n)
            .cloned()
            .unwrap_or(Value::Null)
    };
    assert_eq!(by("other")["burst"], 1);
    assert_eq!(by("other")["overridden"], true);
    assert_eq!(by("other")["configured"]["burst"], 10);
    assert_eq!(by("third")["rate"], "1/s");
    assert_eq!(list["backend"], "memory");
}

async fn the_admin_api_changes_resets_and_refuses() {
    const TOKEN: &str = "rl-token-0123456789abcdef";
    let backend = Backend::start("b").await;
    let shoal = Shoal::start(
        &upstreams_config(
            &[backend.addr],
            "rate_limits:
  - name: per_ip
    rate: 100/hour
    burst: 2
",
        )
        .replace(
            "admin: { listen: 127.0.0.1:0 }",
            &format!("admin: {{ listen: 127.0.0.1:0, token: {TOKEN} }}"),
        ),
    );
    shoal.wait_upstreams(1).await;
    let t = Some(TOKEN);
    let put = |body: &'static str, token: Option<&'static str>| {
        let shoal = &shoal;
        async move { admin(shoal, "PUT", "/api/v1/rate-limits/per_ip", body, token).await }
    };
    // Changes need the token; reads do not (admin.read: open).
    assert_eq!(put(r#"{"burst": 5}"#, None).await.status, 401);
    assert_eq!(
        admin(&shoal, "GET", "/api/v1/rate-limits", "", None)
            .await
            .status,
        200
    );
    assert_eq!(
        admin(
            &shoal,
            "DELETE",
            "/api/v1/rate-limits/per_ip?key=127.0.0.1",
            "",
            None
        )
        .await
        .status,
        401
    );
    // Bad bodies: 400 with the reason.
    for (body, says) in [
        (r#"{"rate": "fast"}"#, "invalid rate `fast`"),
        (r#"{"burst": 0}"#, "burst must be at least 1"),
        (r#"{"burts": 3}"#, "unknown field `burts`"),
        ("not json", "expected a JSON body"),
        (r#"{"enabled": "yes"}"#, "invalid type"),
    ] {
        let r = put(body, t).await;
        assert_eq!(r.status, 400, "{body}");
        let why = r.json()["error"].as_str().unwrap_or("").to_string();
        assert!(why.contains(says), "{body}: {why}");
    }
    assert_eq!(
        admin(&shoal, "PUT", "/api/v1/rate-limits/nope", "{}", t)
            .await
            .status,
        404
    );
    let r = admin(&shoal, "DELETE", "/api/v1/rate-limits/per_ip", "", t).await;
    assert_eq!(r.status, 400, "no ?key=");
    // Turned off: nothing counted; back on, a smaller burst.
    let mut c = Client::new(shoal.proxy);
    assert_eq!(put(r#"{"enabled": false}"#, t).await.status, 200);
    assert_eq!(statuses(&mut c, 4, "/", &[]).await, [200; 4]);
    let r = put(r#"{"enabled": true, "burst": 1, "rate": "10/hour"}"#, t).await;
    assert_eq!(r.json()["rate"], "10/hour");
    assert_eq!(statuses(&mut c, 2, "/", &[]).await, [200, 429]);
    // A reset lets the key through again; the override's removal restores
    // the config's settings.
    let r = admin(
        &shoal,
        "DELETE",
        "/api/v1/rate-limits/per_ip?key=127.0.0.1",
        "",
        t,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(statuses(&mut c, 1, "/", &[]).await, [200]);
    let r = admin(
        &shoal,
        "DELETE",
        "/api/v1/rate-limits/per_ip/override",
        "",
        t,
    )
    .await;
    assert_eq!(r.json()["burst"], 2);
    assert_eq!(r.json()["overridden"], false);
}
