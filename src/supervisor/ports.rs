//! Free ports for instances: the kernel's choice for an ephemeral bind, then
//! released for the instance to take. An instance keeps its port across
//! restarts. If another program grabs the port in between, the instance fails
//! to bind and is restarted with backoff (visible in its log and restart
//! count); shoal does not detect that the other program answers instead.

use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener};

pub fn free_port(host: IpAddr) -> io::Result<u16> {
    let listener = TcpListener::bind(SocketAddr::new(host, 0))?;
    Ok(listener.local_addr()?.port())
}
