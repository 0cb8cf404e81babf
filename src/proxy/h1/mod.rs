//! The native HTTP/1.1 engine: shoal's own path for the requests that make
//! up most of a proxy's work — HTTP/1.1 requests without a body, over plain
//! TCP or TLS (`io::ClientStream`) —
//! in one task per client connection that also drives the backend's
//! socket, with no hyper dispatcher, client-connection task, channel or
//! header map in between, and no buffer held by an idle connection.
//!
//! Every HTTP/1.1 connection starts here (`proxy.engine: native`, the
//! default), on a TLS listener once the handshake is done and ALPN did
//! not choose `h2`. The first request the engine does not serve —
//! one with a body, an upgrade, HTTP/1.0, h2c's preface, a head that does
//! not parse, an h2 backend (see `request.rs`) — hands
//! the connection to hyper with the bytes already read put back in front
//! (`io::Rewind`), and hyper serves it from then on exactly as with
//! `proxy.engine: hyper`. So bodies, WebSocket, HTTP/2 and every refusal
//! stay in one place; the engine covers the bodiless fast path.
//!
//! | file | what |
//! |---|---|
//! | `conn.rs` | the client connection: wait, read a head, serve, timers |
//! | `idle.rs` | idle connections' deadlines and the drain, outside their tasks |
//! | `park.rs` | idle plain connections parked in an epoll set of the listener's, with no task |
//! | `head.rs` | what both heads share: tokens, `Connection`-named headers, a header line |
//! | `request.rs` | parse the request head, decide, write the backend's head |
//! | `exchange.rs` | the attempts (`proxy::attempt` decides), send, read the response head |
//! | `relay.rs` | pass the response body through by its framing |
//! | `response.rs` | parse the response head, its framing, the client's head |
//! | `chunked.rs` | where a chunked body ends (and its runs of data, for `upstream.rs`) |
//! | `upstream.rs` | hyper's path on raw sockets: a bodyless GET/HEAD hyper serves (h2 streams), its response body read in the stream's task |
//! | `io.rs` | per-thread buffers, writes with a send timeout, the client's stream (plain or TLS), `Rewind` |

mod cached;
mod chunked;
mod conn;
mod exchange;
mod files;
#[cfg(any(test, fuzzing))]
pub(crate) mod fuzz;
mod head;
mod idle;
mod io;
mod park;
mod relay;
mod request;
mod response;
pub(crate) mod upstream;

pub use conn::{drive, ConnLimits, End};
pub(crate) use head::{header, status_line};
pub use idle::Idle;
pub use io::{ClientStream, Rewind, TlsClient};
pub use park::{Parked, Parker};
