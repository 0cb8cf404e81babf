//! `GET /session`: a visit counter kept in the client's `demo_visits` cookie, so sticky
//! sessions and cookie handling can be checked through the proxy.

use http::{header, HeaderMap, HeaderValue, Response, StatusCode};
use serde_json::json;

use crate::body::{self, Body};
use crate::routes::App;

const COOKIE: &str = "demo_visits";

pub(crate) fn visit(app: &App, headers: &HeaderMap) -> Response<Body> {
    let visits = previous_visits(headers).saturating_add(1);
    let mut response = body::json(
        StatusCode::OK,
        &json!({"instance": app.instance, "visits": visits}),
    );
    let cookie = format!("{COOKIE}={visits}; Path=/; HttpOnly; SameSite=Lax");
    if let Ok(value) = HeaderValue::from_str(&cookie) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// The count in the request's `demo_visits` cookie; 0 if absent or not a number.
fn previous_visits(headers: &HeaderMap) -> u64 {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .and_then(|(_, value)| value.trim().trim_matches('"').parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(values: &[&'static str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::COOKIE, HeaderValue::from_static(v));
        }
        headers
    }

    #[test]
    fn reads_the_count_among_other_cookies() {
        assert_eq!(previous_visits(&with_cookies(&[])), 0);
        assert_eq!(previous_visits(&with_cookies(&["demo_visits=4"])), 4);
        assert_eq!(
            previous_visits(&with_cookies(&["a=1; demo_visits=7; b=2"])),
            7
        );
        assert_eq!(
            previous_visits(&with_cookies(&["a=1", "demo_visits=\"9\""])),
            9
        );
    }

    #[test]
    fn garbage_counts_as_no_visit() {
        assert_eq!(previous_visits(&with_cookies(&["demo_visits=lots"])), 0);
        assert_eq!(previous_visits(&with_cookies(&["demo_visits"])), 0);
        assert_eq!(previous_visits(&with_cookies(&["xdemo_visits=3"])), 0);
        assert_eq!(previous_visits(&with_cookies(&["demo_visits=-1"])), 0);
    }
}
