//! `shoal events [-f]`: the running shoal's lifecycle events, one line
//! each (`--json`: the API's JSON, one object a line); `-f` follows the
//! Server-Sent Events stream until interrupted.

use std::io::Write;

use http::{Method, StatusCode};
use http_body_util::BodyExt;

use super::client::{admin_address, admin_token, refusal, Admin, ClientError};
use super::ConfigSource;
use crate::events::Event;

pub fn run(src: &ConfigSource, admin: Option<&str>, follow: bool, json: bool) -> i32 {
    let result = (|| {
        let addr = admin_address(admin, src)?;
        let admin = Admin::new(addr).with_token(admin_token(src));
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(ClientError::Runtime)?;
        rt.block_on(print(admin, follow, json))
    })();
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("shoal: {e}");
            1
        }
    }
}

async fn print(admin: Admin, follow: bool, json: bool) -> Result<(), ClientError> {
    if !follow {
        #[derive(serde::Deserialize)]
        struct List {
            events: Vec<Event>,
        }
        let list: List = admin.get_json("/api/v1/events").await?;
        for e in &list.events {
            line(e, json);
        }
        return Ok(());
    }
    let resp = admin
        .send(Method::GET, "/api/v1/events?follow", None)
        .await?;
    let status = resp.status();
    let mut body = resp.into_body();
    if status != StatusCode::OK {
        let bytes = body.collect().await.map_err(ClientError::Read)?.to_bytes();
        return Err(refusal(status, &bytes));
    }
    let mut buf: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ClientError::Lost)?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        buf.extend_from_slice(&data);
        while let Some(end) = buf.iter().position(|b| *b == b'\n') {
            let text: Vec<u8> = buf.drain(..=end).collect();
            let Some(payload) = text.strip_prefix(b"data: ") else {
                continue;
            };
            if let Ok(e) = serde_json::from_slice::<Event>(payload) {
                line(&e, json);
            }
        }
    }
    Err(ClientError::Unfinished)
}

fn line(e: &Event, json: bool) {
    let text = if json {
        serde_json::to_string(e).unwrap_or_default()
    } else {
        format!(
            "{}  {:<20} {:<12} {}",
            utc(e.at),
            e.kind.as_str(),
            e.instance.as_deref().or(e.app.as_deref()).unwrap_or("-"),
            e.message
        )
    };
    let mut out = std::io::stdout().lock();
    // A closed pipe (`shoal events -f | head`) ends the output, quietly.
    let _ = writeln!(out, "{text}").and_then(|_| out.flush());
}

/// `2026-12-07T06:40:01Z` for seconds since the Unix epoch.
fn utc(at: f64) -> String {
    let secs = at.max(0.0) as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days → civil date.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn times_are_utc() {
        assert_eq!(super::utc(0.0), "1970-01-01T00:00:00Z");
        assert_eq!(super::utc(1_796_625_601.5), "2026-12-07T06:40:01Z");
        assert_eq!(super::utc(951_782_400.0), "2000-02-29T00:00:00Z");
    }
}
