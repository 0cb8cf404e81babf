//! RFC 9111's rules one at a time.

use std::time::{Duration, SystemTime};

use http::header::{HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::*;

fn h(lines: &[(&str, &str)]) -> HeaderMap {
    let mut m = HeaderMap::new();
    for (n, v) in lines {
        m.append(
            http::header::HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    m
}

fn cc(v: &str) -> Directives {
    Directives::of(&h(&[("cache-control", v)]))
}

const S: Duration = Duration::from_secs(1);

fn store(
    req: &[(&str, &str)],
    status: u16,
    resp: &[(&str, &str)],
    rules: StoreRules,
) -> Result<(), NotStored> {
    let (req, resp) = (h(req), h(resp));
    storable(
        &Method::GET,
        &req,
        &Directives::of_request(&req),
        StatusCode::from_u16(status).unwrap(),
        &resp,
        &Directives::of_response(&resp),
        &rules,
    )
}

#[test]
fn directives_parse() {
    let d = cc("public, max-age=60, s-maxage=\"30\", stale-while-revalidate=5, Stale-If-Error=9");
    assert!(d.public);
    assert_eq!(d.max_age, Some(60));
    assert_eq!(d.s_maxage, Some(30));
    assert_eq!(d.stale_while_revalidate, Some(5));
    assert_eq!(d.stale_if_error, Some(9));
    let d = cc("private=\"set-cookie, x\", no-cache=\"a,b\", max-age=60");
    assert!(d.private && d.no_cache);
    assert_eq!(d.max_age, Some(60));
    // Lines add up; a bad value is the strictest.
    let d = Directives::of(&h(&[
        ("cache-control", "max-age=abc"),
        ("cache-control", "no-store"),
    ]));
    assert_eq!(d.max_age, Some(0));
    assert!(d.no_store);
    // Too large is 2^31.
    assert_eq!(cc("max-age=99999999999999999999").max_age, Some(1 << 31));
    let d = cc("max-stale, min-fresh=5, only-if-cached");
    assert_eq!(d.max_stale, Some(None));
    assert_eq!(d.min_fresh, Some(5));
    assert!(d.only_if_cached);
    assert_eq!(cc("max-stale=7").max_stale, Some(Some(7)));
}

#[test]
fn pragma_no_cache_only_without_cache_control() {
    assert!(Directives::of_request(&h(&[("pragma", "no-cache")])).no_cache);
    assert!(
        !Directives::of_request(&h(&[
            ("pragma", "no-cache"),
            ("cache-control", "max-age=5")
        ]))
        .no_cache
    );
}

#[test]
fn what_is_stored() {
    let r = StoreRules::default();
    assert_eq!(
        store(&[], 200, &[("cache-control", "max-age=60")], r),
        Ok(())
    );
    assert_eq!(
        store(&[], 200, &[("cache-control", "no-store, max-age=60")], r),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        store(
            &[("cache-control", "no-store")],
            200,
            &[("cache-control", "max-age=60")],
            r
        ),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        store(&[], 200, &[("cache-control", "private, max-age=60")], r),
        Err(NotStored::Private)
    );
    assert_eq!(
        store(&[], 206, &[("cache-control", "max-age=60")], r),
        Err(NotStored::Status)
    );
    assert_eq!(
        store(&[], 304, &[("cache-control", "max-age=60")], r),
        Err(NotStored::Status)
    );
    // Any final status with explicit freshness.
    assert_eq!(
        store(&[], 302, &[("cache-control", "max-age=60")], r),
        Ok(())
    );
    assert_eq!(
        store(&[], 500, &[("cache-control", "max-age=60")], r),
        Ok(())
    );
    // Nothing to go by.
    assert_eq!(store(&[], 200, &[], r), Err(NotStored::NoFreshness));
    // A status cacheable by default with a validator: stored, to be
    // revalidated (no heuristic freshness without default_ttl).
    assert_eq!(
        store(
            &[],
            200,
            &[("last-modified", "Mon, 07 Dec 2026 00:00:00 GMT")],
            r
        ),
        Ok(())
    );
    assert_eq!(
        store(&[], 302, &[("etag", "\"a\"")], r),
        Err(NotStored::NoFreshness)
    );
    assert_eq!(
        store(
            &[],
            200,
            &[("set-cookie", "a=b"), ("cache-control", "max-age=60")],
            r
        ),
        Err(NotStored::SetCookie)
    );
    let cookies = StoreRules {
        store_set_cookie: true,
        ..r
    };
    assert_eq!(
        store(
            &[],
            200,
            &[("set-cookie", "a=b"), ("cache-control", "max-age=60")],
            cookies
        ),
        Ok(())
    );
    assert_eq!(
        store(
            &[],
            200,
            &[("vary", "accept, *"), ("cache-control", "max-age=60")],
            r
        ),
        Err(NotStored::VaryStar)
    );
    // Expires alone; max-age=0 only with a validator.
    assert_eq!(
        store(&[], 200, &[("expires", "Mon, 07 Dec 2099 00:00:00 GMT")], r),
        Ok(())
    );
    assert_eq!(
        store(&[], 200, &[("cache-control", "max-age=0")], r),
        Err(NotStored::NoFreshness)
    );
    assert_eq!(
        store(
            &[],
            200,
            &[("cache-control", "max-age=0"), ("etag", "\"a\"")],
            r
        ),
        Ok(())
    );
    assert_eq!(
        store(&[], 200, &[("cache-control", "no-cache, max-age=60")], r),
        Ok(())
    );
}

#[test]
fn heuristic_only_when_allowed() {
    let allowed = StoreRules {
        default_ttl: Some(Duration::from_secs(300)),
        ..Default::default()
    };
    assert_eq!(store(&[], 200, &[], allowed), Ok(()));
    assert_eq!(store(&[], 404, &[], allowed), Ok(()));
    // 302 is not cacheable by default; `public` makes it so.
    assert_eq!(store(&[], 302, &[], allowed), Err(NotStored::NoFreshness));
    assert_eq!(
        store(&[], 302, &[("cache-control", "public")], allowed),
        Ok(())
    );
    let resp = h(&[
        ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
        ("last-modified", "Mon, 07 Dec 2026 09:00:00 GMT"),
    ]);
    let d = Directives::of(&resp);
    // 10% of an hour, under the cap; the cap over it.
    assert_eq!(
        freshness_lifetime(StatusCode::OK, &resp, &d, Some(300 * S)),
        300 * S
    );
    assert_eq!(
        freshness_lifetime(StatusCode::OK, &resp, &d, Some(100 * S)),
        100 * S
    );
    assert_eq!(
        freshness_lifetime(StatusCode::OK, &resp, &d, Some(3600 * S)),
        360 * S
    );
    assert_eq!(
        freshness_lifetime(StatusCode::OK, &resp, &d, None),
        Duration::ZERO
    );
}

#[test]
fn authorization_needs_public_s_maxage_or_must_revalidate() {
    let r = StoreRules::default();
    let auth = [("authorization", "Bearer x")];
    assert_eq!(
        store(&auth, 200, &[("cache-control", "max-age=60")], r),
        Err(NotStored::Authorization)
    );
    assert_eq!(
        store(&auth, 200, &[("cache-control", "public, max-age=60")], r),
        Ok(())
    );
    assert_eq!(
        store(&auth, 200, &[("cache-control", "s-maxage=60")], r),
        Ok(())
    );
    assert_eq!(
        store(
            &auth,
            200,
            &[("cache-control", "must-revalidate, max-age=60")],
            r
        ),
        Ok(())
    );
}

#[test]
fn only_get_is_stored() {
    let (req, resp) = (HeaderMap::new(), h(&[("cache-control", "max-age=60")]));
    let d = Directives::of(&resp);
    for m in [Method::HEAD, Method::POST] {
        let got = storable(
            &m,
            &req,
            &Directives::default(),
            StatusCode::OK,
            &resp,
            &d,
            &StoreRules::default(),
        );
        assert_eq!(got, Err(NotStored::Method));
    }
}

#[test]
fn lifetime_order_s_maxage_max_age_expires() {
    let l = |lines: &[(&str, &str)]| {
        let r = h(lines);
        freshness_lifetime(StatusCode::OK, &r, &Directives::of(&r), None)
    };
    assert_eq!(l(&[("cache-control", "max-age=10, s-maxage=20")]), 20 * S);
    assert_eq!(
        l(&[
            ("cache-control", "max-age=10"),
            ("expires", "Mon, 07 Dec 2099 00:00:00 GMT")
        ]),
        10 * S
    );
    assert_eq!(
        l(&[
            ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
            ("expires", "Mon, 07 Dec 2026 10:01:40 GMT")
        ]),
        100 * S
    );
    // An Expires that does not parse is in the past; one before Date too.
    assert_eq!(l(&[("expires", "0")]), Duration::ZERO);
    assert_eq!(
        l(&[
            ("date", "Mon, 07 Dec 2026 10:00:00 GMT"),
            ("expires", "Mon, 07 Dec 2026 09:00:00 GMT")
        ]),
        Duration::ZERO
    );
}

#[test]
fn age_adds_the_age_header_the_delay_and_the_time_stored() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let date = httpdate::fmt_http_date(t0);
    // Sent at t0, answered at t0+2 with Age: 10 and Date t0.
    let resp = h(&[("date", &date), ("age", "10")]);
    let times = Times::new(&resp, t0, t0 + 2 * S);
    // corrected_age_value = 10 + 2 > apparent_age 2.
    assert_eq!(times.initial_age, 12 * S);
    assert_eq!(times.age(t0 + 7 * S), 17 * S);
    // A Date far in the past: the apparent age wins.
    let old = httpdate::fmt_http_date(t0 - 100 * S);
    let times = Times::new(&h(&[("date", &old)]), t0, t0);
    assert_eq!(times.initial_age, 100 * S);
    // A Date in the future counts nothing.
    let future = httpdate::fmt_http_date(t0 + 100 * S);
    assert_eq!(
        Times::new(&h(&[("date", &future)]), t0, t0).initial_age,
        Duration::ZERO
    );
}

#[test]
fn request_directives_decide_use() {
    let none = Directives::default();
    let life = 60 * S;
    assert_eq!(usable(&none, &none, life, 10 * S), Usable::Fresh);
    assert_eq!(usable(&none, &none, life, 60 * S), Usable::Revalidate);
    assert_eq!(
        usable(&none, &cc("no-cache"), life, 10 * S),
        Usable::Revalidate
    );
    assert_eq!(
        usable(&cc("no-cache"), &none, life, 10 * S),
        Usable::Revalidate
    );
    assert_eq!(usable(&none, &cc("max-age=0"), life, S), Usable::Revalidate);
    assert_eq!(usable(&none, &cc("max-age=5"), life, 4 * S), Usable::Fresh);
    assert_eq!(
        usable(&none, &cc("min-fresh=55"), life, 10 * S),
        Usable::Revalidate
    );
    assert_eq!(
        usable(&none, &cc("min-fresh=50"), life, 10 * S),
        Usable::Fresh
    );
    assert_eq!(
        usable(&none, &cc("max-stale"), life, 100 * S),
        Usable::StaleAllowed
    );
    assert_eq!(
        usable(&none, &cc("max-stale=10"), life, 65 * S),
        Usable::StaleAllowed
    );
    assert_eq!(
        usable(&none, &cc("max-stale=10"), life, 75 * S),
        Usable::Revalidate
    );
}

#[test]
fn must_revalidate_proxy_revalidate_and_s_maxage_refuse_stale() {
    let any = cc("max-stale");
    for d in ["must-revalidate", "proxy-revalidate", "s-maxage=60"] {
        assert_eq!(
            usable(&cc(d), &any, 60 * S, 100 * S),
            Usable::Revalidate,
            "{d}"
        );
        assert!(!stale_if_error(
            &cc(&format!("{d}, stale-if-error=999")),
            &Directives::default(),
            60 * S,
            100 * S
        ));
    }
}

#[test]
fn stale_while_revalidate_window() {
    let d = cc("max-age=60, stale-while-revalidate=30");
    let none = Directives::default();
    assert_eq!(
        usable(&d, &none, 60 * S, 70 * S),
        Usable::StaleWhileRevalidate
    );
    assert_eq!(usable(&d, &none, 60 * S, 95 * S), Usable::Revalidate);
}

#[test]
fn stale_if_error_window_from_either_side() {
    let none = Directives::default();
    assert!(stale_if_error(
        &cc("max-age=60, stale-if-error=30"),
        &none,
        60 * S,
        80 * S
    ));
    assert!(!stale_if_error(
        &cc("max-age=60, stale-if-error=30"),
        &none,
        60 * S,
        100 * S
    ));
    assert!(stale_if_error(
        &cc("max-age=60"),
        &cc("stale-if-error=50"),
        60 * S,
        100 * S
    ));
    assert!(!stale_if_error(&cc("max-age=60"), &none, 60 * S, 61 * S));
    assert!(is_error(StatusCode::BAD_GATEWAY) && !is_error(StatusCode::NOT_IMPLEMENTED));
}

#[test]
fn client_conditionals() {
    let stored = h(&[
        ("etag", "\"v1\""),
        ("last-modified", "Mon, 07 Dec 2026 09:00:00 GMT"),
    ]);
    assert!(not_modified(&h(&[("if-none-match", "\"v1\"")]), &stored));
    assert!(not_modified(
        &h(&[("if-none-match", "\"x\", W/\"v1\"")]),
        &stored
    ));
    assert!(not_modified(&h(&[("if-none-match", "*")]), &stored));
    assert!(!not_modified(&h(&[("if-none-match", "\"v2\"")]), &stored));
    // If-None-Match decides when present.
    assert!(!not_modified(
        &h(&[
            ("if-none-match", "\"v2\""),
            ("if-modified-since", "Mon, 07 Dec 2026 10:00:00 GMT")
        ]),
        &stored
    ));
    assert!(not_modified(
        &h(&[("if-modified-since", "Mon, 07 Dec 2026 10:00:00 GMT")]),
        &stored
    ));
    assert!(!not_modified(
        &h(&[("if-modified-since", "Mon, 07 Dec 2026 08:00:00 GMT")]),
        &stored
    ));
    assert!(!not_modified(&HeaderMap::new(), &stored));
}

#[test]
fn unsafe_success_invalidates() {
    assert!(invalidates(&Method::POST, StatusCode::OK));
    assert!(invalidates(&Method::DELETE, StatusCode::SEE_OTHER));
    assert!(!invalidates(&Method::POST, StatusCode::BAD_REQUEST));
    assert!(!invalidates(&Method::GET, StatusCode::OK));
    assert!(!invalidates(&Method::OPTIONS, StatusCode::OK));
}

#[test]
fn an_age_that_does_not_parse_is_too_old() {
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let date = httpdate::fmt_http_date(t0);
    for bad in ["abc", "-7200", "1.5", "60s", "0, 0", "0;x=1", ""] {
        let times = Times::new(&h(&[("date", &date), ("age", bad)]), t0, t0);
        assert!(times.age(t0) > 3600 * S, "Age: {bad:?}");
    }
    let two = h(&[("date", &date), ("age", "0"), ("age", "0")]);
    assert!(Times::new(&two, t0, t0).age(t0) > 3600 * S);
    assert_eq!(
        Times::new(&h(&[("date", &date), ("age", " 5 ")]), t0, t0).age(t0),
        5 * S
    );
}

#[test]
fn must_understand_stores_known_statuses_only() {
    let r = StoreRules::default();
    let cc = [("cache-control", "max-age=60, must-understand, no-store")];
    assert_eq!(store(&[], 200, &cc, r), Ok(()));
    assert_eq!(store(&[], 599, &cc, r), Err(NotStored::Status));
}

#[test]
fn surrogate_control_replaces_cache_control() {
    let r = StoreRules::default();
    assert_eq!(
        store(
            &[],
            200,
            &[
                ("surrogate-control", "no-store"),
                ("cache-control", "max-age=60")
            ],
            r
        ),
        Err(NotStored::NoStore)
    );
    assert_eq!(
        store(
            &[],
            200,
            &[
                ("surrogate-control", "max-age=60"),
                ("cache-control", "no-store")
            ],
            r
        ),
        Ok(())
    );
    let resp = h(&[
        ("surrogate-control", "max-age=60"),
        ("cache-control", "max-age=1"),
    ]);
    let d = Directives::of_response(&resp);
    assert_eq!(freshness_lifetime(StatusCode::OK, &resp, &d, None), 60 * S);
}
