//! What a public listener is, beyond its socket: its name (logs, metrics,
//! status), its PROXY protocol version and whether it redirects to HTTPS.
//! A reload may change it; the accept loop reads it per connection.

use std::sync::atomic::AtomicU16;
use std::sync::Arc;

use shoal_config::ProxyProtocol;

#[derive(Debug, PartialEq)]
pub struct ListenerRole {
    pub name: Arc<str>,
    pub proxy_protocol: ProxyProtocol,
    /// Answer every request with a redirect to the HTTPS listener.
    pub redirect_https: bool,
}

/// The port of the first TLS listener (`redirect_https`'s target), shared
/// by every listener and set when the listeners change; 0 while none.
pub type HttpsPort = Arc<AtomicU16>;
