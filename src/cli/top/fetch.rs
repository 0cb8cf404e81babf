//! What `shoal top` asks the admin API, and nothing else: the status
//! document, the dashboard's latest sample, the events since the last
//! poll; and the operations (`POST /api/v1/scale`, `/api/v1/reload`) the
//! keys start. Failures become the words the screen shows.

use http::StatusCode;
use serde_json::json;

use super::model::{Ask, Snapshot, Traffic};
use crate::admin::status::Status;
use crate::cli::client::{Admin, ClientError};
use crate::cli::control::{follow_operation, Step};
use crate::dashboard::history::Sample;
use crate::events::Event;

/// Where the poller is in the event history.
#[derive(Debug, Default)]
pub struct Cursor {
    /// The last event id brought.
    last_event: u64,
    /// The status' uptime at the last poll: less now means another shoal
    /// (its event ids start again at 1).
    uptime_secs: f64,
}

/// One poll: the status (which must work), then the sample and the new
/// events (which may not: an older shoal has neither).
pub async fn poll(admin: &Admin, cursor: &mut Cursor) -> Result<Snapshot, String> {
    let status: Status = admin
        .get_json("/api/v1/status")
        .await
        .map_err(|e| explain(&e))?;
    let restarted = status.uptime_secs < cursor.uptime_secs;
    cursor.uptime_secs = status.uptime_secs;
    if restarted {
        cursor.last_event = 0;
    }
    #[derive(serde::Deserialize)]
    struct History {
        samples: Vec<Sample>,
    }
    let fleet = admin
        .get_json::<History>(crate::dashboard::HISTORY_PATH)
        .await
        .ok()
        .and_then(|h| Traffic::of(&h.samples));
    #[derive(serde::Deserialize)]
    struct Events {
        events: Vec<Event>,
    }
    let events = admin
        .get_json::<Events>(&format!("/api/v1/events?since={}", cursor.last_event))
        .await
        .map(|e| e.events)
        .unwrap_or_default();
    if let Some(last) = events.last() {
        cursor.last_event = last.id;
    }
    Ok(Snapshot {
        status,
        fleet,
        events,
        events_restarted: restarted,
    })
}

/// Run a confirmed change to its end: each progress step to `on_step`;
/// the last message, or why it was refused or failed.
pub async fn operate(
    admin: &Admin,
    ask: &Ask,
    mut on_step: impl FnMut(String),
) -> Result<String, String> {
    let (path, body) = match ask {
        Ask::Scale { app, to, .. } => (
            "/api/v1/scale".to_string(),
            Some(json!({ "instances": to, "app": app })),
        ),
        Ask::Reload { app } => (format!("/api/v1/reload?app={app}"), None),
    };
    follow_operation(admin, &path, body, |step: Step<'_>| {
        on_step(if step.total > 0 {
            format!("[{}/{}] {}", step.done, step.total, step.message)
        } else {
            step.message.to_string()
        })
    })
    .await
    .map_err(|e| explain(&e))
}

/// A failure in the words the screen shows: the HTTP status with the API's
/// reason (`401 unauthorized: …`, `409 another operation is running…`).
pub fn explain(e: &ClientError) -> String {
    match e {
        ClientError::Refused { status, message }
        | ClientError::Unexpected {
            status,
            body: message,
        } => {
            let hint = if *status == StatusCode::UNAUTHORIZED {
                " (the admin token: admin.token in -c FILE, or SHOAL_ADMIN_TOKEN)"
            } else {
                ""
            };
            format!("{} {}{hint}", status.as_u16(), message.trim())
        }
        // Without the CLI's hint on where the address comes from: the
        // screen names the address it polls.
        ClientError::Unreachable { addr, reason } => {
            format!("no shoal answers at {addr} ({reason})")
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::client::refusal;

    #[test]
    fn refusals_say_their_status() {
        let e = refusal(StatusCode::UNAUTHORIZED, br#"{"error": "unauthorized"}"#);
        assert_eq!(
            explain(&e),
            "401 unauthorized (the admin token: admin.token in -c FILE, or SHOAL_ADMIN_TOKEN)"
        );
        let e = refusal(
            StatusCode::CONFLICT,
            br#"{"error": "another operation is running: scale to 3"}"#,
        );
        assert_eq!(explain(&e), "409 another operation is running: scale to 3");
        let e = refusal(StatusCode::BAD_GATEWAY, b"upstream down\n");
        assert_eq!(explain(&e), "502 upstream down");
        let e = ClientError::Unreachable {
            addr: "127.0.0.1:9".parse().unwrap(),
            reason: "Connection refused".into(),
        };
        assert_eq!(
            explain(&e),
            "no shoal answers at 127.0.0.1:9 (Connection refused)"
        );
        assert_eq!(
            explain(&ClientError::Failed("app-3 did not become healthy".into())),
            "app-3 did not become healthy"
        );
    }
}
