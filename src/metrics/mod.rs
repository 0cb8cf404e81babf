//! Metrics: the counters the data plane keeps as plain atomics (per backend
//! on its `Endpoint`, process-wide in `counters`) and the Prometheus
//! exposition that reads them at scrape time (`GET /metrics` on the admin
//! listener).

pub mod counters;
mod exposition;
pub mod histogram;

pub use exposition::{render, CONTENT_TYPE};
