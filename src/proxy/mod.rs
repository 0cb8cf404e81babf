//! The data plane: listener → balancer → upstream pool, and back.

mod admit;
pub mod answer;
mod attempt;
pub mod body;
pub mod conn_watch;
mod debug_events;
pub mod error;
mod forward;
mod h1;
pub mod headers;
mod hpack;
pub mod limits;
pub mod listener;
pub mod pool;
mod protocol;
pub mod proxy_protocol;
mod redirect;
pub mod request_id;
pub mod request_rules;
mod retry_budget;
mod routing;
mod server;
pub mod stall;
pub mod trace;
mod upgrade;
pub mod view;

pub use forward::Proxy;
#[cfg(any(test, fuzzing))]
pub(crate) use h1::fuzz as fuzz_h1;
pub(crate) use h1::{header as h1_header, status_line as h1_status_line};
pub use routing::{Pool, Routing};
pub use server::{serve, Frontend, Grace, LimitsNow};
