//! WebSocket and other HTTP/1.1 upgrades: once the backend answers 101, the
//! two connections are spliced and bytes flow both ways until either closes.

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::balance::InFlight;

pub fn splice(client: OnUpgrade, upstream: OnUpgrade, backend: String, in_flight: InFlight) {
    tokio::spawn(async move {
        let _in_flight = in_flight;
        let (client, upstream) = match tokio::try_join!(client, upstream) {
            Ok(pair) => pair,
            Err(e) => {
                tracing::debug!(%backend, error = %e, "upgrade did not complete");
                return;
            }
        };
        let mut client = TokioIo::new(client);
        let mut upstream = TokioIo::new(upstream);
        if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
            tracing::debug!(%backend, error = %e, "upgraded connection ended with an error");
        }
    });
}
